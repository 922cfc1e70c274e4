//! What people do to an enrollment and a sequence (SPEC §5): stop (with
//! what happens to the open action), resume, cancel, remove, migrate to
//! another version, set the event date, and a sequence's state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engage::lease_busy;
use super::process::{EventExt, contact_event, enrollment_event};
use super::timing;
use super::{Engine, EngineError, Result};
use stepwise_domain::engagement::{
    ActionStatus, AuditAction, Editor, Enrollment, EnrollmentOutcome, EnrollmentStatus, EventKind, Level, PauseReason,
    Priority, Sequence, SequenceState, TimingMode,
};
use stepwise_store::{ActionCompletion, NewAction, NewAudit, StoreError, Tx};

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

impl Engine {
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
                    counts_attempt: false,
                    plugin_version: None,
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
        let event = enrollment_event(&enrollment, contact.company_id, None, EventKind::EnrollmentStopped, actor)
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
        let sequence = tx.sequence_for(account_id, &enrollment.sequence_id).await?;
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
        let sequence = tx.sequence_for(account_id, &enrollment.sequence_id).await?;
        if enrollment.status.is_open() && enrollment.status != EnrollmentStatus::Queued {
            self.dequeue(&mut tx, &sequence, now).await?;
        }
        let contact = tx.contact(account_id, &enrollment.contact_id).await?;
        let event = contact_event(account_id, &contact, EventKind::EnrollmentRemoved, actor)
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
        let sequence = tx.sequence_for(account_id, &enrollment.sequence_id).await?;
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
                priority: Priority::of_config(&step.config),
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
                    Some(EnrollmentOutcome::Neutral),
                    actor,
                    "the new version has no further steps",
                    now,
                )
                .await?;
            }
        }
        let event = enrollment_event(&enrollment, contact.company_id, None, EventKind::EnrollmentMigrated, actor)
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
        let sequence = tx.sequence_for(account_id, &enrollment.sequence_id).await?;
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
                let event = enrollment_event(
                    &enrollment,
                    contact.company_id,
                    None,
                    EventKind::EnrollmentEventDateChanged,
                    actor,
                )
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
            kind: EventKind::SequenceStateChanged,
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
}
