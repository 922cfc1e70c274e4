//! Enrollments from start to end (SPEC §2, §3, §5): enrolling, ending
//! (what follows: a drip slot given on, the next sequence), the drip queue,
//! due dates projected anew, out-of-office returns. How an answer moves an
//! enrollment on is `transition.rs`; what people do to one is `moves.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::process::{EventExt, SYSTEM, contact_event, enrollment_event};
use super::records::save_contacts;
use super::timing;
use super::{Engine, EngineError, Result};
use stepwise_domain::crm::Contact;
use stepwise_domain::engagement::{
    ActionStatus, Enrollment, EnrollmentOutcome, EnrollmentStatus, EventKind, Level, Priority, Sequence, SequenceState,
    SequenceVersion, TimingMode,
};
use stepwise_store::{ActionCompletion, NewAction, Tx, new_id};

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

/// A request to enroll many contacts in one sequence
/// (`POST /v1/enrollments/bulk`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollMany {
    /// The sequence; its newest version is used.
    pub sequence_id: String,
    /// The contacts, in the order results are given.
    pub contact_ids: Vec<String>,
    /// The user enrolling them (the `initiator` owner rule).
    #[serde(default)]
    pub initiated_by: Option<String>,
    /// The event date of a `from_event` sequence, for all of them.
    #[serde(default)]
    pub event_date: Option<DateTime<Utc>>,
}

/// Contacts enrolled in one transaction of [`Engine::enroll_many`]: large
/// enough that the statements per chunk cost little per contact, small
/// enough that a chunk holds SQLite's write lock for milliseconds.
pub(crate) const ENROLL_CHUNK: usize = 1_000;

/// What a set of contacts is enrolled in.
pub(crate) struct Target<'a> {
    pub sequence_id: &'a str,
    /// Who enrolls them, unless `by_owner`.
    pub initiated_by: Option<&'a str>,
    /// Each enrollment is initiated by its contact's owner (a lead
    /// enrolled by its lead source).
    pub by_owner: bool,
    pub event_date: Option<DateTime<Utc>>,
    /// The contacts, when they were read already (those just created):
    /// an id not among them is not found.
    pub known: Option<&'a HashMap<String, Contact>>,
}

impl<'a> Target<'a> {
    /// The contacts of a request, enrolled by `initiated_by`.
    fn by(sequence_id: &'a str, initiated_by: Option<&'a str>, event_date: Option<DateTime<Utc>>) -> Self {
        Target { sequence_id, initiated_by, by_owner: false, event_date, known: None }
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

    /// Enrolls many contacts in one sequence with the rules of
    /// [`Engine::enroll`], checked for the whole set at once: a transaction
    /// and a handful of statements per thousand contacts, not several per
    /// contact. Returns a result per contact, in order; one that cannot be
    /// enrolled (unknown, already enrolled, queued elsewhere) never stops
    /// the others, and a sequence that takes no enrollments is every
    /// contact's error.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] when the store fails; what was enrolled in
    /// the chunks before stays enrolled.
    pub async fn enroll_many(&self, account_id: &str, request: &EnrollMany) -> Result<Vec<Result<Enrollment>>> {
        let now = self.now();
        let actor = request.initiated_by.clone().unwrap_or_else(|| SYSTEM.to_owned());
        let target = Target::by(&request.sequence_id, request.initiated_by.as_deref(), request.event_date);
        let mut results = Vec::with_capacity(request.contact_ids.len());
        for chunk in request.contact_ids.chunks(ENROLL_CHUNK) {
            let mut tx = self.store().begin().await?;
            match self.enroll_set_in(&mut tx, account_id, &target, chunk, &actor, now).await {
                Ok(enrolled) => {
                    tx.commit().await?;
                    results.extend(enrolled);
                }
                // A store error stops the request; an error about it (the
                // sequence takes no enrollments) is every contact's answer.
                Err(error @ EngineError::Store(_)) => return Err(error),
                Err(error) => results.extend(chunk.iter().filter_map(|_| error.of_request().map(Err))),
            }
        }
        self.wake();
        Ok(results)
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
        let target = Target::by(&request.sequence_id, request.initiated_by.as_deref(), request.event_date);
        let contact = std::slice::from_ref(&request.contact_id);
        let mut results = self.enroll_set_in(tx, account_id, &target, contact, actor, now).await?;
        results.pop().expect("a result per contact")
    }

    /// The sequence and the version new enrollments start in, when it takes
    /// enrollments.
    async fn enrollable(
        &self,
        tx: &mut Tx,
        account_id: &str,
        target: &Target<'_>,
    ) -> Result<(Sequence, Arc<SequenceVersion>)> {
        // Its own, or one its parent shares locked (SPEC §1).
        let sequence = tx.sequence_for(account_id, target.sequence_id).await?;
        if sequence.account_id != account_id && !sequence.settings.shared_locked {
            return Err(EngineError::NotFound { what: "sequence", id: target.sequence_id.to_owned() });
        }
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
        if sequence.timing_mode == TimingMode::FromEvent && target.event_date.is_none() {
            return Err(EngineError::Invalid(format!(
                "sequence {} is timed from an event: the enrollment needs an event_date",
                sequence.id
            )));
        }
        if let Some(user) = target.initiated_by {
            tx.user(account_id, user).await?;
        }
        Ok((sequence, version))
    }

    /// Enrolls a set of contacts in one sequence inside `tx` (SPEC §1, §2,
    /// §5): the rules each enrollment must meet (the contact exists, is not
    /// already in the sequence, waits in no drip queue; a drip limit queues
    /// those beyond it, in order) are checked against the set, and the
    /// enrollments, their actions and their events are written a statement
    /// per table. Returns a result per contact, in order.
    ///
    /// # Errors
    ///
    /// When the sequence takes no enrollments (not active, no version, no
    /// event date for a `from_event` one, an unknown initiator), and when
    /// the store fails.
    pub(crate) async fn enroll_set_in(
        &self,
        tx: &mut Tx,
        account_id: &str,
        target: &Target<'_>,
        contact_ids: &[String],
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Enrollment>>> {
        let (ref sequence, ref version) = self.enrollable(tx, account_id, target).await?;
        let read: HashMap<String, Contact>;
        let contacts = match target.known {
            Some(known) => known,
            None => {
                read = tx.contacts_in(account_id, contact_ids).await?.into_iter().map(|c| (c.id.clone(), c)).collect();
                &read
            }
        };
        // The records keep milliseconds, as the store does.
        let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        // Each contact's unfinished enrollments, as (status, sequence),
        // with those made here added as they are made.
        let mut unfinished: HashMap<String, Vec<(EnrollmentStatus, String)>> = HashMap::new();
        for e in tx.unfinished_enrollments_of(contact_ids).await? {
            unfinished.entry(e.contact_id.clone()).or_default().push((e.status, e.sequence_id));
        }
        let mut free_slots = match sequence.settings.drip_limit {
            Some(limit) => Some(i64::from(limit) - tx.drip_slots_held(&sequence.id).await?),
            None => None,
        };

        // Every step gets its action now, with its projected due date. A
        // "before" step already past at enrollment is skipped (SPEC §3).
        // All of the set start now with the same event date, so the plan
        // is the same for each.
        let dues = timing::project(sequence.timing_mode, &version.steps, now, target.event_date);
        let late: Vec<bool> = version
            .steps
            .iter()
            .zip(&dues)
            .map(|(step, due)| {
                sequence.timing_mode == TimingMode::FromEvent
                    && timing::is_before_event(step)
                    && due.is_some_and(|d| d < now)
            })
            .collect();
        let current = late.iter().position(|late| !late);

        let mut results: Vec<Result<Enrollment>> = Vec::with_capacity(contact_ids.len());
        let mut made: Vec<(usize, Enrollment)> = Vec::new();
        for contact_id in contact_ids {
            let Some(contact) = contacts.get(contact_id) else {
                results.push(Err(EngineError::NotFound { what: "contact", id: contact_id.clone() }));
                continue;
            };
            let open = unfinished.entry(contact.id.clone()).or_default();
            if let Some((_, queued_in)) = open.iter().find(|(status, _)| *status == EnrollmentStatus::Queued) {
                let error =
                    EngineError::QueuedElsewhere { contact_id: contact.id.clone(), sequence_id: queued_in.clone() };
                results.push(Err(error));
                continue;
            }
            if open.iter().any(|(_, in_sequence)| *in_sequence == sequence.id) {
                let error =
                    EngineError::AlreadyEnrolled { contact_id: contact.id.clone(), sequence_id: sequence.id.clone() };
                results.push(Err(error));
                continue;
            }
            let status = match &mut free_slots {
                Some(free) if *free <= 0 => EnrollmentStatus::Queued,
                Some(free) => {
                    *free -= 1;
                    EnrollmentStatus::Pending
                }
                None => EnrollmentStatus::Pending,
            };
            open.push((status, sequence.id.clone()));
            let enrollment = Enrollment {
                id: new_id("enr"),
                account_id: account_id.to_owned(),
                contact_id: contact.id.clone(),
                sequence_id: sequence.id.clone(),
                version: version.version,
                initiated_by: match target.by_owner {
                    true => contact.owner_id.clone(),
                    false => target.initiated_by.map(str::to_owned),
                },
                status,
                pause_reason: None,
                outcome: None,
                current_step: current.and_then(|i| version.steps.get(i)).map_or(0, |s| i64::from(s.position)),
                started_at: now,
                last_action_completed_at: None,
                next_action_at: current.and_then(|i| dues.get(i).copied().flatten()),
                event_date: target.event_date,
                resume_at: None,
                queued_at: (status == EnrollmentStatus::Queued).then_some(now),
                ended_at: None,
                created_at: now,
                updated_at: now,
            };
            made.push((results.len(), enrollment.clone()));
            results.push(Ok(enrollment));
        }

        let batch: Vec<Enrollment> = made.iter().map(|(_, e)| e.clone()).collect();
        let added = tx.insert_enrollments(&batch).await?;
        // Another writer enrolled the contact between the check and the
        // insert.
        made.retain(|(at, e)| {
            let kept = added.contains(&e.id);
            if !kept {
                let error = EngineError::AlreadyEnrolled {
                    contact_id: e.contact_id.clone(),
                    sequence_id: e.sequence_id.clone(),
                };
                results[*at] = Err(error);
            }
            kept
        });

        let mut events = Vec::with_capacity(made.len());
        let mut actions = Vec::with_capacity(made.len() * version.steps.len());
        for (_, enrollment) in &made {
            let contact = &contacts[&enrollment.contact_id];
            events.push(
                enrollment_event(enrollment, contact.company_id.clone(), None, EventKind::EnrollmentCreated, actor)
                    .reason(format!("enrolled in {} (version {})", sequence.name, version.version))
                    .change(json!(null), json!({ "status": enrollment.status, "version": version.version })),
            );
            for (i, (step, due)) in version.steps.iter().zip(&dues).enumerate() {
                actions.push(NewAction {
                    enrollment_id: enrollment.id.clone(),
                    step: i64::from(step.position),
                    plugin_id: step.plugin.id.clone(),
                    activation: step.activation,
                    owner_id: Self::owner_of(&step.owner, enrollment, contact, None),
                    due_at: *due,
                    current: current == Some(i),
                    priority: Priority::of_config(&step.config),
                });
            }
        }
        tx.record_events(&events, now).await?;
        let action_ids = tx.insert_actions(&actions, now).await?;

        if let Some(cycle) = &sequence.settings.sales_cycle {
            let mut changed = Vec::new();
            let mut events = Vec::new();
            for (_, enrollment) in &made {
                let mut contact = contacts[&enrollment.contact_id].clone();
                if contact.sales_cycle.as_ref() == Some(cycle) {
                    continue;
                }
                let before = json!({ "sales_cycle": contact.sales_cycle });
                contact.sales_cycle = Some(cycle.clone());
                events.push(
                    contact_event(account_id, &contact, EventKind::ContactUpdated, actor)
                        .reason(format!("sales cycle set by sequence {}", sequence.name))
                        .change(before, json!({ "sales_cycle": cycle })),
                );
                changed.push(contact);
            }
            save_contacts(tx, account_id, &changed, now).await?;
            tx.record_events(&events, now).await?;
        }

        let steps = version.steps.len();
        if late.iter().any(|late| *late) {
            for ((_, enrollment), ids) in made.iter().zip(action_ids.chunks(steps)) {
                let company_id = contacts[&enrollment.contact_id].company_id.clone();
                for (id, _) in ids.iter().zip(&late).filter(|(_, late)| **late) {
                    let skipped = ActionCompletion::skipped("event_date_passed", None, None);
                    tx.complete_action(id, None, &skipped, now).await?;
                    let event =
                        enrollment_event(enrollment, company_id.clone(), Some(id), EventKind::ActionSkipped, SYSTEM)
                            .reason("the step falls before the event date, which had already passed at enrollment");
                    tx.record_event(&event, now).await?;
                }
            }
        }
        if current.is_none() {
            for (at, mut enrollment) in made {
                let why = "every step was already past";
                let (status, outcome) = (EnrollmentStatus::Completed, Some(EnrollmentOutcome::Neutral));
                self.end_enrollment(tx, &mut enrollment, sequence, status, outcome, SYSTEM, why, now).await?;
                results[at] = Ok(enrollment);
            }
        }
        Ok(results)
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
        while tx.drip_slots_held(&sequence.id).await? < i64::from(limit) {
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
            let sequence = tx.sequence_for(&enrollment.account_id, &enrollment.sequence_id).await?;
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
