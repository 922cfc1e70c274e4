//! The records of the sequence engine that plugins do not see: accounts,
//! sequences and their versions, enrollments, actions, events, plugin
//! enablement and the outbox (SPEC §1). Contacts, users and companies live in
//! [`crate::crm`], which plugins see. The store persists both.

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// A string that is not one of an enum's names; the store reports it when a
/// row holds a value its code does not know (a newer host wrote it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownVariant {
    /// The enum, such as `action status`.
    pub kind: &'static str,
    /// The value found.
    pub value: String,
}

/// Declares a closed enum stored and serialized as snake_case text, with
/// `as_str`, `FromStr`, `Display` and the list of every variant. The names
/// are the ones the schema's CHECK constraints list, so both are kept in step
/// by the tests that write every variant.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident ($kind:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and serialized name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownVariant { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// An account: an enterprise or one of its sub-accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Account {
    /// Identifier (`acc_…`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The parent account; the hierarchy is acyclic.
    pub parent_id: Option<String>,
    /// Where its reps' emails come from.
    #[serde(default)]
    pub sender_mode: SenderMode,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

text_enum! {
    /// Where an account's emails come from.
    #[derive(Default)]
    SenderMode("sender mode") {
        /// The shared relay's address (the operator's `From`), with
        /// `Reply-To` the rep who owns the step: nothing to verify.
        #[default]
        Relay = "relay",
        /// Each rep's own sending address, once it is verified; a rep
        /// whose address is not is held (`sender_not_connected`).
        OwnAddress = "own_address",
    }
}

/// A contact type of an account (`Clients`, `Employees`, …), renamable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ContactType {
    /// Identifier (`cty_…`).
    pub id: String,
    /// The owning account.
    pub account_id: String,
    /// The name contacts show.
    pub name: String,
    /// Display order.
    pub position: i64,
    /// The type a contact gets when none is named (one per account; the
    /// last of [`DEFAULT_CONTACT_TYPES`] at first, whatever it is renamed to).
    pub default: bool,
}

/// The contact types every new account starts with (SPEC §1); the last is
/// the account's default.
pub const DEFAULT_CONTACT_TYPES: [&str; 5] = ["Clients", "Employees", "Partners", "Vendors", "Other"];

text_enum! {
    /// What a sequence is for [P].
    PlanType("plan type") {
        /// First contact.
        Connection = "connection",
        /// Lead to customer.
        Conversion = "conversion",
        /// Keeping customers.
        Retention = "retention",
        /// Around an event date.
        Event = "event",
        /// Seasonal campaigns.
        Seasonal = "seasonal",
        /// Anything else.
        General = "general",
    }
}

text_enum! {
    /// The life of a sequence: `draft` → `active` ⇄ `paused` → `archived`.
    SequenceState("sequence state") {
        /// Being edited; accepts no enrollments.
        Draft = "draft",
        /// Accepts enrollments.
        Active = "active",
        /// Unperformed actions are disabled until resumed.
        Paused = "paused",
        /// Retired.
        Archived = "archived",
    }
}

text_enum! {
    /// How step due dates are computed (SPEC §3).
    TimingMode("timing mode") {
        /// A step is due its delay after the previous one completed.
        AfterPrevious = "after_previous",
        /// A step is due its offset after enrollment.
        FromStart = "from_start",
        /// A step is due its offset before or after the enrollment's event date.
        FromEvent = "from_event",
    }
}

text_enum! {
    /// What a reply does to an enrollment.
    OnReply("on-reply behaviour") {
        /// The enrollment ends as `replied`.
        Stop = "stop",
        /// The enrollment continues.
        Continue = "continue",
    }
}

/// When automatic sends may go out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BusinessHours {
    /// IANA timezone the hours are in.
    pub timezone: String,
    /// Open days.
    pub weekdays: Vec<Weekday>,
    /// Opening time.
    pub start: NaiveTime,
    /// Closing time.
    pub end: NaiveTime,
}

/// A sequence's settings (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct SequenceSettings {
    /// What a reply does.
    pub on_reply: OnReply,
    /// Maximum enrollments running at once; `None` is unlimited.
    pub drip_limit: Option<u32>,
    /// Business hours for automatic sends; `None` is always open.
    pub business_hours: Option<BusinessHours>,
    /// Whether emails carry an unsubscribe link.
    pub unsubscribe_link: bool,
    /// The sequence to enroll into after completion.
    pub next_sequence_id: Option<String>,
    /// The sales cycle set on enrollment.
    pub sales_cycle: Option<String>,
    /// New leads with this source are enrolled automatically.
    pub lead_source: Option<String>,
    /// Shared read-only with sub-accounts.
    pub shared_locked: bool,
}

impl Default for SequenceSettings {
    fn default() -> Self {
        Self {
            on_reply: OnReply::Stop,
            drip_limit: None,
            business_hours: None,
            unsubscribe_link: false,
            next_sequence_id: None,
            sales_cycle: None,
            lead_source: None,
            shared_locked: false,
        }
    }
}

/// A sequence (cadence, action plan). Its steps live in [`SequenceVersion`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sequence {
    /// Identifier (`seq_…`).
    pub id: String,
    /// The owning account.
    pub account_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// What it is for.
    pub plan_type: PlanType,
    /// Where it is in its life.
    pub state: SequenceState,
    /// How due dates are computed.
    pub timing_mode: TimingMode,
    /// Settings.
    pub settings: SequenceSettings,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A plugin named by id and a semver requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PluginRef {
    /// Plugin id, such as `email`.
    pub id: String,
    /// Version requirement, such as `^0.1`.
    pub version: String,
}

/// Before or after an event date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Relative {
    /// Before the event date.
    Before,
    /// After the event date.
    After,
}

/// When a step is due, by timing mode (SPEC §3). Durations are milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepTiming {
    /// `after_previous`: this long after the previous step completed.
    Delay {
        /// Milliseconds.
        ms: i64,
    },
    /// `from_start`: this long after enrollment.
    Offset {
        /// Milliseconds.
        ms: i64,
    },
    /// `from_event`: this long before or after the event date.
    Event {
        /// Milliseconds.
        ms: i64,
        /// Before or after.
        relative: Relative,
    },
}

text_enum! {
    /// Whether a person or the host performs an action.
    Activation("activation") {
        /// Put on the owner's Engage view.
        Manual = "manual",
        /// Executed by the host.
        Automatic = "automatic",
    }
}

text_enum! {
    /// How urgent an action is, for sorting and filtering the Engage view
    /// and a company's work items. It comes from the step's config: a
    /// `priority` of `low`, `normal` or `high` (the task step's, say);
    /// `normal` otherwise.
    Priority("priority") {
        /// Can wait.
        Low = "low",
        /// The usual.
        Normal = "normal",
        /// Do it first.
        High = "high",
    }
}

impl Priority {
    /// The priority a step's config asks for: its `priority` field when
    /// that names one, `normal` otherwise.
    pub fn of_config(config: &serde_json::Value) -> Self {
        config.get("priority").and_then(serde_json::Value::as_str).and_then(|p| p.parse().ok()).unwrap_or_default()
    }

    /// The stored rank: higher is more urgent, so a descending sort puts
    /// `high` first.
    pub fn rank(self) -> i64 {
        match self {
            Self::Low => 1,
            Self::Normal => 2,
            Self::High => 3,
        }
    }

    /// The priority of a stored rank.
    pub fn from_rank(rank: i64) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.rank() == rank)
    }
}

#[expect(clippy::derivable_impls, reason = "text_enum! writes the enum, and only this one has a default")]
impl Default for Priority {
    fn default() -> Self {
        Self::Normal
    }
}

/// Who owns a step's action [S].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum OwnerRule {
    /// The user who enrolled the contact.
    Initiator,
    /// A named user.
    SpecificUser {
        /// The user.
        user_id: String,
    },
    /// The contact's owner.
    ContactOwner,
    /// The owner of the contact's company.
    CompanyOwner,
}

text_enum! {
    /// What an unmet criterion does to its action (SPEC §4).
    OnUnmet("on-unmet behaviour") {
        /// Stay `future`, re-evaluated later; the sequence does not advance.
        Hold = "hold",
        /// Skip the action (evaluated once).
        Skip = "skip",
    }
}

/// A predicate plugin call that must hold before a step is performed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Criterion {
    /// The predicate plugin.
    pub plugin: PluginRef,
    /// Its config.
    pub config: serde_json::Value,
    /// What happens when it does not hold.
    pub on_unmet: OnUnmet,
}

/// A step of a sequence version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Step {
    /// Position in the sequence, from 0; actions carry it as their step number.
    pub position: u32,
    /// Name.
    pub name: String,
    /// The action plugin.
    pub plugin: PluginRef,
    /// Its config, validated by the plugin.
    pub config: serde_json::Value,
    /// When it is due.
    pub timing: StepTiming,
    /// Manual or automatic.
    pub activation: Activation,
    /// Who owns the action.
    pub owner: OwnerRule,
    /// Predicates that must hold.
    #[serde(default)]
    pub criteria: Vec<Criterion>,
    /// Notify the owner when the action becomes active.
    #[serde(default)]
    pub notify: bool,
    /// An opportunity reference the action is about.
    #[serde(default)]
    pub regarding: Option<String>,
}

/// An immutable version of a sequence's steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SequenceVersion {
    /// The sequence.
    pub sequence_id: String,
    /// From 1, increasing.
    pub version: i64,
    /// The steps, by position.
    pub steps: Vec<Step>,
    /// Who published it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

text_enum! {
    /// Where an enrollment is (SPEC §5). The last five are final.
    EnrollmentStatus("enrollment status") {
        /// Added; the first step is not yet processed.
        Pending = "pending",
        /// Waiting for a drip slot.
        Queued = "queued",
        /// Running.
        Running = "running",
        /// Paused, with a reason.
        Paused = "paused",
        /// All steps done or an ending result.
        Completed = "completed",
        /// Cancelled by a user.
        Cancelled = "cancelled",
        /// The contact unsubscribed.
        OptedOut = "opted_out",
        /// The contact replied and on-reply is `stop`.
        Replied = "replied",
        /// An email bounced.
        Bounced = "bounced",
    }
}

impl EnrollmentStatus {
    /// Whether the enrollment is unfinished (may still act); the schema
    /// allows one unfinished enrollment per contact and sequence.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Queued | Self::Running | Self::Paused)
    }
}

text_enum! {
    /// Why an enrollment is paused.
    PauseReason("pause reason") {
        /// A user paused (stopped) it.
        Manual = "manual",
        /// The contact is out of office.
        OutOfOffice = "out_of_office",
        /// An automatic step failed.
        Error = "error",
    }
}

text_enum! {
    /// How a completed enrollment ended.
    EnrollmentOutcome("outcome") {
        /// A positive result.
        Positive = "positive",
        /// A negative result.
        Negative = "negative",
        /// Ran out of steps.
        Neutral = "neutral",
    }
}

/// A contact in a pinned version of a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Enrollment {
    /// Identifier (`enr_…`).
    pub id: String,
    /// The owning account.
    pub account_id: String,
    /// The contact.
    pub contact_id: String,
    /// The sequence.
    pub sequence_id: String,
    /// The pinned version.
    pub version: i64,
    /// Who enrolled the contact.
    pub initiated_by: Option<String>,
    /// Status.
    pub status: EnrollmentStatus,
    /// Set exactly when paused.
    pub pause_reason: Option<PauseReason>,
    /// Set only when completed.
    pub outcome: Option<EnrollmentOutcome>,
    /// The step the enrollment is at.
    pub current_step: i64,
    /// Start date.
    pub started_at: DateTime<Utc>,
    /// When the last action completed.
    pub last_action_completed_at: Option<DateTime<Utc>>,
    /// When the next action is due.
    pub next_action_at: Option<DateTime<Utc>>,
    /// The event date of `from_event` sequences.
    pub event_date: Option<DateTime<Utc>>,
    /// Out-of-office return date.
    pub resume_at: Option<DateTime<Utc>>,
    /// When it was queued for a drip slot (FIFO order).
    pub queued_at: Option<DateTime<Utc>>,
    /// When it reached a final status.
    pub ended_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

text_enum! {
    /// Where an action is.
    ActionStatus("action status") {
        /// Not yet performed.
        Future = "future",
        /// On the owner's Engage view.
        Active = "active",
        /// Done.
        Completed = "completed",
        /// Skipped by a user or a rule.
        Skipped = "skipped",
        /// Its sequence is paused.
        Disabled = "disabled",
        /// Its automatic execution failed.
        Failed = "failed",
    }
}

text_enum! {
    /// Why the system holds an action back: the closed enum of SPEC §4.
    DeferralReason("deferral reason") {
        /// The enrollment waits for a drip slot.
        Queued = "queued",
        /// The owner is inactive.
        OwnerInactive = "owner_inactive",
        /// The owner is a delegate, who may not own actions.
        DelegatedOwner = "delegated_owner",
        /// The contact has no email address.
        MissingEmail = "missing_email",
        /// The contact has no phone number.
        MissingPhone = "missing_phone",
        /// Automatic email from the owner's own address waits until it is verified.
        SenderNotConnected = "sender_not_connected",
        /// The step's plugin is not enabled for the account.
        PluginDisabled = "plugin_disabled",
        /// The template uses legacy merge syntax.
        LegacyMergeSyntax = "legacy_merge_syntax",
        /// The contact opted out of the channel.
        OptedOut = "opted_out",
        /// A hold criterion is unmet.
        CriteriaUnmet = "criteria_unmet",
        /// Outside the sequence's business hours.
        OutsideBusinessHours = "outside_business_hours",
        /// An earlier send attempt was never confirmed.
        DuplicateAttempt = "duplicate_attempt",
    }
}

impl DeferralReason {
    /// The sentence users see for the reason (Engage view, explain).
    pub fn sentence(self) -> &'static str {
        match self {
            Self::Queued => "the enrollment is queued: the sequence's drip limit is reached",
            Self::OwnerInactive => "the action's owner is missing or inactive",
            Self::DelegatedOwner => "the action's owner is a delegate, who may not own actions",
            Self::MissingEmail => "the contact has no email address",
            Self::MissingPhone => "the contact has no phone number",
            Self::SenderNotConnected => "the owner's sending address is not verified for automatic email",
            Self::PluginDisabled => "the step's plugin is not enabled for the account",
            Self::LegacyMergeSyntax => "the step's template uses legacy merge syntax such as {!Contact.FirstName}",
            Self::OptedOut => "the contact opted out of the step's channel",
            Self::CriteriaUnmet => "the step's criteria are not met",
            Self::OutsideBusinessHours => "it is outside the sequence's business hours",
            Self::DuplicateAttempt => "an earlier send attempt was never confirmed; it is not sent twice",
        }
    }
}

/// A step of an enrollment, projected from enrollment on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Action {
    /// Identifier (`act_…`); also the idempotency key of what it sends.
    pub id: String,
    /// The enrollment.
    pub enrollment_id: String,
    /// The step's position.
    pub step: i64,
    /// The step's plugin id.
    pub plugin_id: String,
    /// The exact version of that plugin whose answer completed or failed
    /// the action; `None` until one did.
    pub plugin_version: Option<String>,
    /// Manual or automatic.
    pub activation: Activation,
    /// The owning user.
    pub owner_id: Option<String>,
    /// Status.
    pub status: ActionStatus,
    /// Expected execution date.
    pub due_at: Option<DateTime<Utc>>,
    /// On the owner's Engage view.
    pub show_on_engage: bool,
    /// Why the system holds it back.
    pub deferral_reason: Option<DeferralReason>,
    /// Skipped because the contact opted out.
    pub opt_out: bool,
    /// Result or disposition.
    pub result: Option<String>,
    /// The plugin's output.
    pub output: Option<serde_json::Value>,
    /// Execution attempts.
    pub attempts: i64,
    /// Skip criteria were evaluated (they are evaluated once).
    pub skip_criteria_evaluated: bool,
    /// Completion time.
    pub completed_at: Option<DateTime<Utc>>,
    /// Who completed it; `None` for the system.
    pub completed_by: Option<String>,
    /// The enrollment's one current action.
    pub current: bool,
    /// The lease token of the host working on it.
    pub lease_token: Option<String>,
    /// When that lease expires.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// An automatic send was attempted at this time (duplicate-attempt failsafe).
    pub send_attempted_at: Option<DateTime<Utc>>,
    /// When an action held for a reason is looked at again (the periodic
    /// re-check; the change that fixes the reason releases it sooner). Its
    /// due date stays as it was.
    pub recheck_at: Option<DateTime<Utc>>,
    /// How urgent it is, from its step's config.
    pub priority: Priority,
}

/// A line a plugin's call wrote while working on an action (its `log`
/// interface, stdout or stderr), kept with the attempt, at most
/// [`ActionLogLine::MAX_PER_ATTEMPT`] lines of [`ActionLogLine::MAX_BYTES`]
/// each; a last line from the host says how many more there were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ActionLogLine {
    /// The attempt the plugin saw, from 1.
    pub attempt: i64,
    /// The version of the plugin that wrote it.
    pub plugin_version: String,
    /// When the call ended.
    pub at: DateTime<Utc>,
    /// `plugin` (its `log` interface), `stdout`, `stderr`, or `host` for
    /// the host's own note.
    pub source: String,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The text, at most [`ActionLogLine::MAX_BYTES`].
    pub message: String,
}

impl ActionLogLine {
    /// The most lines kept of one attempt.
    pub const MAX_PER_ATTEMPT: usize = 100;
    /// The most bytes kept of one line.
    pub const MAX_BYTES: usize = 1024;
}

/// One row of a list of work (a rep's Engage view, a company's work items
/// and upcoming touchpoints): the action with what the row shows, so one
/// request renders a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkItem {
    /// The action.
    #[serde(flatten)]
    pub action: Action,
    /// The row's title: the name of the action's step.
    pub title: String,
    /// The enrollment's contact.
    pub contact_id: String,
    /// The contact's name.
    pub contact_name: String,
    /// The contact's email address.
    pub contact_email: Option<String>,
    /// The contact's company.
    pub company_id: Option<String>,
    /// Its name.
    pub company_name: Option<String>,
    /// The enrollment's sequence.
    pub sequence_id: String,
    /// Its name.
    pub sequence_name: String,
    /// The sequence version the enrollment runs.
    pub sequence_version: i64,
    /// Due before the list was read and not yet done.
    pub overdue: bool,
}

/// One row of a list of enrollments ([I]): the enrollment with its
/// contact's and sequence's names, its current step's name and the
/// contact's last engaged and last contacted times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnrollmentItem {
    /// The enrollment.
    #[serde(flatten)]
    pub enrollment: Enrollment,
    /// The contact's name.
    pub contact_name: String,
    /// The contact's email address.
    pub contact_email: Option<String>,
    /// When the contact last engaged.
    pub last_engaged: Option<DateTime<Utc>>,
    /// When the contact was last contacted.
    pub last_contacted: Option<DateTime<Utc>>,
    /// The sequence's name.
    pub sequence_name: String,
    /// The name of the step the enrollment is at; `None` past its last.
    pub step_name: Option<String>,
}

/// An action leased to one host by the store's `claim_due_actions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedAction {
    /// The action.
    pub id: String,
    /// Its account.
    pub account_id: String,
    /// Its enrollment.
    pub enrollment_id: String,
    /// Its step.
    pub step: i64,
    /// Its plugin id.
    pub plugin_id: String,
    /// Manual or automatic.
    pub activation: Activation,
    /// When it was due.
    pub due_at: DateTime<Utc>,
    /// Execution attempts so far.
    pub attempts: i64,
    /// The token completing or rescheduling it must present.
    pub lease_token: String,
    /// When the lease expires and the action becomes claimable again.
    pub lease_expires_at: DateTime<Utc>,
}

text_enum! {
    /// How loud an event is.
    Level("event level") {
        /// A state change.
        Info = "info",
        /// Something to look at.
        Warning = "warning",
        /// A failure.
        Error = "error",
    }
}

text_enum! {
    /// What an event records: the closed list of what the timeline says.
    EventKind("event kind") {
        /// A manual step went onto its owner's Engage view.
        ActionActivated = "action.activated",
        /// An action was done with a result.
        ActionCompleted = "action.completed",
        /// An action was held back, or held for another reason.
        ActionDeferred = "action.deferred",
        /// An automatic step failed; its enrollment paused.
        ActionFailed = "action.failed",
        /// A rep moved an action's due date.
        ActionRescheduled = "action.rescheduled",
        /// A step asked to be tried again later.
        ActionRetry = "action.retry",
        /// A rep sent an action back to be processed again.
        ActionShowOnEngageReset = "action.show_on_engage_reset",
        /// An action was skipped (by a rule, its plugin or a rep).
        ActionSkipped = "action.skipped",
        /// A contact was created.
        ContactCreated = "contact.created",
        /// A contact changed.
        ContactUpdated = "contact.updated",
        /// A lead's source named a sequence it could not be enrolled in.
        EnrollmentAutoFailed = "enrollment.auto_failed",
        /// A completed enrollment went on in the sequence's next sequence.
        EnrollmentChained = "enrollment.chained",
        /// The next sequence could not be started.
        EnrollmentChainFailed = "enrollment.chain_failed",
        /// A contact was enrolled.
        EnrollmentCreated = "enrollment.created",
        /// A queued enrollment got a drip slot.
        EnrollmentDequeued = "enrollment.dequeued",
        /// An enrollment ended.
        EnrollmentEnded = "enrollment.ended",
        /// An enrollment's event date moved.
        EnrollmentEventDateChanged = "enrollment.event_date_changed",
        /// An enrollment moved to another version of its sequence.
        EnrollmentMigrated = "enrollment.migrated",
        /// An enrollment paused.
        EnrollmentPaused = "enrollment.paused",
        /// An enrollment was removed.
        EnrollmentRemoved = "enrollment.removed",
        /// A reply arrived for an enrollment that goes on.
        EnrollmentReplyReceived = "enrollment.reply_received",
        /// An enrollment resumed.
        EnrollmentResumed = "enrollment.resumed",
        /// An enrollment was stopped.
        EnrollmentStopped = "enrollment.stopped",
        /// A queued message could not be delivered.
        MessageFailed = "message.failed",
        /// A note for people (the webhook monitor writes these).
        Note = "note",
        /// A notice to a user.
        Notification = "notification",
        /// A sequence changed state.
        SequenceStateChanged = "sequence.state_changed",
        /// The contact replied.
        SignalReply = "signal.reply",
        /// An email to the contact bounced.
        SignalBounce = "signal.bounce",
        /// The contact is out of office.
        SignalOutOfOffice = "signal.out_of_office",
        /// The contact unsubscribed from email.
        SignalUnsubscribe = "signal.unsubscribe",
        /// The contact clicked a link.
        SignalClick = "signal.click",
        /// The contact opened an email.
        SignalOpen = "signal.open",
    }
}

/// A timeline and audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    /// Identifier (`evt_…`).
    pub id: String,
    /// The owning account.
    pub account_id: String,
    /// The contact concerned.
    pub contact_id: Option<String>,
    /// The company concerned.
    pub company_id: Option<String>,
    /// The enrollment concerned.
    pub enrollment_id: Option<String>,
    /// The action concerned.
    pub action_id: Option<String>,
    /// What happened.
    pub kind: EventKind,
    /// Who did it: a user id, `system`, or `plugin:<id>`.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// State before.
    pub before: Option<serde_json::Value>,
    /// State after.
    pub after: Option<serde_json::Value>,
    /// Level.
    pub level: Level,
    /// When.
    pub at: DateTime<Utc>,
}

text_enum! {
    /// The kind of record an audited edit changed.
    AuditTarget("audit target") {
        /// An account.
        Account = "account",
        /// A contact.
        Contact = "contact",
        /// A company.
        Company = "company",
        /// A user.
        User = "user",
        /// An API key (never its secret).
        ApiKey = "api_key",
        /// A message template.
        Template = "template",
        /// A plugin, or an account's settings of it.
        Plugin = "plugin",
        /// A sequence.
        Sequence = "sequence",
        /// A contact type.
        ContactType = "contact_type",
        /// The account's health score settings.
        HealthSettings = "health_settings",
        /// A webhook subscription.
        WebhookSubscription = "webhook_subscription",
    }
}

text_enum! {
    /// What an audited edit did.
    AuditAction("audit action") {
        /// An account was made.
        AccountCreated = "account.created",
        /// A contact was made.
        ContactCreated = "contact.created",
        /// A contact's fields were replaced.
        ContactUpdated = "contact.updated",
        /// A contact was deleted, with its enrollments and history.
        ContactDeleted = "contact.deleted",
        /// A company was made.
        CompanyCreated = "company.created",
        /// A company's fields were replaced.
        CompanyUpdated = "company.updated",
        /// A user was made.
        UserCreated = "user.created",
        /// A user's fields (role, activity, ...) were replaced.
        UserUpdated = "user.updated",
        /// An API key was made.
        KeyCreated = "api_key.created",
        /// An API key was revoked.
        KeyRevoked = "api_key.revoked",
        /// A template was made.
        TemplateCreated = "template.created",
        /// A template was replaced.
        TemplateUpdated = "template.updated",
        /// A template was deleted.
        TemplateDeleted = "template.deleted",
        /// An add-on was uploaded.
        PluginUploaded = "plugin.uploaded",
        /// An account's settings of a plugin (enabled, grant) changed.
        PluginAccountChanged = "plugin.account_changed",
        /// A sequence was made.
        SequenceCreated = "sequence.created",
        /// A sequence's draft or settings were edited.
        SequenceEdited = "sequence.edited",
        /// A version of a sequence was published.
        SequencePublished = "sequence.published",
        /// A sequence was activated, paused or archived.
        SequenceStateChanged = "sequence.state_changed",
        /// A sequence was imported from an export.
        SequenceImported = "sequence.imported",
        /// A contact type was renamed.
        ContactTypeRenamed = "contact_type.renamed",
        /// A user's password was set, or a link to set it made (never the
        /// password or the link).
        UserPasswordSet = "user.password_set",
        /// The health score's indicators, targets or weights changed.
        HealthSettingsChanged = "health_settings.changed",
        /// Where the account's emails come from changed.
        AccountSenderModeChanged = "account.sender_mode_changed",
        /// A user's sending address was confirmed by its link.
        UserSenderConfirmed = "user.sender_confirmed",
        /// A webhook subscription was made.
        WebhookSubscriptionCreated = "webhook_subscription.created",
        /// A webhook subscription changed (its URL, types, state or secret).
        WebhookSubscriptionUpdated = "webhook_subscription.updated",
        /// A webhook subscription was deleted.
        WebhookSubscriptionDeleted = "webhook_subscription.deleted",
    }
}

impl AuditAction {
    /// The kind of record this action changes.
    pub fn target(self) -> AuditTarget {
        use AuditAction as A;
        match self {
            A::AccountCreated | A::AccountSenderModeChanged => AuditTarget::Account,
            A::ContactCreated | A::ContactUpdated | A::ContactDeleted => AuditTarget::Contact,
            A::CompanyCreated | A::CompanyUpdated => AuditTarget::Company,
            A::UserCreated | A::UserUpdated | A::UserPasswordSet | A::UserSenderConfirmed => AuditTarget::User,
            A::KeyCreated | A::KeyRevoked => AuditTarget::ApiKey,
            A::TemplateCreated | A::TemplateUpdated | A::TemplateDeleted => AuditTarget::Template,
            A::PluginUploaded | A::PluginAccountChanged => AuditTarget::Plugin,
            A::SequenceCreated
            | A::SequenceEdited
            | A::SequencePublished
            | A::SequenceStateChanged
            | A::SequenceImported => AuditTarget::Sequence,
            A::ContactTypeRenamed => AuditTarget::ContactType,
            A::HealthSettingsChanged => AuditTarget::HealthSettings,
            A::WebhookSubscriptionCreated | A::WebhookSubscriptionUpdated | A::WebhookSubscriptionDeleted => {
                AuditTarget::WebhookSubscription
            }
        }
    }
}

/// Who makes an edit: a user, and the API key and request it came through
/// (none for an edit made on the command line or by a test).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Editor {
    /// The user.
    pub user_id: String,
    /// The API key used, if any.
    pub key_id: Option<String>,
    /// The request's id, if any.
    pub request_id: Option<String>,
}

impl Editor {
    /// `user_id`, outside any request.
    pub fn user(user_id: impl Into<String>) -> Editor {
        Editor { user_id: user_id.into(), key_id: None, request_id: None }
    }
}

/// One entry of an account's audit trail: who changed what, and the record
/// before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// Identifier (`aud_…`).
    pub id: String,
    /// What was done, such as `contact.updated`.
    pub action: AuditAction,
    /// The kind of record changed.
    pub target_type: AuditTarget,
    /// The record changed.
    pub target_id: String,
    /// The user who did it.
    pub actor: String,
    /// The API key used, if the edit came through the API.
    pub key_id: Option<String>,
    /// The request's id (as in its `Request-Id` header), if any.
    pub request_id: Option<String>,
    /// The record before (none for a creation).
    pub before: Option<serde_json::Value>,
    /// The record after (none for a deletion).
    pub after: Option<serde_json::Value>,
    /// When.
    pub at: DateTime<Utc>,
}

text_enum! {
    /// What a plugin exports.
    PluginKind("plugin kind") {
        /// A step type.
        Action = "action",
        /// A criteria predicate.
        Predicate = "predicate",
    }
}

/// A plugin version known to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PluginRecord {
    /// Plugin id.
    pub id: String,
    /// Semver version.
    pub version: String,
    /// Action or predicate.
    pub kind: PluginKind,
    /// The manifest as JSON.
    pub manifest: String,
    /// SHA-256 of the component, hex.
    pub wasm_digest: String,
    /// The component bytes of an add-on; `None` for a built-in.
    #[serde(skip)]
    pub wasm: Option<Vec<u8>>,
    /// Embedded in the host.
    pub builtin: bool,
    /// The account that uploaded an add-on, the only one that sees it.
    pub uploaded_by: Option<String>,
}

/// A plugin's enablement and capability grants for one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PluginAccount {
    /// The account.
    pub account_id: String,
    /// The plugin id (all its versions).
    pub plugin_id: String,
    /// Enabled for the account.
    pub enabled: bool,
    /// The grant, as the plugin platform reads it.
    pub grants: serde_json::Value,
    /// The capabilities an admin approved; a version asking for more needs
    /// re-approval.
    pub approved_capabilities: Vec<String>,
}

text_enum! {
    /// How an outbox message travels.
    OutboxChannel("channel") {
        /// Email.
        Email = "email",
        /// Text message.
        Sms = "sms",
    }
}

text_enum! {
    /// Where an outbox message is.
    OutboxState("outbox state") {
        /// Waiting for the dispatcher.
        Queued = "queued",
        /// Handed to the transport.
        Sent = "sent",
        /// Given up.
        Failed = "failed",
    }
}

/// An outgoing message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OutboxMessage {
    /// Identifier (`msg_…`).
    pub id: String,
    /// The owning account.
    pub account_id: String,
    /// The action that produced it.
    pub action_id: Option<String>,
    /// Email or SMS.
    pub channel: OutboxChannel,
    /// What to send.
    pub payload: serde_json::Value,
    /// Unique: the same key is never queued twice.
    pub idempotency_key: String,
    /// State.
    pub state: OutboxState,
    /// Delivery attempts.
    pub attempts: i64,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the dispatcher may (re)try it.
    pub next_attempt_at: DateTime<Utc>,
    /// While queued: when a dispatcher began handing it to its transport,
    /// until the outcome is recorded. Set on a message no dispatcher holds,
    /// it was handed over by a host that stopped before recording what
    /// happened, and it may have been sent.
    pub handover_started_at: Option<DateTime<Utc>>,
    /// The provider's id of a sent message (an SMS provider's message sid,
    /// an email's Message-ID).
    pub provider_id: Option<String>,
}

/// An outbox message leased to one dispatcher by
/// the store's `claim_messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedMessage {
    /// The message.
    pub message: OutboxMessage,
    /// The token recording its delivery must present.
    pub lease_token: String,
}

text_enum! {
    /// What a webhook subscription may ask to be told: the events other
    /// systems follow, each from a state change the engine commits.
    WebhookEventType("webhook event type") {
        /// A contact was enrolled (running, or queued for a drip slot).
        EnrollmentStarted = "enrollment.started",
        /// An enrollment ran every step, or a step ended it with a result.
        EnrollmentCompleted = "enrollment.completed",
        /// The contact replied: the enrollment ended, or goes on when the
        /// sequence says so.
        EnrollmentReplied = "enrollment.replied",
        /// An email to the contact bounced and the enrollment ended.
        EnrollmentBounced = "enrollment.bounced",
        /// The contact unsubscribed and the enrollment ended.
        EnrollmentOptedOut = "enrollment.opted_out",
        /// An enrollment paused: stopped by a user, a failed step, or the
        /// contact out of office.
        EnrollmentPaused = "enrollment.paused",
        /// A paused enrollment resumed.
        EnrollmentResumed = "enrollment.resumed",
        /// An enrollment was cancelled by a user.
        EnrollmentCancelled = "enrollment.cancelled",
        /// An enrollment was removed.
        EnrollmentRemoved = "enrollment.removed",
        /// A manual step went onto its owner's Engage view.
        ActionActivated = "action.activated",
        /// A step was done with a result.
        ActionCompleted = "action.completed",
        /// A step was skipped (by a rule, its plugin or a rep).
        ActionSkipped = "action.skipped",
        /// An automatic step failed; its enrollment paused.
        ActionFailed = "action.failed",
        /// A step may have run without its outcome being recorded and is
        /// parked until someone resolves it.
        ActionParked = "action.parked",
        /// A step's HTTP request failed for good (the webhook monitor).
        WebhookStepFailed = "webhook_step.failed",
        /// A new version of an enabled plugin asks for capabilities an
        /// admin has not approved.
        PluginNeedsApproval = "plugin.needs_approval",
        /// A contact was created.
        ContactCreated = "contact.created",
        /// A contact changed.
        ContactUpdated = "contact.updated",
        /// A queued message could not be delivered.
        MessageFailed = "message.failed",
    }
}

impl WebhookEventType {
    /// The webhook event a timeline event is, if any: `after` is the
    /// timeline event's state after, which tells how an enrollment ended
    /// and why an action was held.
    pub fn of(kind: EventKind, after: Option<&serde_json::Value>) -> Option<WebhookEventType> {
        let field = |name: &str| after.and_then(|a| a.get(name)).and_then(serde_json::Value::as_str);
        Some(match kind {
            EventKind::EnrollmentCreated => Self::EnrollmentStarted,
            EventKind::EnrollmentEnded => match field("status")?.parse::<EnrollmentStatus>().ok()? {
                EnrollmentStatus::Completed => Self::EnrollmentCompleted,
                EnrollmentStatus::Replied => Self::EnrollmentReplied,
                EnrollmentStatus::Bounced => Self::EnrollmentBounced,
                EnrollmentStatus::OptedOut => Self::EnrollmentOptedOut,
                EnrollmentStatus::Cancelled => Self::EnrollmentCancelled,
                EnrollmentStatus::Pending
                | EnrollmentStatus::Queued
                | EnrollmentStatus::Running
                | EnrollmentStatus::Paused => return None,
            },
            EventKind::EnrollmentReplyReceived => Self::EnrollmentReplied,
            EventKind::EnrollmentPaused | EventKind::EnrollmentStopped => Self::EnrollmentPaused,
            EventKind::EnrollmentResumed => Self::EnrollmentResumed,
            EventKind::EnrollmentRemoved => Self::EnrollmentRemoved,
            EventKind::ActionActivated => Self::ActionActivated,
            EventKind::ActionCompleted => Self::ActionCompleted,
            EventKind::ActionSkipped => Self::ActionSkipped,
            EventKind::ActionFailed => Self::ActionFailed,
            EventKind::ActionDeferred
                if field("deferral_reason") == Some(DeferralReason::DuplicateAttempt.as_str()) =>
            {
                Self::ActionParked
            }
            EventKind::ContactCreated => Self::ContactCreated,
            EventKind::ContactUpdated => Self::ContactUpdated,
            EventKind::MessageFailed => Self::MessageFailed,
            _ => return None,
        })
    }
}

text_enum! {
    /// Whether a webhook subscription is told.
    SubscriptionStatus("subscription status") {
        /// Events are written and delivered.
        Active = "active",
        /// Nothing is written for it and nothing delivered, until an
        /// admin enables it again; set by an admin or after a run of
        /// failures.
        Disabled = "disabled",
    }
}

text_enum! {
    /// Where a delivery of an event to a subscription is.
    DeliveryStatus("delivery status") {
        /// Waiting for its turn or for its next attempt.
        Pending = "pending",
        /// The receiver answered 2xx.
        Succeeded = "succeeded",
        /// Every attempt failed; later events of its ordering key go on.
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{EventKind, WebhookEventType as T};

    #[test]
    fn timeline_events_become_the_webhook_events_subscribers_ask_for() {
        let ended = |status: &str| T::of(EventKind::EnrollmentEnded, Some(&json!({ "status": status })));
        assert_eq!(ended("completed"), Some(T::EnrollmentCompleted));
        assert_eq!(ended("replied"), Some(T::EnrollmentReplied));
        assert_eq!(ended("bounced"), Some(T::EnrollmentBounced));
        assert_eq!(ended("opted_out"), Some(T::EnrollmentOptedOut));
        assert_eq!(ended("cancelled"), Some(T::EnrollmentCancelled));
        assert_eq!(ended("exploded"), None);
        assert_eq!(T::of(EventKind::EnrollmentEnded, None), None);
        assert_eq!(T::of(EventKind::EnrollmentCreated, None), Some(T::EnrollmentStarted));
        assert_eq!(T::of(EventKind::EnrollmentStopped, None), Some(T::EnrollmentPaused));
        assert_eq!(T::of(EventKind::EnrollmentReplyReceived, None), Some(T::EnrollmentReplied));
        let parked = json!({ "deferral_reason": "duplicate_attempt" });
        assert_eq!(T::of(EventKind::ActionDeferred, Some(&parked)), Some(T::ActionParked));
        let held = json!({ "deferral_reason": "criteria_unmet" });
        assert_eq!(T::of(EventKind::ActionDeferred, Some(&held)), None, "holds are not published");
        assert_eq!(T::of(EventKind::Notification, None), None);
        assert_eq!(T::of(EventKind::SignalOpen, None), None);
    }
}
