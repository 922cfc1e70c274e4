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
//! The actions running at once record their attempts together: whoever
//! finds the writer free writes every attempt waiting (a group commit), so
//! a batch of webhooks costs a few commits, not one each.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{Engine, EngineError};
use stepwise_plugin_host::EffectGate;

/// The attempts waiting to be written, and the one writer.
#[derive(Default)]
pub(crate) struct Attempts {
    waiting: Mutex<Vec<Waiting>>,
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// An attempt waiting to be written, and where its outcome goes.
struct Waiting {
    action: String,
    lease: String,
    done: oneshot::Sender<Result<DateTime<Utc>, String>>,
}

impl Engine {
    /// Records that the effect of `action`, leased with `lease`, may begin
    /// now; returns the time recorded, to the millisecond as stored.
    ///
    /// # Errors
    ///
    /// Why the effect must not begin: the lease was lost, or the record
    /// could not be written.
    pub(crate) async fn record_attempt(&self, action: &str, lease: &str) -> Result<DateTime<Utc>, String> {
        let attempts = &self.inner.attempts;
        let (done, outcome) = oneshot::channel();
        attempts.lock_waiting().push(Waiting { action: action.to_owned(), lease: lease.to_owned(), done });
        // Whoever holds the writer takes everything waiting; ours may be
        // written by the one before us, and then there is nothing left.
        let writer = attempts.writer.clone().lock_owned().await;
        let batch = std::mem::take(&mut *attempts.lock_waiting());
        if !batch.is_empty() {
            // On a task of its own, so that a caller that gives up (its
            // call timed out) never drops a transaction half-way and leaves
            // the others of the batch without an answer.
            let engine = self.clone();
            tokio::spawn(async move {
                let _writer = writer;
                engine.write_attempts(batch).await;
            });
        }
        outcome.await.unwrap_or_else(|_| Err("the attempt was not recorded".into()))
    }

    /// Writes `batch` in one transaction and tells each waiter.
    async fn write_attempts(&self, batch: Vec<Waiting>) {
        let now = self.now();
        let written = async {
            let leases: Vec<(&str, &str)> = batch.iter().map(|w| (w.action.as_str(), w.lease.as_str())).collect();
            let mut tx = self.store().begin().await?;
            let held = tx.record_send_attempts(&leases, now).await?;
            tx.commit().await?;
            Ok::<_, EngineError>(held)
        }
        .await;
        if let Err(error) = &written {
            tracing::warn!(%error, attempts = batch.len(), "attempts were not recorded; their requests are not sent");
        }
        let at = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        for waiting in batch {
            let outcome = match &written {
                Ok(held) if held.contains(&waiting.action) => Ok(at),
                Ok(_) => Err(format!("the lease of action {} was lost", waiting.action)),
                Err(error) => Err(format!("the attempt could not be recorded: {error}")),
            };
            // A waiter that gave up no longer listens.
            let _ = waiting.done.send(outcome);
        }
    }
}

impl std::fmt::Debug for Attempts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempts").field("waiting", &self.lock_waiting().len()).finish_non_exhaustive()
    }
}

impl Attempts {
    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
