//! The `sms` step: texts the contact a message with tokens, automatically
//! or from a draft the rep reviews (and may edit) on the Engage view.
//!
//! Everything but the host calls is a pure function of the config, the
//! subject and the rep's completion, so that it is unit-tested natively:
//! validation and rendering take the host's template functions as
//! parameters.

pub mod segments;

use serde_json::json;
use stepwise_plugin_sdk::messaging::{self, Sms};
use stepwise_plugin_sdk::prelude::*;
use stepwise_plugin_sdk::{Completion, check_result};

use crate::segments::Segments;

/// The one result: the text was queued for delivery.
const SENT: &str = "sent";

/// The segments a text may take unless the step says otherwise: three
/// segments are up to 459 GSM-7 characters or 201 in UCS-2.
const DEFAULT_MAX_SEGMENTS: u32 = 3;

/// The most a step may allow: carriers reassemble up to about ten parts
/// reliably, and some refuse longer texts (1,530 GSM-7 characters).
const MAX_SEGMENTS_LIMIT: u32 = 10;

/// An SMS step's configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The message, with tokens such as `{{contact.first_name}}`.
    pub text: String,
    /// The most SMS segments the message may take, 1 to 10; 3 unless set.
    #[serde(default = "default_max_segments")]
    #[schemars(range(min = 1, max = 10))]
    pub max_segments: u32,
}

fn default_max_segments() -> u32 {
    DEFAULT_MAX_SEGMENTS
}

/// The SMS step type.
#[derive(Debug)]
pub struct Text;

impl Action for Text {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("sms", "SMS")
            .description(
                "texts the contact a message with tokens: automatically, or from a draft the rep may edit on the \
                 Engage view before sending",
            )
            .channel(Channel::Sms)
            .automatic()
            .result(ResultSpec::continues(SENT, "Sent"))
            .capability(Capability::RenderTemplate)
            .capability(Capability::SendSms)
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        problems(config, templates::problem)
    }

    fn prepare(_: &StepContext, config: Config, subject: &Subject) -> Result<EngageItem, String> {
        let to = subject.contact.address(Channel::Sms).ok_or_else(|| NO_PHONE.to_owned())?;
        let text = templates::render(&config.text).map_err(|e| templates::render_error("/text", &e))?;
        let plural = if config.max_segments == 1 { "" } else { "s" };
        let body = format!(
            "Review the text and send it; edit it if you like, within {} SMS segment{plural}.",
            config.max_segments
        );
        Ok(EngageItem::new(title(&subject.contact))
            .body(body)
            .draft(Draft::Sms(SmsDraft { to: to.to_owned(), body: text })))
    }

    fn execute(context: &StepContext, config: Config, subject: &Subject) -> Outcome {
        let message = match message(&config, subject, context.completion.as_ref(), templates::render) {
            Ok(message) => message,
            Err(outcome) => return outcome,
        };
        match messaging::send_sms(&Sms { to: message.to.clone(), body: message.text }) {
            Ok(id) => Outcome::done_with(
                SENT,
                &json!({
                    "message_id": id,
                    "to": message.to,
                    "segments": message.segments.count,
                    "encoding": message.segments.encoding.as_str(),
                }),
            ),
            Err(error) => {
                Outcome::failed_with(format!("cannot queue the text: {}", error.message), &json!({"error": error}))
            }
        }
    }
}

stepwise_plugin_sdk::export_action!(Text);

/// Why a contact without a phone number gets no text.
const NO_PHONE: &str = "the contact has no phone number";

/// Every problem of `config`, each naming its field; `check` finds unknown
/// tokens in a template (the host's [`templates::problem`]).
fn problems(config: &Config, check: impl Fn(&str, &str) -> Option<ConfigProblem>) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    if !(1..=MAX_SEGMENTS_LIMIT).contains(&config.max_segments) {
        let message = format!("must be between 1 and {MAX_SEGMENTS_LIMIT}");
        problems.push(ConfigProblem::new("/max_segments", message));
    }
    if config.text.trim().is_empty() {
        problems.push(ConfigProblem::new("/text", "must not be empty"));
        return problems;
    }
    problems.extend(check("/text", &config.text));
    // Tokens count as written: what they render to is checked again when
    // the text is sent.
    let segments = segments::count(&config.text);
    if config.max_segments >= 1 && segments.count > config.max_segments as usize {
        problems.push(ConfigProblem::new("/text", over_limit("the text", segments, config.max_segments)));
    }
    problems
}

/// "`what` takes 4 SMS segments (GSM-7, 470 characters), over
/// max_segments 3".
fn over_limit(what: &str, segments: Segments, max: u32) -> String {
    format!("{what} takes {segments}, over max_segments {max}")
}

/// A text ready to queue.
#[derive(Debug, PartialEq)]
struct Message {
    to: String,
    text: String,
    segments: Segments,
}

/// The text to send to `subject`, or the outcome that replaces sending:
/// skipped without a phone number, failed for a completion or a text that
/// cannot be sent. A rep's SMS draft replaces the configured text; `render`
/// is the host's [`templates::render`].
fn message(
    config: &Config,
    subject: &Subject,
    completion: Option<&Completion>,
    render: impl Fn(&str) -> Result<String, HostError>,
) -> Result<Message, Outcome> {
    let Some(to) = subject.contact.address(Channel::Sms) else {
        return Err(Outcome::skipped(NO_PHONE));
    };
    let draft = match completion {
        None => None,
        Some(completion) => {
            check_result(&completion.result, &[SENT]).map_err(Outcome::failed)?;
            completion.draft.as_ref()
        }
    };
    let (text, what) = match draft {
        None => match render(&config.text) {
            Ok(text) => (text, "the rendered text"),
            Err(error) => {
                let details = json!({"field": "/text", "error": error});
                return Err(Outcome::failed_with(templates::render_error("/text", &error), &details));
            }
        },
        Some(Draft::Sms(draft)) => {
            if digits(&draft.to) != digits(to) {
                let message = format!("the draft is addressed to {}, not to the contact's phone {to}", draft.to);
                return Err(Outcome::failed(message));
            }
            (draft.body.clone(), "the edited text")
        }
        Some(Draft::Email(_)) => return Err(Outcome::failed("an email draft cannot complete a text message step")),
    };
    if text.trim().is_empty() {
        return Err(Outcome::failed(format!("{what} is empty")));
    }
    let segments = segments::count(&text);
    if segments.count > config.max_segments as usize {
        return Err(Outcome::failed_with(
            over_limit(what, segments, config.max_segments),
            &json!({"segments": segments.count, "encoding": segments.encoding.as_str(), "max_segments": config.max_segments}),
        ));
    }
    Ok(Message { to: to.to_owned(), text, segments })
}

/// A phone number as dialled: its digits, and a leading `+`.
fn digits(phone: &str) -> String {
    let phone = phone.trim();
    let plus = if phone.starts_with('+') { "+" } else { "" };
    format!("{plus}{}", phone.chars().filter(char::is_ascii_digit).collect::<String>())
}

/// The to-do item's title: the contact's full name, or its phone number
/// when it has no name.
fn title(contact: &Contact) -> String {
    format!("Text {}", contact.display_name(&[Channel::Sms]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stepwise_plugin_sdk::fixtures::{self, config, render};
    use stepwise_plugin_sdk::parse_config;

    /// The problems of `json` as `field: message` lines; `{{nope}}` stands
    /// for an unknown token.
    fn check(json: &str) -> Vec<String> {
        fixtures::problem_lines(problems(&config(json), fixtures::check))
    }

    fn subject(phone: Option<&str>) -> Subject {
        let contact = Contact { phone: phone.map(str::to_owned), ..fixtures::contact() };
        Subject { contact, ..fixtures::subject() }
    }

    fn completion(result: &str, draft: Option<Draft>) -> Completion {
        Completion { result: result.into(), draft, user_id: "u1".into() }
    }

    fn sms_draft(to: &str, body: &str) -> Option<Draft> {
        Some(Draft::Sms(SmsDraft { to: to.into(), body: body.into() }))
    }

    fn failure(outcome: Outcome) -> String {
        match outcome {
            Outcome::Failed(failure) => failure.message,
            Outcome::Skipped(reason) => format!("skipped: {reason}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn max_segments_defaults_to_three() {
        let config: Config = config(r#"{"text": "Hi {{contact.first_name}}"}"#);
        assert_eq!(config.max_segments, 3);
        assert!(problems(&config, |_, _| None).is_empty());
    }

    #[test]
    fn each_problem_names_its_field() {
        assert_eq!(check(r#"{"text": "  "}"#), ["/text: must not be empty"]);
        assert_eq!(check(r#"{"text": "Hi {{nope}}"}"#), ["/text: unknown token `nope`"]);
        assert_eq!(check(r#"{"text": "Hi", "max_segments": 0}"#), ["/max_segments: must be between 1 and 10"]);
        assert_eq!(check(r#"{"text": "Hi", "max_segments": 11}"#), ["/max_segments: must be between 1 and 10"]);
    }

    #[test]
    fn a_text_over_max_segments_names_the_count() {
        let long = "a".repeat(161);
        assert_eq!(
            check(&format!(r#"{{"text": "{long}", "max_segments": 1}}"#)),
            ["/text: the text takes 2 SMS segments (GSM-7, 161 characters), over max_segments 1"]
        );
        assert!(check(&format!(r#"{{"text": "{long}", "max_segments": 2}}"#)).is_empty());
        let polish = "ł".repeat(71);
        assert_eq!(
            check(&format!(r#"{{"text": "{polish}", "max_segments": 1}}"#)),
            ["/text: the text takes 2 SMS segments (UCS-2, 71 characters), over max_segments 1"]
        );
        let default_limit = "a".repeat(460);
        assert_eq!(
            check(&format!(r#"{{"text": "{default_limit}"}}"#)),
            ["/text: the text takes 4 SMS segments (GSM-7, 460 characters), over max_segments 3"]
        );
    }

    #[test]
    fn unknown_fields_are_problems() {
        let problem = parse_config::<Config>(r#"{"text": "x", "to": "+1555"}"#).unwrap_err();
        assert!(problem.message.contains("unknown field `to`"), "{}", problem.message);
        let problem = parse_config::<Config>(r#"{"text": "x", "max_segments": -1}"#).unwrap_err();
        assert_eq!(problem.field, "/max_segments");
        let problem = parse_config::<Config>("{}").unwrap_err();
        assert!(problem.message.contains("missing field `text`"), "{}", problem.message);
    }

    #[test]
    fn automatic_sends_the_rendered_text_to_the_contacts_phone() {
        let config = config(r#"{"text": "Hi {{contact.first_name}}, 20% off €5 items"}"#);
        let message = message(&config, &subject(Some("+15550100")), None, render).unwrap();
        assert_eq!(message.to, "+15550100");
        assert_eq!(message.text, "Hi Ada, 20% off €5 items");
        assert_eq!((message.segments.count, message.segments.encoding), (1, segments::Encoding::Gsm7));
    }

    #[test]
    fn no_phone_is_skipped_with_a_reason() {
        let config = config(r#"{"text": "Hi"}"#);
        for phone in [None, Some(""), Some("   ")] {
            let outcome = message(&config, &subject(phone), None, render).unwrap_err();
            assert_eq!(failure(outcome), "skipped: the contact has no phone number");
        }
    }

    #[test]
    fn the_reps_draft_replaces_the_text() {
        let config = config(r#"{"text": "Hi {{contact.first_name}}"}"#);
        let done = completion("sent", sms_draft("+1 (555) 0100", "Hi Ada, see you at 3?"));
        let message = message(&config, &subject(Some("+15550100")), Some(&done), render).unwrap();
        assert_eq!(message.text, "Hi Ada, see you at 3?");
        assert_eq!(message.to, "+15550100", "always the contact's own number");
        // Without a draft, the configured text is rendered.
        let done = completion("sent", None);
        assert_eq!(message_text(&config, Some(&done)), "Hi Ada");
    }

    fn message_text(config: &Config, completion: Option<&Completion>) -> String {
        message(config, &subject(Some("+15550100")), completion, render).unwrap().text
    }

    #[test]
    fn a_draft_cannot_change_the_recipient_or_the_channel_or_grow_too_long() {
        let config = config(r#"{"text": "Hi", "max_segments": 1}"#);
        let at = |draft| {
            failure(
                message(&config, &subject(Some("+15550100")), Some(&completion("sent", draft)), render).unwrap_err(),
            )
        };
        assert_eq!(
            at(sms_draft("+15550199", "Hi")),
            "the draft is addressed to +15550199, not to the contact's phone +15550100"
        );
        assert_eq!(
            at(Some(Draft::Email(EmailDraft { to: "a@example.com".into(), subject: "s".into(), body: "b".into() }))),
            "an email draft cannot complete a text message step"
        );
        assert_eq!(at(sms_draft("+15550100", " \n")), "the edited text is empty");
        assert_eq!(
            at(sms_draft("+15550100", &"😀".repeat(36))),
            "the edited text takes 2 SMS segments (UCS-2, 36 characters), over max_segments 1"
        );
    }

    #[test]
    fn tokens_that_render_too_long_or_empty_fail_at_send_time() {
        let config = config(r#"{"text": "{{contact.first_name}}{{contact.first_name}}", "max_segments": 1}"#);
        let long = |template: &str| Ok::<_, HostError>(template.replace("{{contact.first_name}}", &"x".repeat(100)));
        let outcome = message(&config, &subject(Some("+15550100")), None, long).unwrap_err();
        assert_eq!(
            failure(outcome),
            "the rendered text takes 2 SMS segments (GSM-7, 200 characters), over max_segments 1"
        );
        let empty = |_: &str| Ok::<_, HostError>(String::new());
        let outcome = message(&config, &subject(Some("+15550100")), None, empty).unwrap_err();
        assert_eq!(failure(outcome), "the rendered text is empty");
        let config = self::config(r#"{"text": "Hi {{owner.nope}}"}"#);
        let outcome = message(&config, &subject(Some("+15550100")), None, render).unwrap_err();
        assert_eq!(failure(outcome), "cannot render /text: unknown token `owner.nope`");
    }

    #[test]
    fn an_unknown_result_fails() {
        let config = config(r#"{"text": "Hi"}"#);
        let outcome =
            message(&config, &subject(Some("+15550100")), Some(&completion("delivered", None)), render).unwrap_err();
        assert_eq!(failure(outcome), "unknown result `delivered`: expected sent");
    }

    #[test]
    fn phone_numbers_compare_by_their_digits() {
        assert_eq!(digits(" +1 (555) 010-0 "), "+15550100");
        assert_eq!(digits("555.0100"), "5550100");
        assert_ne!(digits("+15550100"), digits("15550100"), "a leading plus is part of the number");
    }

    #[test]
    fn the_title_names_the_contact_or_its_number() {
        let mut contact = subject(Some("+15550100")).contact;
        assert_eq!(title(&contact), "Text Ada Lovelace");
        contact.first_name = " ".into();
        contact.last_name = String::new();
        assert_eq!(title(&contact), "Text +15550100");
    }

    #[test]
    fn the_result_matches_the_manifest() {
        assert!(Text::manifest().has_result(SENT));
        assert_eq!(Text::manifest().first_result().as_deref(), Some(SENT));
    }
}
