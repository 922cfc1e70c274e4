//! Enrollments from start to end (SPEC §2, §3, §5): enrolling, ending
//! (what follows: a drip slot given on, the next sequence), the drip queue,
//! due dates projected anew, out-of-office returns. How an answer moves an
//! enrollment on is `transition.rs`; what people do to one is `moves.rs`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::process::{EventExt, SYSTEM, contact_event, enrollment_event};
use super::records::save_contact;
use super::timing;
use super::{Engine, EngineError, Result};
use stepwise_domain::engagement::{
    ActionStatus, Enrollment, EnrollmentOutcome, EnrollmentStatus, EventKind, Level, Sequence, SequenceState,
    SequenceVersion, TimingMode,
};
use stepwise_store::{ActionCompletion, NewAction, NewEnrollment, StoreError, Tx};

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
        let event =
            enrollment_event(&enrollment, contact.company_id.clone(), None, EventKind::EnrollmentCreated, actor)
                .reason(format!("enrolled in {} (version {})", sequence.name, version.version))
                .change(json!(null), json!({ "status": status, "version": version.version }));
        tx.record_event(&event, now).await?;

        if let Some(cycle) = &sequence.settings.sales_cycle
            && contact.sales_cycle.as_ref() != Some(cycle)
        {
            let before = json!({ "sales_cycle": contact.sales_cycle });
            contact.sales_cycle = Some(cycle.clone());
            save_contact(tx, account_id, &contact, now).await?;
            let event = contact_event(account_id, &contact, EventKind::ContactUpdated, actor)
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
            let event =
                enrollment_event(&enrollment, contact.company_id.clone(), Some(id), EventKind::ActionSkipped, SYSTEM)
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
                    Some(EnrollmentOutcome::Neutral),
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
        outcome: Option<EnrollmentOutcome>,
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
        let event = enrollment_event(enrollment, contact.company_id.clone(), None, EventKind::EnrollmentEnded, actor)
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
                    EventKind::EnrollmentChained,
                    Level::Info,
                    format!("enrolled in the next sequence as {}", next_enrollment.id),
                ),
                Err(EngineError::Store(_)) => return outcome.map(|_| ()),
                Err(error) => (
                    EventKind::EnrollmentChainFailed,
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
    pub(crate) async fn dequeue(&self, tx: &mut Tx, sequence: &Sequence, now: DateTime<Utc>) -> Result<()> {
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
            let event = enrollment_event(&next, contact.company_id, None, EventKind::EnrollmentDequeued, SYSTEM)
                .reason("a drip slot became free")
                .change(json!({ "status": EnrollmentStatus::Queued }), json!({ "status": EnrollmentStatus::Pending }));
            tx.record_event(&event, now).await?;
        }
        self.wake();
        Ok(())
    }

    /// Sets the due dates of an enrollment's unperformed actions as if it
    /// started at `base`; returns the current action's new due date.
    pub(crate) async fn reproject(
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

    pub(crate) async fn resume_in(
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
        let event = enrollment_event(enrollment, contact.company_id.clone(), None, EventKind::EnrollmentResumed, actor)
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
                Some(EnrollmentOutcome::Neutral),
                actor,
                "every step is done",
                now,
            )
            .await?;
        }
        self.wake();
        Ok(())
    }
}
