//! The `assign-user` step: makes a user of the account the contact's owner,
//! found by id or by email address, or leaves the contact without one.
//!
//! The decision is a pure function of the config, the contact and what the
//! host answers, so that it is unit-tested natively: the user lookup and
//! the contact update are passed in.

use serde_json::{Value, json};
use stepwise_plugin_sdk::contacts::{self, ContactUpdate, OwnerChange};
use stepwise_plugin_sdk::prelude::*;
use stepwise_plugin_sdk::users::{self, UserRef};

/// The one result: the contact has the owner the step asked for.
const DONE: &str = "done";

/// An assign-user step's configuration: exactly one of the three fields.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Assign the user with this id (`usr_…`).
    #[serde(default)]
    pub user_id: Option<String>,
    /// Assign the user with this email address, case-insensitive.
    #[serde(default)]
    pub email: Option<String>,
    /// `true` leaves the contact without an owner.
    #[serde(default)]
    pub unassign: bool,
}

/// The assign-user step type.
#[derive(Debug)]
pub struct AssignUser;

impl Action for AssignUser {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("assign-user", "Assign user")
            .description("makes a user of the account, by id or email address, the contact's owner, or unassigns it")
            .automatic()
            .result(ResultSpec::continues(DONE, "Done"))
            .capability(Capability::LookupUser)
            .capability(Capability::UpdateContact(vec![ContactField::Owner]))
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        let problems = problems(config);
        if !problems.is_empty() {
            return problems;
        }
        can_own(config, users::lookup)
    }

    fn execute(_: &StepContext, config: Config, subject: &Subject) -> Outcome {
        run(&config, &subject.contact, users::lookup, contacts::update)
    }
}

stepwise_plugin_sdk::export_action!(AssignUser);

/// Every problem of `config`, each naming its field.
fn problems(config: &Config) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut chosen: Vec<&str> = Vec::new();
    if let Some(id) = &config.user_id {
        chosen.push("user_id");
        if id.trim().is_empty() {
            problems.push(ConfigProblem::new("/user_id", "must not be empty"));
        } else if id.trim() != id {
            problems.push(ConfigProblem::new("/user_id", "must not start or end with spaces"));
        }
    }
    if let Some(email) = &config.email {
        if let Some(first) = chosen.first() {
            problems.push(ConfigProblem::new("/email", format!("`{first}` is set already: choose one")));
        }
        chosen.push("email");
        if !is_email(email) {
            problems.push(ConfigProblem::new("/email", format!("`{email}` is not an email address")));
        }
    }
    if config.unassign {
        if let Some(first) = chosen.first() {
            problems.push(ConfigProblem::new("/unassign", format!("`{first}` is set already: choose one")));
        }
        chosen.push("unassign");
    }
    if chosen.is_empty() {
        problems.push(ConfigProblem::new("", "set one of `user_id`, `email` or `unassign: true`"));
    }
    problems
}

/// Whether the user `config` names is in the account and may own contacts,
/// asking the host's `lookup` ([`users::lookup`]) as the step is saved.
/// Where the host does not let the plugin look, the checks when the step
/// runs are the only ones.
fn can_own(config: &Config, lookup: impl Fn(&UserRef) -> Result<Option<User>, HostError>) -> Vec<ConfigProblem> {
    let (field, who) = match (&config.user_id, &config.email) {
        (Some(id), _) => ("/user_id", UserRef::Id(id.clone())),
        (None, Some(email)) => ("/email", UserRef::Email(email.trim().to_owned())),
        (None, None) => return Vec::new(),
    };
    let problem = match lookup(&who) {
        Ok(Some(user)) => unfit(&user),
        Ok(None) => Some(format!("no user {} in this account", named(&who))),
        Err(error) if error.code == ErrorCode::Denied => None,
        Err(error) => Some(format!("cannot look up the user {} now: {}", named(&who), error.message)),
    };
    problem.map(|message| ConfigProblem::new(field, message)).into_iter().collect()
}

/// Whether `text` looks like one email address: something, `@`, a domain
/// with a dot, and no spaces.
fn is_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !text.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// How a user was named in the config, for messages.
fn named(who: &UserRef) -> String {
    match who {
        UserRef::Id(id) => format!("`{id}`"),
        UserRef::Email(email) => format!("with email `{email}`"),
    }
}

/// Why `user` may not own contacts, if they may not.
fn unfit(user: &User) -> Option<String> {
    if !user.active {
        Some(format!("user {} is inactive and cannot own contacts", describe(user)))
    } else if user.delegate {
        Some(format!("user {} is a delegate, who may not own contacts", describe(user)))
    } else {
        None
    }
}

/// A user as messages name them.
fn describe(user: &User) -> String {
    format!("{} <{}> ({})", user.name, user.email, user.id)
}

/// Carries out `config` for `contact`, with the host's `lookup`
/// ([`users::lookup`]) and `update` ([`contacts::update`]).
fn run(
    config: &Config,
    contact: &Contact,
    lookup: impl Fn(&UserRef) -> Result<Option<User>, HostError>,
    update: impl Fn(&ContactUpdate) -> Result<Contact, HostError>,
) -> Outcome {
    if let Some(problem) = problems(config).into_iter().next() {
        return Outcome::failed(problem.describe());
    }
    let previous = contact.owner_id.clone();
    let who = match (&config.user_id, &config.email) {
        (Some(id), _) => UserRef::Id(id.clone()),
        (None, Some(email)) => UserRef::Email(email.trim().to_owned()),
        (None, None) => {
            if previous.is_none() {
                return Outcome::done_with(
                    DONE,
                    &json!({"owner_id": null, "previous_owner_id": null, "changed": false}),
                );
            }
            let change = ContactUpdate { owner: Some(OwnerChange::Unassign), ..ContactUpdate::default() };
            return match update(&change) {
                Ok(_) => {
                    Outcome::done_with(DONE, &json!({"owner_id": null, "previous_owner_id": previous, "changed": true}))
                }
                Err(error) => Outcome::failed_with(
                    format!("cannot unassign the contact's owner: {}", error.message),
                    &json!({"error": error}),
                ),
            };
        }
    };
    let user = match lookup(&who) {
        Ok(Some(user)) => user,
        Ok(None) => {
            return Outcome::failed_with(
                format!("no user {} in this account", named(&who)),
                &json!({"user": user_ref_json(&who)}),
            );
        }
        Err(error) => {
            return Outcome::failed_with(
                format!("cannot look up the user {}: {}", named(&who), error.message),
                &json!({"user": user_ref_json(&who), "error": error}),
            );
        }
    };
    let user_json = json!({"id": user.id, "name": user.name, "email": user.email});
    if let Some(why) = unfit(&user) {
        return Outcome::failed_with(why, &json!({"user": user_json}));
    }
    if previous.as_deref() == Some(user.id.as_str()) {
        return Outcome::done_with(
            DONE,
            &json!({"owner_id": user.id, "owner": user_json, "previous_owner_id": previous, "changed": false}),
        );
    }
    let change = ContactUpdate { owner: Some(OwnerChange::Assign(user.id.clone())), ..ContactUpdate::default() };
    match update(&change) {
        Ok(_) => Outcome::done_with(
            DONE,
            &json!({"owner_id": user.id, "owner": user_json, "previous_owner_id": previous, "changed": true}),
        ),
        Err(error) => Outcome::failed_with(
            format!("cannot make {} the contact's owner: {}", describe(&user), error.message),
            &json!({"user": user_json, "error": error}),
        ),
    }
}

fn user_ref_json(who: &UserRef) -> Value {
    match who {
        UserRef::Id(id) => json!({"id": id}),
        UserRef::Email(email) => json!({"email": email}),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use stepwise_plugin_sdk::fixtures::{self, config};
    use stepwise_plugin_sdk::{ErrorCode, parse_config};

    fn check(json: &str) -> Vec<String> {
        fixtures::problem_lines(problems(&config(json)))
    }

    fn ada(owner: Option<&str>) -> Contact {
        Contact { owner_id: owner.map(str::to_owned), ..fixtures::contact() }
    }

    fn user(id: &str, email: &str, active: bool, delegate: bool) -> User {
        User { id: id.into(), name: format!("User {id}"), email: email.into(), active, delegate, ..fixtures::user() }
    }

    /// A directory of three users: active `usr_a`, inactive `usr_i`, delegate `usr_d`.
    fn directory(who: &UserRef) -> Result<Option<User>, HostError> {
        let all = [
            user("usr_a", "a@example.com", true, false),
            user("usr_i", "i@example.com", false, false),
            user("usr_d", "d@example.com", true, true),
        ];
        Ok(all.into_iter().find(|u| match who {
            UserRef::Id(id) => &u.id == id,
            UserRef::Email(email) => u.email.eq_ignore_ascii_case(email),
        }))
    }

    /// Runs `json` for a contact owned by `owner`; returns the outcome and
    /// the owner changes the host was asked for.
    fn step(json: &str, owner: Option<&str>) -> (Outcome, Vec<String>) {
        let asked = RefCell::new(Vec::new());
        let update = |change: &ContactUpdate| {
            asked.borrow_mut().push(match &change.owner {
                Some(OwnerChange::Assign(id)) => format!("assign {id}"),
                Some(OwnerChange::Unassign) => "unassign".to_owned(),
                None => "nothing".to_owned(),
            });
            Ok(ada(None))
        };
        let outcome = run(&config(json), &ada(owner), directory, update);
        (outcome, asked.into_inner())
    }

    fn done(outcome: &Outcome) -> Value {
        match outcome {
            Outcome::Done(done) => {
                assert_eq!(done.result, DONE);
                serde_json::from_str(&done.output).unwrap()
            }
            other => panic!("not done: {other:?}"),
        }
    }

    fn failed(outcome: &Outcome) -> (String, Value) {
        match outcome {
            Outcome::Failed(failure) => (failure.message.clone(), serde_json::from_str(&failure.details).unwrap()),
            other => panic!("not failed: {other:?}"),
        }
    }

    #[test]
    fn a_user_who_cannot_own_contacts_is_refused_when_saved() {
        let grace = fixtures::user();
        let lookup = |who: &UserRef| -> Result<Option<User>, HostError> {
            Ok(match who {
                UserRef::Id(id) if id == "usr_grace" => Some(fixtures::user()),
                UserRef::Id(id) if id == "usr_gone" => Some(User { id: id.clone(), active: false, ..fixtures::user() }),
                UserRef::Email(email) if email == "grace@example.com" => Some(fixtures::user()),
                _ => None,
            })
        };
        let check = |json: &str| fixtures::problem_lines(can_own(&config(json), lookup));
        assert!(check(r#"{"user_id": "usr_grace"}"#).is_empty());
        assert!(check(r#"{"email": "grace@example.com"}"#).is_empty());
        assert!(check(r#"{"unassign": true}"#).is_empty());
        assert_eq!(check(r#"{"user_id": "usr_nobody"}"#), ["/user_id: no user `usr_nobody` in this account"]);
        assert_eq!(
            check(r#"{"email": "nobody@example.com"}"#),
            ["/email: no user with email `nobody@example.com` in this account"]
        );
        assert_eq!(
            check(r#"{"user_id": "usr_gone"}"#),
            [format!("/user_id: user {} <{}> (usr_gone) is inactive and cannot own contacts", grace.name, grace.email)]
        );
        let denied = |_: &UserRef| Err(HostError { code: ErrorCode::Denied, message: "not granted".into() });
        assert!(fixtures::problem_lines(can_own(&config(r#"{"user_id": "usr_x"}"#), denied)).is_empty());
    }

    #[test]
    fn exactly_one_way_of_naming_the_owner() {
        assert!(check(r#"{"user_id": "usr_a"}"#).is_empty());
        assert!(check(r#"{"email": "a@example.com"}"#).is_empty());
        assert!(check(r#"{"unassign": true}"#).is_empty());
        assert_eq!(check("{}"), [": set one of `user_id`, `email` or `unassign: true`"]);
        assert_eq!(check(r#"{"unassign": false}"#), [": set one of `user_id`, `email` or `unassign: true`"]);
        assert_eq!(
            check(r#"{"user_id": "usr_a", "email": "a@example.com", "unassign": true}"#),
            ["/email: `user_id` is set already: choose one", "/unassign: `user_id` is set already: choose one"]
        );
    }

    #[test]
    fn ids_and_emails_are_checked_for_shape() {
        assert_eq!(check(r#"{"user_id": " "}"#), ["/user_id: must not be empty"]);
        assert_eq!(check(r#"{"user_id": "usr_a "}"#), ["/user_id: must not start or end with spaces"]);
        for bad in ["grace", "grace@", "@example.com", "grace@example", "grace @example.com", "a@b@c.com"] {
            assert_eq!(
                check(&format!(r#"{{"email": "{bad}"}}"#)),
                [format!("/email: `{bad}` is not an email address")],
                "{bad}"
            );
        }
        let problem = parse_config::<Config>(r#"{"owner": "usr_a"}"#).unwrap_err();
        assert!(problem.message.contains("unknown field `owner`"), "{}", problem.message);
    }

    #[test]
    fn assigns_by_id_or_email() {
        let (outcome, asked) = step(r#"{"user_id": "usr_a"}"#, Some("usr_old"));
        assert_eq!(asked, ["assign usr_a"]);
        let output = done(&outcome);
        assert_eq!(output["owner_id"], "usr_a");
        assert_eq!(output["previous_owner_id"], "usr_old");
        assert_eq!(output["changed"], true);
        let (outcome, asked) = step(r#"{"email": "A@Example.com"}"#, None);
        assert_eq!(asked, ["assign usr_a"]);
        assert_eq!(done(&outcome)["owner"]["email"], "a@example.com");
    }

    #[test]
    fn the_current_owner_is_left_alone() {
        let (outcome, asked) = step(r#"{"user_id": "usr_a"}"#, Some("usr_a"));
        assert!(asked.is_empty(), "no update: {asked:?}");
        assert_eq!(done(&outcome)["changed"], false);
        let (outcome, asked) = step(r#"{"unassign": true}"#, None);
        assert!(asked.is_empty(), "no update: {asked:?}");
        assert_eq!(done(&outcome)["changed"], false);
    }

    #[test]
    fn unassigns() {
        let (outcome, asked) = step(r#"{"unassign": true}"#, Some("usr_a"));
        assert_eq!(asked, ["unassign"]);
        let output = done(&outcome);
        assert_eq!((output["owner_id"].clone(), output["previous_owner_id"].clone()), (json!(null), json!("usr_a")));
    }

    #[test]
    fn unknown_inactive_and_delegate_users_fail_naming_who() {
        let (outcome, asked) = step(r#"{"email": "nobody@example.com"}"#, None);
        assert!(asked.is_empty());
        let (message, details) = failed(&outcome);
        assert_eq!(message, "no user with email `nobody@example.com` in this account");
        assert_eq!(details, json!({"user": {"email": "nobody@example.com"}}));
        let (outcome, _) = step(r#"{"user_id": "usr_zz"}"#, None);
        assert_eq!(failed(&outcome).0, "no user `usr_zz` in this account");
        let (outcome, asked) = step(r#"{"user_id": "usr_i"}"#, None);
        assert!(asked.is_empty());
        assert_eq!(failed(&outcome).0, "user User usr_i <i@example.com> (usr_i) is inactive and cannot own contacts");
        let (outcome, _) = step(r#"{"email": "d@example.com"}"#, None);
        assert_eq!(
            failed(&outcome).0,
            "user User usr_d <d@example.com> (usr_d) is a delegate, who may not own contacts"
        );
    }

    #[test]
    fn host_errors_fail_with_their_code() {
        let denied =
            |_: &UserRef| Err(HostError { code: ErrorCode::Denied, message: "`lookup-user` is not granted".into() });
        let never = |_: &ContactUpdate| -> Result<Contact, HostError> { panic!("no update after a failed lookup") };
        let outcome = run(&config(r#"{"user_id": "usr_a"}"#), &ada(None), denied, never);
        let (message, details) = failed(&outcome);
        assert_eq!(message, "cannot look up the user `usr_a`: `lookup-user` is not granted");
        assert_eq!(details["error"]["code"], "denied");

        let refused =
            |_: &ContactUpdate| Err(HostError { code: ErrorCode::Denied, message: "owner is not granted".into() });
        let outcome = run(&config(r#"{"user_id": "usr_a"}"#), &ada(None), directory, refused);
        assert_eq!(
            failed(&outcome).0,
            "cannot make User usr_a <a@example.com> (usr_a) the contact's owner: owner is not granted"
        );
        let outcome = run(&config(r#"{"unassign": true}"#), &ada(Some("usr_a")), directory, refused);
        assert_eq!(failed(&outcome).0, "cannot unassign the contact's owner: owner is not granted");
    }

    #[test]
    fn an_invalid_config_fails_before_any_host_call() {
        let never_lookup = |_: &UserRef| -> Result<Option<User>, HostError> { panic!("no lookup") };
        let never_update = |_: &ContactUpdate| -> Result<Contact, HostError> { panic!("no update") };
        let outcome = run(&config(r#"{"email": "nope"}"#), &ada(None), never_lookup, never_update);
        assert_eq!(failed(&outcome).0, "invalid config at /email: `nope` is not an email address");
        let outcome = run(&config("{}"), &ada(None), never_lookup, never_update);
        assert_eq!(failed(&outcome).0, "invalid config: set one of `user_id`, `email` or `unassign: true`");
    }
}
