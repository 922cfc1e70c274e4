//! The plugin contract as the rest of the host sees it: version-neutral Rust
//! types that every supported WIT version converts into and out of.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

// One definition each, shared with the records: a step's activation, the
// kind of a plugin, the outcome a result ends an enrollment with.
pub use crate::engagement::{Activation, EnrollmentOutcome, PluginKind};

/// A communication channel a step uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Email.
    Email,
    /// Text messages.
    Sms,
    /// Phone calls.
    Phone,
}

/// A result a step can end with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResultSpec {
    /// Stable code.
    pub code: String,
    /// Label.
    pub title: String,
    /// Whether it ends the enrollment.
    pub ends_enrollment: bool,
    /// The outcome when it ends it.
    pub outcome: Option<EnrollmentOutcome>,
}

/// A contact field a plugin may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactField {
    /// Owner.
    Owner,
    /// Contact type.
    ContactType,
    /// Sales cycle.
    SalesCycle,
    /// Attributes.
    Attributes,
}

impl ContactField {
    /// The field's name in grants and errors.
    pub fn name(self) -> &'static str {
        match self {
            ContactField::Owner => "owner",
            ContactField::ContactType => "contact_type",
            ContactField::SalesCycle => "sales_cycle",
            ContactField::Attributes => "attributes",
        }
    }
}

/// Something a plugin may ask the host to do.
///
/// Serialized as the capability's name, `update-contact` with its fields:
/// `"http-fetch"`, `{"update-contact": ["owner"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Write to the plugin's log.
    Log,
    /// Render tokens.
    RenderTemplate,
    /// Outbound HTTP.
    HttpFetch,
    /// Queue email.
    SendEmail,
    /// Queue text messages.
    SendSms,
    /// Change these contact fields.
    UpdateContact(BTreeSet<ContactField>),
    /// Look up users.
    LookupUser,
    /// List the account's contact types (contract 0.2.0 on).
    ReadContactTypes,
    /// List the account's users' display fields (contract 0.2.0 on).
    ListUsers,
}

impl Capability {
    /// Whether the capability only reads what the account holds (its
    /// templates' tokens, its users, its contact types): such capabilities
    /// are allowed while a step's configuration is checked.
    pub fn reads_account(&self) -> bool {
        matches!(
            self,
            Capability::RenderTemplate | Capability::LookupUser | Capability::ReadContactTypes | Capability::ListUsers
        )
    }

    /// The capability's name in manifests, grants and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::RenderTemplate => "render-template",
            Capability::HttpFetch => "http-fetch",
            Capability::SendEmail => "send-email",
            Capability::SendSms => "send-sms",
            Capability::UpdateContact(_) => "update-contact",
            Capability::LookupUser => "lookup-user",
            Capability::ReadContactTypes => "read-contact-types",
            Capability::ListUsers => "list-users",
        }
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Capability::UpdateContact(fields) => {
                let names: Vec<_> = fields.iter().map(|f| f.name()).collect();
                write!(f, "update-contact({})", names.join(", "))
            }
            other => f.write_str(other.name()),
        }
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Manifest {
    /// Identifier.
    pub id: String,
    /// The plugin's own version.
    pub version: String,
    /// Step or predicate.
    pub kind: PluginKind,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// JSON Schema of the configuration.
    pub config_schema: serde_json::Value,
    /// Channel used, if any.
    pub channel: Option<Channel>,
    /// Default activation.
    pub default_activation: Activation,
    /// Results.
    pub results: Vec<ResultSpec>,
    /// Requested capabilities.
    pub capabilities: Vec<Capability>,
}

impl Manifest {
    /// The declared result with `code`, if any.
    pub fn result(&self, code: &str) -> Option<&ResultSpec> {
        self.results.iter().find(|r| r.code == code)
    }
}

/// One problem in a step's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfigProblem {
    /// JSON Pointer of the field; empty for the whole config.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A rep's completion of a manual step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Completion {
    /// The chosen result.
    pub result: String,
    /// The message as the rep edited it.
    pub draft: Option<Draft>,
    /// Who completed it.
    pub user_id: String,
}

/// Where a call happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct StepContext {
    /// Account.
    pub account_id: String,
    /// Sequence.
    pub sequence_id: String,
    /// Sequence version.
    pub sequence_version: u32,
    /// Enrollment.
    pub enrollment_id: String,
    /// Action.
    pub action_id: String,
    /// Step number, from 1.
    pub step_number: u32,
    /// Attempt, from 1.
    pub attempt: u32,
    /// Stable across retries of the same action.
    pub idempotency_key: String,
    /// The engine's time.
    pub now: chrono::DateTime<chrono::Utc>,
    /// The enrollment's event date.
    pub event_date: Option<chrono::DateTime<chrono::Utc>>,
    /// The step's activation.
    pub activation: Activation,
    /// Set when a rep completes a manual step.
    pub completion: Option<Completion>,
}

impl Default for StepContext {
    fn default() -> Self {
        Self {
            account_id: "acct_local".into(),
            sequence_id: "seq_local".into(),
            sequence_version: 1,
            enrollment_id: "enr_local".into(),
            action_id: "act_local".into(),
            step_number: 1,
            attempt: 1,
            idempotency_key: "act_local".into(),
            now: chrono::Utc::now(),
            event_date: None,
            activation: Activation::Automatic,
            completion: None,
        }
    }
}

/// What executing a step came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// Done with a result.
    Done {
        /// Result code.
        result: String,
        /// Output kept with the action.
        output: serde_json::Value,
    },
    /// Skipped.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Try again later.
    Retry {
        /// After how long.
        #[serde(with = "millis")]
        after: std::time::Duration,
        /// Why.
        reason: String,
    },
    /// Failed.
    Failed {
        /// What went wrong.
        message: String,
        /// Details for diagnosis.
        details: serde_json::Value,
    },
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
        u64::deserialize(d).map(std::time::Duration::from_millis)
    }
}

/// A draft message on a to-do item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "channel")]
pub enum Draft {
    /// An email.
    Email {
        /// Recipient.
        to: String,
        /// Subject.
        subject: String,
        /// Body.
        body: String,
    },
    /// A text message.
    Sms {
        /// Recipient.
        to: String,
        /// Text.
        body: String,
    },
}

/// What a rep sees for a manual step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EngageItem {
    /// Title.
    pub title: String,
    /// Instructions.
    pub body: String,
    /// Draft message.
    pub draft: Option<Draft>,
}
