//! Enrollments from start to end (SPEC §2, §3, §5): enrolling, advancing
//! after each action, ending, drip queues, next-sequence chaining, stop and
//! resume, remove, version migration, and what users do from the Engage view.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::process::{Context, EventExt, SYSTEM, contact_event, enrollment_event};
use super::timing;
use super::transition::Answer;
use super::{Engine, EngineError, Result};
use stepwise_domain::crm::{Contact, ContactKind};
use stepwise_domain::engagement::{
    Action, ActionStatus, AuditAction, Editor, Enrollment, EnrollmentStatus, Level, Outcome, PauseReason, Sequence,
    SequenceState, SequenceVersion, TimingMode,
};
use stepwise_plugin_host::types::{Completion, Draft, EngageItem, Outcome as PluginOutcome};
use stepwise_store::{ActionCompletion, NewAction, NewAudit, NewEnrollment, StoreError, Tx};

/// A request to enroll a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The contact.
    pub contact_id: String,
    /// The sequence; its newest version is used.
    pub sequence_id: String,
    /// The user enrolling the contact (the `initiator` owner rule).
    #[serde(default)]
    pub initiated_by: Option<String>,
    /// The event date, required by `from_event` sequences.
    #[serde(default)]
    pub event_date: Option<DateTime<Utc>>,
}

/// What stopping an enrollment does to its open action (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Complete it (result `stopped`).
    Complete,
    /// Skip it.
    Skip,
    /// Keep it: it is disabled and comes back when the enrollment resumes.
    Keep,
}

/// A user's change raced the scheduler, which holds the action's lease.
fn lease_busy(error: impl Into<EngineError>) -> EngineError {
    match error.into() {
        EngineError::Store(StoreError::LeaseLost(id)) => {
            EngineError::InvalidState(format!("action {id} is being processed right now; try again in a moment"))
        }
        other => other,
    }
}

impl Engine {
    /// Enrolls a contact in the newest version of a sequence (SPEC §1, §2, §5).
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] for an unknown contact or sequence;
    /// [`EngineError::AlreadyEnrolled`]; [`EngineError::QueuedElsewhere`];
    /// [`EngineError::InvalidState`] when the sequence is not active or has
    /// no version; [`EngineError::Invalid`] when a `from_event` sequence gets
    /// no event date.
    pub async fn enroll(&self, account_id: &str, request: &EnrollRequest) -> Result<Enrollment> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let actor = request.initiated_by.clone().unwrap_or_else(|| SYSTEM.to_owned());
        let enrollment = self.enroll_in(&mut tx, account_id, request, &actor, now).await?;
        tx.commit().await?;
        self.wake();
        Ok(enrollment)
    }

    /// Enrolls inside `tx`, for callers that enroll as part of a larger change.
    pub(crate) async fn enroll_in(
        &self,
        tx: &mut Tx,
        account_id: &str,
        request: &EnrollRequest,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Enrollment> {
        let sequence = tx.sequence(account_id, &request.sequence_id).await?;
        if sequence.state != SequenceState::Active {
            return Err(EngineError::InvalidState(format!(
                "sequence {} is {}; only an active sequence accepts enrollments",
                sequence.id, sequence.state
            )));
        }
        let Some(latest) = tx.latest_version(&sequence.id).await? else {
            return Err(EngineError::InvalidState(format!("sequence {} has no published version", sequence.id)));
        };
        let version = self.version(tx, &sequence.id, latest.version).await?;
        if version.steps.is_empty() {
            return Err(EngineError::InvalidState(format!(
                "version {} of sequence {} has no steps",
                version.version, sequence.id
            )));
        }
        if sequence.timing_mode == TimingMode::FromEvent && request.event_date.is_none() {
            return Err(EngineError::Invalid(format!(
                "sequence {} is timed from an event: the enrollment needs an event_date",
                sequence.id
            )));
        }
        let mut contact = tx.contact(account_id, &request.contact_id).await?;
        if let Some(user) = &request.initiated_by {
            tx.user(account_id, user).await?;
        }
        for existing in tx.enrollments_of_contact(&contact.id).await? {
            if existing.status == EnrollmentStatus::Queued {
                return Err(EngineError::QueuedElsewhere { contact_id: contact.id, sequence_id: existing.sequence_id });
            }
            if existing.status.is_open() && existing.sequence_id == sequence.id {
                return Err(EngineError::AlreadyEnrolled { contact_id: contact.id, sequence_id: sequence.id });
            }
        }
        let status = match sequence.settings.drip_limit {
            Some(limit) if tx.running_count(&sequence.id).await? >= i64::from(limit) => EnrollmentStatus::Queued,
            _ => EnrollmentStatus::Pending,
        };
        let new = NewEnrollment {
            contact_id: contact.id.clone(),
            sequence_id: sequence.id.clone(),
            version: version.version,
            initiated_by: request.initiated_by.clone(),
            status,
            event_date: request.event_date,
        };
        let mut enrollment = match tx.create_enrollment(account_id, &new, now).await {
            Err(StoreError::Conflict { constraint, .. }) if constraint == "enrollments_one_open_per_contact" => {
                return Err(EngineError::AlreadyEnrolled { contact_id: contact.id, sequence_id: sequence.id });
            }
            other => other?,
        };
        let event = enrollment_event(&enrollment, contact.company_id.clone(), None, "enrollment.created", actor)
            .reason(format!("enrolled in {} (version {})", sequence.name, version.version))
            .change(json!(null), json!({ "status": status, "version": version.version }));
        tx.record_event(&event, now).await?;

        if let Some(cycle) = &sequence.settings.sales_cycle
            && contact.sales_cycle.as_ref() != Some(cycle)
        {
            let before = json!({ "sales_cycle": contact.sales_cycle });
            contact.sales_cycle = Some(cycle.clone());
            tx.update_contact(account_id, &contact, now).await?;
            let event = contact_event(account_id, &contact, "contact.updated", actor)
                .reason(format!("sales cycle set by sequence {}", sequence.name))
                .change(before, json!({ "sales_cycle": cycle }));
            tx.record_event(&event, now).await?;
        }

        // Every step gets its action now, with its projected due date. A
        // "before" step already past at enrollment is skipped (SPEC §3).
        let dues = timing::project(sequence.timing_mode, &version.steps, now, request.event_date);
        let mut current: Option<(i64, Option<DateTime<Utc>>)> = None;
        let mut news = Vec::with_capacity(version.steps.len());
        let mut late = Vec::new();
        for (step, due) in version.steps.iter().zip(dues) {
            let is_late = sequence.timing_mode == TimingMode::FromEvent
                && timing::is_before_event(step)
                && due.is_some_and(|d| d < now);
            let is_current = current.is_none() && !is_late;
            if is_current {
                current = Some((i64::from(step.position), due));
            }
            late.push(is_late);
            news.push(NewAction {
                enrollment_id: enrollment.id.clone(),
                step: i64::from(step.position),
                plugin_id: step.plugin.id.clone(),
                activation: step.activation,
                owner_id: Self::owner_of(&step.owner, &enrollment, &contact, None),
                due_at: due,
                current: is_current,
            });
        }
        let ids = tx.insert_actions(&news, now).await?;
        for (id, _) in ids.iter().zip(&late).filter(|(_, late)| **late) {
            let skipped = ActionCompletion::skipped("event_date_passed", None, None);
            tx.complete_action(id, None, &skipped, now).await?;
            let event = enrollment_event(&enrollment, contact.company_id.clone(), Some(id), "action.skipped", SYSTEM)
                .reason("the step falls before the event date, which had already passed at enrollment");
            tx.record_event(&event, now).await?;
        }
        match current {
            Some((step, due)) => {
                enrollment.current_step = step;
                enrollment.next_action_at = due;
                tx.save_enrollment(&enrollment, now).await?;
            }
            None => {
                self.end_enrollment(
                    tx,
                    &mut enrollment,
                    &sequence,
                    EnrollmentStatus::Completed,
                    Some(Outcome::Neutral),
                    SYSTEM,
                    "every step was already past",
                    now,
                )
                .await?;
            }
        }
        Ok(enrollment)
    }

    /// Ends an enrollment with a final status. Its unperformed actions are
    /// closed; a drip slot it held goes to the oldest queued enrollment; a
    /// completed one chains into the sequence's next sequence (SPEC §5).
    #[expect(clippy::too_many_arguments, reason = "one transaction's worth of context")]
    pub(crate) async fn end_enrollment(
        &self,
        tx: &mut Tx,
        enrollment: &mut Enrollment,
        sequence: &Sequence,
        status: EnrollmentStatus,
        outcome: Option<Outcome>,
        actor: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        debug_assert!(!status.is_open(), "{status} is not a final status");
        let before = json!({ "status": enrollment.status, "pause_reason": enrollment.pause_reason });
        let held_slot = enrollment.status != EnrollmentStatus::Queued;
        enrollment.status = status;
        enrollment.outcome = outcome;
        enrollment.pause_reason = None;
        enrollment.resume_at = None;
        enrollment.queued_at = None;
        enrollment.next_action_at = None;
        enrollment.ended_at = Some(now);
        tx.close_open_actions(&enrollment.id, &format!("enrollment_{status}"), now).await?;
        tx.save_enrollment(enrollment, now).await?;
        let contact = tx.contact(&enrollment.account_id, &enrollment.contact_id).await?;
        let event = enrollment_event(enrollment, contact.company_id.clone(), None, "enrollment.ended", actor)
            .reason(why)
            .change(before, json!({ "status": status, "outcome": outcome }));
        tx.record_event(&event, now).await?;
        self.after_end(tx, enrollment, sequence, status, held_slot, now).await
    }

    /// What follows an enrollment's end: a drip slot it held goes to the
    /// oldest queued enrollment, and a completed one chains into the
    /// sequence's next sequence (SPEC §5).
    pub(crate) async fn after_end(
        &self,
        tx: &mut Tx,
        enrollment: &Enrollment,
        sequence: &Sequence,
        status: EnrollmentStatus,
        held_slot: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if held_slot && sequence.settings.drip_limit.is_some() {
            self.dequeue(tx, sequence, now).await?;
        }
        if status == EnrollmentStatus::Completed
            && let Some(next) = &sequence.settings.next_sequence_id
        {
            let request = EnrollRequest {
                contact_id: enrollment.contact_id.clone(),
                sequence_id: next.clone(),
                initiated_by: enrollment.initiated_by.clone(),
                event_date: None,
            };
            // Boxed: enrolling may end an enrollment, which may enroll.
            let outcome = Box::pin(self.enroll_in(tx, &enrollment.account_id, &request, SYSTEM, now)).await;
            let (kind, level, reason) = match &outcome {
                Ok(next_enrollment) => (
                    "enrollment.chained",
                    Level::Info,
                    format!("enrolled in the next sequence as {}", next_enrollment.id),
                ),
                Err(EngineError::Store(_)) => return outcome.map(|_| ()),
                Err(error) => (
                    "enrollment.chain_failed",
                    Level::Warning,
                    format!("could not enroll in the next sequence {next}: {error}"),
                ),
            };
            let contact = tx.contact(&enrollment.account_id, &enrollment.contact_id).await?;
            let event =
                enrollment_event(enrollment, contact.company_id, None, kind, SYSTEM).reason(reason).level(level);
            tx.record_event(&event, now).await?;
        }
        Ok(())
    }

    /// Starts the oldest queued enrollments of a drip sequence while slots
    /// are free (FIFO).
    async fn dequeue(&self, tx: &mut Tx, sequence: &Sequence, now: DateTime<Utc>) -> Result<()> {
        let Some(limit) = sequence.settings.drip_limit else { return Ok(()) };
        while tx.running_count(&sequence.id).await? < i64::from(limit) {
            let Some(mut next) = tx.oldest_queued(&sequence.id).await? else { break };
            next.status = EnrollmentStatus::Pending;
            next.queued_at = None;
            // The sequence starts for it now: due dates count from here.
            let version = self.version(tx, &sequence.id, next.version).await?;
            next.next_action_at = self.reproject(tx, &next, sequence, &version, now, now).await?;
            tx.save_enrollment(&next, now).await?;
            let contact = tx.contact(&next.account_id, &next.contact_id).await?;
            let event = enrollment_event(&next, contact.company_id, None, "enrollment.dequeued", SYSTEM)
                .reason("a drip slot became free")
                .change(json!({ "status": EnrollmentStatus::Queued }), json!({ "status": EnrollmentStatus::Pending }));
            tx.record_event(&event, now).await?;
        }
        self.wake();
        Ok(())
    }

    /// Sets the due dates of an enrollment's unperformed actions as if it
    /// started at `base`; returns the current action's new due date.
    async fn reproject(
        &self,
        tx: &mut Tx,
        enrollment: &Enrollment,
        sequence: &Sequence,
        version: &SequenceVersion,
        base: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let actions = tx.actions_of_enrollment(&enrollment.id).await?;
        let first_open = actions.iter().find(|a| matches!(a.status, ActionStatus::Future | ActionStatus::Disabled));
        let Some(first_open) = first_open else { return Ok(None) };
        let from = usize::try_from(first_open.step).unwrap_or(usize::MAX);
        let dues: Vec<Option<DateTime<Utc>>> = match sequence.timing_mode {
            TimingMode::AfterPrevious => timing::recompute_after(TimingMode::AfterPrevious, &version.steps, from, base)
                .unwrap_or_default()
                .into_iter()
                .map(Some)
                .collect(),
            mode => timing::project(mode, &version.steps, base, enrollment.event_date).into_iter().skip(from).collect(),
        };
        let mut current_due = None;
        for (step, due) in (first_open.step..).zip(dues) {
            if let Some(action) = actions
                .iter()
                .find(|a| a.step == step && matches!(a.status, ActionStatus::Future | ActionStatus::Disabled))
            {
                tx.set_action_due_at(&action.id, due, now).await?;
                if action.current {
                    current_due = due;
                }
            }
        }
        Ok(current_due)
    }

    /// Resumes out-of-office enrollments whose return date has come.
    pub(crate) async fn resume_returning(&self, now: DateTime<Utc>) -> Result<usize> {
        // Every tick asks; a read answers the usual "nobody", so no write
        // transaction (SQLite's one write lock) is taken for nothing.
        if self.store().next_resume_at().await?.is_none_or(|at| at > now) {
            return Ok(0);
        }
        let mut tx = self.store().begin().await?;
        let returning = tx.enrollments_to_resume(now, self.config().batch_size).await?;
        let count = returning.len();
        for mut enrollment in returning {
            self.resume_in(&mut tx, &mut enrollment, SYSTEM, "the contact is back from out of office", now).await?;
        }
        tx.commit().await?;
        Ok(count)
    }

    async fn resume_in(
        &self,
        tx: &mut Tx,
        enrollment: &mut Enrollment,
        actor: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let before = json!({ "status": enrollment.status, "pause_reason": enrollment.pause_reason });
        tx.enable_actions(&enrollment.id, now).await?;
        let actions = tx.actions_of_enrollment(&enrollment.id).await?;
        // A resumed enrollment runs: pausing keeps no record of whether its
        // first step had been processed, and it may be again at once.
        enrollment.status = EnrollmentStatus::Running;
        enrollment.pause_reason = None;
        enrollment.resume_at = None;
        tx.save_enrollment(enrollment, now).await?;
        let contact = tx.contact(&enrollment.account_id, &enrollment.contact_id).await?;
        let event = enrollment_event(enrollment, contact.company_id.clone(), None, "enrollment.resumed", actor)
            .reason(why)
            .change(before, json!({ "status": enrollment.status }));
        tx.record_event(&event, now).await?;
        if !actions.iter().any(|a| a.current) {
            // Stopping completed or skipped the last open action.
            let sequence = tx.sequence(&enrollment.account_id, &enrollment.sequence_id).await?;
            self.end_enrollment(
                tx,
                enrollment,
                &sequence,
                EnrollmentStatus::Completed,
                Some(Outcome::Neutral),
                actor,
                "every step is done",
                now,
            )
            .await?;
        }
        self.wake();
        Ok(())
    }

    /// Loads an enrollment of the account for a change.
    async fn enrollment_of(&self, tx: &mut Tx, account_id: &str, id: &str) -> Result<Enrollment> {
        match tx.enrollment(id).await {
            Ok(e) if e.account_id == account_id => Ok(e),
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                Err(EngineError::NotFound { what: "enrollment", id: id.to_owned() })
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Stops an enrollment (SPEC §5): its open action is completed, skipped
    /// or kept, and it pauses (reason `manual`) until resumed.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::InvalidState`] unless it
    /// is pending or running.
    pub async fn stop(
        &self,
        account_id: &str,
        enrollment_id: &str,
        actor: &str,
        disposition: Disposition,
    ) -> Result<Enrollment> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let mut enrollment = self.enrollment_of(&mut tx, account_id, enrollment_id).await?;
        if !matches!(enrollment.status, EnrollmentStatus::Pending | EnrollmentStatus::Running) {
            return Err(EngineError::InvalidState(format!(
                "enrollment {enrollment_id} is {}; only a pending or running enrollment can be stopped",
                enrollment.status
            )));
        }
        let actions = tx.actions_of_enrollment(&enrollment.id).await?;
        if let Some(open) =
            actions.iter().find(|a| a.current && matches!(a.status, ActionStatus::Future | ActionStatus::Active))
        {
            let status = match disposition {
                Disposition::Complete => Some(ActionStatus::Completed),
                Disposition::Skip => Some(ActionStatus::Skipped),
                Disposition::Keep => None,
            };
            if let Some(status) = status {
                let completion = ActionCompletion {
                    status,
                    result: Some("stopped".into()),
                    output: None,
                    completed_by: Some(actor.to_owned()),
                    opt_out: false,
                    deferral_reason: None,
                };
                tx.complete_action(&open.id, None, &completion, now).await.map_err(lease_busy)?;
                if let Some(next) = actions.iter().find(|a| a.step > open.step && a.status == ActionStatus::Future) {
                    tx.set_current_action(&enrollment.id, Some(&next.id), now).await?;
                    enrollment.current_step = next.step;
                    enrollment.next_action_at = next.due_at;
                }
                enrollment.last_action_completed_at = Some(now);
            }
        }
        tx.disable_actions(&enrollment.id, now).await?;
        let before = json!({ "status": enrollment.status });
        enrollment.status = EnrollmentStatus::Paused;
        enrollment.pause_reason = Some(PauseReason::Manual);
        tx.save_enrollment(&enrollment, now).await?;
        let contact = tx.contact(account_id, &enrollment.contact_id).await?;
        let event = enrollment_event(&enrollment, contact.company_id, None, "enrollment.stopped", actor)
            .reason(format!(
                "stopped; open action {}",
                serde_json::to_value(disposition).unwrap_or_default().as_str().unwrap_or("kept")
            ))
            .change(before, json!({ "status": EnrollmentStatus::Paused, "pause_reason": PauseReason::Manual }));
        tx.record_event(&event, now).await?;
        tx.commit().await?;
        Ok(enrollment)
    }

    /// Resumes a paused enrollment, whatever paused it.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::InvalidState`] unless paused.
    pub async fn resume(&self, account_id: &str, enrollment_id: &str, actor: &str) -> Result<Enrollment> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let mut enrollment = self.enrollment_of(&mut tx, account_id, enrollment_id).await?;
        if enrollment.status != EnrollmentStatus::Paused {
            return Err(EngineError::InvalidState(format!(
                "enrollment {enrollment_id} is {}, not paused",
                enrollment.status
            )));
        }
        self.resume_in(&mut tx, &mut enrollment, actor, "resumed", now).await?;
        tx.commit().await?;
        Ok(enrollment)
    }

    /// Cancels an enrollment: it ends `cancelled` and its open actions close.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::InvalidState`] when it has
    /// already ended (ended enrollments are final).
    pub async fn cancel(&self, account_id: &str, enrollment_id: &str, actor: &str) -> Result<Enrollment> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let mut enrollment = self.enrollment_of(&mut tx, account_id, enrollment_id).await?;
        if !enrollment.status.is_open() {
            return Err(EngineError::InvalidState(format!(
                "enrollment {enrollment_id} already ended as {}",
                enrollment.status
            )));
        }
        let sequence = tx.sequence(account_id, &enrollment.sequence_id).await?;
        self.end_enrollment(
            &mut tx,
            &mut enrollment,
            &sequence,
            EnrollmentStatus::Cancelled,
            None,
            actor,
            "cancelled by a user",
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(enrollment)
    }

    /// Removes an enrollment with all its actions, events and messages; it
    /// cannot be recovered (SPEC §5). A drip slot it held is passed on.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`].
    pub async fn remove(&self, account_id: &str, enrollment_id: &str, actor: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let enrollment = self.enrollment_of(&mut tx, account_id, enrollment_id).await?;
        tx.delete_enrollment(account_id, &enrollment.id, now).await?;
        let sequence = tx.sequence(account_id, &enrollment.sequence_id).await?;
        if enrollment.status.is_open() && enrollment.status != EnrollmentStatus::Queued {
            self.dequeue(&mut tx, &sequence, now).await?;
        }
        let contact = tx.contact(account_id, &enrollment.contact_id).await?;
        let event = contact_event(account_id, &contact, "enrollment.removed", actor)
            .reason(format!("removed from sequence {} with its history", sequence.name));
        tx.record_event(&event, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves an unfinished enrollment to another version of its sequence
    /// (SPEC §2): its unperformed actions are replaced by the new version's
    /// steps from its current step on.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] for an unknown enrollment or version;
    /// [`EngineError::InvalidState`] when the enrollment has ended.
    pub async fn migrate(
        &self,
        account_id: &str,
        enrollment_id: &str,
        to_version: i64,
        actor: &str,
    ) -> Result<Enrollment> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let mut enrollment = self.enrollment_of(&mut tx, account_id, enrollment_id).await?;
        if !enrollment.status.is_open() {
            return Err(EngineError::InvalidState(format!(
                "enrollment {enrollment_id} already ended as {}",
                enrollment.status
            )));
        }
        if enrollment.version == to_version {
            return Ok(enrollment);
        }
        let sequence = tx.sequence(account_id, &enrollment.sequence_id).await?;
        let version = self.version(&mut tx, &sequence.id, to_version).await?;
        let from = enrollment.current_step;
        tx.delete_unperformed_actions(&enrollment.id, from).await.map_err(lease_busy)?;
        let kept: Vec<i64> = tx.actions_of_enrollment(&enrollment.id).await?.iter().map(|a| a.step).collect();
        let contact = tx.contact(account_id, &enrollment.contact_id).await?;
        let start = usize::try_from(from).unwrap_or(usize::MAX);
        let dues: Vec<Option<DateTime<Utc>>> = match sequence.timing_mode {
            TimingMode::AfterPrevious => timing::recompute_after(TimingMode::AfterPrevious, &version.steps, start, now)
                .unwrap_or_default()
                .into_iter()
                .map(Some)
                .collect(),
            mode => timing::project(mode, &version.steps, enrollment.started_at, enrollment.event_date)
                .into_iter()
                .skip(start)
                .collect(),
        };
        let mut current = None;
        for (step, due) in version.steps.iter().skip(start).zip(dues) {
            let position = i64::from(step.position);
            if kept.contains(&position) {
                continue;
            }
            let new = NewAction {
                enrollment_id: enrollment.id.clone(),
                step: position,
                plugin_id: step.plugin.id.clone(),
                activation: step.activation,
                owner_id: Self::owner_of(&step.owner, &enrollment, &contact, None),
                due_at: due,
                current: current.is_none(),
            };
            let action = tx.insert_action(&new, now).await?;
            if current.is_none() {
                current = Some((action.step, due));
            }
        }
        let before = json!({ "version": enrollment.version });
        enrollment.version = version.version;
        match current {
            Some((step, due)) => {
                enrollment.current_step = step;
                enrollment.next_action_at = due;
                if enrollment.status == EnrollmentStatus::Paused {
                    tx.disable_actions(&enrollment.id, now).await?;
                }
                tx.save_enrollment(&enrollment, now).await?;
            }
            None => {
                tx.save_enrollment(&enrollment, now).await?;
                self.end_enrollment(
                    &mut tx,
                    &mut enrollment,
                    &sequence,
                    EnrollmentStatus::Completed,
                    Some(Outcome::Neutral),
                    actor,
                    "the new version has no further steps",
                    now,
                )
                .await?;
            }
        }
        let event = enrollment_event(&enrollment, contact.company_id, None, "enrollment.migrated", actor)
            .reason(format!("moved to version {to_version}"))
            .change(before, json!({ "version": to_version }));
        tx.record_event(&event, now).await?;
        tx.commit().await?;
        self.wake();
        Ok(enrollment)
    }

    /// Sets or clears the event date of an enrollment of a `from_event`
    /// sequence. Clearing it cancels the remaining steps (SPEC §3).
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::Invalid`] when the sequence
    /// is not timed from an event; [`EngineError::InvalidState`] when the
    /// enrollment has ended.
    pub async fn set_event_date(
        &self,
        account_id: &str,
        enrollment_id: &str,
        date: Option<DateTime<Utc>>,
        actor: &str,
    ) -> Result<Enrollment> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let mut enrollment = self.enrollment_of(&mut tx, account_id, enrollment_id).await?;
        let sequence = tx.sequence(account_id, &enrollment.sequence_id).await?;
        if sequence.timing_mode != TimingMode::FromEvent {
            return Err(EngineError::Invalid(format!("sequence {} is not timed from an event date", sequence.id)));
        }
        if !enrollment.status.is_open() {
            return Err(EngineError::InvalidState(format!(
                "enrollment {enrollment_id} already ended as {}",
                enrollment.status
            )));
        }
        match date {
            None => {
                enrollment.event_date = None;
                self.end_enrollment(
                    &mut tx,
                    &mut enrollment,
                    &sequence,
                    EnrollmentStatus::Cancelled,
                    None,
                    actor,
                    "the event date was cleared: the remaining steps are cancelled",
                    now,
                )
                .await?;
            }
            Some(date) => {
                let before = json!({ "event_date": enrollment.event_date });
                enrollment.event_date = Some(date);
                let version = self.version(&mut tx, &sequence.id, enrollment.version).await?;
                enrollment.next_action_at =
                    self.reproject(&mut tx, &enrollment, &sequence, &version, enrollment.started_at, now).await?;
                tx.save_enrollment(&enrollment, now).await?;
                let contact = tx.contact(account_id, &enrollment.contact_id).await?;
                let event =
                    enrollment_event(&enrollment, contact.company_id, None, "enrollment.event_date_changed", actor)
                        .change(before, json!({ "event_date": date }));
                tx.record_event(&event, now).await?;
            }
        }
        tx.commit().await?;
        self.wake();
        Ok(enrollment)
    }

    /// Changes a sequence's state: `draft → active` (needs a published
    /// version), `active ⇄ paused` (pausing disables the unperformed actions
    /// of its enrollments, resuming brings them back), `→ archived` (only
    /// without unfinished enrollments).
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::InvalidState`] for any
    /// other transition.
    pub async fn set_sequence_state(
        &self,
        account_id: &str,
        sequence_id: &str,
        state: SequenceState,
        editor: &Editor,
    ) -> Result<Sequence> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let mut sequence = tx.sequence(account_id, sequence_id).await?;
        let before = sequence.clone();
        let from = sequence.state;
        let allowed = matches!(
            (from, state),
            (SequenceState::Draft, SequenceState::Active)
                | (SequenceState::Active, SequenceState::Paused)
                | (SequenceState::Paused, SequenceState::Active)
                | (SequenceState::Draft | SequenceState::Active | SequenceState::Paused, SequenceState::Archived)
        );
        if !allowed {
            return Err(EngineError::InvalidState(format!("sequence {sequence_id} cannot go from {from} to {state}")));
        }
        if state == SequenceState::Active && tx.latest_version(sequence_id).await?.is_none() {
            return Err(EngineError::InvalidState(format!("sequence {sequence_id} has no published version to run")));
        }
        if state == SequenceState::Archived && tx.has_open_enrollments(sequence_id).await? {
            return Err(EngineError::InvalidState(format!(
                "sequence {sequence_id} still has unfinished enrollments; end or remove them before archiving"
            )));
        }
        match (from, state) {
            (SequenceState::Active, SequenceState::Paused) => {
                tx.set_sequence_actions_disabled(sequence_id, true, now).await?;
            }
            (SequenceState::Paused, SequenceState::Active) => {
                tx.set_sequence_actions_disabled(sequence_id, false, now).await?;
            }
            _ => {}
        }
        tx.set_sequence_state(account_id, sequence_id, state, now).await?;
        sequence.state = state;
        let event = stepwise_store::NewEvent {
            account_id: account_id.to_owned(),
            contact_id: None,
            company_id: None,
            enrollment_id: None,
            action_id: None,
            kind: "sequence.state_changed".into(),
            actor: editor.user_id.clone(),
            reason: None,
            before: Some(json!({ "state": from })),
            after: Some(json!({ "state": state })),
            level: Level::Info,
        };
        tx.record_event(&event, now).await?;
        let entry = NewAudit::changed(AuditAction::SequenceStateChanged, sequence_id, &before, &sequence);
        tx.audit(account_id, editor, entry, now).await?;
        tx.commit().await?;
        self.wake();
        Ok(sequence)
    }

    /// Creates a contact; a new lead whose lead source an active sequence
    /// names is enrolled there at once (SPEC §2). Returns the contact and
    /// the enrollments made.
    ///
    /// # Errors
    ///
    /// [`EngineError::Invalid`] when the contact names a contact type,
    /// owner or company the account does not have.
    pub async fn create_contact(
        &self,
        account_id: &str,
        contact: &Contact,
        editor: &Editor,
    ) -> Result<(Contact, Vec<Enrollment>)> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let contact = tx.create_contact(account_id, contact, now).await?;
        tx.record_event(&contact_event(account_id, &contact, "contact.created", &editor.user_id), now).await?;
        let entry = NewAudit::created(AuditAction::ContactCreated, &contact.id, &contact);
        tx.audit(account_id, editor, entry, now).await?;
        let mut enrolled = Vec::new();
        if let (ContactKind::Lead, Some(source)) = (contact.kind, &contact.lead_source) {
            for sequence in tx.sequences_for_lead_source(account_id, source).await? {
                let request = EnrollRequest {
                    contact_id: contact.id.clone(),
                    sequence_id: sequence.id.clone(),
                    initiated_by: contact.owner_id.clone(),
                    event_date: None,
                };
                match self.enroll_in(&mut tx, account_id, &request, SYSTEM, now).await {
                    Ok(enrollment) => enrolled.push(enrollment),
                    Err(EngineError::Store(error)) => return Err(EngineError::Store(error)),
                    Err(error) => {
                        let event = contact_event(account_id, &contact, "enrollment.auto_failed", SYSTEM)
                            .reason(format!("lead source `{source}` names sequence {}, but: {error}", sequence.id))
                            .level(Level::Warning);
                        tx.record_event(&event, now).await?;
                    }
                }
            }
        }
        tx.commit().await?;
        self.wake();
        Ok((contact, enrolled))
    }

    /// Completes an action on the Engage view with one of its step type's
    /// results. The plugin runs with the rep's completion, so its effects
    /// (a message sent, a field changed) happen now.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::InvalidState`] unless the
    /// action is active; [`EngineError::Invalid`] for a result the step type
    /// does not declare; [`EngineError::Plugin`] when the plugin fails, in
    /// which case nothing changes.
    pub async fn complete_action(
        &self,
        account_id: &str,
        action_id: &str,
        user_id: &str,
        result: &str,
    ) -> Result<Action> {
        self.complete_action_with_draft(account_id, action_id, user_id, result, None).await
    }

    /// [`Engine::complete_action`] with the message as the rep edited it on
    /// the Engage view (the draft of [`Engine::engage_item`]): the plugin
    /// sends that instead of its own rendering, or refuses it.
    ///
    /// # Errors
    ///
    /// As [`Engine::complete_action`]; a draft the plugin refuses is an
    /// [`EngineError::Plugin`].
    pub async fn complete_action_with_draft(
        &self,
        account_id: &str,
        action_id: &str,
        user_id: &str,
        result: &str,
        draft: Option<Draft>,
    ) -> Result<Action> {
        let ctx = self.load_context(action_id, Some(account_id)).await?;
        if ctx.action.status != ActionStatus::Active {
            return Err(EngineError::InvalidState(format!(
                "action {action_id} is {}; only an action on the Engage view can be completed",
                ctx.action.status
            )));
        }
        let plugin = ctx.plugin.clone().map_err(EngineError::InvalidState)?;
        let manifest = plugin.manifest();
        if manifest.result(result).is_none() {
            let known: Vec<&str> = manifest.results.iter().map(|r| r.code.as_str()).collect();
            return Err(EngineError::Invalid(format!(
                "`{result}` is not a result of step type `{}`; expected one of: {}",
                manifest.id,
                known.join(", ")
            )));
        }
        let completion = Completion { result: result.to_owned(), draft, user_id: user_id.to_owned() };
        let invocation = self.invocation(&ctx, ctx.grant.clone(), Some(completion));
        let call = self
            .registry()
            .runtime()
            .execute(&plugin, invocation, &ctx.step.config.to_string())
            .await
            .inspect(|call| self.call_metrics().record(&manifest.id, "execute", call.report.wall))
            .map_err(|e| EngineError::Plugin { plugin: manifest.id.clone(), message: e.error.to_string() })?;
        match call.value {
            PluginOutcome::Failed { message, .. } => {
                return Err(EngineError::Plugin { plugin: manifest.id.clone(), message });
            }
            PluginOutcome::Retry { reason, .. } => {
                return Err(EngineError::Plugin {
                    plugin: manifest.id.clone(),
                    message: format!("asked to try again later: {reason}"),
                });
            }
            outcome => {
                let answer = Answer::Plugin { outcome, report: call.report, by: Some(user_id.to_owned()) };
                self.write_one(self.decided(ctx, None, answer)).await.map_err(lease_busy)?;
            }
        }
        self.action_of(account_id, action_id).await
    }

    /// What the rep sees for an action on the Engage view: its step's
    /// plugin prepares the title, the instructions (a call script, say) and
    /// any message draft, for the contact as it is now.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::InvalidState`] when the
    /// step's plugin cannot run for the account; [`EngineError::Plugin`] when
    /// the plugin cannot prepare the item.
    pub async fn engage_item(&self, account_id: &str, action_id: &str) -> Result<EngageItem> {
        let ctx = self.load_context(action_id, Some(account_id)).await?;
        let plugin = ctx.plugin.clone().map_err(EngineError::InvalidState)?;
        let id = plugin.manifest().id.clone();
        let invocation = self.invocation(&ctx, ctx.grant.clone(), None);
        let call = self
            .registry()
            .runtime()
            .prepare(&plugin, invocation, &ctx.step.config.to_string())
            .await
            .inspect(|call| self.call_metrics().record(&id, "prepare", call.report.wall))
            .map_err(|e| EngineError::Plugin { plugin: id.clone(), message: e.error.to_string() })?;
        call.value.map_err(|message| EngineError::Plugin { plugin: id, message })
    }

    /// The action `action_id` of the account.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] when it is not the account's.
    pub async fn action_of(&self, account_id: &str, action_id: &str) -> Result<Action> {
        Ok(self.load_context(action_id, Some(account_id)).await?.action)
    }

    /// Loads an action that a user may change: the enrollment's current,
    /// unperformed action of an enrollment that is pending or running.
    async fn user_context(&self, account_id: &str, action_id: &str) -> Result<Context> {
        let ctx = self.load_context(action_id, Some(account_id)).await?;
        if !ctx.action.current || !matches!(ctx.action.status, ActionStatus::Future | ActionStatus::Active) {
            return Err(EngineError::InvalidState(format!(
                "action {action_id} is {}{}; only the enrollment's current, unperformed action can be changed",
                ctx.action.status,
                if ctx.action.current { "" } else { " and not current" }
            )));
        }
        if !matches!(ctx.enrollment.status, EnrollmentStatus::Pending | EnrollmentStatus::Running) {
            return Err(EngineError::InvalidState(format!(
                "the enrollment of action {action_id} is {}",
                ctx.enrollment.status
            )));
        }
        Ok(ctx)
    }

    /// Skips the current action by a user's choice; the enrollment moves on.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::InvalidState`] unless it is
    /// the current unperformed action of a pending or running enrollment.
    pub async fn skip_action(&self, account_id: &str, action_id: &str, user_id: &str) -> Result<Action> {
        let ctx = self.user_context(account_id, action_id).await?;
        let skip = Answer::Skip { result: "skipped_by_user".into(), reason: None, by: Some(user_id.to_owned()) };
        self.write_one(self.decided(ctx, None, skip)).await.map_err(lease_busy)?;
        self.action_of(account_id, action_id).await
    }

    /// Reschedules the current action from the Engage view: a new due date,
    /// off the Engage view until it is processed again [G]. A held
    /// duplicate attempt is released by it (the user chose to try again).
    ///
    /// # Errors
    ///
    /// As [`Engine::skip_action`].
    pub async fn reschedule_action(
        &self,
        account_id: &str,
        action_id: &str,
        user_id: &str,
        due_at: DateTime<Utc>,
    ) -> Result<Action> {
        let ctx = self.user_context(account_id, action_id).await?;
        let answer = Answer::Reschedule { due_at, by: user_id.to_owned() };
        self.write_one(self.decided(ctx, None, answer)).await.map_err(lease_busy)?;
        self.action_of(account_id, action_id).await
    }

    /// Sets show-on-Engage back to false: the action leaves the Engage view
    /// and is processed again now, skip criteria included [G].
    ///
    /// # Errors
    ///
    /// As [`Engine::skip_action`].
    pub async fn hide_from_engage(&self, account_id: &str, action_id: &str, user_id: &str) -> Result<Action> {
        let ctx = self.user_context(account_id, action_id).await?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let action = tx.reset_show_on_engage(action_id, now).await.map_err(lease_busy)?;
        let event = ctx
            .event("action.show_on_engage_reset", user_id)
            .change(json!({ "show_on_engage": ctx.action.show_on_engage }), json!({ "show_on_engage": false }));
        tx.record_event(&event, now).await?;
        tx.commit().await?;
        self.wake();
        Ok(action)
    }
}
