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

use tokio::sync::OnceCell;

use super::group::{GroupCommit, Written, answers};
use super::{Engine, EngineError};
use stepwise_plugin_host::EffectGate;

/// The attempts waiting to be written, `(action, lease)`.
pub(crate) type Attempts = GroupCommit<(String, String), Written>;

impl Engine {
    /// Records that the effect of `action`, leased with `lease`, may begin
    /// now.
    ///
    /// # Errors
    ///
    /// Why the effect must not begin: the lease was lost, or the record
    /// could not be written.
    pub(crate) async fn record_attempt(&self, action: &str, lease: &str) -> Result<(), String> {
        let engine = self.clone();
        let item = (action.to_owned(), lease.to_owned());
        let recorded = self.inner.attempts.submit(item, move |group| async move {
            let now = engine.now();
            let written = async {
                let leases: Vec<(&str, &str)> = group.iter().map(|(a, l)| (a.as_str(), l.as_str())).collect();
                let mut tx = engine.store().begin().await?;
                let held = tx.record_send_attempts(&leases, now).await?;
                tx.commit().await?;
                Ok::<_, EngineError>(held)
            };
            answers(&group, written.await, |(action, _)| action)
        });
        match recorded.await {
            Some(Ok(true)) => Ok(()),
            Some(Ok(false)) => Err(format!("the lease of action {action} was lost")),
            Some(Err(error)) => Err(format!("the attempt could not be recorded: {error}")),
            None => Err("the attempt was not recorded".into()),
        }
    }
}

/// The gate of one scheduled action's calls: the first effect that may
/// leave records the attempt; whether it did, or why it refused, is kept
/// for the answer.
pub(crate) struct AttemptGate {
    engine: Engine,
    action: String,
    lease: String,
    outcome: OnceCell<Result<(), String>>,
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
            outcome: OnceCell::new(),
        })
    }

    /// What the gate did: `None` when no effect asked, `Ok` when the
    /// attempt is on record, or why it refused.
    pub(crate) fn outcome(&self) -> Option<&Result<(), String>> {
        self.outcome.get()
    }
}

#[async_trait::async_trait]
impl EffectGate for AttemptGate {
    async fn open(&self) -> Result<(), String> {
        self.outcome.get_or_init(|| self.engine.record_attempt(&self.action, &self.lease)).await.clone()
    }
}
