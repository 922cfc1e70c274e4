//! The one wasmtime engine of the host: how it is configured, how plugins
//! are loaded, and how every call is bounded and classified.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    CallHook, Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline, WasmBacktrace,
};

use super::directory::Directory;
use super::error::{CallError, LoadError, PluginError};
use super::limits::{LimitExceeded, Limits};
use super::loader::{ArtifactCache, Inspection, inspect};
use super::net::{HttpClient, NetPolicy};
use super::report::CallReport;
use super::state::{AccountGrant, CallState, Invocation};
use super::types::{Capability, ConfigProblem, EngageItem, Manifest, Outcome, PluginKind, StepContext};
use super::wit::{self, Request, Response, Versioned};
use stepwise_domain::crm::Subject;

/// How the runtime is set up.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Limits of every call.
    pub limits: Limits,
    /// Rules of outbound HTTP.
    pub net: NetPolicy,
    /// Where compiled artifacts are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Threads plugin calls run on, apart from every other task of the
    /// process; `None`: one per core.
    pub threads: Option<usize>,
}

/// How often the epoch advances. At every tick a running guest yields to
/// the executor and its deadline is checked against the clock, so this
/// bounds how late a runaway guest is stopped and how long it holds a
/// thread without letting another task run.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The threads plugin calls run on: a runtime of their own, so that a guest
/// that spins never holds a thread that answers HTTP. The scheduler runs
/// its actions there too, so that its calls need no hop between threads.
struct Executor {
    id: usize,
    runtime: Option<tokio::runtime::Runtime>,
}

thread_local! {
    /// The executor whose worker this thread is (0: none).
    static EXECUTOR: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Executor {
    fn new(threads: Option<usize>) -> Result<Executor, StartError> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let threads =
            threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, std::num::NonZero::get)).max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("stepwise-plugin")
            .on_thread_start(move || EXECUTOR.with(|e| e.set(id)))
            .enable_all()
            .build()
            .map_err(StartError::Executor)?;
        Ok(Executor { id, runtime: Some(runtime) })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.as_ref().expect("the executor lives as long as the runtime").handle()
    }

    /// Whether the calling thread is one of this executor's.
    fn is_current(&self) -> bool {
        EXECUTOR.with(std::cell::Cell::get) == self.id
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, which an async context
        // (where the last `Runtime` may well be dropped) must never do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The plugin runtime: one engine, one linker, the HTTP client plugins reach
/// the network through, and a bound on concurrent calls. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("limits", &self.inner.limits).finish_non_exhaustive()
    }
}

struct Inner {
    engine: Engine,
    linker: Linker<CallState>,
    limits: Arc<Limits>,
    http: Arc<HttpClient>,
    cache: Option<ArtifactCache>,
    permits: Semaphore,
    /// Each account's share of the permits, made on its first call.
    accounts: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
    executor: Executor,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// A loaded plugin, ready to call.
pub struct Plugin {
    manifest: Manifest,
    inspection: Inspection,
    declared: Arc<[Capability]>,
    pre: Versioned,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version)
            .field("wit_version", &self.inspection.wit_version)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The plugin's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The contract version it was built for.
    pub fn wit_version(&self) -> &'static str {
        self.inspection.wit_version
    }

    /// SHA-256 of its bytes, hex.
    pub fn digest(&self) -> &str {
        &self.inspection.digest
    }

    /// Its size in bytes.
    pub fn size(&self) -> usize {
        self.inspection.size
    }
}

/// A successful call: the plugin's answer and what the call did.
#[derive(Debug, Clone)]
pub struct Call<T> {
    /// The answer.
    pub value: T,
    /// Host calls, logs, messages, changes, time and memory.
    pub report: CallReport,
}

/// Why a [`Runtime`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The wasmtime engine refused its configuration (for example a pool
    /// larger than the address space).
    #[error("the plugin engine cannot be configured: {0}")]
    Engine(String),
    /// The host interfaces could not be linked.
    #[error("the host interfaces cannot be linked: {0}")]
    Linker(String),
    /// The HTTP client behind `http-fetch` could not be built.
    #[error("the plugins' HTTP client cannot be built: {0}")]
    Http(#[from] super::net::NetError),
    /// The threads plugin calls run on could not start.
    #[error("the plugin executor cannot start: {0}")]
    Executor(#[source] std::io::Error),
    /// The artifact cache's directory cannot be made.
    #[error("the artifact cache directory `{}` cannot be made: {source}", dir.display())]
    CacheDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Runtime {
    /// Builds the engine and starts its epoch ticker.
    ///
    /// # Errors
    ///
    /// When the engine cannot be configured as asked (for example a pool
    /// larger than the address space) or the cache directory cannot be made.
    pub fn new(config: RuntimeConfig) -> Result<Self, StartError> {
        let limits = config.limits;
        let engine = Engine::new(&engine_config(&limits)).map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| StartError::Linker(format!("{e:#}")))?;
        wit::add_to_linker(&mut linker).map_err(|e| StartError::Linker(format!("{e:#}")))?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(
                ArtifactCache::new(dir, &engine).map_err(|source| StartError::CacheDir { dir: dir.clone(), source })?,
            ),
            None => None,
        };
        let stop_ticker = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), stop_ticker.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                http: Arc::new(HttpClient::new(config.net)?),
                cache,
                permits: Semaphore::new(limits.concurrent_calls as usize),
                accounts: std::sync::Mutex::default(),
                executor: Executor::new(config.threads)?,
                limits: Arc::new(limits),
                stop_ticker,
            }),
        })
    }

    /// The operator's network policy, which `http-fetch` enforces.
    pub fn net_policy(&self) -> &NetPolicy {
        self.inner.http.policy()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The semaphore of `account`'s share of the call slots.
    fn account_permits(&self, account: &str) -> Arc<Semaphore> {
        let share = self.inner.limits.concurrent_calls_per_account.clamp(1, self.inner.limits.concurrent_calls.max(1));
        let mut accounts = self.inner.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A lookup per call; the key is copied on an account's first call only.
        if let Some(permits) = accounts.get(account) {
            return permits.clone();
        }
        let permits = Arc::new(Semaphore::new(share as usize));
        accounts.insert(account.to_owned(), permits.clone());
        permits
    }

    /// The runtime plugin calls run on, apart from the threads that answer
    /// HTTP: work that makes many calls (the scheduler's) runs there too.
    pub fn executor(&self) -> &tokio::runtime::Handle {
        self.inner.executor.handle()
    }

    /// Loads a component: checks its world and contract version, compiles
    /// it (or takes the cached artifact), links it and reads its manifest.
    ///
    /// # Errors
    ///
    /// A [`LoadError`] naming what is wrong with the component.
    pub async fn load(&self, bytes: &[u8]) -> Result<Arc<Plugin>, LoadError> {
        let inspection = inspect(bytes)?;
        let component = self.compile(&inspection, bytes).await?;
        let instance_pre =
            self.inner.linker.instantiate_pre(&component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = Versioned::new(inspection.wit_version, instance_pre, inspection.kind)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let mut plugin = Plugin {
            manifest: placeholder_manifest(inspection.kind),
            inspection,
            declared: Arc::from(Vec::new()),
            pre,
        };
        let invocation = Invocation::detached(AccountGrant::none());
        let call =
            self.invoke(&plugin, invocation, Request::Describe, 0).await.map_err(|e| LoadError::Describe(e.error))?;
        let Response::Manifest(manifest) = call.value else { unreachable!("describe answers with a manifest") };
        check_manifest(&manifest, plugin.inspection.kind)?;
        plugin.declared = Arc::from(manifest.capabilities.clone());
        plugin.manifest = manifest;
        Ok(Arc::new(plugin))
    }

    async fn compile(&self, inspection: &Inspection, bytes: &[u8]) -> Result<Component, LoadError> {
        let engine = self.inner.engine.clone();
        let cache = self.inner.cache.clone();
        let digest = inspection.digest.clone();
        let bytes = bytes.to_vec();
        // Compiling takes long enough to stall other tasks on this thread.
        tokio::task::spawn_blocking(move || match cache {
            Some(cache) => cache.load_or_compile(&engine, &digest, &bytes),
            None => Component::new(&engine, &bytes).map_err(|e| LoadError::Compile(format!("{e:#}"))),
        })
        .await
        .map_err(|e| LoadError::Compile(e.to_string()))?
    }

    /// Validates a step's configuration, under `invocation` (see
    /// [`Invocation::validating`]).
    ///
    /// # Errors
    ///
    /// A [`CallError`] when the plugin could not answer.
    pub async fn validate_config(
        &self,
        plugin: &Plugin,
        invocation: Invocation,
        config: &str,
    ) -> Result<Call<Vec<ConfigProblem>>, CallError> {
        let call = self.invoke(plugin, invocation, Request::Validate(config), config.len()).await?;
        match call.value {
            Response::Problems(problems) => Ok(Call { value: problems, report: call.report }),
            _ => unreachable!("validate answers with problems"),
        }
    }

    /// Prepares the to-do item of a manual step.
    ///
    /// # Errors
    ///
    /// A [`CallError`] when the plugin could not answer.
    pub async fn prepare(
        &self,
        plugin: &Plugin,
        invocation: Invocation,
        config: &str,
    ) -> Result<Call<Result<EngageItem, String>>, CallError> {
        let size = input_size(config, &invocation.subject);
        let call = self.invoke(plugin, invocation, Request::Prepare(config), size).await?;
        match call.value {
            Response::Item(item) => Ok(Call { value: item, report: call.report }),
            _ => unreachable!("prepare answers with an item"),
        }
    }

    /// Executes a step.
    ///
    /// # Errors
    ///
    /// A [`CallError`] when the plugin could not answer; a step that fails
    /// on its own terms answers [`Outcome::Failed`] instead.
    pub async fn execute(
        &self,
        plugin: &Plugin,
        invocation: Invocation,
        config: &str,
    ) -> Result<Call<Outcome>, CallError> {
        let size = input_size(config, &invocation.subject);
        let call = self.invoke(plugin, invocation, Request::Execute(config), size).await?;
        match call.value {
            Response::Outcome(outcome) => Ok(Call { value: outcome, report: call.report }),
            _ => unreachable!("execute answers with an outcome"),
        }
    }

    /// Evaluates a predicate.
    ///
    /// # Errors
    ///
    /// A [`CallError`] when the plugin could not answer.
    pub async fn evaluate(
        &self,
        plugin: &Plugin,
        invocation: Invocation,
        config: &str,
    ) -> Result<Call<Result<bool, String>>, CallError> {
        let size = input_size(config, &invocation.subject);
        let call = self.invoke(plugin, invocation, Request::Evaluate(config), size).await?;
        match call.value {
            Response::Verdict(verdict) => Ok(Call { value: verdict, report: call.report }),
            _ => unreachable!("evaluate answers with a verdict"),
        }
    }

    /// Runs one call in a fresh store, within every limit.
    async fn invoke(
        &self,
        plugin: &Plugin,
        invocation: Invocation,
        request: Request<'_>,
        input_size: usize,
    ) -> Result<Call<Response>, CallError> {
        let inner = &*self.inner;
        let limits = &inner.limits;
        let started = Instant::now();
        let version = plugin.manifest().version.clone();
        let fail = |error: PluginError, mut report: CallReport| {
            report.wall = started.elapsed();
            report.plugin_version = Some(version.clone());
            Err(CallError { error, report: Box::new(report) })
        };
        if input_size > limits.input_bytes {
            let error = PluginError::InputTooLarge { size: input_size, limit: limits.input_bytes };
            return fail(error, CallReport::default());
        }
        let wrong_kind = match (&request, plugin.inspection.kind) {
            (Request::Evaluate(_), PluginKind::Action) => Some("a step plugin cannot evaluate criteria"),
            (Request::Prepare(_) | Request::Execute(_), PluginKind::Predicate) => {
                Some("a predicate plugin cannot prepare or execute a step")
            }
            _ => None,
        };
        if let Some(message) = wrong_kind {
            return fail(PluginError::WrongKind(message.to_owned()), CallReport::default());
        }

        // An account's own share first, so that one account's queue never
        // holds the slots others wait for; then a slot. The semaphores are
        // never closed, so acquiring only waits.
        let account = &invocation.step.account_id;
        let _account_permit = match account.is_empty() {
            true => None,
            false => self.account_permits(account).acquire_owned().await.ok(),
        };
        let _permit = inner.permits.acquire().await.ok();
        let (pre, request) = (plugin.pre.clone(), OwnedRequest::from(&request));
        let (engine, limits_of_call) = (inner.engine.clone(), inner.limits.clone());
        let (declared, http) = (plugin.declared.clone(), inner.http.clone());
        let deadline = started + limits.call_timeout;
        let run = async move {
            let state = CallState::new(&limits_of_call, declared, invocation, http);
            let mut store = Store::new(&engine, state);
            store.limiter(|state| &mut state.limiter);
            // What a guest hands the host is refused from its length, before
            // it is copied: the arguments of a host call within what was
            // left of the data budget when the guest was last entered or
            // left (the budget itself is charged after), the answer within
            // the output limit.
            store.call_hook(|mut cx, hook| {
                let entering = match hook {
                    CallHook::CallingWasm => true,
                    CallHook::ReturningFromWasm => false,
                    CallHook::CallingHost | CallHook::ReturningFromHost => return Ok(()),
                };
                let budget = cx.data_mut().cross(entering);
                cx.set_hostcall_fuel(budget);
                Ok(())
            });
            // At every epoch tick a spinning guest yields to the executor
            // and is stopped once its deadline has passed, by the clock.
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| {
                Ok(if Instant::now() >= deadline {
                    UpdateDeadline::Interrupt
                } else {
                    UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
                })
            });
            // The timer stops a call stuck in a host function, which epochs
            // cannot interrupt.
            let call = pre.call(&mut store, request.as_request());
            let outcome = tokio::time::timeout_at(deadline.into(), call).await;
            let stderr_tail = store.data().stderr_tail();
            (outcome, stderr_tail, store.into_data().into_report())
        };
        // On the executor already (the scheduler's actions run there), the
        // call runs in place; from anywhere else, it moves there.
        let done = if inner.executor.is_current() { Ok(run.await) } else { inner.executor.handle().spawn(run).await };
        let (outcome, stderr_tail, mut report) = match done {
            Ok(done) => done,
            Err(error) => {
                let message = if error.is_panic() { "the call panicked in the host" } else { "the call was cancelled" };
                return fail(PluginError::Instantiate(message.to_owned()), CallReport::default());
            }
        };
        report.wall = started.elapsed();
        report.plugin_version = Some(version.clone());
        match outcome {
            Err(_elapsed) => fail(PluginError::Timeout { limit: limits.call_timeout }, report),
            Ok(Err(error)) => fail(classify(&error, limits, &stderr_tail), report),
            Ok(Ok((_, size))) if size > limits.output_bytes => {
                fail(PluginError::OutputTooLarge { size: Some(size), limit: limits.output_bytes }, report)
            }
            Ok(Ok((value, _))) => Ok(Call { value, report }),
        }
    }
}

/// A [`Request`] that owns its config, to cross onto the executor.
enum OwnedRequest {
    Describe,
    Validate(String),
    Prepare(String),
    Execute(String),
    Evaluate(String),
}

impl OwnedRequest {
    fn from(request: &Request<'_>) -> OwnedRequest {
        match *request {
            Request::Describe => OwnedRequest::Describe,
            Request::Validate(c) => OwnedRequest::Validate(c.to_owned()),
            Request::Prepare(c) => OwnedRequest::Prepare(c.to_owned()),
            Request::Execute(c) => OwnedRequest::Execute(c.to_owned()),
            Request::Evaluate(c) => OwnedRequest::Evaluate(c.to_owned()),
        }
    }

    fn as_request(&self) -> Request<'_> {
        match self {
            OwnedRequest::Describe => Request::Describe,
            OwnedRequest::Validate(c) => Request::Validate(c),
            OwnedRequest::Prepare(c) => Request::Prepare(c),
            OwnedRequest::Execute(c) => Request::Execute(c),
            OwnedRequest::Evaluate(c) => Request::Evaluate(c),
        }
    }
}

/// Tells the limits and traps apart.
fn classify(error: &wasmtime::Error, limits: &Limits, stderr_tail: &str) -> PluginError {
    if is_over_lift_budget(error) {
        // Raised in a host call, the error unwound through the guest's
        // frames and carries their backtrace; raised lifting the answer,
        // after the guest returned, it does not.
        return match error.downcast_ref::<WasmBacktrace>() {
            Some(_) => PluginError::HostDataLimit { limit: limits.host_data_bytes },
            None => PluginError::OutputTooLarge { size: None, limit: limits.output_bytes },
        };
    }
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return match *limit {
            LimitExceeded::Memory { wanted, limit } => PluginError::MemoryLimit { wanted, limit },
            LimitExceeded::TableElements { limit, .. } => PluginError::TableLimit { limit },
            LimitExceeded::Log { limit } => PluginError::LogLimit { limit },
            LimitExceeded::HostData { limit } => PluginError::HostDataLimit { limit },
            LimitExceeded::HostCalls { limit } => PluginError::HostCallLimit { limit },
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout { limit: limits.call_timeout },
        Some(trap) => {
            let mut message = trap.to_string();
            if *trap == Trap::MemoryOutOfBounds {
                // A Rust guest's stack grows down into its own data: an
                // overflow shows as an access out of bounds.
                message.push_str(" (probably a stack overflow: deep recursion in the plugin)");
            }
            if !stderr_tail.is_empty() {
                message = format!("{message}; stderr: {stderr_tail}");
            }
            PluginError::Trap { message }
        }
        None => PluginError::Instantiate(format!("{error:#}")),
    }
}

/// Whether wasmtime refused to lift data longer than the budget the call
/// hook set. Its error type is private; its message is the stable part, and
/// the oversized-output tests fail if it changes.
fn is_over_lift_budget(error: &wasmtime::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.to_string().starts_with("too much data is being copied between the host and the guest"))
}

fn engine_config(limits: &Limits) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.memory_init_cow(true);
    let slots = limits.concurrent_calls.max(1);
    let per_component = u32::try_from(limits.instances).unwrap_or(u32::MAX);
    let tables = u32::try_from(limits.tables).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(per_component))
        .total_memories(slots.saturating_mul(2))
        .total_tables(slots.saturating_mul(tables))
        .total_stacks(slots)
        .max_core_instances_per_component(per_component)
        .max_memories_per_component(2)
        .max_tables_per_component(tables)
        .max_memory_size(limits.memory_bytes)
        .table_elements(limits.table_elements);
    // How a slot is wiped when a call ends. By default the pool gives every
    // touched page of a memory or table back with `madvise`, which on a
    // multi-threaded host means a TLB shootdown (an interrupt to every other
    // core) per call, and a page fault for every page the next call touches.
    // Instead, dirty pages are found with the `PAGEMAP_SCAN` ioctl and reset
    // in place: zeroed, or copied back from the module's initial image. Only
    // pages the call wrote are touched, and anything beyond the resident
    // budget is still decommitted, so the next call sees exactly the pristine
    // contents either way.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
    } else {
        // Without the scan, resetting in place means zeroing the whole budget
        // on every call; that pays off only for a table's first page.
        pool.table_keep_resident(TABLE_KEEP_RESIDENT_WITHOUT_SCAN);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Bytes of a linear memory's dirty pages reset in place rather than
/// decommitted, when dirty pages can be found (see [`engine_config`]). Covers
/// the stack, data and a small heap of a typical guest.
const MEMORY_KEEP_RESIDENT: usize = 1 << 20;

/// The same for a table.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Bytes of a table zeroed in place when dirty pages cannot be found: one
/// page, which holds the tables of most guests.
const TABLE_KEEP_RESIDENT_WITHOUT_SCAN: usize = 4 << 10;

fn spawn_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new().name("stepwise-epoch".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
        }
    });
    if let Err(error) = spawned {
        // Without a ticker, deadlines fall back to the tokio timeout alone.
        tracing::error!(%error, "cannot start the epoch ticker");
    }
}

fn input_size(config: &str, subject: &Subject) -> usize {
    config.len() + subject.approx_size()
}

fn placeholder_manifest(kind: PluginKind) -> Manifest {
    Manifest {
        id: String::new(),
        version: String::new(),
        kind,
        title: String::new(),
        description: String::new(),
        config_schema: serde_json::Value::Null,
        channel: None,
        default_activation: super::types::Activation::Automatic,
        results: Vec::new(),
        capabilities: Vec::new(),
    }
}

fn check_manifest(manifest: &Manifest, kind: PluginKind) -> Result<(), LoadError> {
    let bad = |message: String| Err(LoadError::InvalidManifest(message));
    let id_ok = !manifest.id.is_empty()
        && manifest.id.len() <= 64
        && manifest.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !manifest.id.starts_with('-');
    if !id_ok {
        return bad(format!("id `{}` must be 1 to 64 lowercase letters, digits and dashes", manifest.id));
    }
    if manifest.kind != kind {
        return bad(format!("kind {:?} does not match the exported world {kind:?}", manifest.kind));
    }
    let version_ok = manifest.version.split('.').count() == 3
        && manifest.version.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !version_ok {
        return bad(format!("version `{}` is not MAJOR.MINOR.PATCH", manifest.version));
    }
    if !manifest.config_schema.is_object() && !manifest.config_schema.is_boolean() {
        return bad("config-schema must be a JSON Schema object".to_owned());
    }
    let mut seen = std::collections::BTreeSet::new();
    for result in &manifest.results {
        let code_ok = !result.code.is_empty()
            && result.code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !code_ok {
            return bad(format!("result code `{}` must be snake_case", result.code));
        }
        if !seen.insert(result.code.as_str()) {
            return bad(format!("result code `{}` is declared twice", result.code));
        }
        if result.ends_enrollment != result.outcome.is_some() {
            return bad(format!("result `{}` must name an outcome exactly when it ends the enrollment", result.code));
        }
    }
    if kind == PluginKind::Action && manifest.results.is_empty() {
        return bad("a step must declare at least one result".to_owned());
    }
    Ok(())
}

impl Invocation {
    /// An invocation outside any enrollment, for `describe` and
    /// `validate-config`.
    pub fn detached(grant: AccountGrant) -> Self {
        Self::detached_arc(Arc::new(grant))
    }

    fn detached_arc(grant: Arc<AccountGrant>) -> Self {
        Self {
            grant,
            step: StepContext::default(),
            subject: Subject::default(),
            directory: Arc::new(super::directory::StaticDirectory::default()),
            effects: None,
        }
    }

    /// An invocation checking a step's configuration as `account_id` saves
    /// it: no enrollment and no subject, `grant` in force (normally
    /// [`AccountGrant::for_validation`]), and the account's users and
    /// contact types found in `directory`.
    pub fn validating(grant: Arc<AccountGrant>, account_id: &str, directory: Arc<dyn Directory>) -> Self {
        let step = StepContext { account_id: account_id.to_owned(), ..StepContext::default() };
        Self { grant, step, subject: Subject::default(), directory, effects: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_out_of_bounds_says_it_is_probably_a_stack_overflow() {
        let error = wasmtime::Error::new(Trap::MemoryOutOfBounds);
        let PluginError::Trap { message } = classify(&error, &Limits::default(), "") else { panic!("a trap") };
        assert!(message.contains("out of bounds") && message.contains("stack overflow"), "{message}");
        let error = wasmtime::Error::new(Trap::UnreachableCodeReached);
        let PluginError::Trap { message } = classify(&error, &Limits::default(), "") else { panic!("a trap") };
        assert!(!message.contains("stack overflow"), "{message}");
    }

    #[test]
    fn a_describe_that_timed_out_is_reported_once() {
        let limit = Duration::from_millis(500);
        let error = LoadError::Describe(PluginError::Timeout { limit });
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        assert_eq!(text.matches("timed out").count(), 1, "{text}");
    }
}
