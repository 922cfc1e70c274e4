//! What an answer about an action does, decided without I/O: one pure
//! [`decide`] for every answer (a plugin's outcome, a deferral, an
//! activation, a skip, a rep's completion or reschedule), returning the
//! [`Transition`] that `writer.rs` applies, set-wise for a whole batch.
//!
//! The decision reads only the snapshot the action was processed with.
//! That is safe because every write that changes an enrollment's actions
//! behind the processor's back (stop, pause, migration, a rep's edit) also
//! releases the lease of the enrollment's current action, and the writer
//! drops a transition whose lease is gone.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::process::{EventExt, SYSTEM, Snapshot, enrollment_event};
use super::timing;
use stepwise_domain::crm::Role;
use stepwise_domain::engagement::{
    ActionStatus, DeferralReason, Enrollment, EnrollmentOutcome, EnrollmentStatus, EventKind, Level, OnUnmet,
    PauseReason,
};
use stepwise_domain::plugin::ResultSpec;
use stepwise_plugin_host::report::CallReport;
use stepwise_plugin_host::types::Outcome as PluginOutcome;
use stepwise_store::{ActionCompletion, NewEvent};

/// An answer about a processed action.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The step's plugin answered: run by the scheduler (`by` is `None`),
    /// or with a rep's completion from the Engage view.
    Plugin {
        /// What it answered.
        outcome: PluginOutcome,
        /// What it did besides: messages queued, contact changes.
        report: CallReport,
        /// The rep who completed the action.
        by: Option<String>,
    },
    /// Held back for `reason`: due again at `until`, or parked (`None`)
    /// until something makes it due.
    Defer {
        /// Why.
        reason: DeferralReason,
        /// When it is looked at again.
        until: Option<DateTime<Utc>>,
        /// The sentence for the timeline.
        detail: String,
    },
    /// A manual step: onto its owner's Engage view.
    Activate,
    /// Skipped: by a rule (opt-out, skip criteria; `by` is `None`) or a rep.
    Skip {
        /// The result recorded, such as `opted_out`.
        result: String,
        /// The rule that skipped it.
        reason: Option<DeferralReason>,
        /// The rep who skipped it.
        by: Option<String>,
    },
    /// A rep moved the due date of the current action.
    Reschedule {
        /// The new due date.
        due_at: DateTime<Utc>,
        /// The rep.
        by: String,
    },
}

/// What the decision depends on besides the snapshot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules<'a> {
    /// Attempts of an automatic step before a retry becomes a failure.
    pub max_attempts: u32,
    /// The results the step's plugin declares (empty when it cannot run).
    pub results: &'a [ResultSpec],
}

/// What happens to the action itself. Each is written only while the
/// processor's lease holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ActionWrite {
    /// Completed or skipped: it leaves the Engage view and is no longer
    /// current.
    Complete(ActionCompletion),
    /// Back to `future`, due at `due_at` (`None`: parked).
    Reschedule {
        due_at: Option<DateTime<Utc>>,
        /// The rule holding it back, if any.
        reason: Option<DeferralReason>,
        /// When a held action is looked at again, its due date kept.
        recheck_at: Option<DateTime<Utc>>,
        /// The outcome of an earlier send attempt is known: forget it.
        confirm_send: bool,
        /// Count this attempt (one not counted when the send was recorded).
        count_attempt: bool,
    },
    /// On the Engage view of `owner`.
    Activate {
        owner: Option<String>,
        /// The owner differs from the one the action has.
        owner_changed: bool,
        /// Skip criteria were evaluated for this stay on the Engage view.
        skip_criteria_evaluated: bool,
    },
    /// Failed with `output`; it stays current so a resume tries it again.
    Fail {
        output: Value,
        /// Count this attempt (one not counted when it was recorded).
        count_attempt: bool,
    },
}

/// What happens to the enrollment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EnrollmentWrite {
    /// Nothing.
    Keep,
    /// Saved as given (started, paused, a new next-action time).
    Save(Box<Enrollment>),
    /// Moves to `step`, due at `due`.
    Advance { step: i64, due: Option<DateTime<Utc>>, status: EnrollmentStatus },
    /// Ends: its open actions close, a drip slot it held is given on, and
    /// a completed enrollment chains into the sequence's next one.
    End { status: EnrollmentStatus, outcome: Option<EnrollmentOutcome> },
}

/// A later action's new due date, and whether it becomes current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scheduled {
    pub id: String,
    pub due_at: Option<DateTime<Utc>>,
    pub current: bool,
}

/// Everything an answer writes.
#[derive(Debug)]
pub(crate) struct Transition {
    pub action: ActionWrite,
    /// Due dates and the current flag of the actions after it.
    pub schedules: Vec<Scheduled>,
    pub enrollment: EnrollmentWrite,
    /// Messages to queue and contact changes to make.
    pub effects: CallReport,
    /// A call was made (a phone step's result, a rep's logged call or an
    /// automatic one placed): the contact was contacted now.
    pub contacted: bool,
    /// A failure for the webhook monitor: `(message, details)`.
    pub monitor: Option<(String, Value)>,
    /// The timeline's entries, in order.
    pub events: Vec<NewEvent>,
    /// Who it is recorded as: `system`, `plugin:<id>` or a user.
    pub actor: String,
    /// The rep whose completion this is, if any.
    pub by: Option<String>,
    /// The plugin call this answers, if one was made: its version and log.
    pub ran: Option<Ran>,
}

/// A plugin call that answered for an action: the version that ran, and
/// the lines it logged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ran {
    pub version: String,
    pub logs: Vec<stepwise_plugin_host::report::LogLine>,
}

impl Transition {
    fn new(action: ActionWrite, actor: String) -> Self {
        Transition {
            action,
            schedules: Vec::new(),
            enrollment: EnrollmentWrite::Keep,
            effects: CallReport::default(),
            contacted: false,
            monitor: None,
            events: Vec::new(),
            actor,
            by: None,
            ran: None,
        }
    }

    /// Whether the plugin queued messages (the outbox has work).
    pub fn sends(&self) -> bool {
        !self.effects.messages.is_empty()
    }
}

/// Decides what `answer` does to the action of `ctx` and its enrollment.
pub(crate) fn decide(ctx: &Snapshot, answer: Answer, rules: Rules<'_>, now: DateTime<Utc>) -> Transition {
    match answer {
        Answer::Defer { reason, until, detail } => defer(ctx, reason, until, &detail, now),
        Answer::Activate => activate(ctx),
        Answer::Skip { result, reason, by } => {
            let actor = by.clone().unwrap_or_else(|| SYSTEM.to_owned());
            let completion = ActionCompletion::skipped(&result, by.as_deref(), reason);
            let event = ctx.event(EventKind::ActionSkipped, &actor).reason(result).change(
                json!({ "status": ctx.action.status }),
                json!({ "status": ActionStatus::Skipped, "opt_out": completion.opt_out }),
            );
            let mut t = Transition::new(ActionWrite::Complete(completion), actor);
            t.by = by;
            t.events.push(event);
            advance(ctx, &mut t, now);
            t
        }
        Answer::Reschedule { due_at, by } => {
            let action = ActionWrite::Reschedule {
                due_at: Some(due_at),
                recheck_at: None,
                reason: None,
                confirm_send: true,
                count_attempt: false,
            };
            let mut t = Transition::new(action, by.clone());
            t.enrollment =
                EnrollmentWrite::Save(Box::new(Enrollment { next_action_at: Some(due_at), ..ctx.enrollment.clone() }));
            t.events.push(ctx.event(EventKind::ActionRescheduled, &by).change(
                json!({ "due_at": ctx.action.due_at, "status": ctx.action.status }),
                json!({ "due_at": due_at, "status": ActionStatus::Future }),
            ));
            t.by = Some(by);
            t
        }
        Answer::Plugin { outcome, report, by } => answered(ctx, outcome, report, by, rules, now),
    }
}

/// Held back until `until`: parked for a drip slot or an unconfirmed send;
/// due at the next opening outside business hours; otherwise held for a
/// rule that a change may fix, looked at again at `until` (the periodic
/// re-check, or now) with its due date kept. An event is written when the
/// reason changes, not at every re-check.
fn defer(
    ctx: &Snapshot,
    reason: DeferralReason,
    until: Option<DateTime<Utc>>,
    detail: &str,
    now: DateTime<Utc>,
) -> Transition {
    let (due_at, recheck_at) = match reason {
        DeferralReason::Queued | DeferralReason::DuplicateAttempt => (until, None),
        DeferralReason::OutsideBusinessHours => (until.or(Some(now)), None),
        _ => (ctx.action.due_at.or(Some(now)), until.or(Some(now))),
    };
    let action =
        ActionWrite::Reschedule { due_at, recheck_at, reason: Some(reason), confirm_send: false, count_attempt: false };
    let mut t = Transition::new(action, SYSTEM.to_owned());
    if ctx.action.deferral_reason != Some(reason) {
        let level = if reason == DeferralReason::DuplicateAttempt { Level::Warning } else { Level::Info };
        t.events.push(
            ctx.event(EventKind::ActionDeferred, SYSTEM)
                .reason(format!("{}: {detail}", reason.sentence()))
                .change(
                    json!({ "deferral_reason": ctx.action.deferral_reason }),
                    json!({ "deferral_reason": reason, "due_at": until }),
                )
                .level(level),
        );
        if reason == DeferralReason::DuplicateAttempt {
            // A person must resolve it: the step's owner and the admins
            // are told.
            let owner = ctx.owner.as_ref().map(|o| o.id.clone());
            t.events.push(
                ctx.event(EventKind::Notification, SYSTEM)
                    .reason(format!(
                        "step {} ({}) may have run without its outcome being recorded; it is held until someone marks it sent or sends it again",
                        ctx.action.step + 1,
                        ctx.step.name
                    ))
                    .change(
                        json!(null),
                        json!({ "user_id": owner, "roles": [Role::Admin], "action_id": ctx.action.id, "deferral_reason": reason }),
                    )
                    .level(Level::Warning),
            );
        }
    }
    t
}

/// A manual action onto its owner's Engage view; a pending enrollment is
/// running from then on.
fn activate(ctx: &Snapshot) -> Transition {
    let owner = ctx.owner.as_ref().map(|o| o.id.clone());
    let action = ActionWrite::Activate {
        owner_changed: ctx.action.owner_id != owner,
        owner: owner.clone(),
        skip_criteria_evaluated: ctx.step.criteria.iter().any(|c| c.on_unmet == OnUnmet::Skip),
    };
    let mut t = Transition::new(action, SYSTEM.to_owned());
    if ctx.enrollment.status == EnrollmentStatus::Pending {
        t.enrollment =
            EnrollmentWrite::Save(Box::new(Enrollment { status: EnrollmentStatus::Running, ..ctx.enrollment.clone() }));
    }
    let on = owner.as_deref().unwrap_or("nobody");
    t.events.push(
        ctx.event(EventKind::ActionActivated, SYSTEM).reason(format!("on the Engage view of {on}")).change(
            json!({ "status": ctx.action.status }),
            json!({ "status": ActionStatus::Active, "owner_id": owner }),
        ),
    );
    if ctx.step.notify {
        t.events.push(
            ctx.event(EventKind::Notification, SYSTEM)
                .reason(format!("step {} ({}) is on your Engage view", ctx.action.step + 1, ctx.step.name))
                .change(json!(null), json!({ "user_id": owner })),
        );
    }
    t
}

/// What a plugin's answer does (SPEC §5).
fn answered(
    ctx: &Snapshot,
    outcome: PluginOutcome,
    report: CallReport,
    by: Option<String>,
    rules: Rules<'_>,
    now: DateTime<Utc>,
) -> Transition {
    let ran = report.plugin_version.clone().map(|version| Ran { version, logs: report.logs.clone() });
    let mut t = answered_by(ctx, outcome, report, by, rules, now);
    t.ran = ran;
    t
}

/// [`answered`], but for the call's version and log.
fn answered_by(
    ctx: &Snapshot,
    outcome: PluginOutcome,
    report: CallReport,
    by: Option<String>,
    rules: Rules<'_>,
    now: DateTime<Utc>,
) -> Transition {
    let actor = by.clone().unwrap_or_else(|| format!("plugin:{}", ctx.step.plugin.id));
    // An automatic run is an attempt; one recorded before its request left
    // was counted then.
    let counts_attempt = by.is_none() && ctx.action.send_attempted_at.is_none();
    match outcome {
        PluginOutcome::Done { result, output } => {
            let completion = ActionCompletion {
                status: ActionStatus::Completed,
                result: Some(result.clone()),
                output: Some(output),
                completed_by: by.clone(),
                opt_out: false,
                deferral_reason: None,
                counts_attempt,
                plugin_version: report.plugin_version.clone(),
            };
            let mut t = Transition::new(ActionWrite::Complete(completion), actor.clone());
            (t.effects, t.by) = (report, by);
            t.contacted = ctx.channel() == Some(stepwise_plugin_host::types::Channel::Phone);
            t.events.push(ctx.event(EventKind::ActionCompleted, &actor).reason(format!("result `{result}`")).change(
                json!({ "status": ctx.action.status }),
                json!({ "status": ActionStatus::Completed, "result": result }),
            ));
            match rules.results.iter().find(|r| r.code == result).filter(|r| r.ends_enrollment) {
                Some(spec) => {
                    let outcome = spec.outcome.unwrap_or(EnrollmentOutcome::Neutral);
                    let why = format!("step {} ended with `{result}`", ctx.action.step + 1);
                    end(ctx, &mut t, EnrollmentStatus::Completed, outcome, &actor, &why);
                }
                None => advance(ctx, &mut t, now),
            }
            t
        }
        PluginOutcome::Skipped { reason } => {
            let completion = ActionCompletion {
                counts_attempt,
                plugin_version: report.plugin_version.clone(),
                ..ActionCompletion::skipped(&reason, by.as_deref(), None)
            };
            let mut t = Transition::new(ActionWrite::Complete(completion), actor.clone());
            (t.effects, t.by) = (report, by);
            t.events.push(ctx.event(EventKind::ActionSkipped, &actor).reason(reason));
            advance(ctx, &mut t, now);
            t
        }
        PluginOutcome::Retry { after, reason } if i64::from(rules.max_attempts) > ctx.action.attempts + 1 => {
            let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::minutes(1));
            // The plugin answered, so the attempt is known (`confirm_send`);
            // one recorded as a send attempt was counted then.
            let action = ActionWrite::Reschedule {
                due_at: Some(now + after),
                recheck_at: None,
                reason: None,
                confirm_send: true,
                count_attempt: counts_attempt,
            };
            let mut t = Transition::new(action, actor.clone());
            t.by = by;
            t.events.push(ctx.event(EventKind::ActionRetry, &actor).reason(reason).level(Level::Warning));
            t
        }
        PluginOutcome::Retry { reason, .. } => {
            let message = format!("gave up after {} attempts: {reason}", ctx.action.attempts + 1);
            fail(ctx, actor, by, message, json!({ "kind": "retries_exhausted" }), counts_attempt)
        }
        PluginOutcome::Failed { message, details } => fail(ctx, actor, by, message, details, counts_attempt),
    }
}

/// An automatic step failed: the action keeps the details, the enrollment
/// pauses with reason `error`, and an error event says why.
fn fail(
    ctx: &Snapshot,
    actor: String,
    by: Option<String>,
    message: String,
    details: Value,
    count_attempt: bool,
) -> Transition {
    let output = json!({ "error": message, "details": details });
    let mut t = Transition::new(ActionWrite::Fail { output, count_attempt }, actor.clone());
    t.by = by;
    t.enrollment = EnrollmentWrite::Save(Box::new(Enrollment {
        status: EnrollmentStatus::Paused,
        pause_reason: Some(PauseReason::Error),
        ..ctx.enrollment.clone()
    }));
    t.events.push(
        ctx.event(EventKind::ActionFailed, &actor)
            .reason(message.clone())
            .change(
                json!({ "status": ctx.enrollment.status }),
                json!({ "status": EnrollmentStatus::Paused, "pause_reason": PauseReason::Error, "details": details }),
            )
            .level(Level::Error),
    );
    t.monitor = Some((message, details));
    t
}

/// After the action is done: the enrollment moves to the next unperformed
/// step (`future`, or `disabled` by an earlier pause), whose due dates are
/// recomputed from now under `after_previous`; with none left, it completes.
fn advance(ctx: &Snapshot, t: &mut Transition, now: DateTime<Utc>) {
    let next = ctx
        .siblings
        .iter()
        .find(|a| a.step > ctx.action.step && matches!(a.status, ActionStatus::Future | ActionStatus::Disabled));
    let Some(next) = next else {
        end(ctx, t, EnrollmentStatus::Completed, EnrollmentOutcome::Neutral, SYSTEM, "every step is done");
        return;
    };
    let mut due = next.due_at;
    let from = usize::try_from(next.step).unwrap_or(usize::MAX);
    if let Some(dues) = timing::recompute_after(ctx.sequence.timing_mode, &ctx.version.steps, from, now) {
        for (step, at) in (next.step..).zip(dues) {
            let Some(a) = ctx.siblings.iter().find(|a| a.step == step && a.status == ActionStatus::Future) else {
                continue;
            };
            if a.id == next.id {
                due = Some(at);
            }
            t.schedules.push(Scheduled { id: a.id.clone(), due_at: Some(at), current: a.id == next.id });
        }
    }
    if !t.schedules.iter().any(|s| s.current) {
        t.schedules.push(Scheduled { id: next.id.clone(), due_at: next.due_at, current: true });
    }
    let status = match ctx.enrollment.status {
        EnrollmentStatus::Pending => EnrollmentStatus::Running,
        other => other,
    };
    t.enrollment = EnrollmentWrite::Advance { step: next.step, due, status };
}

/// Ends the enrollment with `status` and `outcome`.
fn end(
    ctx: &Snapshot,
    t: &mut Transition,
    status: EnrollmentStatus,
    outcome: EnrollmentOutcome,
    actor: &str,
    why: &str,
) {
    let enrollment = &ctx.enrollment;
    t.events.push(
        enrollment_event(enrollment, ctx.contact.company_id.clone(), None, EventKind::EnrollmentEnded, actor)
            .reason(why)
            .change(
                json!({ "status": enrollment.status, "pause_reason": enrollment.pause_reason }),
                json!({ "status": status, "outcome": outcome }),
            ),
    );
    t.enrollment = EnrollmentWrite::End { status, outcome: Some(outcome) };
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;
    use stepwise_domain::crm::Contact;
    use stepwise_domain::engagement::{
        Action, Activation, OwnerRule, PlanType, PluginRef, Priority, Sequence, SequenceSettings, SequenceState,
        SequenceVersion, Step, StepTiming, TimingMode,
    };
    use stepwise_plugin_host::AccountGrant;

    const HOUR: i64 = 3_600_000;

    fn at(hours: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap() + chrono::Duration::milliseconds(hours * HOUR)
    }

    fn step(position: u32, delay_hours: i64) -> Step {
        Step {
            position,
            name: format!("step {}", position + 1),
            plugin: PluginRef { id: "email".into(), version: "*".into() },
            config: json!({}),
            timing: StepTiming::Delay { ms: delay_hours * HOUR },
            activation: Activation::Automatic,
            owner: OwnerRule::ContactOwner,
            criteria: Vec::new(),
            notify: false,
            regarding: None,
        }
    }

    fn action(step: i64, status: ActionStatus, due: i64) -> Action {
        Action {
            id: format!("act_{step}"),
            enrollment_id: "enr_1".into(),
            step,
            plugin_version: None,
            plugin_id: "email".into(),
            activation: Activation::Automatic,
            owner_id: None,
            status,
            due_at: Some(at(due)),
            show_on_engage: false,
            deferral_reason: None,
            opt_out: false,
            result: None,
            output: None,
            attempts: 0,
            skip_criteria_evaluated: false,
            completed_at: None,
            completed_by: None,
            current: step == 1,
            lease_token: Some("lease".into()),
            lease_expires_at: None,
            send_attempted_at: None,
            recheck_at: None,
            priority: Priority::Normal,
        }
    }

    /// An enrollment at step 2 of four `after_previous` steps a day apart;
    /// `statuses` are those of steps 3 and 4.
    fn ctx(statuses: [ActionStatus; 2], settings: SequenceSettings) -> Snapshot {
        let steps: Vec<Step> = (0..4).map(|p| step(p, 24)).collect();
        let enrollment = Enrollment {
            id: "enr_1".into(),
            account_id: "acc_1".into(),
            contact_id: "con_1".into(),
            sequence_id: "seq_1".into(),
            version: 1,
            initiated_by: None,
            status: EnrollmentStatus::Running,
            pause_reason: None,
            outcome: None,
            current_step: 1,
            started_at: at(-24),
            last_action_completed_at: Some(at(-24)),
            next_action_at: Some(at(0)),
            event_date: None,
            resume_at: None,
            queued_at: None,
            ended_at: None,
            created_at: at(-24),
            updated_at: at(-24),
        };
        let sequence = Sequence {
            id: "seq_1".into(),
            account_id: "acc_1".into(),
            name: "Outreach".into(),
            description: String::new(),
            plan_type: PlanType::Connection,
            state: SequenceState::Active,
            timing_mode: TimingMode::AfterPrevious,
            settings,
            created_at: at(-48),
            updated_at: at(-48),
        };
        let siblings = vec![
            action(0, ActionStatus::Completed, -24),
            action(1, ActionStatus::Future, 0),
            action(2, statuses[0], 24),
            action(3, statuses[1], 48),
        ];
        Snapshot {
            action: siblings[1].clone(),
            enrollment,
            sequence,
            version: Arc::new(SequenceVersion {
                sequence_id: "seq_1".into(),
                version: 1,
                steps: steps.clone(),
                created_by: None,
                created_at: at(-48),
            }),
            step: steps[1].clone(),
            contact: Contact { id: "con_1".into(), ..Contact::default() },
            company: None,
            owner: None,
            plugin: Err("not loaded in unit tests".into()),
            grant: Arc::new(AccountGrant::none()),
            siblings,
            sender_mode: stepwise_domain::engagement::SenderMode::Relay,
        }
    }

    fn running() -> Snapshot {
        ctx([ActionStatus::Future, ActionStatus::Future], SequenceSettings::default())
    }

    const RULES: Rules<'static> = Rules { max_attempts: 3, results: &[] };

    /// The transition in a few lines: what a reviewer compares.
    fn render(t: &Transition) -> String {
        let hours = |d: Option<DateTime<Utc>>| match d {
            Some(d) => format!("{:+}h", (d - at(0)).num_hours()),
            None => "never".into(),
        };
        let mut out = String::new();
        match &t.action {
            ActionWrite::Complete(c) => {
                let by = c.completed_by.as_deref().unwrap_or("-");
                let reason = c.deferral_reason.map_or("-".into(), |r| r.to_string());
                let result = c.result.as_deref().unwrap_or("-");
                writeln!(out, "action: {} `{result}` by {by} reason {reason} opt_out {}", c.status, c.opt_out)
            }
            ActionWrite::Reschedule { due_at, recheck_at, reason, confirm_send, count_attempt } => {
                let reason = reason.map_or("-".into(), |r| r.to_string());
                let recheck = recheck_at.map_or(String::new(), |r| format!(" recheck {}", hours(Some(r))));
                writeln!(
                    out,
                    "action: due {}{recheck} reason {reason} confirm_send {confirm_send} count {count_attempt}",
                    hours(*due_at)
                )
            }
            ActionWrite::Activate { owner, owner_changed, skip_criteria_evaluated } => writeln!(
                out,
                "action: active for {} (changed {owner_changed}) skip_criteria {skip_criteria_evaluated}",
                owner.as_deref().unwrap_or("nobody")
            ),
            ActionWrite::Fail { output, count_attempt } => {
                writeln!(out, "action: failed {output} count {count_attempt}")
            }
        }
        .unwrap();
        for s in &t.schedules {
            writeln!(out, "schedule: {} due {}{}", s.id, hours(s.due_at), if s.current { " current" } else { "" })
                .unwrap();
        }
        match &t.enrollment {
            EnrollmentWrite::Keep => Ok(()),
            EnrollmentWrite::Save(e) => writeln!(
                out,
                "enrollment: {} {} next {}",
                e.status,
                e.pause_reason.map_or("-".into(), |r| r.to_string()),
                hours(e.next_action_at)
            ),
            EnrollmentWrite::Advance { step, due, status } => {
                writeln!(out, "enrollment: {status} at step {} due {}", step + 1, hours(*due))
            }
            EnrollmentWrite::End { status, outcome } => {
                writeln!(out, "enrollment: ends {status} {}", outcome.map_or("-".into(), |o| o.to_string()))
            }
        }
        .unwrap();
        for e in &t.events {
            let reason = e.reason.as_deref().unwrap_or("");
            writeln!(out, "event: {} by {} [{}] {reason}", e.kind, e.actor, e.level).unwrap();
        }
        if let Some((message, _)) = &t.monitor {
            writeln!(out, "monitor: {message}").unwrap();
        }
        out
    }

    fn check(ctx: &Snapshot, answer: Answer, expected: &str) {
        check_with(ctx, answer, RULES, expected);
    }

    fn check_with(ctx: &Snapshot, answer: Answer, rules: Rules<'_>, expected: &str) {
        let actual = render(&decide(ctx, answer, rules, at(0)));
        assert_eq!(actual.trim(), expected.trim(), "\nactual:\n{actual}");
    }

    fn done(result: &str) -> Answer {
        Answer::Plugin {
            outcome: PluginOutcome::Done { result: result.into(), output: json!({}) },
            report: CallReport::default(),
            by: None,
        }
    }

    #[test]
    fn done_moves_to_the_next_step_and_recomputes_the_delays_from_now() {
        check(
            &running(),
            done("sent"),
            "
action: completed `sent` by - reason - opt_out false
schedule: act_2 due +24h current
schedule: act_3 due +48h
enrollment: running at step 3 due +24h
event: action.completed by plugin:email [info] result `sent`",
        );
    }

    #[test]
    fn a_disabled_next_step_is_the_next_step_too() {
        // Disabled by an earlier pause: it is where the enrollment goes,
        // not past it (the steps after it keep their dates).
        let ctx = ctx([ActionStatus::Disabled, ActionStatus::Future], SequenceSettings::default());
        check(
            &ctx,
            done("sent"),
            "
action: completed `sent` by - reason - opt_out false
schedule: act_3 due +48h
schedule: act_2 due +24h current
enrollment: running at step 3 due +24h
event: action.completed by plugin:email [info] result `sent`",
        );
    }

    #[test]
    fn the_last_step_done_completes_the_enrollment() {
        let ctx = ctx([ActionStatus::Skipped, ActionStatus::Completed], SequenceSettings::default());
        check(
            &ctx,
            done("sent"),
            "
action: completed `sent` by - reason - opt_out false
enrollment: ends completed neutral
event: action.completed by plugin:email [info] result `sent`
event: enrollment.ended by system [info] every step is done",
        );
    }

    #[test]
    fn a_result_that_ends_the_enrollment_ends_it_with_its_outcome() {
        let results = [ResultSpec {
            code: "meeting_booked".into(),
            title: "Meeting booked".into(),
            ends_enrollment: true,
            outcome: Some(EnrollmentOutcome::Positive),
        }];
        let by_rep = Answer::Plugin {
            outcome: PluginOutcome::Done { result: "meeting_booked".into(), output: json!({}) },
            report: CallReport::default(),
            by: Some("usr_rep".into()),
        };
        check_with(
            &running(),
            by_rep,
            Rules { max_attempts: 3, results: &results },
            "
action: completed `meeting_booked` by usr_rep reason - opt_out false
enrollment: ends completed positive
event: action.completed by usr_rep [info] result `meeting_booked`
event: enrollment.ended by usr_rep [info] step 2 ended with `meeting_booked`",
        );
    }

    #[test]
    fn a_retry_reschedules_until_the_attempts_run_out_then_fails_and_pauses() {
        let retry = || Answer::Plugin {
            outcome: PluginOutcome::Retry { after: Duration::from_secs(600), reason: "busy".into() },
            report: CallReport::default(),
            by: None,
        };
        check(
            &running(),
            retry(),
            "
action: due +0h reason - confirm_send true count true
event: action.retry by plugin:email [warning] busy",
        );
        let mut last = running();
        last.action.attempts = 2;
        check(
            &last,
            retry(),
            r#"
action: failed {"details":{"kind":"retries_exhausted"},"error":"gave up after 3 attempts: busy"} count true
enrollment: paused error next +0h
event: action.failed by plugin:email [error] gave up after 3 attempts: busy
monitor: gave up after 3 attempts: busy"#,
        );
    }

    #[test]
    fn a_deferral_writes_its_event_only_when_the_reason_changes() {
        let hours = || Answer::Defer {
            reason: DeferralReason::OutsideBusinessHours,
            until: Some(at(15)),
            detail: "the sequence's business hours open again at 09:00".into(),
        };
        check(
            &running(),
            hours(),
            "
action: due +15h reason outside_business_hours confirm_send false count false
event: action.deferred by system [info] it is outside the sequence's business hours: the sequence's business hours open again at 09:00",
        );
        let mut again = running();
        again.action.deferral_reason = Some(DeferralReason::OutsideBusinessHours);
        check(&again, hours(), "action: due +15h reason outside_business_hours confirm_send false count false");
        let queued = Answer::Defer { reason: DeferralReason::Queued, until: None, detail: "waiting".into() };
        check(
            &running(),
            queued,
            "
action: due never reason queued confirm_send false count false
event: action.deferred by system [info] the enrollment is queued: the sequence's drip limit is reached: waiting",
        );
    }

    #[test]
    fn an_opt_out_skips_and_moves_on() {
        let skip = Answer::Skip { result: "opted_out".into(), reason: Some(DeferralReason::OptedOut), by: None };
        check(
            &running(),
            skip,
            "
action: skipped `opted_out` by - reason opted_out opt_out true
schedule: act_2 due +24h current
schedule: act_3 due +48h
enrollment: running at step 3 due +24h
event: action.skipped by system [info] opted_out",
        );
    }

    #[test]
    fn activation_puts_a_manual_step_on_the_owners_engage_view() {
        let mut ctx = running();
        ctx.enrollment.status = EnrollmentStatus::Pending;
        ctx.step.notify = true;
        ctx.owner = Some(stepwise_domain::crm::User { id: "usr_owner".into(), ..Default::default() });
        check(
            &ctx,
            Answer::Activate,
            "
action: active for usr_owner (changed true) skip_criteria false
enrollment: running - next +0h
event: action.activated by system [info] on the Engage view of usr_owner
event: notification by system [info] step 2 (step 2) is on your Engage view",
        );
    }

    #[test]
    fn a_reps_reschedule_moves_the_enrollments_next_action() {
        let answer = Answer::Reschedule { due_at: at(30), by: "usr_rep".into() };
        check(
            &running(),
            answer,
            "
action: due +30h reason - confirm_send true count false
enrollment: running - next +30h
event: action.rescheduled by usr_rep [info]",
        );
    }
}
