//! The duplicate-attempt failsafe, at the moment an effect may leave.
//!
//! An action whose plugin began an effect outside the host that a retry
//! would repeat, and whose answer was never written (the host died, the
//! lease ran out), must not run again by itself: it is parked with
//! `duplicate_attempt` for a person to resolve. What marks it is the
//! attempt on record (`send_attempted_at`), and that is written when the
//! effect may begin, not before the plugin runs: the call's
//! [`EffectGate`] is asked before its first request that is neither safe
//! nor idempotent by the action's key, and only then is the attempt
//! recorded. An action whose plugin never got that far is simply retried.
//! Messages need no record at all: `send-email` and `send-sms` only put
//! them in the report, and the outbox rows commit with the answer.
//!
//! The actions running at once record their attempts together (a group
//! commit, [`GroupCommit`]), so a batch of webhooks costs a few commits,
//! not one each.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::group::GroupCommit;
use super::{Engine, EngineError};
use stepwise_plugin_host::EffectGate;

/// The attempts waiting to be written: `(action, lease)`, answered with the
/// time recorded or why not.
pub(crate) type Attempts = GroupCommit<(String, String), Result<DateTime<Utc>, String>>;

impl Engine {
    /// Records that the effect of `action`, leased with `lease`, may begin
    /// now; returns the time recorded, to the millisecond as stored.
    ///
    /// # Errors
    ///
    /// Why the effect must not begin: the lease was lost, or the record
    /// could not be written.
    pub(crate) async fn record_attempt(&self, action: &str, lease: &str) -> Result<DateTime<Utc>, String> {
        let engine = self.clone();
        let item = (action.to_owned(), lease.to_owned());
        let recorded = self.inner.attempts.submit(item, move |group| async move { engine.write_attempts(group).await });
        recorded.await.unwrap_or_else(|| Err("the attempt was not recorded".into()))
    }

    /// Writes a group of attempts in one transaction; answers each.
    async fn write_attempts(&self, group: Vec<(String, String)>) -> Vec<Result<DateTime<Utc>, String>> {
        let now = self.now();
        let written = async {
            let leases: Vec<(&str, &str)> = group.iter().map(|(a, l)| (a.as_str(), l.as_str())).collect();
            let mut tx = self.store().begin().await?;
            let held = tx.record_send_attempts(&leases, now).await?;
            tx.commit().await?;
            Ok::<_, EngineError>(held)
        }
        .await;
        if let Err(error) = &written {
            tracing::warn!(%error, attempts = group.len(), "attempts were not recorded; their requests are not sent");
        }
        let at = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        group
            .iter()
            .map(|(action, _)| match &written {
                Ok(held) if held.contains(action) => Ok(at),
                Ok(_) => Err(format!("the lease of action {action} was lost")),
                Err(error) => Err(format!("the attempt could not be recorded: {error}")),
            })
            .collect()
    }
}

/// The gate of one scheduled action's calls: the first effect that may
/// leave records the attempt; what it recorded, or why it refused, is kept
/// for the answer.
pub(crate) struct AttemptGate {
    engine: Engine,
    action: String,
    lease: String,
    outcome: tokio::sync::Mutex<Option<Result<DateTime<Utc>, String>>>,
}

impl std::fmt::Debug for AttemptGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptGate").field("action", &self.action).finish_non_exhaustive()
    }
}

impl AttemptGate {
    pub(crate) fn new(engine: &Engine, action: &str, lease: &str) -> Arc<Self> {
        Arc::new(Self {
            engine: engine.clone(),
            action: action.to_owned(),
            lease: lease.to_owned(),
            outcome: tokio::sync::Mutex::new(None),
        })
    }

    /// What the gate did: `None` when no effect asked, the time recorded,
    /// or why it refused.
    pub(crate) async fn outcome(&self) -> Option<Result<DateTime<Utc>, String>> {
        self.outcome.lock().await.clone()
    }
}

#[async_trait::async_trait]
impl EffectGate for AttemptGate {
    async fn open(&self) -> Result<(), String> {
        let mut outcome = self.outcome.lock().await;
        if let Some(known) = outcome.as_ref() {
            return known.clone().map(|_| ());
        }
        let recorded = self.engine.record_attempt(&self.action, &self.lease).await;
        *outcome = Some(recorded.clone());
        recorded.map(|_| ())
    }
}
