//! "Why is this action not on my Engage view?" — the troubleshooting list
//! of [G], answered from the data for one action (SPEC §4).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::checks;
use super::timing;
use super::{Engine, Result};
use stepwise_domain::engagement::{ActionStatus, Activation, DeferralReason, EnrollmentStatus, OnUnmet, SequenceState};

/// One check of the list and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable name, such as `owner_active`.
    pub name: String,
    /// The question, as the troubleshooting list asks it.
    pub question: String,
    /// Whether this check lets the action onto the Engage view.
    pub ok: bool,
    /// The answer for this action.
    pub answer: String,
}

/// The answer for one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The action.
    pub action_id: String,
    /// Its status.
    pub status: ActionStatus,
    /// Whether it is on its owner's Engage view now.
    pub on_engage: bool,
    /// Its owner.
    pub owner_id: Option<String>,
    /// Its expected execution date.
    pub due_at: Option<DateTime<Utc>>,
    /// The system deferral reason, if any.
    pub deferral_reason: Option<DeferralReason>,
    /// When a held action is looked at again, unless the change that fixes
    /// its reason comes first.
    pub recheck_at: Option<DateTime<Utc>>,
    /// One sentence: where it is and why.
    pub summary: String,
    /// Every check, in the list's order.
    pub checks: Vec<Check>,
}

fn check(name: &str, question: &str, ok: bool, answer: impl Into<String>) -> Check {
    Check { name: name.to_owned(), question: question.to_owned(), ok, answer: answer.into() }
}

impl Engine {
    /// Runs the troubleshooting list of [G] for an action. Criteria are
    /// evaluated now, as processing would.
    ///
    /// # Errors
    ///
    /// [`super::EngineError::NotFound`] when the action is not in the account.
    pub async fn explain(&self, account_id: &str, action_id: &str) -> Result<Explanation> {
        let ctx = self.load_snapshot(action_id, Some(account_id)).await?;
        let now = self.now();
        let a = &ctx.action;
        let unperformed = matches!(a.status, ActionStatus::Future | ActionStatus::Active | ActionStatus::Disabled);
        let mut checks = Vec::new();

        checks.push(check(
            "previous_completed",
            "Have all previous actions been completed (is this the next one due)?",
            a.current || !unperformed,
            if a.current {
                "yes: it is the enrollment's current action".to_owned()
            } else if unperformed {
                format!(
                    "no: the enrollment is at step {}; this is step {}",
                    ctx.enrollment.current_step + 1,
                    a.step + 1
                )
            } else {
                format!("it is already {}", a.status)
            },
        ));
        checks.push(check(
            "due",
            "Is the current time past the expected execution date?",
            a.due_at.is_some_and(|d| d <= now),
            match a.due_at {
                Some(d) if d <= now => format!("yes: it was due at {d}"),
                Some(d) => format!("no: it is due at {d}"),
                None => "it has no due date: it waits for something else (see the deferral reason)".to_owned(),
            },
        ));
        checks.push(check(
            "processed",
            "Has the scheduler processed it since it became due?",
            !(a.current
                && a.status == ActionStatus::Future
                && a.due_at.is_some_and(|d| d <= now)
                && a.deferral_reason.is_none()),
            if a.lease_token.is_some() {
                "it is being processed right now".to_owned()
            } else if a.current
                && a.status == ActionStatus::Future
                && a.due_at.is_some_and(|d| d <= now)
                && a.deferral_reason.is_none()
            {
                "not yet: due actions are processed continuously, within a second of their due time".to_owned()
            } else {
                "yes, or it is not due yet: due actions are processed continuously, not in batches".to_owned()
            },
        ));
        checks.push(check(
            "sequence_active",
            "Is the sequence active?",
            ctx.sequence.state == SequenceState::Active,
            format!("the sequence {} is {}", ctx.sequence.name, ctx.sequence.state),
        ));
        checks.push(check(
            "enrollment_active",
            "Is the contact's enrollment active?",
            matches!(ctx.enrollment.status, EnrollmentStatus::Pending | EnrollmentStatus::Running),
            match (ctx.enrollment.status, ctx.enrollment.pause_reason) {
                (EnrollmentStatus::Paused, Some(reason)) => format!("the enrollment is paused ({reason})"),
                (status, _) => format!("the enrollment is {status}"),
            },
        ));
        checks.push(check(
            "manual",
            "Is it a manual action (automatic ones never show on Engage)?",
            ctx.step.activation == Activation::Manual,
            match ctx.step.activation {
                Activation::Manual => "yes: it is performed by its owner from the Engage view".to_owned(),
                Activation::Automatic => "no: it is automatic; Stepwise performs it without showing it".to_owned(),
            },
        ));
        for requirement in checks::requirements(&ctx.facts()).into_iter().filter(|r| r.applies) {
            let (name, question) = match requirement.reason {
                DeferralReason::OwnerInactive => ("owner_active", "Is the owner an active user?"),
                DeferralReason::DelegatedOwner => {
                    ("owner_not_delegate", "Is the owner a user who may own actions (not a delegate)?")
                }
                DeferralReason::MissingEmail => {
                    ("contact_email", "Does the contact have an email address (email actions)?")
                }
                DeferralReason::MissingPhone => {
                    ("contact_phone", "Does the contact have a phone number (call and SMS actions)?")
                }
                DeferralReason::SenderNotConnected => (
                    "sender_connected",
                    "Can automatic email go out for the owner (the relay sends for them, or their own address is verified)?",
                ),
                DeferralReason::PluginDisabled => ("plugin_enabled", "Is the step's plugin enabled for the account?"),
                _ => ("legacy_merge_syntax", "Is the template free of legacy merge syntax?"),
            };
            checks.push(check(name, question, requirement.met, requirement.detail));
        }
        let opted_out = checks::opted_out(ctx.channel(), &ctx.contact);
        checks.push(check(
            "opt_out",
            "Has the contact opted out of the step's channel?",
            !opted_out && !a.opt_out,
            if opted_out || a.opt_out {
                "yes: the action is skipped automatically".to_owned()
            } else {
                "no".to_owned()
            },
        ));
        for criterion in &ctx.step.criteria {
            let verdict = self.evaluate_for_explain(&ctx, criterion).await;
            let (ok, answer) = match (&verdict, criterion.on_unmet) {
                (Ok(true), _) => (true, "met".to_owned()),
                (Ok(false), OnUnmet::Hold) => (false, "not met: the action is held until it is".to_owned()),
                (Ok(false), OnUnmet::Skip) if a.status == ActionStatus::Active => {
                    (true, "not met now, but skip criteria are evaluated once: the action stays on Engage".to_owned())
                }
                (Ok(false), OnUnmet::Skip) => (false, "not met: the action is skipped".to_owned()),
                (Err(why), _) => (false, format!("cannot be evaluated: {why}")),
            };
            checks.push(check(
                &format!("criterion:{}", criterion.plugin.id),
                "Does the action meet its criteria?",
                ok,
                answer,
            ));
        }
        if ctx.step.activation == Activation::Automatic
            && let Some(hours) = &ctx.sequence.settings.business_hours
        {
            let answer = match timing::next_opening(hours, now) {
                Ok(None) => (true, "yes".to_owned()),
                Ok(Some(open)) => (false, format!("no: they open again at {open}")),
                Err(why) => (false, why.to_string()),
            };
            checks.push(check("business_hours", "Is it within the sequence's business hours?", answer.0, answer.1));
        }
        checks.push(check(
            "deferral_reason",
            "Is there a system deferral reason?",
            a.deferral_reason.is_none(),
            match (a.deferral_reason, a.recheck_at) {
                (None, _) => "no".to_owned(),
                (Some(r), Some(at)) => {
                    format!("yes: {}; it is checked again at {at}, or at once when a change fixes it", r.sentence())
                }
                (Some(r), None) => format!("yes: {}", r.sentence()),
            },
        ));
        let on_engage = a.status == ActionStatus::Active && a.show_on_engage;
        checks.push(check(
            "status",
            "What is the action's status (an active action is on Engage)?",
            on_engage,
            match a.status {
                ActionStatus::Active => format!(
                    "active: it is on the Engage view of {}; check the view's sort and filters (due {})",
                    a.owner_id.as_deref().unwrap_or("nobody"),
                    a.due_at.map_or_else(|| "—".to_owned(), |d| d.to_string())
                ),
                status => format!("{status}"),
            },
        ));
        let summary = if on_engage {
            format!("on the Engage view of {}", a.owner_id.as_deref().unwrap_or("nobody"))
        } else if let (Some(reason), true) = (a.deferral_reason, unperformed) {
            match a.recheck_at {
                Some(at) => format!("held back: {}; checked again at {at}", reason.sentence()),
                None => format!("held back: {}", reason.sentence()),
            }
        } else {
            checks.iter().find(|c| !c.ok).map_or_else(
                || format!("{}: every check passes; it is processed when due", a.status),
                |c| c.answer.clone(),
            )
        };
        Ok(Explanation {
            action_id: a.id.clone(),
            status: a.status,
            on_engage,
            owner_id: a.owner_id.clone(),
            due_at: a.due_at,
            deferral_reason: a.deferral_reason,
            recheck_at: a.recheck_at.filter(|_| a.deferral_reason.is_some()),
            summary,
            checks,
        })
    }
}
