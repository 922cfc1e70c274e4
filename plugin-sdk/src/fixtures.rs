//! Sample records for a plugin's native unit tests: a contact, its owner,
//! the subject and step context of a call, stand-ins for the host's
//! template functions, and configs, problems and outcomes read for
//! assertions. Tests change what they need with struct update
//! syntax.
//!
//! Enable the `test-fixtures` feature in the plugin's dev-dependencies:
//!
//! ```toml
//! [dev-dependencies]
//! stepwise-plugin-sdk = { workspace = true, features = ["test-fixtures"] }
//! ```
//!
//! # Examples
//!
//! ```
//! use stepwise_plugin_sdk::fixtures;
//! use stepwise_plugin_sdk::prelude::*;
//!
//! let nameless = Contact { first_name: String::new(), last_name: String::new(), ..fixtures::contact() };
//! assert_eq!(nameless.display_name(&[Channel::Email]), "ada@example.com");
//! ```

use crate::{
    Activation, ConfigProblem, Contact, ContactKind, ContactType, ErrorCode, HostError, OptOuts, Outcome, Role,
    StepContext, Subject, User,
};

/// Ada Lovelace (`con_ada`), a contact of type `Clients` owned by
/// [`user`], with an email address and a phone number, opted out of
/// nothing, without company, attributes or activity.
pub fn contact() -> Contact {
    Contact {
        id: "con_ada".into(),
        kind: ContactKind::Contact,
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        email: Some("ada@example.com".into()),
        phone: Some("+15550100".into()),
        owner_id: Some("usr_grace".into()),
        company_id: None,
        contact_type: "Clients".into(),
        lead_source: None,
        sales_cycle: None,
        timezone: None,
        opt_outs: OptOuts { email: false, sms: false, phone: false },
        attributes: Vec::new(),
        last_engaged: None,
        last_contacted: None,
    }
}

/// Grace (`usr_grace`, grace@example.com), an active agent in UTC who is
/// not a delegate, without a signature or a connected mailbox.
pub fn user() -> User {
    User {
        id: "usr_grace".into(),
        name: "Grace".into(),
        email: "grace@example.com".into(),
        role: Role::Agent,
        active: true,
        delegate: false,
        timezone: "UTC".into(),
        signature: String::new(),
        sender_connected: false,
    }
}

/// What a call is about: [`contact`], without its owner's record or a
/// company.
pub fn subject() -> Subject {
    Subject { contact: contact(), owner: None, company: None }
}

/// The context of the first attempt of an automatic step at `now`
/// (milliseconds since the Unix epoch), without ids, event date or
/// completion.
pub fn context(now: i64) -> StepContext {
    StepContext {
        account_id: String::new(),
        sequence_id: String::new(),
        sequence_version: 1,
        enrollment_id: String::new(),
        action_id: String::new(),
        step_number: 1,
        attempt: 1,
        idempotency_key: String::new(),
        now,
        event_date: None,
        activation: Activation::Automatic,
        completion: None,
    }
}

/// A new account's contact types, as
/// [`account::contact_types`](crate::account::contact_types) answers:
/// Clients, Employees, Partners, Vendors and Other (the default).
pub fn contact_types() -> Vec<ContactType> {
    let names = ["Clients", "Employees", "Partners", "Vendors", "Other"];
    names
        .iter()
        .enumerate()
        .map(|(i, name)| ContactType {
            id: format!("cty_{}", i + 1),
            name: (*name).to_owned(),
            is_default: i == names.len() - 1,
        })
        .collect()
}

/// A stand-in for [`templates::problem`](crate::templates::problem): a
/// template holding `{{nope}}` has the unknown token `nope` at `field`;
/// every other token is known.
pub fn check(field: &str, template: &str) -> Option<ConfigProblem> {
    template.contains("{{nope}}").then(|| ConfigProblem::new(field, "unknown token `nope`"))
}

/// A stand-in for [`templates::render`](crate::templates::render):
/// `{{contact.first_name}}` renders as `Ada` and `{{owner.name}}` as
/// `Grace`.
///
/// # Errors
///
/// The `invalid` [`HostError`] ``unknown token `company.nope` `` naming the
/// first other token.
pub fn render(template: &str) -> Result<String, HostError> {
    let rendered = template.replace("{{contact.first_name}}", "Ada").replace("{{owner.name}}", "Grace");
    match rendered.split_once("{{") {
        None => Ok(rendered),
        Some((_, rest)) => {
            let token = rest.split_once("}}").map_or(rest, |(token, _)| token).trim();
            Err(HostError { code: ErrorCode::Invalid, message: format!("unknown token `{token}`") })
        }
    }
}

/// Parses `json` as a plugin's config type, panicking with the problem's
/// field and message when it does not parse.
pub fn config<T: serde::de::DeserializeOwned>(json: &str) -> T {
    crate::parse_config(json).unwrap_or_else(|p| panic!("{json}: {} {}", p.field, p.message))
}

/// Problems as `field: message` lines, for assertions.
pub fn problem_lines(problems: impl IntoIterator<Item = ConfigProblem>) -> Vec<String> {
    problems.into_iter().map(|p| format!("{}: {}", p.field, p.message)).collect()
}

/// An outcome in one line, for assertions: a done step's result, or
/// `failed: <message>`, `skipped: <reason>`, `retry: <reason>`.
pub fn result_of(outcome: Outcome) -> String {
    match outcome {
        Outcome::Done(done) => done.result,
        Outcome::Failed(failure) => format!("failed: {}", failure.message),
        Outcome::Skipped(reason) => format!("skipped: {reason}"),
        Outcome::Retry(retry) => format!("retry: {}", retry.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_contact_is_owned_by_the_sample_user() {
        assert_eq!(contact().owner_id, Some(user().id));
        assert_eq!(subject().contact.id, contact().id);
        assert_eq!(context(42).now, 42);
    }

    #[test]
    fn the_stand_ins_know_the_sample_tokens_only() {
        assert!(check("/title", "Hi {{contact.first_name}}").is_none());
        let problem = check("/title", "Hi {{nope}}").unwrap();
        assert_eq!((problem.field.as_str(), problem.message.as_str()), ("/title", "unknown token `nope`"));
        assert_eq!(render("Hi {{contact.first_name}}, this is {{owner.name}}").unwrap(), "Hi Ada, this is Grace");
        let error = render("Hi {{contact.first_name}} of {{ company.name }} and {{nope}}").unwrap_err();
        assert_eq!((error.code, error.message.as_str()), (ErrorCode::Invalid, "unknown token `company.name`"));
    }

    #[derive(Debug, serde::Deserialize)]
    struct Config {
        url: String,
    }

    #[test]
    fn a_config_parses() {
        assert_eq!(config::<Config>(r#"{"url": "x"}"#).url, "x");
    }

    #[test]
    #[should_panic(expected = "{}:  missing field `url`")]
    fn a_config_that_does_not_parse_panics_with_the_problem() {
        config::<Config>("{}");
    }

    #[test]
    fn problems_read_as_lines() {
        let problems = [ConfigProblem::new("/url", "is empty"), ConfigProblem::new("", "needs a url")];
        assert_eq!(problem_lines(problems), ["/url: is empty", ": needs a url"]);
    }

    #[test]
    fn outcomes_read_as_one_line() {
        assert_eq!(result_of(Outcome::done("sent")), "sent");
        assert_eq!(result_of(Outcome::failed("no")), "failed: no");
        assert_eq!(result_of(Outcome::skipped("no phone")), "skipped: no phone");
        assert_eq!(result_of(Outcome::retry(std::time::Duration::from_secs(1), "busy")), "retry: busy");
    }
}
