//! The `contact-reminder` step: reminds the owner to get in touch with the
//! contact on a set day or after a delay; the step's timing says when.

use stepwise_plugin_sdk::prelude::*;

/// The one result: the owner got in touch.
const DONE: &str = "done";

/// Why an automatic reminder fails: nobody would see it.
const NEEDS_A_PERSON: &str = "a contact reminder is for the owner to act on: make the step manual";

/// A contact reminder's configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The reminder's one-line title, with tokens; `Contact <first name>
    /// <last name>` unless set.
    #[serde(default)]
    pub title: Option<String>,
    /// Notes shown under the title, with tokens.
    #[serde(default)]
    pub notes: Option<String>,
}

/// The contact reminder step type.
#[derive(Debug)]
pub struct ContactReminder;

impl Action for ContactReminder {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("contact-reminder", "Contact reminder")
            .description(
                "reminds the owner on their to-do list to get in touch with the contact, on a set day or after a delay",
            )
            .manual()
            .result(ResultSpec::continues(DONE, "Done"))
            .capability(Capability::RenderTemplate)
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        problems(config, templates::problem)
    }

    fn prepare(_: &StepContext, config: Config, subject: &Subject) -> Result<EngageItem, String> {
        item(&config, &subject.contact, templates::render)
    }

    fn execute(context: &StepContext, _: Config, _: &Subject) -> Outcome {
        complete(context.completion.as_ref().map(|c| c.result.as_str()))
    }
}

stepwise_plugin_sdk::export_action!(ContactReminder);

/// Every problem of `config`; `check` finds unknown tokens (the host's
/// [`templates::problem`]).
fn problems(config: &Config, check: impl Fn(&str, &str) -> Option<ConfigProblem>) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    if config.title.as_deref().is_some_and(|title| title.trim().is_empty()) {
        problems.push(ConfigProblem::new("/title", "must not be empty; leave it out for `Contact <name>`"));
    }
    let fields = [("/title", config.title.as_deref()), ("/notes", config.notes.as_deref())];
    problems.extend(templates::problems(fields, check));
    problems
}

/// The to-do item, rendered with `render` (the host's [`templates::render`]).
fn item(
    config: &Config,
    contact: &Contact,
    render: impl Fn(&str) -> Result<String, HostError>,
) -> Result<EngageItem, String> {
    let render = templates::by_field(render);
    let title = match &config.title {
        Some(title) => render("/title", title)?,
        None => format!("Contact {}", contact.display_name(&[Channel::Email, Channel::Phone])),
    };
    let body = match &config.notes {
        Some(notes) => render("/notes", notes)?,
        None => String::new(),
    };
    Ok(EngageItem::new(title).body(body))
}

/// What completing the reminder with the rep's `result` comes to; without
/// one the step was made automatic, and nobody would ever see it.
fn complete(result: Option<&str>) -> Outcome {
    match result {
        None => Outcome::failed(NEEDS_A_PERSON),
        Some(code) => Outcome::completed(code, &[DONE]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stepwise_plugin_sdk::fixtures::{self, config, render, result_of};
    use stepwise_plugin_sdk::parse_config;

    fn check(json: &str) -> Vec<String> {
        fixtures::problem_lines(problems(&config(json), fixtures::check))
    }

    #[test]
    fn an_empty_config_reminds_to_contact_the_contact() {
        let config = config("{}");
        assert!(problems(&config, |_, _| None).is_empty());
        let item = item(&config, &fixtures::contact(), render).unwrap();
        assert_eq!((item.title.as_str(), item.body.as_str()), ("Contact Ada Lovelace", ""));
        let nameless = Contact { first_name: String::new(), last_name: String::new(), ..fixtures::contact() };
        assert_eq!(item_title(&config, &nameless), "Contact ada@example.com");
    }

    fn item_title(config: &Config, contact: &Contact) -> String {
        item(config, contact, render).unwrap().title
    }

    #[test]
    fn title_and_notes_are_rendered() {
        let config = config(
            r#"{"title": "Wish {{contact.first_name}} a happy birthday", "notes": "Ask {{contact.first_name}} about the renewal."}"#,
        );
        let item = item(&config, &fixtures::contact(), render).unwrap();
        assert_eq!(item.title, "Wish Ada a happy birthday");
        assert_eq!(item.body, "Ask Ada about the renewal.");
        let config = self::config(r#"{"notes": "{{owner.nope}}"}"#);
        assert_eq!(
            super::item(&config, &fixtures::contact(), render).unwrap_err(),
            "cannot render /notes: unknown token `owner.nope`"
        );
    }

    #[test]
    fn each_problem_names_its_field() {
        assert_eq!(
            check(r#"{"title": "", "notes": "{{nope}}"}"#),
            ["/title: must not be empty; leave it out for `Contact <name>`", "/notes: unknown token `nope`"]
        );
        let problem = parse_config::<Config>(r#"{"due": "2025-01-06"}"#).unwrap_err();
        assert!(problem.message.contains("unknown field `due`"), "{}", problem.message);
    }

    #[test]
    fn done_continues_and_anything_else_fails() {
        assert_eq!(result_of(complete(Some("done"))), "done");
        assert_eq!(result_of(complete(Some("none"))), "failed: unknown result `none`: expected done");
        assert_eq!(result_of(complete(None)), format!("failed: {NEEDS_A_PERSON}"));
        assert!(ContactReminder::manifest().has_result(DONE));
    }
}
