//! The sequence engine: enrolls contacts, makes each step due at the right
//! moment, runs automatic steps through the plugin runtime and puts manual
//! ones on their owner's Engage view (SPEC §2–§6).
//!
//! # Scheduling
//!
//! The scheduler is continuous: [`Engine::run`] sleeps until the earliest
//! due time (or an out-of-office return date), or until new work wakes it,
//! and then claims due actions in batches under a lease. Each claimed action
//! is processed on its own task; its new state, the next action's due date,
//! its events and its outbox rows commit in one transaction. A host that
//! dies holding a lease loses nothing: the lease expires and another host
//! claims the action again.
//!
//! # Time
//!
//! Every time comes from the injected [`Clock`]; tests drive a
//! [`ManualClock`] with [`Engine::run_until`] through weeks of sequence time
//! in milliseconds.

mod add_ons;
mod attempts;
mod checks;
mod claims;
mod clock;
mod company;
mod engage;
mod explain;
mod group;
mod lifecycle;
mod metrics;
mod monitor;
mod moves;
mod outbox;
mod process;
mod records;
mod sender;
mod sign_in;
mod signals;
mod step_config;
pub mod timing;
mod transition;
mod unsubscribe;
mod validate;
mod voice;
mod wake;
mod webhooks;
mod writer;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore};

pub use checks::{Facts, Requirement, first_unmet, opted_out, requirements, uses_legacy_merge};
pub use clock::{Clock, ManualClock, SystemClock};
pub use company::CompanyHealth;
pub use explain::{Check, Explanation};
pub use lifecycle::{EnrollMany, EnrollRequest};
pub use metrics::{CallMetrics, Stage, StageMetrics, StageTotals};
pub use moves::Disposition;
pub use outbox::INTERRUPTED;
pub use process::contact_event;
pub use records::{Bootstrapped, DEFAULT_ADMIN_EMAIL, NewAccount, SequenceEdit, TemplateText, bootstrap, bootstrap_as};
pub use sender::{CONFIRMATION_HOURS, SenderIdentity};
pub use sign_in::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, SessionConfig, check_password};
pub use signals::{Signal, SignalKind};
pub use step_config::{TEMPLATE, TEMPLATE_ID};
pub use stepwise_domain::transport::{
    Delivery, EmailPayload, PlacedCall, RecordingTransport, SmsPayload, Transport, TransportError, Unconfigured, Voice,
    VoiceCall,
};
pub use validate::{MAX_CRITERIA, MAX_STEPS, StepProblem};
pub use voice::PLACED;
pub use webhooks::{
    MAX_EVENT_TYPES, MAX_URL_CHARS, SubscriptionEdit, SubscriptionRequest, WebhookConfig, signature, url_problem,
};

use process::{Processed, Snapshot};
use stepwise_domain::engagement::{ClaimedAction, SequenceVersion};
use stepwise_plugin_host::Registry;
use stepwise_store::{Idempotent, KeyHolder, Metrics, ReadTx, Store, StoreError};
use writer::Decided;

pub use claims::CLAIM_HORIZON;

/// The time kept at the end of a lease for an action's answer to be
/// written: an action's calls begin only while the lease covers them and
/// this ([`Engine::lease_covers`]).
pub const WRITE_ROOM: Duration = Duration::from_secs(5);

/// Whether work begun at `now` and taking up to `needed` ends by `expires`.
fn done_in_time(now: DateTime<Utc>, needed: Duration, expires: DateTime<Utc>) -> bool {
    chrono::Duration::from_std(needed).is_ok_and(|needed| now + needed <= expires)
}

/// How the engine works; every field has a sane default.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Due actions claimed per batch. A batch larger than `concurrency`
    /// plugin calls can finish within the lease is safe: an action whose
    /// lease no longer covers its calls is given back unstarted.
    pub batch_size: u32,
    /// How long a claim holds an action before another host may take it.
    /// Longer than the plugin call timeout, so a slow call is not done twice.
    pub lease: Duration,
    /// Actions processed at once.
    pub concurrency: usize,
    /// When a deferred action (unmet requirement or hold criteria) is looked
    /// at again.
    pub recheck_after: Duration,
    /// The longest the scheduler sleeps without looking at the database,
    /// so that work written by another host is seen even if nothing wakes
    /// this one.
    pub max_idle: Duration,
    /// Attempts of an automatic step that keeps answering "retry" before it
    /// counts as failed.
    pub max_attempts: u32,
    /// Outbox messages claimed per round.
    pub outbox_batch: u32,
    /// Outbox messages handed to their transports at once (each transport
    /// bounds its own connections besides).
    pub outbox_concurrency: usize,
    /// Delivery attempts of a message before it is given up.
    pub outbox_max_attempts: u32,
    /// The longest a transport may take to deliver one message; its answer
    /// is then uncertain. The message's lease lasts this long and a little
    /// more, so a host that stopped mid-handover is noticed after it.
    pub outbox_handover_timeout: Duration,
    /// How long a message being handed over stays this host's without a
    /// word from it: the host renews it every third of this while the
    /// transport works, so a host that stopped mid-handover gives its
    /// messages up this long after, not after the whole deadline.
    pub outbox_handover_lease: Duration,
    /// The URL people reach this host at (`https://stepwise.example.com`):
    /// emails of sequences that ask for it carry the contact's unsubscribe
    /// link under it. `None`: no links.
    pub public_url: Option<String>,
    /// How long console sessions and set-password links last.
    pub sessions: SessionConfig,
    /// How webhook subscriptions are delivered.
    pub webhooks: WebhookConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            lease: Duration::from_secs(60),
            concurrency: 64,
            recheck_after: Duration::from_secs(15 * 60),
            max_idle: Duration::from_secs(5),
            max_attempts: 5,
            outbox_batch: 256,
            outbox_concurrency: 32,
            outbox_max_attempts: 5,
            outbox_handover_timeout: Duration::from_secs(5 * 60),
            outbox_handover_lease: Duration::from_secs(30),
            public_url: None,
            sessions: SessionConfig::default(),
            webhooks: WebhookConfig::default(),
        }
    }
}

/// What can go wrong when asking the engine for something.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The record does not exist in the account.
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked up.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The contact already has an unfinished enrollment in the sequence.
    #[error("contact {contact_id} is already enrolled in sequence {sequence_id} and that enrollment is unfinished")]
    AlreadyEnrolled {
        /// The contact.
        contact_id: String,
        /// The sequence.
        sequence_id: String,
    },
    /// The contact waits in a drip queue and may not be enrolled elsewhere.
    #[error(
        "contact {contact_id} is queued in drip sequence {sequence_id} and cannot be enrolled anywhere until it runs"
    )]
    QueuedElsewhere {
        /// The contact.
        contact_id: String,
        /// The sequence it is queued in.
        sequence_id: String,
    },
    /// The operation does not fit the record's current state.
    #[error("{0}")]
    InvalidState(String),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// One field of the request is wrong.
    #[error("{field}: {message}")]
    InvalidField {
        /// Its JSON pointer, such as `/url`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A plugin could not answer.
    #[error("plugin {plugin}: {message}")]
    Plugin {
        /// The plugin id.
        plugin: String,
        /// What went wrong.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl EngineError {
    /// A copy of an error about the request rather than the store, for a
    /// bulk request to give each of its items; `None` for a store error.
    pub(crate) fn of_request(&self) -> Option<Self> {
        Some(match self {
            EngineError::NotFound { what, id } => EngineError::NotFound { what, id: id.clone() },
            EngineError::AlreadyEnrolled { contact_id, sequence_id } => {
                EngineError::AlreadyEnrolled { contact_id: contact_id.clone(), sequence_id: sequence_id.clone() }
            }
            EngineError::QueuedElsewhere { contact_id, sequence_id } => {
                EngineError::QueuedElsewhere { contact_id: contact_id.clone(), sequence_id: sequence_id.clone() }
            }
            EngineError::InvalidState(message) => EngineError::InvalidState(message.clone()),
            EngineError::Invalid(message) => EngineError::Invalid(message.clone()),
            EngineError::InvalidField { field, message } => {
                EngineError::InvalidField { field: field.clone(), message: message.clone() }
            }
            EngineError::Plugin { plugin, message } => {
                EngineError::Plugin { plugin: plugin.clone(), message: message.clone() }
            }
            EngineError::Store(_) => return None,
        })
    }
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what, id } => EngineError::NotFound { what, id },
            StoreError::Invalid(message) => EngineError::Invalid(message),
            other => EngineError::Store(other),
        }
    }
}

/// Shorthand for engine results.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// The engine. Cheap to clone: clones share everything.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    transport: Arc<dyn Transport>,
    /// Woken when work may have become due sooner than the scheduler knows.
    wake: Notify,
    /// Woken when messages were queued.
    outbox_wake: Notify,
    /// Bounds the actions processed at once.
    permits: Arc<Semaphore>,
    /// Plugin call latencies of this host.
    calls: CallMetrics,
    /// Where this host's scheduler spends its time.
    stages: StageMetrics,
    /// Sequence versions are immutable, so they are cached forever.
    versions: Mutex<HashMap<(String, i64), Arc<SequenceVersion>>>,
    /// Stored add-on versions that do not load on this host.
    failed_add_ons: Mutex<HashSet<(String, String)>>,
    /// Places automatic calls, when a voice provider is configured.
    voice: Option<Arc<dyn Voice>>,
    /// Attempts of effects that may leave, written together.
    attempts: attempts::Attempts,
    /// Handover marks of messages, written together.
    handovers: group::GroupCommit<(String, String), std::result::Result<bool, String>>,
    /// Messages sent, recorded together.
    sent: group::GroupCommit<(String, String, Option<String>), std::result::Result<bool, String>>,
    /// What this host tells the others.
    announcer: wake::Announcer,
    /// How much the next claim takes, and from which accounts.
    claims: claims::Claims,
    /// Sends webhook deliveries, under the operator's outbound-address
    /// rules; `None` when it could not be built (deliveries then fail).
    webhook_client: Option<Arc<stepwise_plugin_host::net::HttpClient>>,
}

impl Engine {
    /// An engine over `store`, running plugins from `registry`, reading time
    /// from `clock` and handing messages to `transport`.
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
        transport: Arc<dyn Transport>,
        config: EngineConfig,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        // One wave at first: the first batch says how long this host's
        // actions take, and later claims grow to fit (`Claims::fit`).
        let first_claim = config.batch_size.min(u32::try_from(config.concurrency).unwrap_or(u32::MAX)).max(1);
        let claims = claims::Claims::new(first_claim, config.batch_size);
        let webhook_client = Self::webhook_client(registry.runtime().net_policy(), &config.webhooks);
        Self {
            inner: Arc::new(Inner {
                store,
                registry,
                clock,
                config,
                transport,
                wake: Notify::new(),
                outbox_wake: Notify::new(),
                permits,
                calls: CallMetrics::default(),
                stages: StageMetrics::default(),
                versions: Mutex::new(HashMap::new()),
                failed_add_ons: Mutex::new(HashSet::new()),
                voice: None,
                attempts: attempts::Attempts::default(),
                handovers: group::GroupCommit::default(),
                sent: group::GroupCommit::default(),
                announcer: wake::Announcer::default(),
                claims,
                webhook_client,
            }),
        }
    }

    /// This engine placing automatic calls through `voice`. Call it on a
    /// new engine, before it is cloned.
    ///
    /// # Panics
    ///
    /// When the engine was already cloned.
    #[must_use]
    pub fn with_voice(mut self, voice: Arc<dyn Voice>) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("with_voice is called on a new engine, before it is shared");
        inner.voice = Some(voice);
        self
    }

    /// The store, which only the engine writes.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// A transaction that reads the store. Callers outside the engine (the
    /// API) read through these and change records by asking the engine.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when no connection can be had.
    pub async fn read(&self) -> Result<ReadTx, StoreError> {
        self.store().begin_read().await
    }

    /// Checks the database answers (readiness).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store().ping().await
    }

    /// The store's gauges and counts, for the metrics endpoint.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn store_metrics(&self) -> Result<Metrics, StoreError> {
        self.store().metrics(self.now()).await
    }

    /// Whose API key `secret` is, noting when it was last used.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn authenticate(&self, secret: &str) -> Result<Option<KeyHolder>, StoreError> {
        self.store().authenticate(secret, self.now()).await
    }

    /// Claims an idempotency key for a request ([`Store::idempotency_begin`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn idempotency_begin(&self, scope: &str, key: &str, fingerprint: &str) -> Result<Idempotent, StoreError> {
        self.store().idempotency_begin(scope, key, fingerprint, self.now()).await
    }

    /// Keeps the answer to an idempotent request, or releases its key
    /// (`None`) so it may be tried again ([`Store::idempotency_finish`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn idempotency_finish(
        &self,
        scope: &str,
        key: &str,
        answer: Option<(u16, &str, &str)>,
    ) -> Result<(), StoreError> {
        self.store().idempotency_finish(scope, key, answer).await
    }

    /// The plugin registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// The engine's current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Plugin call latencies of this host, for `/metrics`.
    pub fn call_metrics(&self) -> &CallMetrics {
        &self.inner.calls
    }

    /// Where this host's scheduler spends its time, for `/metrics`.
    pub fn stage_metrics(&self) -> &StageMetrics {
        &self.inner.stages
    }

    /// Tells the scheduler, and the other hosts, that work may be due
    /// sooner than they think.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
        self.announce(wake::News::Due);
    }

    /// A version of a sequence, from the cache or the store.
    async fn version(&self, tx: &mut ReadTx, sequence_id: &str, version: i64) -> Result<Arc<SequenceVersion>> {
        let key = (sequence_id.to_owned(), version);
        if let Some(found) = self.inner.versions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
            return Ok(found.clone());
        }
        let loaded = Arc::new(tx.sequence_version(sequence_id, version).await?);
        self.inner.versions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, loaded.clone());
        Ok(loaded)
    }

    /// Processes everything due now once: out-of-office returns, then one
    /// batch of due actions. Returns how many were handled.
    ///
    /// # Errors
    ///
    /// A store error while claiming; errors of single actions are logged and
    /// their leases left to expire, so they are tried again.
    pub async fn tick(&self) -> Result<usize> {
        let resumed = self.resume_returning(self.now()).await?;
        let batch = self.claim_batch().await?;
        let count = batch.len();
        let answers = self.process_batch(batch).await;
        self.write_batch(answers).await?;
        Ok(count + resumed)
    }

    /// Processes due actions until a claim finds none, the stages of
    /// consecutive batches overlapping: while one batch's plugins run, the
    /// next batch is claimed and read and the answers of the one before are
    /// written. Returns how many actions and returns were handled.
    ///
    /// Overlapping is safe because a claimed action is leased until its
    /// answer is written: the next claim cannot take it, nor the next
    /// action of its enrollment, which becomes current only then.
    ///
    /// # Errors
    ///
    /// As [`Engine::tick`]; answers already decided are written first.
    async fn pump(&self) -> Result<usize> {
        let mut handled = self.resume_returning(self.now()).await?;
        let mut batch = self.claim_batch().await?;
        let mut answers = Vec::new();
        while !batch.is_empty() {
            handled += batch.len();
            let (decided, written, claimed) =
                tokio::join!(self.process_batch(batch), self.write_batch(answers), self.claim_batch());
            answers = decided;
            match (written, claimed) {
                (Ok(()), Ok(next)) => batch = next,
                (Err(error), _) | (_, Err(error)) => {
                    // What was decided is written before giving up.
                    self.write_batch(answers).await?;
                    return Err(error);
                }
            }
        }
        self.write_batch(answers).await?;
        Ok(handled)
    }

    /// Claims a batch of due actions and reads what processing them looks
    /// at. An action whose records cannot be read is left to its lease.
    async fn claim_batch(&self) -> Result<Vec<(ClaimedAction, Snapshot)>> {
        let now = self.now();
        let started = std::time::Instant::now();
        let claimed = self.inner.claims.claim(&self.inner.store, now, self.inner.config.lease).await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let read = std::time::Instant::now();
        self.inner.stages.record(Stage::Claim, read - started);
        self.inner.stages.batch(claimed.len());
        let snapshots = self.load_snapshots(&claimed).await?;
        self.inner.stages.record(Stage::Read, read.elapsed());
        Ok(claimed
            .into_iter()
            .zip(snapshots)
            .filter_map(|(action, snapshot)| match snapshot {
                Ok(snapshot) => Some((action, snapshot)),
                Err(error) => {
                    tracing::warn!(action = %action.id, %error, "cannot read the action; it is retried when its lease expires");
                    None
                }
            })
            .collect())
    }

    /// Processes a claimed batch, each action on its own task on the plugin
    /// executor (off the threads that answer HTTP, and with no hop between
    /// threads for its plugin calls), at most `concurrency` at once: the
    /// checks ([`Engine::triage`]) and then its plugin
    /// ([`Engine::run_plugin`]). An action whose lease no longer covers its
    /// calls when its turn comes is given back ([`Engine::lease_covers`]).
    /// Returns the answers to write.
    async fn process_batch(&self, batch: Vec<(ClaimedAction, Snapshot)>) -> Vec<Decided> {
        if batch.is_empty() {
            return Vec::new();
        }
        let started = std::time::Instant::now();
        let claimed = batch.len();
        let mut answers = Vec::with_capacity(batch.len());
        let mut released = Vec::new();
        let processed = self.on_executor(batch, |engine, (action, snapshot)| async move {
            let id = action.id.clone();
            engine.process(action, snapshot).await.map_err(|error| (id, error))
        });
        for processed in processed.await {
            match processed {
                Ok(Processed::Answered(decided)) => answers.extend(decided.map(|d| *d)),
                Ok(Processed::Released { id, lease }) => released.push((id, lease)),
                Err((id, error)) => {
                    tracing::warn!(action = %id, %error, "processing failed; the action is retried when its lease expires");
                }
            }
        }
        self.release_leases(released).await;
        self.inner.stages.record(Stage::Process, started.elapsed());
        self.inner.claims.fit(self.inner.config.concurrency, claimed, started.elapsed());
        answers
    }

    /// Whether an action leased until `expires` may still begin `calls`
    /// plugin calls, one after the other, at `now`: each may take the
    /// call timeout, and its answer must be written before the lease
    /// ends, or another host could take the action and run it again. A
    /// lease too short for all of them lets the calls begin in its first
    /// half.
    pub(crate) fn lease_covers(&self, expires: DateTime<Utc>, now: DateTime<Utc>, calls: usize) -> bool {
        done_in_time(now, self.time_for_calls(calls).min(self.inner.config.lease / 2), expires)
    }

    /// The longest `calls` plugin calls one after the other and the writing
    /// of their answer may take.
    fn time_for_calls(&self, calls: usize) -> Duration {
        let timeout = self.registry().runtime().limits().call_timeout;
        timeout.saturating_mul(u32::try_from(calls).unwrap_or(u32::MAX)).saturating_add(WRITE_ROOM)
    }

    /// Gives back, in one transaction, the leases of actions claimed but
    /// not begun, for the next claim to take them at once. If that fails
    /// they are taken when their leases expire.
    async fn release_leases(&self, released: Vec<(String, String)>) {
        if released.is_empty() {
            return;
        }
        tracing::debug!(actions = released.len(), "leases given back: too little of them was left to run the actions");
        let now = self.now();
        let given = async {
            let leases: Vec<(&str, &str)> = released.iter().map(|(id, lease)| (id.as_str(), lease.as_str())).collect();
            let mut tx = self.store().begin().await?;
            tx.release_leases(&leases, now).await?;
            tx.commit().await?;
            Ok::<_, EngineError>(())
        };
        if let Err(error) = given.await {
            tracing::warn!(%error, "leases were not given back; their actions are taken when the leases expire");
        }
        self.inner.wake.notify_one();
    }

    /// Runs `work` on each of `items` as its own task on the plugin
    /// executor, at most `concurrency` at once; returns what they gave, in
    /// the order they finished.
    async fn on_executor<I, F, Fut, T>(&self, items: Vec<I>, work: F) -> Vec<T>
    where
        F: Fn(Engine, I) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let mut tasks = tokio::task::JoinSet::new();
        let executor = self.registry().runtime().executor().clone();
        let mut done = Vec::with_capacity(items.len());
        for item in items {
            let permit = self.inner.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
            let task = work(self.clone(), item);
            tasks.spawn_on(
                async move {
                    let _permit = permit;
                    task.await
                },
                &executor,
            );
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(value) => done.push(value),
                Err(error) => tracing::error!(%error, "an action task panicked"),
            }
        }
        done
    }

    /// Processes everything due now, overlapping batches, then delivers
    /// the outbox. Returns how many actions and returns were handled.
    ///
    /// # Errors
    ///
    /// As [`Engine::tick`].
    pub async fn run_until_idle(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            // Answers written last may have made more actions due now.
            let handled = self.pump().await?;
            if handled == 0 {
                break;
            }
            total += handled;
        }
        self.dispatch_outbox().await?;
        self.deliver_webhooks().await?;
        Ok(total)
    }

    /// With a [`ManualClock`], moves time forward to `until`, stopping at
    /// every due time on the way and processing what is due there, as the
    /// real scheduler would. Returns how many actions were handled.
    ///
    /// # Errors
    ///
    /// As [`Engine::tick`].
    pub async fn run_until(&self, clock: &ManualClock, until: DateTime<Utc>) -> Result<usize> {
        let mut total = self.run_until_idle().await?;
        loop {
            let next = match (self.next_wakeup().await?, self.store().next_webhook_delivery_at().await?) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next {
                Some(next) if next <= until => {
                    clock.set(next);
                    total += self.run_until_idle().await?;
                    // A due time in the past that still holds work would
                    // loop forever; it cannot, since processing moves every
                    // claimed action's due date or ends it.
                }
                _ => break,
            }
        }
        clock.set(until);
        total += self.run_until_idle().await?;
        Ok(total)
    }

    /// When the scheduler next has something to do.
    async fn next_wakeup(&self) -> Result<Option<DateTime<Utc>>> {
        let due = self.inner.store.next_due_at().await?;
        let resume = self.inner.store.next_resume_at().await?;
        Ok(match (due, resume) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// The scheduler and the outbox dispatcher, until `shutdown` resolves.
    /// In-flight actions finish before it returns.
    ///
    /// # Errors
    ///
    /// Never while the database answers; store errors are logged and the
    /// loop goes on after a pause.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let (stop_dispatcher, dispatcher_stopped) = tokio::sync::watch::channel(false);
        let webhooks = {
            let engine = self.clone();
            let stop = dispatcher_stopped.clone();
            tokio::spawn(async move { engine.deliver_webhooks_forever(stop).await })
        };
        let dispatcher = {
            let engine = self.clone();
            tokio::spawn(async move { engine.dispatch_forever(dispatcher_stopped).await })
        };
        let add_ons = {
            let engine = self.clone();
            tokio::spawn(async move { engine.sync_add_ons_forever().await })
        };
        let listener = {
            let engine = self.clone();
            tokio::spawn(async move { engine.listen_forever().await })
        };
        let health = {
            let engine = self.clone();
            tokio::spawn(async move { engine.snapshot_health_forever().await })
        };
        tokio::pin!(shutdown);
        loop {
            let sleep = match self.pump().await {
                Ok(handled) if handled > 0 => Duration::ZERO,
                Ok(_) => self.idle_time().await,
                Err(error) => {
                    tracing::error!(%error, "the scheduler could not claim work");
                    Duration::from_secs(1)
                }
            };
            // Biased: a shutdown is seen even while work keeps coming.
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(sleep) => {}
                () = self.inner.wake.notified() => {}
            }
        }
        // The dispatcher finishes the message in flight (a message cut off
        // mid-handover could not be sent again), then stops.
        let _ = stop_dispatcher.send(true);
        if let Err(error) = dispatcher.await {
            tracing::error!(%error, "the outbox dispatcher panicked");
        }
        // Deliveries in flight finish (or their lease lets another host
        // send them again under the same id).
        if let Err(error) = webhooks.await {
            tracing::error!(%error, "the webhook dispatcher panicked");
        }
        add_ons.abort();
        listener.abort();
        health.abort();
        Ok(())
    }

    /// How long the scheduler may sleep: until the next due time, at most
    /// `max_idle`.
    async fn idle_time(&self) -> Duration {
        let max = self.inner.config.max_idle;
        match self.next_wakeup().await {
            Ok(Some(next)) => (next - self.now()).to_std().unwrap_or(Duration::ZERO).min(max),
            Ok(None) => max,
            Err(error) => {
                tracing::error!(%error, "the scheduler could not read the next due time");
                max
            }
        }
    }

    /// Delivers the outbox until `stop` turns true, between two messages.
    async fn dispatch_forever(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        while !*stop.borrow() {
            match self.dispatch_batch(Some(&stop)).await {
                Ok(sent) if sent > 0 => continue,
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "the outbox dispatcher failed"),
            }
            tokio::select! {
                // A dropped sender (the scheduler gone) stops it too.
                changed = stop.changed() => if changed.is_err() { break },
                () = tokio::time::sleep(self.inner.config.max_idle) => {}
                () = self.inner.outbox_wake.notified() => {}
            }
        }
    }
}
