//! The `call` step: the owner calls the contact, with a call script on the
//! Engage view, and completes the call with what came of it.

use stepwise_plugin_sdk::prelude::*;

/// The results a rep can complete a call with, in the manifest's order.
const RESULTS: [&str; 4] = ["no_answer", "left_voicemail", "interested", "not_interested"];

/// The result of an automatic call the host placed through the voice
/// provider; the sequence continues.
const PLACED: &str = "placed";

/// Why an automatic call step fails on a host without a voice provider (with
/// one, the host places the call and this plugin only prepares the script).
const NO_VOICE_PROVIDER: &str = "automatic calls need a voice provider (the `STEPWISE_SMS_*` settings): \
     configure one or make the call step manual";

/// A call step's configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The to-do item's title, with tokens; `Call <first name> <last name>`
    /// unless set.
    #[serde(default)]
    pub title: Option<String>,
    /// What to say, with tokens, shown under the title.
    #[serde(default)]
    pub script: Option<String>,
}

/// The call step type.
#[derive(Debug)]
pub struct Call;

impl Action for Call {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("call", "Call")
            .description("the owner calls the contact with a call script, then records how the call went")
            .channel(Channel::Phone)
            .manual()
            .result(ResultSpec::continues(RESULTS[0], "No answer"))
            .result(ResultSpec::continues(RESULTS[1], "Left voicemail"))
            .result(ResultSpec::ends(RESULTS[2], "Interested", EnrollmentOutcome::Positive))
            .result(ResultSpec::ends(RESULTS[3], "Not interested", EnrollmentOutcome::Negative))
            .result(ResultSpec::continues(PLACED, "Call placed"))
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

stepwise_plugin_sdk::export_action!(Call);

/// Every problem of `config`; `check` finds unknown tokens (the host's
/// [`templates::problem`]).
fn problems(config: &Config, check: impl Fn(&str, &str) -> Option<ConfigProblem>) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    if config.title.as_deref().is_some_and(|title| title.trim().is_empty()) {
        problems.push(ConfigProblem::new("/title", "must not be empty; leave it out for `Call <name>`"));
    }
    let fields = [("/title", config.title.as_deref()), ("/script", config.script.as_deref())];
    problems.extend(templates::problems(fields, check));
    problems
}

/// The to-do item: the title and the script rendered with `render` (the
/// host's [`templates::render`]).
fn item(
    config: &Config,
    contact: &Contact,
    render: impl Fn(&str) -> Result<String, HostError>,
) -> Result<EngageItem, String> {
    let render = templates::by_field(render);
    let title = match &config.title {
        Some(title) => render("/title", title)?,
        None => format!("Call {}", contact.display_name(&[Channel::Phone])),
    };
    let body = match &config.script {
        Some(script) => render("/script", script)?,
        None => String::new(),
    };
    Ok(EngageItem::new(title).body(body))
}

/// What completing the call with the rep's `result` comes to. Without one
/// the step was made automatic, which needs a voice provider.
fn complete(result: Option<&str>) -> Outcome {
    match result {
        None => Outcome::failed(NO_VOICE_PROVIDER),
        Some(PLACED) => Outcome::failed(format!(
            "`{PLACED}` is for calls the voice provider placed: complete a call with one of {}",
            RESULTS.join(", ")
        )),
        Some(code) => Outcome::completed(code, &RESULTS),
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
    fn an_empty_config_is_a_plain_call() {
        let config = config("{}");
        assert!(problems(&config, |_, _| None).is_empty());
        let item = item(&config, &fixtures::contact(), render).unwrap();
        assert_eq!((item.title.as_str(), item.body.as_str()), ("Call Ada Lovelace", ""));
        assert!(item.draft.is_none(), "a call has no message to draft");
    }

    #[test]
    fn the_script_is_rendered_into_the_body() {
        let config = config(r#"{"script": "Hi {{contact.first_name}}, this is {{owner.name}}."}"#);
        let item = item(&config, &fixtures::contact(), render).unwrap();
        assert_eq!(item.title, "Call Ada Lovelace");
        assert_eq!(item.body, "Hi Ada, this is Grace.");
        let config = self::config(r#"{"title": "Ring {{contact.first_name}} back"}"#);
        assert_eq!(item_title(&config), "Ring Ada back");
    }

    fn item_title(config: &Config) -> String {
        item(config, &fixtures::contact(), render).unwrap().title
    }

    #[test]
    fn a_token_that_does_not_render_names_its_field() {
        let config = config(r#"{"script": "{{company.nope}}"}"#);
        assert_eq!(
            item(&config, &fixtures::contact(), render).unwrap_err(),
            "cannot render /script: unknown token `company.nope`"
        );
    }

    #[test]
    fn a_nameless_contact_is_called_by_number() {
        let contact = Contact { first_name: String::new(), last_name: " ".into(), ..fixtures::contact() };
        assert_eq!(item(&config("{}"), &contact, render).unwrap().title, "Call +15550100");
    }

    #[test]
    fn each_problem_names_its_field() {
        assert_eq!(
            check(r#"{"title": " ", "script": "Hi {{nope}}"}"#),
            ["/title: must not be empty; leave it out for `Call <name>`", "/script: unknown token `nope`"]
        );
        assert_eq!(check(r#"{"title": "Call {{nope}}"}"#), ["/title: unknown token `nope`"]);
        let problem = parse_config::<Config>(r#"{"scrip": "typo"}"#).unwrap_err();
        assert!(problem.message.contains("unknown field `scrip`"), "{}", problem.message);
    }

    #[test]
    fn each_result_is_done_with_itself() {
        for code in RESULTS {
            assert_eq!(result_of(complete(Some(code))), code);
        }
        assert_eq!(
            result_of(complete(Some("busy"))),
            "failed: unknown result `busy`: expected one of no_answer, left_voicemail, interested, not_interested"
        );
    }

    #[test]
    fn a_rep_cannot_claim_the_provider_placed_the_call() {
        assert_eq!(
            result_of(complete(Some(PLACED))),
            "failed: `placed` is for calls the voice provider placed: complete a call with one of no_answer, \
             left_voicemail, interested, not_interested"
        );
        assert!(Call::manifest().has_result(PLACED), "the host completes automatic calls with it");
    }

    #[test]
    fn an_automatic_call_fails_until_a_voice_provider_exists() {
        assert_eq!(result_of(complete(None)), format!("failed: {NO_VOICE_PROVIDER}"));
    }

    #[test]
    fn declared_results_match_the_manifest() {
        let manifest = Call::manifest();
        assert!(RESULTS.iter().all(|code| manifest.has_result(code)));
        assert_eq!(manifest.first_result().as_deref(), Some("no_answer"));
    }
}
