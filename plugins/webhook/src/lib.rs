//! The `webhook` step: sends an HTTP request about the contact to a remote system.
//!
//! Everything but the host calls is a pure function of the config and the
//! subject, so that it is unit-tested natively: validation and rendering
//! take the host's template functions as parameters.

use serde_json::{Map, Value, json};
use stepwise_plugin_sdk::prelude::*;
use stepwise_plugin_sdk::{ContactKind, ErrorCode, http::Request};

/// The header that carries [`StepContext::idempotency_key`] on every request.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// How much of a failed response's body is kept in the failure details.
const BODY_EXCERPT: usize = 2048;

/// A webhook step's configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The request method; `POST` unless set.
    #[serde(default)]
    pub method: Method,
    /// The `http://` or `https://` URL, with tokens.
    pub url: String,
    /// Extra request headers, values with tokens.
    #[serde(default)]
    pub headers: Vec<Header>,
    /// The JSON body; none unless set, and never with `GET`.
    #[serde(default)]
    pub payload: Option<Payload>,
    /// Gives up sooner than the host's own timeout, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u32>,
    /// How many times to try before the final failure (1–5, default 3): a
    /// timeout, a network error, HTTP 408, 425, 429 or 5xx is tried again.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The wait before the second attempt, in milliseconds (default one
    /// minute); it doubles before each further attempt, up to an hour.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
}

/// The most attempts a step may ask for: the host's default limit.
pub const MAX_ATTEMPTS: u32 = 5;

/// The longest wait between attempts.
const MAX_BACKOFF_MS: u64 = 60 * 60 * 1000;

fn default_attempts() -> u32 {
    3
}

fn default_backoff_ms() -> u64 {
    60_000
}

impl Config {
    /// How long to wait after failed attempt number `attempt` (from 1), or
    /// `None` when it was the last.
    pub fn backoff(&self, attempt: u32) -> Option<std::time::Duration> {
        (attempt < self.attempts).then(|| {
            let factor = 1u64.checked_shl(attempt.saturating_sub(1)).unwrap_or(u64::MAX);
            std::time::Duration::from_millis(self.backoff_ms.saturating_mul(factor).min(MAX_BACKOFF_MS))
        })
    }
}

/// The methods a webhook may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// No body is sent.
    Get,
    /// Sends the payload, if any; the default.
    #[default]
    Post,
    /// Sends the payload, if any, to replace the remote record.
    Put,
}

/// A request header.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The header name, an RFC 7230 token such as `Authorization`.
    pub name: String,
    /// The value, with tokens.
    pub value: String,
}

/// What the request body holds: a flat JSON object either way.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Payload {
    /// The listed key/value pairs, values rendered with tokens.
    Fields {
        /// The pairs, keys unique.
        fields: Vec<Field>,
    },
    /// Every field of the contact; attributes as `attributes.<name>`.
    AllContactFields {},
}

/// One key/value pair of a `fields` payload.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The key in the JSON object.
    pub key: String,
    /// The value, a string with tokens.
    pub value: String,
}

/// The webhook step type.
#[derive(Debug)]
pub struct Webhook;

impl Action for Webhook {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("webhook", "Webhook")
            .description("sends a GET, POST or PUT request with the contact's data to a remote system")
            .automatic()
            .result(ResultSpec::continues("done", "Done"))
            .capability(Capability::RenderTemplate)
            .capability(Capability::HttpFetch)
            .capability(Capability::Log)
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        problems(config, templates::problem)
    }

    fn execute(context: &StepContext, config: Config, subject: &Subject) -> Outcome {
        if let Some(problem) = problems(&config, |_, _| None).into_iter().next() {
            return Outcome::failed(problem.describe());
        }
        let request = match build(&config, &context.idempotency_key, subject, templates::render) {
            Ok(request) => request,
            Err((field, error)) => {
                let message = templates::render_error(&field, &error);
                return Outcome::failed_with(message, &json!({"field": field, "error": error}));
            }
        };
        if !has_http_scheme(&request.url) {
            let message = "the rendered URL does not start with http:// or https://";
            log::warn(&format!("{message}: {}", mask_url(&request.url)));
            return Outcome::failed_with(message, &json!({"request": request.masked()}));
        }
        match send(&request, config.timeout_ms) {
            Sent::Done(outcome) | Sent::Final(outcome) => outcome,
            Sent::Transient(outcome, reason) => match config.backoff(context.attempt) {
                Some(after) => {
                    Outcome::retry(after, format!("attempt {} of {}: {reason}", context.attempt, config.attempts))
                }
                None => outcome,
            },
        }
    }
}

/// What a request came to.
enum Sent {
    /// Delivered.
    Done(Outcome),
    /// Failed in a way trying again will not fix (most 4xx).
    Final(Outcome),
    /// Failed in a way a later attempt may not: the failure if this was the
    /// last attempt, and why.
    Transient(Outcome, String),
}

/// Whether an HTTP status is worth another attempt.
fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || status >= 500
}

/// Sends `request` and tells what came of it; failures carry the request,
/// masked, and the response or the host's error.
fn send(request: &Rendered, timeout_ms: Option<u32>) -> Sent {
    let mut outbound = Request::new(request.method.into(), &request.url);
    for (name, value) in &request.headers {
        outbound = outbound.header(name, value);
    }
    if let Some(body) = &request.body {
        outbound = outbound.body(serde_json::to_vec(body).unwrap_or_default());
    }
    if let Some(ms) = timeout_ms {
        outbound = outbound.timeout(std::time::Duration::from_millis(ms.into()));
    }
    let line = format!("{} {}", request.method.as_str(), mask_url(&request.url));
    match outbound.send() {
        Ok(response) if response.is_success() => {
            log::info(&format!("{line}: HTTP {}", response.status()));
            Sent::Done(Outcome::done_with("done", &json!({"status": response.status()})))
        }
        Ok(response) => {
            let message = format!("webhook returned HTTP {}", response.status());
            log::warn(&format!("{line}: {message}"));
            let details = json!({
                "request": request.masked(),
                "response": {"status": response.status(), "body": excerpt(response.body())},
            });
            let failed = Outcome::failed_with(message.clone(), &details);
            if transient_status(response.status()) { Sent::Transient(failed, message) } else { Sent::Final(failed) }
        }
        Err(error) => {
            log::warn(&format!("{line}: {} ({})", error.message, error.code.as_str()));
            let details = json!({"request": request.masked(), "error": error});
            let message = format!("webhook request failed: {}", error.message);
            let failed = Outcome::failed_with(message.clone(), &details);
            match error.code {
                ErrorCode::Timeout | ErrorCode::Transport | ErrorCode::Unavailable => Sent::Transient(failed, message),
                _ => Sent::Final(failed),
            }
        }
    }
}

stepwise_plugin_sdk::export_action!(Webhook);

/// Every problem of `config`, each naming its field; `check` finds unknown
/// tokens in a template (the host's [`templates::problem`]).
fn problems(config: &Config, check: impl Fn(&str, &str) -> Option<ConfigProblem>) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    // A URL that starts with a token gets its scheme from the token; it is
    // checked again once rendered.
    if !config.url.trim_start().starts_with("{{") && !has_http_scheme(&config.url) {
        problems.push(ConfigProblem::new("/url", "must start with http:// or https://"));
    }
    problems.extend(check("/url", &config.url));
    if config.timeout_ms == Some(0) {
        problems.push(ConfigProblem::new("/timeout_ms", "must be at least 1"));
    }
    if !(1..=MAX_ATTEMPTS).contains(&config.attempts) {
        problems.push(ConfigProblem::new("/attempts", format!("must be between 1 and {MAX_ATTEMPTS}")));
    }
    if config.backoff_ms < 1000 {
        problems.push(ConfigProblem::new("/backoff_ms", "must be at least 1000 (one second)"));
    }
    for (i, header) in config.headers.iter().enumerate() {
        let name = &header.name;
        if !is_token(name) {
            let message = format!("`{name}` is not a valid header name");
            problems.push(ConfigProblem::new(format!("/headers/{i}/name"), message));
        } else if name.eq_ignore_ascii_case(IDEMPOTENCY_KEY)
            || (config.payload.is_some() && name.eq_ignore_ascii_case("content-type"))
        {
            let message = format!("`{name}` is set by the webhook step itself");
            problems.push(ConfigProblem::new(format!("/headers/{i}/name"), message));
        }
        let field = format!("/headers/{i}/value");
        if header.value.contains(['\r', '\n']) {
            problems.push(ConfigProblem::new(&field, "must not contain line breaks"));
        }
        problems.extend(check(&field, &header.value));
    }
    match &config.payload {
        Some(_) if config.method == Method::Get => {
            problems.push(ConfigProblem::new("/payload", "a GET request has no payload"));
        }
        Some(Payload::Fields { fields }) => {
            for (i, field) in fields.iter().enumerate() {
                if field.key.is_empty() {
                    problems.push(ConfigProblem::new(format!("/payload/fields/{i}/key"), "must not be empty"));
                } else if fields[..i].iter().any(|earlier| earlier.key == field.key) {
                    let message = format!("duplicate key `{}`", field.key);
                    problems.push(ConfigProblem::new(format!("/payload/fields/{i}/key"), message));
                }
                problems.extend(check(&format!("/payload/fields/{i}/value"), &field.value));
            }
        }
        Some(Payload::AllContactFields {}) | None => {}
    }
    problems
}

/// A request with every token rendered, ready to send and to report.
#[derive(Debug, PartialEq)]
struct Rendered {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl Rendered {
    /// The request as shown in failure details, secrets masked.
    fn masked(&self) -> Value {
        let headers: Vec<Value> =
            self.headers.iter().map(|(name, value)| json!({"name": name, "value": mask_header(name, value)})).collect();
        json!({"method": self.method, "url": mask_url(&self.url), "headers": headers})
    }
}

/// Renders the request `config` describes for `subject`, with `render` (the
/// host's [`templates::render`]).
///
/// # Errors
///
/// The field whose template did not render, and why.
fn build(
    config: &Config,
    idempotency_key: &str,
    subject: &Subject,
    render: impl Fn(&str) -> Result<String, HostError>,
) -> Result<Rendered, (String, HostError)> {
    let render_at = |field: String, template: &str| render(template).map_err(|e| (field, e));
    let url = render_at("/url".into(), &config.url)?;
    let mut headers = Vec::with_capacity(config.headers.len() + 2);
    for (i, header) in config.headers.iter().enumerate() {
        let value = render_at(format!("/headers/{i}/value"), &header.value)?;
        headers.push((header.name.clone(), value));
    }
    headers.push((IDEMPOTENCY_KEY.to_owned(), idempotency_key.to_owned()));
    let body = match &config.payload {
        None => None,
        Some(Payload::AllContactFields {}) => Some(Value::Object(contact_fields(&subject.contact))),
        Some(Payload::Fields { fields }) => {
            let mut object = Map::new();
            for (i, field) in fields.iter().enumerate() {
                let value = render_at(format!("/payload/fields/{i}/value"), &field.value)?;
                object.insert(field.key.clone(), Value::String(value));
            }
            Some(Value::Object(object))
        }
    };
    if body.is_some() {
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    }
    Ok(Rendered { method: config.method, url, headers, body })
}

/// The contact as one flat JSON object: its fields by their snake_case
/// names, opt-outs as `opt_out_<channel>`, each attribute as
/// `attributes.<name>`, and absent values as `null`.
fn contact_fields(contact: &Contact) -> Map<String, Value> {
    let kind = match contact.kind {
        ContactKind::Lead => "lead",
        ContactKind::Contact => "contact",
    };
    let mut object = Map::new();
    let mut put = |key: &str, value: Value| {
        object.insert(key.to_owned(), value);
    };
    put("id", json!(contact.id));
    put("kind", json!(kind));
    put("first_name", json!(contact.first_name));
    put("last_name", json!(contact.last_name));
    put("email", json!(contact.email));
    put("phone", json!(contact.phone));
    put("owner_id", json!(contact.owner_id));
    put("company_id", json!(contact.company_id));
    put("contact_type", json!(contact.contact_type));
    put("lead_source", json!(contact.lead_source));
    put("sales_cycle", json!(contact.sales_cycle));
    put("timezone", json!(contact.timezone));
    put("opt_out_email", json!(contact.opt_outs.email));
    put("opt_out_sms", json!(contact.opt_outs.sms));
    put("opt_out_phone", json!(contact.opt_outs.phone));
    put("last_engaged", json!(contact.last_engaged));
    put("last_contacted", json!(contact.last_contacted));
    for attribute in &contact.attributes {
        let value = match &attribute.value {
            AttributeValue::Text(text) => json!(text),
            AttributeValue::Number(number) => json!(number),
            AttributeValue::Boolean(flag) => json!(flag),
        };
        put(&format!("attributes.{}", attribute.name), value);
    }
    object
}

/// Whether `url` starts with `http://` or `https://`, in any case.
fn has_http_scheme(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Whether `name` is an RFC 7230 token, as header names must be.
fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether a header or query parameter named `name` likely holds a secret.
fn is_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name != IDEMPOTENCY_KEY.to_ascii_lowercase()
        && ["authorization", "token", "secret", "key", "password", "cookie"].iter().any(|word| name.contains(word))
}

/// `value`, or `***` when the header `name` likely holds a secret.
fn mask_header<'a>(name: &str, value: &'a str) -> &'a str {
    if is_sensitive(name) { "***" } else { value }
}

/// `url` with its user info and the values of sensitive query parameters
/// masked, for logs and failure details.
fn mask_url(url: &str) -> String {
    let (rest, fragment) = url.split_once('#').map_or((url, None), |(r, f)| (r, Some(f)));
    let (base, query) = rest.split_once('?').map_or((rest, None), |(b, q)| (b, Some(q)));
    let mut out = match base.split_once("://") {
        Some((scheme, after)) => {
            let authority_end = after.find('/').unwrap_or(after.len());
            match after[..authority_end].rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{}", &after[authority_end..]),
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_sensitive(name) => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// The start of a response body as text, for failure details.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT)]).into_owned()
}

impl Method {
    /// The method as HTTP spells it.
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

impl From<Method> for http::Method {
    fn from(method: Method) -> Self {
        match method {
            Method::Get => Self::Get,
            Method::Post => Self::Post,
            Method::Put => Self::Put,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stepwise_plugin_sdk::fixtures::{self, render};
    use stepwise_plugin_sdk::{OptOuts, parse_config};

    fn config(json: &str) -> Config {
        fixtures::config(json)
    }

    #[test]
    fn transient_failures_back_off_doubling_until_the_last_attempt() {
        let c = config(r#"{"url": "https://example.com", "attempts": 4, "backoff_ms": 30000}"#);
        let waits: Vec<_> = (1..=4).map(|attempt| c.backoff(attempt).map(|d| d.as_millis())).collect();
        assert_eq!(waits, [Some(30_000), Some(60_000), Some(120_000), None]);
        let long = config(r#"{"url": "https://example.com", "attempts": 5, "backoff_ms": 3000000}"#);
        assert_eq!(long.backoff(4).unwrap().as_millis(), u128::from(MAX_BACKOFF_MS), "capped at an hour");
        assert_eq!(config(r#"{"url": "https://example.com"}"#).attempts, 3);
        assert!([408, 425, 429, 500, 503].into_iter().all(transient_status));
        assert!(![400, 401, 404, 410, 422].into_iter().any(transient_status));
    }

    #[test]
    fn attempts_and_backoff_are_bounded() {
        let problems = check(r#"{"url": "https://example.com", "attempts": 0, "backoff_ms": 10}"#);
        assert_eq!(problems, ["/attempts: must be between 1 and 5", "/backoff_ms: must be at least 1000 (one second)"]);
        assert!(check(r#"{"url": "https://example.com", "attempts": 6}"#)[0].starts_with("/attempts"));
    }

    /// The problems of `json`, as `field: message` lines; templates with
    /// `{{nope}}` stand for unknown tokens.
    fn check(json: &str) -> Vec<String> {
        fixtures::problem_lines(problems(&config(json), fixtures::check))
    }

    /// Ada as a lead with an attribute of each type, who has no phone
    /// number and opted out of text messages.
    fn contact() -> Contact {
        Contact {
            id: "c1".into(),
            kind: ContactKind::Lead,
            phone: None,
            owner_id: Some("u1".into()),
            lead_source: Some("web".into()),
            timezone: Some("Europe/London".into()),
            opt_outs: OptOuts { email: false, sms: true, phone: false },
            attributes: vec![
                Attribute { name: "plan".into(), value: AttributeValue::Text("pro".into()) },
                Attribute { name: "seats".into(), value: AttributeValue::Number(12.0) },
                Attribute { name: "paid".into(), value: AttributeValue::Boolean(true) },
            ],
            last_engaged: Some(1_700_000_000_000),
            ..fixtures::contact()
        }
    }

    fn subject() -> Subject {
        Subject { contact: contact(), ..fixtures::subject() }
    }

    #[test]
    fn minimal_config_is_a_post_without_payload() {
        let config = config(r#"{"url": "https://example.com/hook"}"#);
        assert_eq!(config.method, Method::Post);
        assert!(config.headers.is_empty() && config.payload.is_none() && config.timeout_ms.is_none());
        assert!(problems(&config, |_, _| None).is_empty());
    }

    #[test]
    fn each_problem_names_its_field() {
        let problems = check(
            r#"{
                "url": "ftp://example.com/{{nope}}",
                "headers": [
                    {"name": "X-Ok", "value": "{{nope}}"},
                    {"name": "Bad Name", "value": "v"},
                    {"name": "idempotency-key", "value": "mine"},
                    {"name": "X-Split", "value": "a\r\nb"}
                ],
                "payload": {"mode": "fields", "fields": [
                    {"key": "a", "value": "1"},
                    {"key": "a", "value": "{{nope}}"},
                    {"key": "", "value": "x"}
                ]}
            }"#,
        );
        assert_eq!(
            problems,
            [
                "/url: must start with http:// or https://",
                "/url: unknown token `nope`",
                "/headers/0/value: unknown token `nope`",
                "/headers/1/name: `Bad Name` is not a valid header name",
                "/headers/2/name: `idempotency-key` is set by the webhook step itself",
                "/headers/3/value: must not contain line breaks",
                "/payload/fields/1/key: duplicate key `a`",
                "/payload/fields/1/value: unknown token `nope`",
                "/payload/fields/2/key: must not be empty",
            ]
        );
    }

    #[test]
    fn url_starting_with_a_token_is_checked_once_rendered() {
        assert!(check(r#"{"url": "{{contact.attributes.hook}}"}"#).is_empty());
        assert!(check(r#"{"url": "HTTP://EXAMPLE.COM"}"#).is_empty());
        assert_eq!(check(r#"{"url": "example.com"}"#), ["/url: must start with http:// or https://"]);
    }

    #[test]
    fn get_with_payload_is_a_problem() {
        let problems = check(r#"{"method": "GET", "url": "http://x", "payload": {"mode": "all_contact_fields"}}"#);
        assert_eq!(problems, ["/payload: a GET request has no payload"]);
    }

    #[test]
    fn content_type_is_reserved_only_with_a_payload() {
        let header = r#""headers": [{"name": "Content-Type", "value": "text/plain"}]"#;
        assert!(check(&format!(r#"{{"url": "http://x", {header}}}"#)).is_empty());
        assert_eq!(
            check(&format!(r#"{{"url": "http://x", {header}, "payload": {{"mode": "all_contact_fields"}}}}"#)),
            ["/headers/0/name: `Content-Type` is set by the webhook step itself"]
        );
    }

    #[test]
    fn unknown_method_and_mode_are_parse_problems() {
        let problem = parse_config::<Config>(r#"{"url": "http://x", "method": "DELETE"}"#).unwrap_err();
        assert_eq!(problem.field, "/method");
        let problem = parse_config::<Config>(r#"{"url": "http://x", "payload": {"mode": "nested"}}"#).unwrap_err();
        assert_eq!(problem.field, "/payload/mode");
        // Inside the payload, serde's internally tagged enums lose the path.
        let problem = parse_config::<Config>(
            r#"{"url": "http://x", "payload": {"mode": "fields", "fields": [{"key": "k", "value": 1}]}}"#,
        )
        .unwrap_err();
        assert_eq!(problem.field, "/payload");
        assert!(problem.message.starts_with("invalid type: integer `1`, expected a string"), "{}", problem.message);
        let problem =
            parse_config::<Config>(r#"{"url": "http://x", "payload": {"mode": "all_contact_fields", "fields": []}}"#)
                .unwrap_err();
        assert_eq!(problem.field, "/payload");
        assert!(problem.message.contains("unknown field `fields`"), "{}", problem.message);
        let problem = parse_config::<Config>(r#"{"url": "http://x", "extra": 1}"#).unwrap_err();
        assert!(problem.message.contains("unknown field `extra`"), "{}", problem.message);
    }

    #[test]
    fn fields_payload_is_rendered_and_sent_as_json() {
        let config = config(
            r#"{"url": "https://example.com/{{contact.first_name}}", "method": "PUT",
                "headers": [{"name": "Authorization", "value": "Bearer s3cret"}],
                "payload": {"mode": "fields", "fields": [{"key": "name", "value": "{{contact.first_name}}"}]}}"#,
        );
        let rendered = build(&config, "key-1", &subject(), render).unwrap();
        assert_eq!(
            rendered,
            Rendered {
                method: Method::Put,
                url: "https://example.com/Ada".into(),
                headers: vec![
                    ("Authorization".into(), "Bearer s3cret".into()),
                    ("Idempotency-Key".into(), "key-1".into()),
                    ("Content-Type".into(), "application/json".into()),
                ],
                body: Some(json!({"name": "Ada"})),
            }
        );
    }

    #[test]
    fn get_sends_no_body_and_no_content_type() {
        let config = config(r#"{"url": "https://example.com", "method": "GET"}"#);
        let rendered = build(&config, "k", &subject(), render).unwrap();
        assert_eq!(rendered.body, None);
        assert_eq!(rendered.headers, [("Idempotency-Key".to_owned(), "k".to_owned())]);
    }

    #[test]
    fn render_error_names_the_field() {
        let config = config(
            r#"{"url": "https://x", "payload": {"mode": "fields", "fields": [{"key": "k", "value": "{{owner.nope}}"}]}}"#,
        );
        let (field, error) = build(&config, "k", &subject(), render).unwrap_err();
        assert_eq!(field, "/payload/fields/0/value");
        assert_eq!(error.message, "unknown token `owner.nope`");
    }

    #[test]
    fn all_contact_fields_is_flat() {
        assert_eq!(
            Value::Object(contact_fields(&contact())),
            json!({
                "id": "c1", "kind": "lead", "first_name": "Ada", "last_name": "Lovelace",
                "email": "ada@example.com", "phone": null, "owner_id": "u1", "company_id": null,
                "contact_type": "Clients", "lead_source": "web", "sales_cycle": null,
                "timezone": "Europe/London", "opt_out_email": false, "opt_out_sms": true,
                "opt_out_phone": false, "last_engaged": 1_700_000_000_000_i64, "last_contacted": null,
                "attributes.plan": "pro", "attributes.seats": 12.0, "attributes.paid": true,
            })
        );
    }

    #[test]
    fn header_names_are_rfc7230_tokens() {
        for good in ["Authorization", "X-Api-Key", "a!#$%&'*+-.^_`|~1"] {
            assert!(is_token(good), "{good}");
        }
        for bad in ["", "X Api", "X:Y", "Ä", "X\n", "(x)"] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_masked() {
        let rendered = Rendered {
            method: Method::Post,
            url: "https://user:pw@example.com/hook?api_key=abc&id=7#top".into(),
            headers: [
                ("Authorization", "Bearer x"),
                ("X-Auth-Token", "t"),
                ("X-Client-Secret", "s"),
                ("X-API-KEY", "k"),
                ("Idempotency-Key", "idem"),
                ("Accept", "application/json"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .into(),
            body: None,
        };
        assert_eq!(
            rendered.masked(),
            json!({
                "method": "POST",
                "url": "https://***@example.com/hook?api_key=***&id=7#top",
                "headers": [
                    {"name": "Authorization", "value": "***"},
                    {"name": "X-Auth-Token", "value": "***"},
                    {"name": "X-Client-Secret", "value": "***"},
                    {"name": "X-API-KEY", "value": "***"},
                    {"name": "Idempotency-Key", "value": "idem"},
                    {"name": "Accept", "value": "application/json"},
                ],
            })
        );
        assert_eq!(mask_url("http://example.com/a?b=c"), "http://example.com/a?b=c");
    }

    #[test]
    fn excerpt_keeps_the_first_two_kib() {
        assert_eq!(excerpt(b"oops"), "oops");
        assert_eq!(excerpt(&[b'x'; 5000]).len(), BODY_EXCERPT);
    }
}
