//! The data of one call's store: WASI with nothing granted, the limiter,
//! and the host context every host call checks and records into.

use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::capability::{Denial, Grant, Need, authorize};
use super::directory::Directory;
use super::limits::{CallLimiter, LimitExceeded, Limits};
use super::net::{Allowlist, HttpClient, NetError};
use super::report::{CallReport, HostCall, HostCallResult, LogLevel, LogLine, LogSource};
use super::types::{Capability, Manifest, StepContext};
use stepwise_domain::crm::Subject;

/// What the engine hands a call: the grant in force, who the step concerns
/// and where it runs.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The account's grant for this plugin.
    pub grant: Arc<AccountGrant>,
    /// The step context.
    pub step: StepContext,
    /// Contact, owner and company.
    pub subject: Subject,
    /// Where user lookups go.
    pub directory: Arc<dyn Directory>,
    /// What must happen before an effect outside the host may begin;
    /// `None` lets every effect begin.
    pub effects: Option<Arc<dyn EffectGate>>,
}

/// The engine's say before a call's first effect outside the host that a
/// retry could repeat: it records that the action's effect may have begun,
/// so that a host dying after it leaves the evidence behind.
///
/// An outbound request that is safe (`GET`, `HEAD`) or idempotent by the
/// action's key (it carries `Idempotency-Key` with
/// [`StepContext::idempotency_key`], so a retry with the same key is
/// deduplicated by its receiver) needs no say. Messages need none either:
/// `send-email` and `send-sms` only put them in the call's report.
#[async_trait::async_trait]
pub trait EffectGate: std::fmt::Debug + Send + Sync {
    /// Asked once per call, before its first such request leaves. An error
    /// (the action's lease was lost, the record was not written) keeps the
    /// request from leaving; the plugin sees it as `denied`.
    async fn open(&self) -> Result<(), String>;
}

/// A grant with its HTTP allowlist parsed once.
#[derive(Debug, Clone, Default)]
pub struct AccountGrant {
    grant: Grant,
    allowlist: Allowlist,
}

impl AccountGrant {
    /// Parses the grant's allowlist.
    ///
    /// # Errors
    ///
    /// [`NetError::BadAllowlistEntry`] naming an
    /// allowlist entry that does not parse.
    pub fn new(grant: Grant) -> Result<Self, NetError> {
        let allowlist = Allowlist::parse(&grant.http_allow)?;
        Ok(Self { grant, allowlist })
    }

    /// A grant of nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// What a plugin is granted while it checks a step's configuration,
    /// wherever that happens (a sequence saved, the runner's `validate`):
    /// of what it declares, the capabilities that only read the account
    /// ([`Capability::reads_account`]: checking tokens, finding users,
    /// listing contact types and users), whatever its account grants, and
    /// nothing else. A config is checked against the account it is saved
    /// in; nothing leaves the host while it is.
    pub fn for_validation(manifest: &Manifest) -> Self {
        let capabilities = manifest.capabilities.iter().filter(|c| c.reads_account()).cloned().collect();
        Self { grant: Grant { capabilities, http_allow: Vec::new() }, allowlist: Allowlist::default() }
    }

    /// The grant.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }
}

/// The store data of one call.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: CallLimiter,
    pub(crate) host: HostCtx,
    stdout: CappedPipe,
    stderr: CappedPipe,
    /// How deep the host has called into the guest: 1 in the call itself,
    /// 2 in the guest's allocator while a host call hands its answer over.
    depth: usize,
}

impl CallState {
    pub(crate) fn new(
        limits: &Arc<Limits>,
        declared: Arc<[Capability]>,
        invocation: Invocation,
        http: Arc<HttpClient>,
    ) -> Self {
        let stdout = CappedPipe::new(limits.stdio_bytes);
        let stderr = CappedPipe::new(limits.stdio_bytes);
        // Nothing is granted: no preopened files, no environment, no
        // arguments, no sockets (the default denies every address, and TCP
        // and UDP are turned off besides). stdout and stderr go to capped
        // buffers that end up in the plugin's log.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: CallLimiter::new(limits),
            host: HostCtx {
                limits: limits.clone(),
                declared,
                invocation,
                http,
                log_used: 0,
                data_used: 0,
                calls_made: 0,
                messages_sent: 0,
                effects_open: false,
                report: CallReport::default(),
            },
            stdout,
            stderr,
            depth: 0,
        }
    }

    /// Notes a crossing into (`entering`) or out of the guest; returns the
    /// budget in bytes of what the host copies out of the guest's memory
    /// next. Wasmtime checks lengths against it before it copies anything
    /// (its "hostcall fuel"), so a guest cannot make the host allocate past
    /// a limit even once.
    ///
    /// Wasmtime reports the host's calls into the guest, not the guest's
    /// calls into the host, so the budget is set on the way in and out:
    /// leaving the guest for good (depth 0), its answer comes next, within
    /// the output limit; entering it, or leaving its allocator inside a host
    /// call, host-call arguments do, within what is left of the host-call
    /// data budget.
    pub(crate) fn cross(&mut self, entering: bool) -> usize {
        if entering {
            self.depth += 1;
        } else {
            self.depth = self.depth.saturating_sub(1);
        }
        match self.depth {
            0 => self.host.limits.output_bytes,
            _ => self.host.limits.host_data_bytes.saturating_sub(self.host.data_used),
        }
    }

    /// The report, with stdout and stderr appended as log lines.
    pub(crate) fn into_report(mut self) -> CallReport {
        for (pipe, source, level) in
            [(&self.stdout, LogSource::Stdout, LogLevel::Info), (&self.stderr, LogSource::Stderr, LogLevel::Warn)]
        {
            let text = pipe.text();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                self.host.report.logs.push(LogLine { source, level, message: line.to_owned() });
            }
        }
        self.host.report.peak_memory = self.limiter.peak_memory;
        self.host.report
    }

    /// The last lines written to stderr, such as a panic message.
    pub(crate) fn stderr_tail(&self) -> String {
        let text = self.stderr.text();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join("\n")
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The host side of one call: what it may do and what it did.
pub(crate) struct HostCtx {
    pub(crate) limits: Arc<Limits>,
    declared: Arc<[Capability]>,
    pub(crate) invocation: Invocation,
    pub(crate) http: Arc<HttpClient>,
    log_used: usize,
    data_used: usize,
    calls_made: usize,
    messages_sent: u32,
    effects_open: bool,
    pub(crate) report: CallReport,
}

impl HostCtx {
    /// Checks `need` for the host call `function`; a denial is recorded and
    /// returned for the plugin to see.
    pub(crate) fn authorize(&mut self, function: &str, detail: &str, need: Need) -> Result<(), Denial> {
        let result = authorize(&self.declared, self.invocation.grant.grant(), &need);
        if let Err(denial) = &result {
            tracing::info!(function, %denial, "plugin host call denied");
            self.record(function, detail, HostCallResult::Denied { reason: denial.to_string() });
        }
        result
    }

    /// Records a host call's result.
    pub(crate) fn record(&mut self, function: &str, detail: &str, result: HostCallResult) {
        self.report.host_calls.push(HostCall { function: function.to_owned(), detail: detail.to_owned(), result });
    }

    /// Counts a host call, before anything of it is done: every call counts,
    /// a denied or empty one too, so that neither the work nor the report of
    /// a plugin that calls in a loop can grow without bound.
    ///
    /// # Errors
    ///
    /// A trap carrying [`LimitExceeded::HostCalls`] once the count is spent.
    pub(crate) fn count_call(&mut self) -> wasmtime::Result<()> {
        self.calls_made = self.calls_made.saturating_add(1);
        if self.calls_made > self.limits.host_calls {
            return Err(wasmtime::Error::new(LimitExceeded::HostCalls { limit: self.limits.host_calls }));
        }
        Ok(())
    }

    /// Charges `bytes` to the host-call data budget.
    ///
    /// # Errors
    ///
    /// A trap carrying [`LimitExceeded::HostData`] once the budget is spent.
    pub(crate) fn charge(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.data_used = self.data_used.saturating_add(bytes);
        if self.data_used > self.limits.host_data_bytes {
            return Err(wasmtime::Error::new(LimitExceeded::HostData { limit: self.limits.host_data_bytes }));
        }
        Ok(())
    }

    /// Appends a log line.
    ///
    /// # Errors
    ///
    /// A trap carrying [`LimitExceeded::Log`] once the log budget is spent.
    pub(crate) fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.log_used = self.log_used.saturating_add(message.len());
        if self.log_used > self.limits.log_bytes {
            return Err(wasmtime::Error::new(LimitExceeded::Log { limit: self.limits.log_bytes }));
        }
        self.report.logs.push(LogLine { source: LogSource::Plugin, level, message });
        Ok(())
    }

    /// A message id that is the same on every attempt of the action.
    pub(crate) fn next_message_id(&mut self) -> String {
        self.messages_sent += 1;
        format!("msg_{}_{}", self.invocation.step.idempotency_key, self.messages_sent)
    }

    /// Asks the invocation's [`EffectGate`], once per call, before an
    /// effect outside the host begins.
    ///
    /// # Errors
    ///
    /// The gate's reason, when the effect must not begin.
    pub(crate) async fn open_effects(&mut self) -> Result<(), String> {
        if self.effects_open {
            return Ok(());
        }
        if let Some(gate) = &self.invocation.effects {
            gate.open().await?;
        }
        self.effects_open = true;
        Ok(())
    }

    /// Whether a request carries the action's idempotency key, so that a
    /// retry is deduplicated by the receiver.
    pub(crate) fn keyed(&self, headers: &[(String, String)]) -> bool {
        let key = &self.invocation.step.idempotency_key;
        !key.is_empty() && headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("idempotency-key") && v == key)
    }

    /// The parsed HTTP allowlist of the grant.
    pub(crate) fn allowlist(&self) -> &Allowlist {
        &self.invocation.grant.allowlist
    }
}

/// A stdout/stderr sink that keeps the first `capacity` bytes and silently
/// drops the rest, so that a chatty plugin is never killed by its prints.
#[derive(Clone)]
struct CappedPipe {
    capacity: usize,
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl CappedPipe {
    fn new(capacity: usize) -> Self {
        Self { capacity, buffer: Arc::new(Mutex::new(Vec::new())) }
    }

    fn text(&self) -> String {
        let buffer = self.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&buffer).into_owned()
    }

    fn push(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let room = self.capacity.saturating_sub(buffer.len());
        buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[async_trait::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
