//! The `change-contact-type` step: moves the contact to another of the
//! account's contact types (Clients, Partners, … as the account names them).
//!
//! The name is checked against the account's contact types when the step
//! is saved (`read-contact-types`, contract 0.2.0), and again by the host
//! when it writes the change: a type renamed or removed since fails the
//! step with the host's message.

use serde_json::json;
use stepwise_plugin_sdk::contacts::{self, ContactUpdate};
use stepwise_plugin_sdk::prelude::*;
use stepwise_plugin_sdk::{ContactType, account};

/// The one result: the contact has the type the step names.
const DONE: &str = "done";

/// A change-contact-type step's configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The contact type to set, exactly as the account names it (see
    /// `GET /v1/contact-types`), such as `Partners`.
    #[schemars(length(min = 1))]
    pub contact_type: String,
}

/// The change-contact-type step type.
#[derive(Debug)]
pub struct ChangeContactType;

impl Action for ChangeContactType {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("change-contact-type", "Change contact type")
            .description("sets the contact's type to one of the account's contact types, such as Partners")
            .automatic()
            .result(ResultSpec::continues(DONE, "Done"))
            .capability(Capability::UpdateContact(vec![ContactField::ContactType]))
            .capability(Capability::ReadContactTypes)
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        let problems = problems(config);
        if !problems.is_empty() {
            return problems;
        }
        known(config, account::contact_types)
    }

    fn execute(_: &StepContext, config: Config, subject: &Subject) -> Outcome {
        run(&config, &subject.contact, contacts::update)
    }
}

stepwise_plugin_sdk::export_action!(ChangeContactType);

/// The longest contact type name a step may set.
const MAX_NAME: usize = 100;

/// Every problem of `config`, each naming its field.
fn problems(config: &Config) -> Vec<ConfigProblem> {
    let name = &config.contact_type;
    let problem = if name.trim().is_empty() {
        "must not be empty"
    } else if name.trim() != name {
        "must not start or end with spaces"
    } else if name.chars().count() > MAX_NAME {
        "must be at most 100 characters"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Vec::new();
    };
    vec![ConfigProblem::new("/contact_type", problem)]
}

/// Whether the account has the type `config` names, asking the host's
/// `types` ([`account::contact_types`]). Where the host does not let the
/// plugin list them, the host's own check when the step runs is the only
/// one.
fn known(config: &Config, types: impl Fn() -> Result<Vec<ContactType>, HostError>) -> Vec<ConfigProblem> {
    let problem = match types() {
        Ok(types) => account::contact_type_named(&types, &config.contact_type).err(),
        Err(error) if error.code == ErrorCode::Denied => None,
        Err(error) => Some(format!("cannot check the account's contact types now: {}", error.message)),
    };
    problem.map(|message| ConfigProblem::new("/contact_type", message)).into_iter().collect()
}

/// Sets the contact type of `contact` with the host's `update`
/// ([`contacts::update`]).
fn run(config: &Config, contact: &Contact, update: impl Fn(&ContactUpdate) -> Result<Contact, HostError>) -> Outcome {
    if let Some(problem) = problems(config).into_iter().next() {
        return Outcome::failed(problem.describe());
    }
    let previous = &contact.contact_type;
    let wanted = &config.contact_type;
    let output = |changed: bool| json!({"contact_type": wanted, "previous_contact_type": previous, "changed": changed});
    if previous == wanted {
        return Outcome::done_with(DONE, &output(false));
    }
    let change = ContactUpdate { contact_type: Some(wanted.clone()), ..ContactUpdate::default() };
    match update(&change) {
        Ok(_) => Outcome::done_with(DONE, &output(true)),
        Err(error) => Outcome::failed_with(
            format!("cannot change the contact type to `{wanted}`: {}", error.message),
            &json!({"contact_type": wanted, "error": error}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use stepwise_plugin_sdk::fixtures::{self, config};
    use stepwise_plugin_sdk::parse_config;

    fn check(json: &str) -> Vec<String> {
        fixtures::problem_lines(problems(&config(json)))
    }

    fn output(outcome: &Outcome) -> serde_json::Value {
        match outcome {
            Outcome::Done(done) if done.result == DONE => serde_json::from_str(&done.output).unwrap(),
            other => panic!("not done: {other:?}"),
        }
    }

    #[test]
    fn names_are_checked_for_shape() {
        assert!(check(r#"{"contact_type": "Partners"}"#).is_empty());
        assert!(check(r#"{"contact_type": "Key accounts (EMEA)"}"#).is_empty());
        assert_eq!(check(r#"{"contact_type": " "}"#), ["/contact_type: must not be empty"]);
        assert_eq!(check(r#"{"contact_type": "Partners "}"#), ["/contact_type: must not start or end with spaces"]);
        assert_eq!(check(r#"{"contact_type": "A\tB"}"#), ["/contact_type: must not contain control characters"]);
        let long = "x".repeat(101);
        assert_eq!(
            check(&format!(r#"{{"contact_type": "{long}"}}"#)),
            ["/contact_type: must be at most 100 characters"]
        );
        let problem = parse_config::<Config>("{}").unwrap_err();
        assert!(problem.message.contains("missing field `contact_type`"), "{}", problem.message);
        let problem = parse_config::<Config>(r#"{"contact_type": "Partners", "type": "x"}"#).unwrap_err();
        assert!(problem.message.contains("unknown field `type`"), "{}", problem.message);
    }

    #[test]
    fn a_name_the_account_lacks_is_refused_when_saved() {
        let check = |json: &str, types: &dyn Fn() -> Result<Vec<ContactType>, HostError>| {
            fixtures::problem_lines(known(&config(json), types))
        };
        let listed = || Ok(fixtures::contact_types());
        assert!(check(r#"{"contact_type": "Partners"}"#, &listed).is_empty());
        assert_eq!(
            check(r#"{"contact_type": "partners"}"#, &listed),
            ["/contact_type: no contact type `partners` in this account (it has Clients, Employees, Partners, \
              Vendors, Other)"]
        );
        let denied = || Err(HostError { code: ErrorCode::Denied, message: "not granted".into() });
        assert!(check(r#"{"contact_type": "Anything"}"#, &denied).is_empty());
        let down = || Err(HostError { code: ErrorCode::Unavailable, message: "the store is down".into() });
        assert_eq!(
            check(r#"{"contact_type": "Partners"}"#, &down),
            ["/contact_type: cannot check the account's contact types now: the store is down"]
        );
    }

    #[test]
    fn sets_the_type_and_reports_the_previous_one() {
        let asked = RefCell::new(Vec::new());
        let update = |change: &ContactUpdate| {
            asked.borrow_mut().push(change.contact_type.clone());
            assert!(change.owner.is_none() && change.sales_cycle.is_none() && change.attributes.is_empty());
            Ok(fixtures::contact())
        };
        let outcome = run(&config(r#"{"contact_type": "Partners"}"#), &fixtures::contact(), update);
        assert_eq!(asked.into_inner(), [Some("Partners".to_owned())]);
        assert_eq!(
            output(&outcome),
            json!({"contact_type": "Partners", "previous_contact_type": "Clients", "changed": true})
        );
    }

    #[test]
    fn the_same_type_is_left_alone() {
        let never = |_: &ContactUpdate| -> Result<Contact, HostError> { panic!("no update") };
        let outcome = run(&config(r#"{"contact_type": "Clients"}"#), &fixtures::contact(), never);
        assert_eq!(output(&outcome)["changed"], false);
    }

    #[test]
    fn a_host_error_fails_naming_the_type() {
        let denied = |_: &ContactUpdate| {
            Err(HostError { code: ErrorCode::Denied, message: "`update-contact(contact_type)` is not granted".into() })
        };
        let outcome = run(&config(r#"{"contact_type": "Partners"}"#), &fixtures::contact(), denied);
        let Outcome::Failed(failure) = outcome else { panic!("{outcome:?}") };
        assert_eq!(
            failure.message,
            "cannot change the contact type to `Partners`: `update-contact(contact_type)` is not granted"
        );
        let details: serde_json::Value = serde_json::from_str(&failure.details).unwrap();
        assert_eq!(details["error"]["code"], "denied");
    }
}
