//! Constructors for what plugins return: outcomes, to-do items, problems.

use crate::{ConfigProblem, Done, Draft, EngageItem, ErrorCode, Failure, HostError, Outcome, Retry, check_result};

impl Outcome {
    /// The step is done with `result` and no output.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::Outcome;
    /// let outcome = Outcome::done("sent");
    /// ```
    pub fn done(result: impl Into<String>) -> Self {
        Outcome::Done(Done { result: result.into(), output: "null".to_owned() })
    }

    /// The step is done with `result`, keeping `output` with the action.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::Outcome;
    /// let outcome = Outcome::done_with("done", &serde_json::json!({"status": 200}));
    /// ```
    pub fn done_with(result: impl Into<String>, output: &impl serde::Serialize) -> Self {
        Outcome::Done(Done { result: result.into(), output: to_json(output) })
    }

    /// The step does not apply and is skipped, for `reason`.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Outcome::Skipped(reason.into())
    }

    /// Try again after `after`, for `reason`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::Outcome;
    /// let outcome = Outcome::retry(std::time::Duration::from_secs(60), "rate limited");
    /// ```
    pub fn retry(after: std::time::Duration, reason: impl Into<String>) -> Self {
        let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        Outcome::Retry(Retry { after_ms, reason: reason.into() })
    }

    /// The step failed with `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        Outcome::Failed(Failure { message: message.into(), details: "null".to_owned() })
    }

    /// The step failed with `message`, with `details` for whoever diagnoses it.
    pub fn failed_with(message: impl Into<String>, details: &impl serde::Serialize) -> Self {
        Outcome::Failed(Failure { message: message.into(), details: to_json(details) })
    }

    /// The step is done with the `result` a rep completed it with when it
    /// is one of `codes`; otherwise it failed, as [`check_result`] says.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::Outcome;
    /// const RESULTS: [&str; 2] = ["interested", "not_interested"];
    /// let Outcome::Failed(failure) = Outcome::completed("busy", &RESULTS) else { unreachable!() };
    /// assert_eq!(failure.message, "unknown result `busy`: expected one of interested, not_interested");
    /// ```
    pub fn completed(result: &str, codes: &[&str]) -> Self {
        match check_result(result, codes) {
            Ok(()) => Outcome::done(result),
            Err(message) => Outcome::failed(message),
        }
    }
}

impl EngageItem {
    /// A to-do item with `title` and nothing else.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::EngageItem;
    /// let item = EngageItem::new("Call Ada").body("ask about the renewal");
    /// assert_eq!(item.body, "ask about the renewal");
    /// ```
    pub fn new(title: impl Into<String>) -> Self {
        Self { title: title.into(), body: String::new(), draft: None }
    }

    /// Sets the instructions shown under the title.
    #[must_use]
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// Attaches a message draft the rep reviews before sending.
    #[must_use]
    pub fn draft(mut self, draft: Draft) -> Self {
        self.draft = Some(draft);
        self
    }
}

impl ConfigProblem {
    /// A problem with the field at the JSON Pointer `field` (`""` for the
    /// whole config).
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::ConfigProblem;
    /// let problem = ConfigProblem::new("/url", "must be an absolute URL");
    /// ```
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }

    /// The problem as a message for people, as the SDK reports a config
    /// that does not parse: `invalid config at /url: …`, or `invalid config:
    /// …` for the whole config.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::ConfigProblem;
    /// let problem = ConfigProblem::new("/url", "must be an absolute URL");
    /// assert_eq!(problem.describe(), "invalid config at /url: must be an absolute URL");
    /// ```
    pub fn describe(&self) -> String {
        if self.field.is_empty() {
            format!("invalid config: {}", self.message)
        } else {
            format!("invalid config at {}: {}", self.field, self.message)
        }
    }

    /// Every one of `problems` in one message for people: `invalid config:
    /// /start: …; /end: …`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::ConfigProblem;
    /// let problems = [ConfigProblem::new("/start", "is not a time"), ConfigProblem::new("/end", "is not a time")];
    /// assert_eq!(ConfigProblem::describe_all(&problems), "invalid config: /start: is not a time; /end: is not a time");
    /// ```
    pub fn describe_all(problems: &[ConfigProblem]) -> String {
        let problems: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect();
        format!("invalid config: {}", problems.join("; "))
    }
}

impl ErrorCode {
    /// The code's name as the contract spells it, such as `too-large`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::ErrorCode;
    /// assert_eq!(ErrorCode::TooLarge.as_str(), "too-large");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Denied => "denied",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Blocked => "blocked",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Transport => "transport",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

impl HostError {
    /// Whether trying the same call later may work: a timeout, a network
    /// failure, or a host that cannot do it now. A denied, blocked or
    /// invalid call stays so until someone changes something.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::{ErrorCode, HostError};
    /// assert!(HostError { code: ErrorCode::Timeout, message: String::new() }.is_transient());
    /// assert!(!HostError { code: ErrorCode::Denied, message: String::new() }.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(self.code, ErrorCode::Timeout | ErrorCode::Transport | ErrorCode::Unavailable)
    }
}

/// A host error in an outcome's output or details: `{"code": "denied",
/// "message": "…"}`.
///
/// # Examples
///
/// ```
/// # use stepwise_plugin_sdk::{ErrorCode, HostError, Outcome};
/// let error = HostError { code: ErrorCode::Denied, message: "`send-sms` is not granted".into() };
/// let details = serde_json::json!({"error": error});
/// assert_eq!(details["error"]["code"], "denied");
/// let outcome = Outcome::failed_with(format!("cannot queue the text: {}", error.message), &details);
/// ```
impl serde::Serialize for HostError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut error = serializer.serialize_struct("HostError", 2)?;
        error.serialize_field("code", self.code.as_str())?;
        error.serialize_field("message", &self.message)?;
        error.end()
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_is_done_with_a_listed_result_and_fails_otherwise() {
        match Outcome::completed("no_answer", &["no_answer", "interested"]) {
            Outcome::Done(done) => assert_eq!((done.result.as_str(), done.output.as_str()), ("no_answer", "null")),
            other => panic!("{other:?}"),
        }
        match Outcome::completed("busy", &["no_answer", "interested"]) {
            Outcome::Failed(failure) => {
                assert_eq!(failure.message, "unknown result `busy`: expected one of no_answer, interested");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_host_error_serializes_as_its_code_and_message() {
        let error = HostError { code: ErrorCode::NotFound, message: "no user `usr_x`".into() };
        let value = serde_json::to_value(&error).unwrap();
        assert_eq!(value, serde_json::json!({"code": "not-found", "message": "no user `usr_x`"}));
    }

    #[test]
    fn problems_are_described_with_their_field() {
        assert_eq!(
            ConfigProblem::new("/values", "needs a value").describe(),
            "invalid config at /values: needs a value"
        );
        assert_eq!(ConfigProblem::new("", "set one of `a` or `b`").describe(), "invalid config: set one of `a` or `b`");
        let all = [ConfigProblem::new("/start", "bad"), ConfigProblem::new("/end", "worse")];
        assert_eq!(ConfigProblem::describe_all(&all), "invalid config: /start: bad; /end: worse");
        assert_eq!(ConfigProblem::describe_all(&all[..1]), "invalid config: /start: bad");
    }
}
