//! The one writer of decided answers ([`Transition`]s): a batch is written
//! set-wise in one transaction (a statement per kind of write, not per
//! action, plugins' messages and contact changes included), each action
//! only while its lease holds; the rare follow-ups (the webhook monitor, a
//! drip slot given on, a next sequence) run per row in the same
//! transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::process::{Snapshot, contact_event, unique};
use super::records::save_contacts;
use super::transition::{ActionWrite, Answer, EnrollmentWrite, Ran, Rules, Transition, decide};
use super::{Engine, EngineError, Result};
use stepwise_domain::crm::Contact;
use stepwise_domain::engagement::{ActionLogLine, EnrollmentStatus, EventKind, OutboxChannel, SenderMode};
use stepwise_plugin_host::report::{CallReport, ContactChange, LogLevel, LogLine, LogSource, QueuedMessage};
use stepwise_plugin_host::types::Outcome as PluginOutcome;
use stepwise_store::{BatchCompletion, NewActionLog, NewEvent, NewOutboxMessage, Schedule, StoreError, Tx};

/// An answer decided, with the snapshot it was decided on and the lease
/// under which it may be written (`None` for a person's change).
#[derive(Debug)]
pub(crate) struct Decided {
    pub ctx: Snapshot,
    pub lease: Option<String>,
    pub transition: Transition,
}

impl Engine {
    /// Decides `answer` for the action of `ctx` ([`decide`]).
    pub(crate) fn decided(&self, ctx: Snapshot, lease: Option<String>, answer: Answer) -> Decided {
        let results = ctx.plugin.as_ref().map(|p| p.manifest().results.as_slice()).unwrap_or_default();
        let rules = Rules { max_attempts: self.config().max_attempts, results };
        let transition = decide(&ctx, answer, rules, self.now());
        Decided { ctx, lease, transition }
    }

    /// Writes a batch in one transaction (group commit). A lost lease drops
    /// its transition (nothing of it is written); any other error rolls the
    /// batch back and each is written on its own, so one bad answer never
    /// holds up the others.
    pub(crate) async fn write_batch(&self, batch: Vec<Decided>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let written = self.write_batch_in(batch).await;
        self.inner.stages.record(super::Stage::Write, started.elapsed());
        written
    }

    async fn write_batch_in(&self, batch: Vec<Decided>) -> Result<()> {
        let sends = batch.iter().any(|d| d.transition.sends());
        let mut tx = self.store().begin().await?;
        match self.write_in(&mut tx, &batch).await {
            Ok(_) => match tx.commit().await {
                Ok(()) => {
                    self.after_writes(sends);
                    return Ok(());
                }
                Err(error) => tracing::warn!(%error, "a batch of answers did not commit; writing one by one"),
            },
            Err(error) => {
                drop(tx);
                tracing::debug!(%error, "a batch of answers failed; writing one by one");
            }
        }
        for d in batch {
            let id = d.ctx.action.id.clone();
            match self.write_one(d).await {
                Ok(()) | Err(EngineError::Store(StoreError::LeaseLost(_))) => {}
                Err(error) => {
                    tracing::warn!(action = %id, %error, "the answer was not written; the action is retried when its lease expires");
                }
            }
        }
        Ok(())
    }

    /// Writes one answer in its own transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] (as [`EngineError::Store`]) when another
    /// host or a person changed the action first. A plugin's effect that
    /// cannot be written (say, a contact type the account does not have)
    /// fails the step instead, unless a rep is completing it: then the
    /// error is theirs.
    pub(crate) async fn write_one(&self, d: Decided) -> Result<()> {
        match self.write_alone(&d).await {
            Err(EngineError::Invalid(why))
                if d.transition.by.is_none() && matches!(d.transition.action, ActionWrite::Complete(_)) =>
            {
                let failed = Answer::Plugin {
                    outcome: PluginOutcome::Failed { message: why, details: json!({ "kind": "invalid_effect" }) },
                    report: CallReport::default(),
                    by: None,
                };
                let d = self.decided(d.ctx, d.lease, failed);
                self.write_alone(&d).await
            }
            other => other,
        }
    }

    async fn write_alone(&self, d: &Decided) -> Result<()> {
        let mut tx = self.store().begin().await?;
        if self.write_in(&mut tx, std::slice::from_ref(d)).await? == 0 {
            return Err(StoreError::LeaseLost(d.ctx.action.id.clone()).into());
        }
        tx.commit().await?;
        self.after_writes(d.transition.sends());
        Ok(())
    }

    fn after_writes(&self, sends: bool) {
        if sends {
            self.inner.outbox_wake.notify_one();
            self.announce(super::wake::News::Outbox);
        }
        self.wake();
    }

    /// Writes `batch` in `tx`; returns how many were written (the others
    /// lost their lease).
    async fn write_in(&self, tx: &mut Tx, batch: &[Decided]) -> Result<usize> {
        let now = self.now();
        // The actions first: only those whose lease holds go on.
        let completions: Vec<BatchCompletion> = batch
            .iter()
            .filter_map(|d| match &d.transition.action {
                ActionWrite::Complete(completion) => Some(BatchCompletion {
                    id: d.ctx.action.id.clone(),
                    lease_token: d.lease.clone(),
                    completion: completion.clone(),
                }),
                _ => None,
            })
            .collect();
        let mut written: HashSet<String> = tx.complete_actions(&completions, now).await?.into_iter().collect();
        for d in batch {
            let (id, lease) = (d.ctx.action.id.as_str(), d.lease.as_deref());
            let held = match &d.transition.action {
                ActionWrite::Complete(_) => continue,
                ActionWrite::Reschedule { due_at, recheck_at, reason, confirm_send, count_attempt } => {
                    let held = leased(
                        tx.reschedule_action(id, lease, *due_at, *recheck_at, *reason, *confirm_send, now).await,
                    )?;
                    if held && *count_attempt {
                        tx.count_attempt(id, now).await?;
                    }
                    held
                }
                ActionWrite::Activate { owner, owner_changed, skip_criteria_evaluated } => {
                    let held = leased(tx.activate_action(id, lease, *skip_criteria_evaluated, now).await)?;
                    if held && *owner_changed {
                        tx.set_action_owner(id, owner.as_deref(), now).await?;
                    }
                    held
                }
                ActionWrite::Fail { output, count_attempt } => {
                    let version = d.transition.ran.as_ref().map(|r| r.version.as_str());
                    let held = leased(tx.fail_action(id, lease, output, version, now).await)?;
                    if held && *count_attempt {
                        tx.count_attempt(id, now).await?;
                    }
                    held
                }
            };
            if held {
                written.insert(id.to_owned());
            }
        }
        let done: Vec<&Decided> = batch.iter().filter(|d| written.contains(&d.ctx.action.id)).collect();

        let schedules: Vec<Schedule<'_>> = done
            .iter()
            .flat_map(|d| &d.transition.schedules)
            .map(|s| Schedule { id: &s.id, due_at: s.due_at, current: s.current })
            .collect();
        tx.schedule_actions(&schedules, now).await?;

        let mut advancing = Vec::new();
        let mut ending = Vec::new();
        let mut closing: Vec<(EnrollmentStatus, Vec<String>)> = Vec::new();
        for d in &done {
            let id = d.ctx.enrollment.id.as_str();
            match &d.transition.enrollment {
                EnrollmentWrite::Keep => {}
                EnrollmentWrite::Save(enrollment) => tx.save_enrollment(enrollment, now).await?,
                EnrollmentWrite::Advance { step, due, status } => advancing.push((id, *status, *step, *due)),
                EnrollmentWrite::End { status, outcome } => {
                    ending.push((id, *status, *outcome));
                    match closing.iter_mut().find(|(s, _)| s == status) {
                        Some((_, ids)) => ids.push(id.to_owned()),
                        None => closing.push((*status, vec![id.to_owned()])),
                    }
                }
            }
        }
        tx.advance_enrollments(&advancing, now).await?;
        tx.end_enrollments(&ending, now).await?;
        for (status, ids) in &closing {
            tx.close_open_actions_of(ids, &format!("enrollment_{status}"), now).await?;
        }

        let mut events = write_effects(tx, &done, now).await?;
        for d in &done {
            if let Some((message, details)) = &d.transition.monitor {
                self.monitor_failure(tx, &d.ctx, message, details, now).await?;
            }
        }
        events.extend(done.iter().flat_map(|d| d.transition.events.iter().cloned()));
        tx.record_events(&events, now).await?;

        for d in &done {
            if let EnrollmentWrite::End { status, .. } = d.transition.enrollment {
                let held_slot = d.ctx.enrollment.status != EnrollmentStatus::Queued;
                self.after_end(tx, &d.ctx.enrollment, &d.ctx.sequence, status, held_slot, now).await?;
            }
        }
        Ok(done.len())
    }
}

/// Writes what the plugins of a batch did besides answering, set-wise:
/// queued messages go to the outbox in one statement (and their contacts
/// were contacted now, as were those of a call that was made), contact changes to the contacts, a statement per
/// account, and steps held for those contacts are checked again at once.
/// Returns the contact changes' events, for the contacts' timelines.
async fn write_effects(tx: &mut Tx, done: &[&Decided], now: DateTime<Utc>) -> Result<Vec<NewEvent>> {
    let mut messages = Vec::new();
    let mut touched: HashMap<&str, Vec<String>> = HashMap::new();
    for d in done {
        let (ctx, report) = (&d.ctx, &d.transition.effects);
        for message in &report.messages {
            let (channel, key) = match message {
                QueuedMessage::Email { id, .. } => (OutboxChannel::Email, id),
                QueuedMessage::Sms { id, .. } => (OutboxChannel::Sms, id),
            };
            let mut payload = serde_json::to_value(message).unwrap_or_default();
            if channel == OutboxChannel::Email {
                sent_as_owner(&mut payload, ctx.owner.as_ref(), ctx.sender_mode);
            }
            messages.push(NewOutboxMessage {
                account_id: ctx.enrollment.account_id.clone(),
                action_id: Some(ctx.action.id.clone()),
                channel,
                payload,
                idempotency_key: key.clone(),
            });
        }
        if !report.messages.is_empty() || !report.contact_changes.is_empty() || d.transition.contacted {
            touched.entry(&ctx.enrollment.account_id).or_default().push(ctx.contact.id.clone());
        }
    }
    // A key queued by an earlier attempt of the same action stays as it is.
    tx.enqueue_messages(&messages, now).await?;
    // Only the few calls that logged anything are looked at further.
    let logged: Vec<(&Decided, &Ran, String)> = done
        .iter()
        .filter_map(|d| d.transition.ran.as_ref().filter(|r| !r.logs.is_empty()).map(|r| (*d, r, not_kept(r))))
        .collect();
    let logs: Vec<NewActionLog<'_>> = logged.iter().flat_map(|(d, ran, note)| kept_log(d, ran, note)).collect();
    tx.record_action_logs(&logs, now).await?;

    let mut events = Vec::new();
    for (account_id, ids) in touched {
        let ids = unique(ids.into_iter());
        let mut contacts: HashMap<String, Contact> =
            tx.contacts_in(account_id, &ids).await?.into_iter().map(|c| (c.id.clone(), c)).collect();
        if let Some(missing) = ids.iter().find(|id| !contacts.contains_key(*id)) {
            return Err(EngineError::NotFound { what: "contact", id: missing.clone() });
        }
        // In the batch's order: a contact two actions changed gets both.
        for d in done.iter().filter(|d| d.ctx.enrollment.account_id == account_id) {
            let report = &d.transition.effects;
            let Some(contact) = contacts.get_mut(&d.ctx.contact.id) else { continue };
            if !report.messages.is_empty() || d.transition.contacted {
                contact.last_contacted = Some(now);
            }
            for change in &report.contact_changes {
                let before = serde_json::to_value(&*contact).unwrap_or_default();
                apply_change(contact, change);
                events.push(NewEvent {
                    enrollment_id: Some(d.ctx.enrollment.id.clone()),
                    action_id: Some(d.ctx.action.id.clone()),
                    before: Some(before),
                    after: Some(serde_json::to_value(&*contact).unwrap_or_default()),
                    ..contact_event(account_id, contact, EventKind::ContactUpdated, &d.transition.actor)
                });
            }
        }
        let changed: Vec<Contact> = ids.iter().filter_map(|id| contacts.remove(id)).collect();
        save_contacts(tx, account_id, &changed, now).await?;
    }
    Ok(events)
}

/// The host's last line of an attempt whose log was longer than is kept:
/// how many lines were left out. Empty when all are kept.
fn not_kept(ran: &Ran) -> String {
    let len = ran.logs.len();
    if len > ActionLogLine::MAX_PER_ATTEMPT {
        format!("{} more line(s) were logged and not kept", len - (ActionLogLine::MAX_PER_ATTEMPT - 1))
    } else {
        String::new()
    }
}

/// The lines of a call's log to keep, as (source, level, text): at most
/// [`ActionLogLine::MAX_PER_ATTEMPT`], the last one the host's `note` when
/// some were left out, each clipped to [`ActionLogLine::MAX_BYTES`].
fn kept<'a>(logs: &'a [LogLine], note: &'a str) -> Vec<(&'static str, &'static str, &'a str)> {
    let room = if note.is_empty() { ActionLogLine::MAX_PER_ATTEMPT } else { ActionLogLine::MAX_PER_ATTEMPT - 1 };
    let mut kept: Vec<_> = logs
        .iter()
        .take(room)
        .map(|l| {
            (source_name(l.source), level_name(l.level), stepwise_domain::clip(&l.message, ActionLogLine::MAX_BYTES))
        })
        .collect();
    if !note.is_empty() {
        kept.push(("host", "warn", note));
    }
    kept
}

/// [`kept`] of `d`'s plugin call `ran`, to keep with its attempt.
fn kept_log<'a>(d: &'a Decided, ran: &'a Ran, note: &'a str) -> Vec<NewActionLog<'a>> {
    kept(&ran.logs, note)
        .into_iter()
        .enumerate()
        .map(|(line, (source, level, message))| NewActionLog {
            account_id: &d.ctx.enrollment.account_id,
            action_id: &d.ctx.action.id,
            attempt: d.ctx.action.attempts.max(0) + 1,
            line: i64::try_from(line).unwrap_or(i64::MAX),
            plugin_version: &ran.version,
            source,
            level,
            message,
        })
        .collect()
}

fn source_name(source: LogSource) -> &'static str {
    match source {
        LogSource::Plugin => "plugin",
        LogSource::Stdout => "stdout",
        LogSource::Stderr => "stderr",
    }
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

/// An email of a step comes from the rep who owns it, as the account
/// chooses: through the relay with `reply_to` the rep's sending address
/// (unless the payload names one already), or `from` the rep's own
/// address (verified: an unverified owner's automatic email is held
/// before it gets here). Nothing when the owner has no usable address.
fn sent_as_owner(payload: &mut serde_json::Value, owner: Option<&stepwise_domain::crm::User>, mode: SenderMode) {
    let Some(owner) = owner.filter(|o| stepwise_domain::crm::is_email(o.sending_address())) else { return };
    let Some(fields) = payload.as_object_mut() else { return };
    let address = serde_json::Value::String(owner.sending_address().to_owned());
    let name = serde_json::Value::String(owner.sending_name().to_owned());
    match mode {
        SenderMode::OwnAddress if owner.sender_connected => {
            fields.insert("from".into(), address);
            fields.insert("from_name".into(), name);
            fields.insert("from_user_id".into(), serde_json::Value::String(owner.id.clone()));
        }
        SenderMode::Relay | SenderMode::OwnAddress => {
            if fields.get("reply_to").is_some_and(|r| !r.is_null()) {
                return;
            }
            fields.insert("reply_to".into(), address);
            fields.insert("reply_to_name".into(), name);
        }
    }
}

/// A plugin's change, made to `contact`.
fn apply_change(contact: &mut Contact, change: &ContactChange) {
    if let Some(owner) = &change.owner {
        contact.owner_id = owner.clone();
    }
    if let Some(contact_type) = &change.contact_type {
        contact.contact_type = contact_type.clone();
    }
    if let Some(cycle) = &change.sales_cycle {
        contact.sales_cycle = Some(cycle.clone());
    }
    for (name, value) in &change.attributes {
        contact.attributes.insert(name.clone(), value.clone());
    }
}

/// Whether a leased write held its lease: a lost one is `false`, any
/// other error an error.
fn leased<T>(result: std::result::Result<T, StoreError>) -> Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(StoreError::LeaseLost(_)) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::{ActionLogLine, LogLevel, LogLine, LogSource, Ran, kept, not_kept};

    fn log(n: usize, message: &str) -> Ran {
        let line = LogLine { source: LogSource::Plugin, level: LogLevel::Info, message: message.to_owned() };
        Ran { version: "1.2.3".into(), logs: vec![line; n] }
    }

    #[test]
    fn an_attempts_log_is_kept_whole_up_to_its_cap() {
        let ran = log(ActionLogLine::MAX_PER_ATTEMPT, "hello");
        let note = not_kept(&ran);
        assert_eq!(note, "");
        let lines = kept(&ran.logs, &note);
        assert_eq!(lines.len(), ActionLogLine::MAX_PER_ATTEMPT);
        assert!(lines.iter().all(|l| *l == ("plugin", "info", "hello")));
    }

    #[test]
    fn a_longer_log_ends_with_how_many_lines_were_left_out_and_long_lines_are_clipped() {
        let ran = log(250, &"é".repeat(ActionLogLine::MAX_BYTES));
        let note = not_kept(&ran);
        assert_eq!(note, "151 more line(s) were logged and not kept");
        let lines = kept(&ran.logs, &note);
        assert_eq!(lines.len(), ActionLogLine::MAX_PER_ATTEMPT);
        assert_eq!(lines.last().unwrap(), &("host", "warn", note.as_str()));
        assert!(lines[..99].iter().all(|l| l.2.len() == ActionLogLine::MAX_BYTES), "clipped on a character boundary");
    }
}
