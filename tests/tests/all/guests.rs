//! Every test guest against the runtime: each misbehaviour ends in its own
//! error, and the next call on the same runtime succeeds.

use std::sync::Arc;
use stepwise::plugins::report::HostCallResult;

use stepwise::crm::User;
use stepwise::plugins::{LoadError, PluginError, Runtime, StaticDirectory};
use stepwise_tests::{ada, grace, guests, invocation, runtime, wit_0_1_0};

macro_rules! assert_test_exists {
    ($name:ident) => {
        #[expect(unused_imports, reason = "only checks that the test exists")]
        use self::$name as _;
    };
}
stepwise_tests::foreach_guest!(assert_test_exists);

/// After a misbehaving call, a well-behaved one on the same runtime works.
async fn still_serving(runtime: &Runtime) {
    let plugin = runtime.load(guests::TRIVIAL).await.expect("trivial loads");
    let call = runtime.execute(&plugin, invocation(ada(), &[]), "{}").await.expect("trivial runs");
    assert!(matches!(call.value, stepwise::plugins::types::Outcome::Done { .. }), "{:?}", call.value);
}

#[tokio::test]
async fn trivial() {
    let runtime = runtime(false);
    let plugin = runtime.load(guests::TRIVIAL).await.unwrap();
    assert_eq!(plugin.wit_version(), "0.2.0");
    for _ in 0..3 {
        still_serving(&runtime).await;
    }
}

#[tokio::test]
async fn infinite_loop() {
    let runtime = runtime(false);
    let plugin = runtime.load(guests::INFINITE_LOOP).await.unwrap();
    let failure = runtime.execute(&plugin, invocation(ada(), &[]), "{}").await.unwrap_err();
    assert!(matches!(failure.error, PluginError::Timeout { .. }), "{:?}", failure.error);
    assert!(failure.error.to_string().contains("timed out after 500 ms"), "{}", failure.error);
    still_serving(&runtime).await;
}

#[tokio::test]
async fn memory_bomb() {
    let runtime = runtime(false);
    let plugin = runtime.load(guests::MEMORY_BOMB).await.unwrap();
    let failure = runtime.execute(&plugin, invocation(ada(), &[]), "{}").await.unwrap_err();
    assert!(
        matches!(failure.error, PluginError::MemoryLimit { limit, .. } if limit == 32 << 20),
        "{:?}",
        failure.error
    );
    assert!(failure.report.peak_memory <= 32 << 20);
    still_serving(&runtime).await;
}

#[tokio::test]
async fn oversized_output() {
    let runtime = runtime(false);
    let plugin = runtime.load(guests::OVERSIZED_OUTPUT).await.unwrap();
    let failure = runtime.execute(&plugin, invocation(ada(), &[]), "{}").await.unwrap_err();
    assert!(
        matches!(failure.error, PluginError::OutputTooLarge { size: None, limit } if limit == 1 << 20),
        "{:?}",
        failure.error
    );
    still_serving(&runtime).await;
}

#[tokio::test]
async fn trap() {
    let runtime = runtime(false);
    let plugin = runtime.load(guests::TRAP).await.unwrap();
    let failure = runtime.execute(&plugin, invocation(ada(), &[]), "{}").await.unwrap_err();
    let PluginError::Trap { message } = &failure.error else { panic!("{:?}", failure.error) };
    assert!(message.contains("deliberate panic in execute"), "{message}");
    // stderr is captured into the plugin's log, not the host's.
    let stderr: Vec<_> =
        failure.report.logs.iter().filter(|l| l.source == stepwise::plugins::report::LogSource::Stderr).collect();
    assert!(stderr.iter().any(|l| l.message.contains("deliberate panic")), "{:?}", failure.report.logs);
    still_serving(&runtime).await;
}

#[tokio::test]
async fn oversized_input_is_refused_before_the_call() {
    let runtime = runtime(false);
    let plugin = runtime.load(guests::TRIVIAL).await.unwrap();
    let config = format!("{{\"pad\": \"{}\"}}", "x".repeat(2 << 20));
    let failure = runtime.execute(&plugin, invocation(ada(), &[]), &config).await.unwrap_err();
    assert!(matches!(failure.error, PluginError::InputTooLarge { .. }), "{:?}", failure.error);
    still_serving(&runtime).await;
}

/// Runs `host-caller` with `config` under `grants`; returns the outcome as
/// JSON and the report.
/// The `host-caller` guest as built today, on contract 0.2.0, and as built
/// for 0.1.0 before 0.2.0 existed: the calls they share behave alike.
const HOST_CALLERS: [(&str, &[u8]); 2] = [("0.2.0", guests::HOST_CALLER), ("0.1.0", wit_0_1_0::HOST_CALLER)];

async fn host_call(
    runtime: &Runtime,
    config: serde_json::Value,
    grants: &[&str],
) -> Result<(serde_json::Value, stepwise::plugins::CallReport), stepwise::plugins::CallError> {
    host_call_of(runtime, guests::HOST_CALLER, config, grants).await
}

async fn host_call_of(
    runtime: &Runtime,
    component: &[u8],
    config: serde_json::Value,
    grants: &[&str],
) -> Result<(serde_json::Value, stepwise::plugins::CallReport), stepwise::plugins::CallError> {
    let plugin = runtime.load(component).await.unwrap();
    let call = runtime.execute(&plugin, invocation(ada(), grants), &config.to_string()).await?;
    Ok((serde_json::to_value(&call.value).unwrap(), call.report))
}

#[tokio::test]
async fn host_caller() {
    let runtime = runtime(false);
    for (version, component) in HOST_CALLERS {
        assert_eq!(runtime.load(component).await.unwrap().wit_version(), version);
        let config = serde_json::json!({"call": "render", "template": "Hi {{contact.first_name}}"});
        let (outcome, report) = host_call_of(&runtime, component, config, &["render-template"]).await.unwrap();
        assert_eq!(outcome["status"], "done", "{version}: {outcome}");
        assert_eq!(outcome["output"]["rendered"], "Hi Ada", "{version}: {outcome}");
        assert_eq!(report.host_calls.len(), 1);
        assert_eq!(report.host_calls[0].result, HostCallResult::Ok);
        let config = serde_json::json!({"call": "lookup-user"});
        let (outcome, _) = host_call_of(&runtime, component, config, &["lookup-user"]).await.unwrap();
        assert_eq!(outcome["output"]["user"]["name"], grace().name, "{version}: {outcome}");
        let config = serde_json::json!({"call": "log"});
        let (_, report) = host_call_of(&runtime, component, config, &["log"]).await.unwrap();
        assert_eq!(report.logs[0].message, "hello from host-caller", "{version}");
    }
}

#[tokio::test]
async fn undeclared_capability_is_denied_even_when_granted() {
    let runtime = runtime(false);
    for (version, component) in HOST_CALLERS {
        let config = serde_json::json!({"call": "send-email"});
        let (outcome, report) = host_call_of(&runtime, component, config, &["send-email"]).await.unwrap();
        assert_eq!(outcome["status"], "failed", "{version}: {outcome}");
        assert_eq!(outcome["details"]["code"], "denied", "{version}: {outcome}");
        let denial: Vec<_> = report.denials().collect();
        assert_eq!(denial.len(), 1);
        assert_eq!(denial[0].function, "messaging.send-email");
        let HostCallResult::Denied { reason } = &denial[0].result else { unreachable!() };
        assert!(reason.contains("not declared"), "{reason}");
        assert!(report.messages.is_empty());
    }
}

#[tokio::test]
async fn declared_but_ungranted_capability_is_denied() {
    let runtime = runtime(false);
    let calls = [
        (serde_json::json!({"call": "fetch", "url": "https://example.com/"}), "http.fetch"),
        (serde_json::json!({"call": "render", "template": "x"}), "templates.render"),
        (serde_json::json!({"call": "lookup-user"}), "users.lookup-user"),
        (serde_json::json!({"call": "contact-types"}), "account.contact-types"),
        (serde_json::json!({"call": "list-users"}), "account.list-users"),
    ];
    for (version, component) in HOST_CALLERS {
        // The 0.1.0 build has no calls of the `account` interface.
        let shared = if version == "0.1.0" { &calls[..3] } else { &calls[..] };
        for (config, function) in shared {
            let (outcome, report) = host_call_of(&runtime, component, config.clone(), &[]).await.unwrap();
            assert_eq!(outcome["details"]["code"], "denied", "{version}: {outcome}");
            let denial: Vec<_> = report.denials().collect();
            assert_eq!(denial.len(), 1, "{function}");
            assert_eq!(&denial[0].function, function);
            let HostCallResult::Denied { reason } = &denial[0].result else { unreachable!() };
            assert!(reason.contains("not granted"), "{reason}");
        }
    }
}

#[tokio::test]
async fn the_account_lists_its_contact_types_and_users_in_pages() {
    let runtime = runtime(false);
    let plugin = runtime.load(guests::HOST_CALLER).await.unwrap();
    let config = serde_json::json!({"call": "contact-types"});
    let (outcome, report) = host_call(&runtime, config, &["read-contact-types"]).await.unwrap();
    let names: Vec<&str> =
        outcome["output"]["contact_types"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Clients", "Employees", "Partners", "Vendors", "Other"], "{outcome}");
    assert_eq!(outcome["output"]["contact_types"][4]["default"], true);
    assert_eq!(report.host_calls[0].function, "account.contact-types");

    // Five users, read two at a time: three pages, each user once, by id.
    let mut inv = invocation(ada(), &["list-users"]);
    let users: Vec<User> =
        ["usr_e", "usr_a", "usr_d", "usr_c", "usr_b"].iter().map(|id| User { id: (*id).into(), ..grace() }).collect();
    inv.directory = Arc::new(StaticDirectory::new(users));
    let config = serde_json::json!({"call": "list-users", "limit": 2}).to_string();
    let call = runtime.execute(&plugin, inv.clone(), &config).await.unwrap();
    let outcome = serde_json::to_value(&call.value).unwrap();
    assert_eq!(outcome["output"]["users"], serde_json::json!(["usr_a", "usr_b", "usr_c", "usr_d", "usr_e"]));
    assert_eq!(outcome["output"]["pages"], 3);
    assert_eq!(call.report.host_calls[1].detail, "after usr_b, limit 2");

    // A page holds 100 users at most, whatever the plugin asks for.
    let many: Vec<User> = (0..150).map(|i| User { id: format!("usr_{i:03}"), ..grace() }).collect();
    inv.directory = Arc::new(StaticDirectory::new(many));
    let config = serde_json::json!({"call": "list-users", "limit": 1000}).to_string();
    let call = runtime.execute(&plugin, inv.clone(), &config).await.unwrap();
    let outcome = serde_json::to_value(&call.value).unwrap();
    assert_eq!(outcome["output"]["users"].as_array().unwrap().len(), 150);
    assert_eq!(outcome["output"]["pages"], 2);

    let config = serde_json::json!({"call": "list-users", "limit": 0}).to_string();
    let call = runtime.execute(&plugin, inv, &config).await.unwrap();
    let outcome = serde_json::to_value(&call.value).unwrap();
    assert_eq!(outcome["details"]["code"], "invalid", "{outcome}");
    assert_eq!(outcome["details"]["message"], "the limit must be at least 1", "{outcome}");
}

#[tokio::test]
async fn denied_log_lines_are_recorded_and_dropped() {
    let runtime = runtime(false);
    let (outcome, report) = host_call(&runtime, serde_json::json!({"call": "log"}), &[]).await.unwrap();
    assert_eq!(outcome["status"], "done", "{outcome}");
    assert!(report.logs.iter().all(|l| l.source != stepwise::plugins::report::LogSource::Plugin));
    assert_eq!(report.denials().count(), 1);
}

#[tokio::test]
async fn log_flood_hits_the_log_limit() {
    let runtime = runtime(false);
    let failure =
        host_call(&runtime, serde_json::json!({"call": "log-flood", "count": 1000}), &["log"]).await.unwrap_err();
    assert!(matches!(failure.error, PluginError::LogLimit { limit } if limit == 16 << 10), "{:?}", failure.error);
    assert!(!failure.report.logs.is_empty(), "lines before the limit are kept");
    still_serving(&runtime).await;
}

#[tokio::test]
async fn update_contact_needs_the_field_declared() {
    let runtime = runtime(false);
    let config = serde_json::json!({"call": "update-contact"});
    let (outcome, report) = host_call(&runtime, config, &["update-contact=contact_type"]).await.unwrap();
    assert_eq!(outcome["details"]["code"], "denied", "{outcome}");
    assert!(report.contact_changes.is_empty());
}

#[tokio::test]
async fn predicate_even() {
    let runtime = runtime(false);
    let plugin = runtime.load(guests::PREDICATE_EVEN).await.unwrap();
    assert_eq!(plugin.wit_version(), "0.2.0");
    evaluates_evenness(&runtime, &plugin).await;
}

#[tokio::test]
async fn a_predicate_built_for_0_1_0_still_evaluates() {
    let runtime = runtime(false);
    let plugin = runtime.load(wit_0_1_0::PREDICATE_EVEN).await.unwrap();
    assert_eq!(plugin.wit_version(), "0.1.0");
    evaluates_evenness(&runtime, &plugin).await;
}

async fn evaluates_evenness(runtime: &Runtime, plugin: &stepwise::plugins::Plugin) {
    let mut subject = ada();
    subject.contact.attributes.insert("n".into(), stepwise::crm::AttributeValue::Number(4.0));
    let call = runtime.evaluate(plugin, invocation(subject.clone(), &[]), "{}").await.unwrap();
    assert_eq!(call.value, Ok(true));
    subject.contact.attributes.insert("n".into(), stepwise::crm::AttributeValue::Number(3.0));
    let call = runtime.evaluate(plugin, invocation(subject, &[]), "{}").await.unwrap();
    assert_eq!(call.value, Ok(false));
    let call = runtime.evaluate(plugin, invocation(ada(), &[]), "{}").await.unwrap();
    assert!(call.value.is_err(), "a missing attribute is an error, not false");
    let failure = runtime.execute(plugin, invocation(ada(), &[]), "{}").await.unwrap_err();
    assert!(matches!(failure.error, PluginError::WrongKind(_)), "{:?}", failure.error);
}

#[tokio::test]
async fn wrong_world() {
    let runtime = runtime(false);
    let error = runtime.load(guests::WRONG_WORLD).await.unwrap_err();
    assert!(matches!(error, LoadError::UnknownWorld { .. }), "{error:?}");
    assert!(error.to_string().contains("wasi:cli/run"), "{error}");
    still_serving(&runtime).await;
}

#[tokio::test]
async fn future_wit() {
    let runtime = runtime(false);
    let error = runtime.load(guests::FUTURE_WIT).await.unwrap_err();
    assert!(matches!(&error, LoadError::UnsupportedWitVersion { found, .. } if found == "0.3.0"), "{error:?}");
    assert!(error.to_string().contains("supported: 0.1.0, 0.2.0"), "{error}");
}

#[tokio::test]
async fn wasi_http() {
    let runtime = runtime(false);
    let error = runtime.load(guests::WASI_HTTP).await.unwrap_err();
    assert!(
        matches!(&error, LoadError::UnprovidedImport { interface, .. } if interface == "wasi:http/handler@0.3.0"),
        "{error:?}"
    );
    let said = error.to_string();
    assert!(said.contains("`wasi:http/handler@0.3.0`, which this host does not provide"), "{said}");
    assert!(said.contains("http-fetch") && said.contains("fetch-event"), "says what to do instead: {said}");
    still_serving(&runtime).await;
}

#[tokio::test]
async fn core_module_is_not_a_component() {
    let runtime = runtime(false);
    // The smallest core module: magic and version 1.
    let error = runtime.load(b"\0asm\x01\0\0\0").await.unwrap_err();
    assert!(error.to_string().contains("core WebAssembly module"), "{error}");
    let error = runtime.load(b"not wasm at all").await.unwrap_err();
    assert!(matches!(error, LoadError::NotAComponent(_)), "{error:?}");
}

#[tokio::test]
async fn calls_run_concurrently_on_one_runtime() {
    let runtime = runtime(false);
    let plugin = runtime.load(guests::TRIVIAL).await.unwrap();
    let looping = runtime.load(guests::INFINITE_LOOP).await.unwrap();
    let slow = {
        let runtime = runtime.clone();
        let looping = looping.clone();
        tokio::spawn(async move { runtime.execute(&looping, invocation(ada(), &[]), "{}").await })
    };
    // While one call spins until its deadline, others complete.
    for _ in 0..20 {
        runtime.execute(&plugin, invocation(ada(), &[]), "{}").await.unwrap();
    }
    assert!(!slow.is_finished(), "the spinning call is still running");
    assert!(slow.await.unwrap().is_err());
}

#[tokio::test]
async fn scripted() {
    let runtime = runtime(false);
    let plugin = runtime.load(guests::SCRIPTED).await.unwrap();
    assert_eq!(plugin.manifest().channel, Some(stepwise::plugins::types::Channel::Email));
    let config = r#"{"send": true, "set": {"stage": "warm"}}"#;
    let granted = invocation(ada(), &["send-email", "update-contact=attributes"]);
    let call = runtime.execute(&plugin, granted, config).await.unwrap();
    assert!(
        matches!(&call.value, stepwise::plugins::types::Outcome::Done { result, .. } if result == "sent"),
        "{:?}",
        call.value
    );
    assert_eq!(call.report.messages.len(), 1, "the email is queued with the call");
    assert_eq!(call.report.contact_changes.len(), 1);
    // Without the grant, sending is denied and the step fails on its own terms.
    let call = runtime.execute(&plugin, invocation(ada(), &[]), config).await.unwrap();
    assert!(
        matches!(&call.value, stepwise::plugins::types::Outcome::Failed { message, .. } if message.starts_with("send-email")),
        "{:?}",
        call.value
    );
    assert!(call.report.messages.is_empty());
    assert_eq!(call.report.denials().count(), 1);
}

#[tokio::test]
async fn texter() {
    let runtime = runtime(false);
    let plugin = runtime.load(guests::TEXTER).await.unwrap();
    assert_eq!(plugin.manifest().channel, Some(stepwise::plugins::types::Channel::Sms));
    let call = runtime.execute(&plugin, invocation(ada(), &["send-sms"]), "{}").await.unwrap();
    assert!(
        matches!(&call.value, stepwise::plugins::types::Outcome::Done { result, .. } if result == "sent"),
        "{:?}",
        call.value
    );
    assert!(
        matches!(&call.report.messages[..], [stepwise::plugins::report::QueuedMessage::Sms { to, .. }] if to == "+15550100")
    );
}

/// An account's add-on is its own: a version another account registers
/// under the same id, even a higher one, is never resolved for it.
#[tokio::test]
async fn shadow_proposal_paid() {
    use stepwise::plugins::Registry;
    let registry = Registry::new(runtime(false));
    let real = std::fs::read(stepwise_tests::add_ons::PROPOSAL_PAID).expect("the build script built the add-on");
    registry.add_for("acc_c", &real).await.expect("c's add-on");
    registry.add_for("acc_b", guests::SHADOW_PROPOSAL_PAID).await.expect("b's, apart from c's");
    let found = registry.get("acc_c", "proposal-paid", "*").unwrap().expect("c resolves its own");
    assert_eq!(found.manifest().version, "0.1.0", "never b's 0.1.1");
    assert!(registry.get("acc_c", "proposal-paid", "=0.1.1").unwrap().is_none());
    let theirs = registry.get("acc_b", "proposal-paid", "*").unwrap().expect("b resolves its own");
    assert_eq!(theirs.manifest().version, "0.1.1");
    assert!(registry.get("acc_a", "proposal-paid", "*").unwrap().is_none(), "a third account, neither");

    // The hostile component itself always holds.
    let call = registry.runtime().evaluate(&theirs, invocation(ada(), &[]), "{}").await.unwrap();
    assert_eq!(call.value, Ok(true));
}

/// Regression: host calls that cost no bytes (`log("")` denied,
/// `templates.check("")`) were unbounded in number, so a plugin calling in
/// a loop ran to its deadline and grew a report of millions of denials.
#[tokio::test]
async fn call_flood() {
    let runtime = runtime(false);
    let limit = runtime.limits().host_calls;
    let plugin = runtime.load(guests::CALL_FLOOD).await.unwrap();
    let started = std::time::Instant::now();
    let failure = runtime.execute(&plugin, invocation(ada(), &["render-template"]), "{}").await.unwrap_err();
    assert!(matches!(failure.error, PluginError::HostCallLimit { limit: l } if l == limit), "{:?}", failure.error);
    assert!(failure.report.host_calls.len() <= limit, "the report is capped: {}", failure.report.host_calls.len());
    assert!(failure.report.denials().count() > 0, "the denied logs were recorded, up to the cap");
    assert!(started.elapsed() < runtime.limits().call_timeout / 2, "stopped at the count, not the deadline");
    still_serving(&runtime).await;
}
