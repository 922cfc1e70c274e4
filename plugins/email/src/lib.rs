//! The `email` step: a message to the contact, its subject and body written
//! in the step or taken from one of the account's templates, signed with the
//! owner's signature. Automatic, or manual: a draft the rep reviews (and may
//! edit) on the Engage view, then sends.
//!
//! Everything but the host calls is a pure function of the config, the
//! subject and a renderer, so it is unit-tested natively.

use stepwise_plugin_sdk::prelude::*;
use stepwise_plugin_sdk::{Draft, EmailDraft, HostError, messaging};

/// The one result: the message is queued for delivery.
const SENT: &str = "sent";

/// An email step's configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// One of the account's templates (`tpl_…`): the email takes its subject
    /// and body from it, as the template reads when the step runs.
    #[serde(default)]
    pub template_id: Option<String>,
    /// The template `template_id` names, added by the host before each call;
    /// never written in a step.
    #[serde(default)]
    pub template: Option<TemplateText>,
    /// The subject, with tokens; overrides the template's.
    #[serde(default)]
    pub subject: Option<String>,
    /// The body, with tokens, when there is no template.
    #[serde(default)]
    pub body: Option<String>,
    /// Whether to sign with the owner's signature (default `true`).
    #[serde(default = "yes")]
    pub signature: bool,
}

fn yes() -> bool {
    true
}

/// A template as the host adds it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct TemplateText {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its subject, with tokens.
    pub subject: String,
    /// Its body, with tokens.
    pub body: String,
}

impl Config {
    /// The subject and body to render, or why there are none.
    fn text(&self) -> Result<(&str, &str), String> {
        match (&self.template_id, &self.template) {
            (Some(id), None) => Err(format!("template {id} no longer exists")),
            (_, Some(template)) => Ok((
                self.subject.as_deref().unwrap_or(&template.subject),
                self.body.as_deref().unwrap_or(&template.body),
            )),
            (None, None) => Ok((self.subject.as_deref().unwrap_or_default(), self.body.as_deref().unwrap_or_default())),
        }
    }
}

/// Every problem of a config; `check` reports a template's unknown tokens.
fn problems(config: &Config, check: impl Fn(&str, &str) -> Option<ConfigProblem>) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    match (&config.template_id, &config.template) {
        (None, Some(_)) => problems.push(ConfigProblem::new("/template", "is added by the host from `template_id`")),
        (Some(_), _) if config.body.is_some() => {
            problems.push(ConfigProblem::new("/body", "a step with `template_id` takes its body from the template"));
        }
        (None, None) if config.body.as_deref().is_none_or(|b| b.trim().is_empty()) => {
            problems.push(ConfigProblem::new("/body", "an email needs a body, or a `template_id`"));
        }
        // A template that is gone is the host's to report.
        _ => {}
    }
    let subject = config.subject.as_deref().or(config.template.as_ref().map(|t| t.subject.as_str()));
    if config.template_id.is_none() || config.template.is_some() {
        match subject {
            Some(subject) if subject.contains(['\r', '\n']) => {
                problems.push(ConfigProblem::new("/subject", "must be one line"));
            }
            Some(subject) if !subject.trim().is_empty() => {}
            _ => problems.push(ConfigProblem::new("/subject", "an email needs a subject, here or in its template")),
        }
    }
    let fields = [("/subject", config.subject.as_deref()), ("/body", config.body.as_deref())];
    problems.extend(templates::problems(fields, check));
    problems
}

/// The message for `subject`'s contact, rendered with `render`.
fn compose(
    config: &Config,
    subject: &Subject,
    render: impl Fn(&str) -> Result<String, HostError>,
) -> Result<EmailDraft, String> {
    let to =
        subject.contact.email.clone().filter(|e| !e.trim().is_empty()).ok_or("the contact has no email address")?;
    let (subject_text, body_text) = config.text()?;
    let rendered = templates::by_field(render);
    let title = rendered("the subject", subject_text)?;
    let mut body = rendered("the body", body_text)?;
    if config.signature {
        body = signed(body, subject.owner.as_ref().map(|o| o.signature.as_str()));
    }
    Ok(EmailDraft { to, subject: title, body })
}

/// `body` with the signature after the conventional `-- ` line.
fn signed(body: String, signature: Option<&str>) -> String {
    match signature.map(str::trim).filter(|s| !s.is_empty()) {
        Some(signature) => format!("{}\n\n-- \n{signature}", body.trim_end()),
        None => body,
    }
}

/// The rep's edited draft, checked: a subject on one line and a body.
fn edited(draft: &Draft) -> Result<(&str, &str), String> {
    let Draft::Email(email) = draft else { return Err("an email step takes an email draft".into()) };
    if email.subject.trim().is_empty() || email.subject.contains(['\r', '\n']) {
        return Err("the draft's subject must be one non-empty line".into());
    }
    if email.body.trim().is_empty() {
        return Err("the draft's body must not be empty".into());
    }
    Ok((&email.subject, &email.body))
}

/// The email step type.
#[derive(Debug)]
pub struct Email;

impl Action for Email {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("email", "Email")
            .description(
                "emails the contact a message written in the step or taken from a template, signed by the owner",
            )
            .channel(Channel::Email)
            .automatic()
            .result(ResultSpec::continues(SENT, "Sent"))
            .capability(Capability::RenderTemplate)
            .capability(Capability::SendEmail)
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        problems(config, templates::problem)
    }

    fn prepare(_: &StepContext, config: Config, subject: &Subject) -> Result<EngageItem, String> {
        let draft = compose(&config, subject, templates::render)?;
        let name = format!("{} {}", subject.contact.first_name, subject.contact.last_name);
        let title = format!("Email {}: {}", name.trim(), draft.subject);
        Ok(EngageItem::new(title).body("Review the draft, edit it if needed, then send it.").draft(Draft::Email(draft)))
    }

    fn execute(context: &StepContext, config: Config, subject: &Subject) -> Outcome {
        let mut message = match compose(&config, subject, templates::render) {
            Ok(message) => message,
            Err(why) if subject.contact.email.is_none() => return Outcome::skipped(why),
            Err(why) => return Outcome::failed(why),
        };
        if let Some(draft) = context.completion.as_ref().and_then(|c| c.draft.as_ref()) {
            match edited(draft) {
                Ok((title, body)) => (message.subject, message.body) = (title.to_owned(), body.to_owned()),
                Err(why) => return Outcome::failed(why),
            }
        }
        let email = messaging::Email { to: message.to, subject: message.subject, text: message.body, html: None };
        match messaging::send_email(&email) {
            Ok(id) => Outcome::done_with(SENT, &serde_json::json!({ "message_id": id })),
            Err(error) => Outcome::failed(format!("cannot queue the email: {}", error.message)),
        }
    }
}

stepwise_plugin_sdk::export_action!(Email);

#[cfg(test)]
mod tests {
    use super::*;
    use stepwise_plugin_sdk::fixtures::{self, config, render};
    use stepwise_plugin_sdk::{SmsDraft, User, parse_config};

    fn check(json: &str) -> Vec<String> {
        fixtures::problem_lines(problems(&config(json), fixtures::check))
    }

    /// Ada, owned by Grace, whose mailbox is connected, signing with `signature`.
    fn ada(signature: &str) -> Subject {
        let owner = User { signature: signature.into(), sender_connected: true, ..fixtures::user() };
        Subject { owner: Some(owner), ..fixtures::subject() }
    }

    #[test]
    fn an_inline_email_is_rendered_and_signed() {
        let c = config(r#"{"subject": "Hi {{contact.first_name}}", "body": "Welcome, {{contact.first_name}}.\n"}"#);
        let draft = compose(&c, &ada("Grace Hopper\nAcme"), render).unwrap();
        assert_eq!(draft.to, "ada@example.com");
        assert_eq!(draft.subject, "Hi Ada");
        assert_eq!(draft.body, "Welcome, Ada.\n\n-- \nGrace Hopper\nAcme");
        let unsigned = config(r#"{"subject": "Hi", "body": "Welcome.", "signature": false}"#);
        assert_eq!(compose(&unsigned, &ada("Grace"), render).unwrap().body, "Welcome.");
        assert_eq!(compose(&c, &ada("  "), render).unwrap().body, "Welcome, Ada.\n", "no empty signature block");
    }

    #[test]
    fn a_template_gives_subject_and_body_and_the_step_may_override_the_subject() {
        let template = r#""template": {"id": "tpl_1", "name": "Welcome", "subject": "Hello", "body": "Dear {{contact.first_name}}"}"#;
        let c = config(&format!(r#"{{"template_id": "tpl_1", {template}, "signature": false}}"#));
        let draft = compose(&c, &ada(""), render).unwrap();
        assert_eq!((draft.subject.as_str(), draft.body.as_str()), ("Hello", "Dear Ada"));
        let c =
            config(&format!(r#"{{"template_id": "tpl_1", {template}, "subject": "Re: {{{{contact.first_name}}}}"}}"#));
        assert_eq!(compose(&c, &ada(""), render).unwrap().subject, "Re: Ada");
        let gone = config(r#"{"template_id": "tpl_9"}"#);
        assert_eq!(compose(&gone, &ada(""), render).unwrap_err(), "template tpl_9 no longer exists");
    }

    #[test]
    fn configs_are_checked_field_by_field() {
        assert_eq!(check(r#"{"subject": "Hi"}"#), ["/body: an email needs a body, or a `template_id`"]);
        assert_eq!(check(r#"{"body": "x"}"#), ["/subject: an email needs a subject, here or in its template"]);
        assert_eq!(check(r#"{"subject": "a\nb", "body": "x"}"#), ["/subject: must be one line"]);
        assert_eq!(check(r#"{"subject": "Hi {{nope}}", "body": "x"}"#), ["/subject: unknown token `nope`"]);
        assert_eq!(
            check(
                r#"{"template_id": "tpl_1", "template": {"id": "tpl_1", "name": "n", "subject": "s", "body": "b"}, "body": "x"}"#
            ),
            ["/body: a step with `template_id` takes its body from the template"]
        );
        assert_eq!(
            check(
                r#"{"template": {"id": "tpl_1", "name": "n", "subject": "s", "body": "b"}, "subject": "s", "body": "b"}"#
            ),
            ["/template: is added by the host from `template_id`"]
        );
        assert!(check(r#"{"template_id": "tpl_gone"}"#).is_empty(), "a missing template is the host's to report");
        let problem = parse_config::<Config>(r#"{"subject": "s", "body": "b", "cc": "x"}"#).unwrap_err();
        assert!(problem.message.contains("unknown field `cc`"), "{}", problem.message);
    }

    #[test]
    fn rendering_failures_and_missing_addresses_are_reported() {
        let c = config(r#"{"subject": "Hi", "body": "{{nope}}"}"#);
        assert_eq!(compose(&c, &ada(""), render).unwrap_err(), "cannot render the body: unknown token `nope`");
        let mut nobody = ada("");
        nobody.contact.email = None;
        assert_eq!(compose(&c, &nobody, render).unwrap_err(), "the contact has no email address");
    }

    #[test]
    fn an_edited_draft_must_still_be_an_email() {
        let ok = Draft::Email(EmailDraft { to: "x".into(), subject: "Hi".into(), body: "Edited".into() });
        assert_eq!(edited(&ok).unwrap(), ("Hi", "Edited"));
        let blank = Draft::Email(EmailDraft { to: "x".into(), subject: " ".into(), body: "b".into() });
        assert!(edited(&blank).is_err());
        let sms = Draft::Sms(SmsDraft { to: "+1".into(), body: "b".into() });
        assert_eq!(edited(&sms).unwrap_err(), "an email step takes an email draft");
    }
}
