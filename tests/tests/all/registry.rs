//! The registry: built-ins at start, add-ons from bytes at run time, lookup
//! by id and version requirement.

use stepwise::plugins::builtin::BUILTIN;
use stepwise::plugins::{Origin, Registry, RegistryError};
use stepwise_tests::{ada, guests, invocation, runtime};

#[tokio::test]
async fn builtins_are_registered_and_add_ons_join_at_run_time() {
    let registry = Registry::with_builtins(runtime(false)).await.unwrap();
    let ids: Vec<String> = registry.list().iter().map(|r| r.plugin.manifest().id.clone()).collect();
    let mut builtins: Vec<&str> = BUILTIN.iter().map(|(name, _)| *name).collect();
    builtins.sort_unstable();
    assert_eq!(ids, builtins, "every built-in, by id, each under its directory's name");
    assert!(registry.list().iter().all(|r| r.origin == Origin::Builtin));

    let added = registry.add(guests::TRIVIAL).await.unwrap();
    let again = registry.add(guests::TRIVIAL).await.unwrap();
    assert_eq!(added.digest(), again.digest(), "adding the same bytes twice is a no-op");
    assert_eq!(registry.list().len(), BUILTIN.len() + 1);

    let found = registry.get("acc_any", "trivial", "^0.1").unwrap().expect("found by requirement");
    let call = registry.runtime().execute(&found, invocation(ada(), &[]), "{}").await.unwrap();
    assert!(matches!(call.value, stepwise::plugins::types::Outcome::Done { .. }));
    assert!(registry.get("acc_any", "trivial", "^2").unwrap().is_none());
    assert!(registry.get("acc_any", "nope", "*").unwrap().is_none());
    let error = registry.get("acc_any", "trivial", "not a version").unwrap_err();
    assert!(matches!(error, RegistryError::BadRequirement { .. }), "{error}");
}

#[tokio::test]
async fn a_component_that_does_not_load_is_not_registered() {
    let registry = Registry::with_builtins(runtime(false)).await.unwrap();
    let error = registry.add(guests::WRONG_WORLD).await.unwrap_err();
    assert!(error.to_string().contains("exports no Stepwise world"), "{error}");
    assert_eq!(registry.list().len(), BUILTIN.len());
}
