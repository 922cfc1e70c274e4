//! Inbound signals about a contact (SPEC §6): reply, bounce, out-of-office,
//! unsubscribe, click and open. Ended enrollments are never reopened.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::process::{EventExt, contact_event, enrollment_event};
use super::records::save_contact;
use super::{Engine, EngineError, Result};
use stepwise_domain::engagement::{Enrollment, EnrollmentStatus, EventKind, OnReply, PauseReason};
use stepwise_store::{StoreError, Tx};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// The contact replied.
    Reply,
    /// An email to the contact bounced.
    Bounce,
    /// The contact is out of office.
    OutOfOffice,
    /// The contact unsubscribed from email.
    Unsubscribe,
    /// The contact clicked a link.
    Click,
    /// The contact opened an email.
    Open,
}

impl SignalKind {
    /// The kind of the contact's timeline event.
    fn event(self) -> EventKind {
        match self {
            Self::Reply => EventKind::SignalReply,
            Self::Bounce => EventKind::SignalBounce,
            Self::OutOfOffice => EventKind::SignalOutOfOffice,
            Self::Unsubscribe => EventKind::SignalUnsubscribe,
            Self::Click => EventKind::SignalClick,
            Self::Open => EventKind::SignalOpen,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::Bounce => "bounce",
            Self::OutOfOffice => "out_of_office",
            Self::Unsubscribe => "unsubscribe",
            Self::Click => "click",
            Self::Open => "open",
        }
    }
}

/// A signal about a contact, optionally naming the enrollment or action it
/// concerns; without one it concerns every unfinished enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Signal {
    /// What happened.
    pub kind: SignalKind,
    /// The contact.
    pub contact_id: String,
    /// The enrollment concerned.
    #[serde(default)]
    pub enrollment_id: Option<String>,
    /// The action concerned (its enrollment is then concerned).
    #[serde(default)]
    pub action_id: Option<String>,
    /// For `out_of_office`: when the contact is back; the enrollment then
    /// resumes by itself.
    #[serde(default)]
    pub return_date: Option<DateTime<Utc>>,
}

impl Engine {
    /// Applies a signal. Returns the enrollments it concerned, as they are
    /// afterwards.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] for a contact, enrollment or action that
    /// is not in the account (or an enrollment of another contact).
    pub async fn signal(&self, account_id: &str, signal: &Signal) -> Result<Vec<Enrollment>> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let mut contact = tx.contact(account_id, &signal.contact_id).await?;
        let targets = self.signal_targets(&mut tx, account_id, signal).await?;
        let actor = format!("signal:{}", signal.kind.as_str());
        let before = json!({ "last_engaged": contact.last_engaged, "opt_outs": contact.opt_outs });
        match signal.kind {
            SignalKind::Reply | SignalKind::Click | SignalKind::Open => contact.last_engaged = Some(now),
            SignalKind::Unsubscribe => contact.opt_outs.email = true,
            SignalKind::Bounce | SignalKind::OutOfOffice => {}
        }
        save_contact(&mut tx, account_id, &contact, now).await?;
        let event = contact_event(account_id, &contact, signal.kind.event(), &actor)
            .change(before, json!({ "last_engaged": contact.last_engaged, "opt_outs": contact.opt_outs, "return_date": signal.return_date }));
        tx.record_event(&event, now).await?;

        let mut changed = Vec::new();
        for mut enrollment in targets {
            if !enrollment.status.is_open() {
                // Ended enrollments are final (SPEC §5).
                changed.push(enrollment);
                continue;
            }
            let sequence = tx.sequence_for(account_id, &enrollment.sequence_id).await?;
            match signal.kind {
                SignalKind::Reply if sequence.settings.on_reply == OnReply::Stop => {
                    self.end_enrollment(
                        &mut tx,
                        &mut enrollment,
                        &sequence,
                        EnrollmentStatus::Replied,
                        None,
                        &actor,
                        "the contact replied",
                        now,
                    )
                    .await?;
                }
                SignalKind::Reply => {
                    let event = enrollment_event(
                        &enrollment,
                        contact.company_id.clone(),
                        None,
                        EventKind::EnrollmentReplyReceived,
                        &actor,
                    )
                    .reason("the contact replied; the sequence continues on reply");
                    tx.record_event(&event, now).await?;
                }
                SignalKind::Bounce => {
                    self.end_enrollment(
                        &mut tx,
                        &mut enrollment,
                        &sequence,
                        EnrollmentStatus::Bounced,
                        None,
                        &actor,
                        "an email to the contact bounced",
                        now,
                    )
                    .await?;
                }
                SignalKind::Unsubscribe => {
                    self.end_enrollment(
                        &mut tx,
                        &mut enrollment,
                        &sequence,
                        EnrollmentStatus::OptedOut,
                        None,
                        &actor,
                        "the contact unsubscribed",
                        now,
                    )
                    .await?;
                }
                SignalKind::OutOfOffice => {
                    let before = json!({ "status": enrollment.status, "pause_reason": enrollment.pause_reason });
                    match enrollment.status {
                        EnrollmentStatus::Pending | EnrollmentStatus::Running => {
                            tx.disable_actions(&enrollment.id, now).await?;
                            enrollment.status = EnrollmentStatus::Paused;
                            enrollment.pause_reason = Some(PauseReason::OutOfOffice);
                        }
                        // Already out of office: the new return date wins.
                        EnrollmentStatus::Paused if enrollment.pause_reason == Some(PauseReason::OutOfOffice) => {}
                        // Paused for another reason, or queued: left alone.
                        _ => {
                            changed.push(enrollment);
                            continue;
                        }
                    }
                    enrollment.resume_at = signal.return_date;
                    tx.save_enrollment(&enrollment, now).await?;
                    let reason = match signal.return_date {
                        Some(back) => format!("the contact is out of office until {back}"),
                        None => "the contact is out of office; resume the enrollment when they are back".to_owned(),
                    };
                    let event = enrollment_event(&enrollment, contact.company_id.clone(), None, EventKind::EnrollmentPaused, &actor)
                        .reason(reason)
                        .change(before, json!({ "status": enrollment.status, "pause_reason": enrollment.pause_reason, "resume_at": enrollment.resume_at }));
                    tx.record_event(&event, now).await?;
                }
                SignalKind::Click | SignalKind::Open => {}
            }
            changed.push(enrollment);
        }
        tx.commit().await?;
        self.wake();
        Ok(changed)
    }

    async fn signal_targets(&self, tx: &mut Tx, account_id: &str, signal: &Signal) -> Result<Vec<Enrollment>> {
        let named = match (&signal.enrollment_id, &signal.action_id) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(action)) => match tx.action(action).await {
                Ok(action) => Some(action.enrollment_id),
                Err(StoreError::NotFound { .. }) => {
                    return Err(EngineError::NotFound { what: "action", id: action.clone() });
                }
                Err(other) => return Err(other.into()),
            },
            (None, None) => None,
        };
        match named {
            Some(id) => match tx.enrollment(&id).await {
                Ok(e) if e.account_id == account_id && e.contact_id == signal.contact_id => Ok(vec![e]),
                Ok(_) | Err(StoreError::NotFound { .. }) => {
                    let what = if signal.enrollment_id.is_some() { "enrollment" } else { "action" };
                    let id = signal.enrollment_id.clone().or_else(|| signal.action_id.clone()).unwrap_or(id);
                    Err(EngineError::NotFound { what, id })
                }
                Err(other) => Err(other.into()),
            },
            None => Ok(tx.enrollments_of_contact(&signal.contact_id).await?),
        }
    }
}
