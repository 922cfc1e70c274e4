//! Constructors for what plugins return: outcomes, to-do items, problems.

use crate::{ConfigProblem, Done, Draft, EngageItem, ErrorCode, Failure, Outcome, Retry};

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

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}
