//! The plugin runner: executes one plugin against fixture JSON with a
//! recording host and reports what it did and what it cost. It is what
//! `stepwise plugin inspect` and `stepwise plugin run` print.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::crm::{Company, Contact, Subject, User};
use crate::plugins::types::{Activation, Completion, Manifest, Outcome, PluginKind, StepContext};
use crate::plugins::{
    AccountGrant, CallReport, Directory, Grant, Inspection, Invocation, Plugin, Runtime, StaticDirectory, builtin,
    inspect,
};

/// Where a component comes from: a file, or `builtin:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A `.wasm` file.
    File(PathBuf),
    /// A built-in plugin by name.
    Builtin(String),
}

impl Source {
    /// Parses `builtin:task` or a path.
    pub fn parse(text: &str) -> Self {
        match text.strip_prefix("builtin:") {
            Some(name) => Source::Builtin(name.to_owned()),
            None => Source::File(PathBuf::from(text)),
        }
    }

    /// The component's bytes, at most `max` of them.
    ///
    /// # Errors
    ///
    /// When the file cannot be read, is larger than `max` (refused from its
    /// length, before it is read), or no built-in has that name.
    pub fn bytes(&self, max: usize) -> anyhow::Result<Vec<u8>> {
        match self {
            Source::File(path) => {
                use std::io::Read as _;
                let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
                let too_large = |size: u64| {
                    anyhow::anyhow!(
                        "{} is {size} bytes, over the limit of {max} bytes a component may have; \
                         raise it with --max-bytes",
                        path.display()
                    )
                };
                let size = file.metadata().with_context(|| format!("cannot read {}", path.display()))?.len();
                if size > max as u64 {
                    return Err(too_large(size));
                }
                let mut bytes = Vec::new();
                file.take(max as u64 + 1)
                    .read_to_end(&mut bytes)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if bytes.len() > max {
                    return Err(too_large(bytes.len() as u64));
                }
                Ok(bytes)
            }
            Source::Builtin(name) => {
                builtin::BUILTIN.iter().find(|(n, _)| n == name).map(|(_, bytes)| bytes.to_vec()).with_context(|| {
                    let names: Vec<_> = builtin::BUILTIN.iter().map(|(n, _)| *n).collect();
                    format!("no built-in plugin `{name}` (built-ins: {})", names.join(", "))
                })
            }
        }
    }
}

/// What `inspect` found.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// Size in bytes.
    pub size: usize,
    /// SHA-256, hex.
    pub digest: String,
    /// Contract version.
    pub wit_version: String,
    /// The manifest.
    pub manifest: Manifest,
}

impl InspectReport {
    /// A human-readable rendering.
    pub fn to_text(&self) -> String {
        let m = &self.manifest;
        let mut out = String::new();
        let _ = writeln!(out, "plugin       {} {} ({:?})", m.id, m.version, m.kind);
        let _ = writeln!(out, "title        {}", m.title);
        if !m.description.is_empty() {
            let _ = writeln!(out, "description  {}", m.description);
        }
        let _ = writeln!(out, "wit          stepwise:plugin@{}", self.wit_version);
        let _ = writeln!(out, "size         {} bytes", self.size);
        let _ = writeln!(out, "sha256       {}", self.digest);
        if m.kind == PluginKind::Action {
            let channel = m.channel.map_or("none".to_owned(), |c| format!("{c:?}").to_lowercase());
            let _ = writeln!(out, "channel      {channel}");
            let _ = writeln!(out, "activation   {:?}", m.default_activation);
            let _ = writeln!(out, "results");
            for r in &m.results {
                let ends = match r.outcome {
                    Some(o) => format!("ends the enrollment ({o:?})").to_lowercase(),
                    None => "continues".to_owned(),
                };
                let _ = writeln!(out, "  {:<16} {:<20} {ends}", r.code, r.title);
            }
        }
        let caps: Vec<_> = m.capabilities.iter().map(ToString::to_string).collect();
        let caps = if caps.is_empty() { "none".to_owned() } else { caps.join(", ") };
        let _ = writeln!(out, "capabilities {caps}");
        let schema = serde_json::to_string_pretty(&m.config_schema).unwrap_or_default();
        let _ = writeln!(out, "config schema\n{}", indent(&schema));
        out
    }
}

/// Inspects a component without running it beyond `describe`.
///
/// # Errors
///
/// When the component cannot be read or loaded.
pub async fn inspect_component(runtime: &Runtime, source: &Source, max_bytes: usize) -> anyhow::Result<InspectReport> {
    let bytes = source.bytes(max_bytes)?;
    let Inspection { size, digest, wit_version, .. } = inspect(&bytes)?;
    let plugin = runtime.load(&bytes).await?;
    Ok(InspectReport { size, digest, wit_version: wit_version.to_owned(), manifest: plugin.manifest().clone() })
}

/// What to do in `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `execute` for steps, `evaluate` for predicates.
    Auto,
    /// Validate the configuration.
    Validate,
    /// Prepare the to-do item.
    Prepare,
    /// Execute the step.
    Execute,
    /// Evaluate the predicate.
    Evaluate,
}

/// The fixtures and options of a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The step's configuration, JSON text.
    pub config: String,
    /// The subject: a contact, or `{"contact":…, "owner":…, "company":…}`.
    pub subject: Subject,
    /// Users the directory knows.
    pub users: Vec<User>,
    /// The account's contact types; a new account's when `None`.
    pub contact_types: Option<Vec<String>>,
    /// Grants, in command-line form.
    pub grants: Vec<String>,
    /// A result to complete a manual step with.
    pub result: Option<String>,
    /// Step context overrides ([`read_step`]).
    pub step: Option<StepOverrides>,
}

/// A step context read from a `--step` file, and whether it set the
/// activation (else the plugin's default applies).
#[derive(Debug, Clone, Default)]
pub struct StepOverrides {
    /// The context, defaults filled in.
    pub context: StepContext,
    /// Whether the file named `activation`.
    pub activation_set: bool,
}

/// The fields a `--step` file may set: those of a step context, read off
/// its serialized form so that they follow the type.
pub fn step_fields() -> Vec<String> {
    match serde_json::to_value(StepContext::default()) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// How a run ended; the process exits with its [`Verdict::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The plugin answered, and no host call was denied: exit 0.
    Ok,
    /// The plugin answered with a failure: a failed outcome, an error from
    /// `prepare` or `evaluate`, or problems in the configuration: exit 3.
    Failed,
    /// A host call was denied (not declared, not granted, or off the
    /// allowlist): exit 4.
    Denied,
    /// The call gave no answer: a trap, a limit (time, memory, log, input,
    /// output, host calls) or an answer the host could not read: exit 5.
    Broken,
}

impl Verdict {
    /// The process exit code. 1 is a run that could not start (a bad
    /// fixture, a component refused on load), 2 a bad command line.
    pub fn code(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::Failed => 3,
            Verdict::Denied => 4,
            Verdict::Broken => 5,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The plugin.
    pub plugin: String,
    /// What was called.
    pub mode: Mode,
    /// The step context the plugin was given (the `--step` overrides and
    /// the plugin's default activation filled in).
    pub step: StepContext,
    /// The answer, as JSON; absent when the call failed.
    pub answer: Option<serde_json::Value>,
    /// The error, when the call failed.
    pub error: Option<String>,
    /// How it ended.
    pub verdict: Verdict,
    /// Host calls, logs, messages, contact changes, time, memory.
    pub report: CallReport,
}

impl RunReport {
    /// A human-readable rendering.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "plugin     {}", self.plugin);
        let _ = writeln!(out, "mode       {:?}", self.mode);
        let s = &self.step;
        let _ = writeln!(
            out,
            "step       #{} attempt {}, {}{}",
            s.step_number,
            s.attempt,
            format!("{:?}", s.activation).to_lowercase(),
            s.completion.as_ref().map(|c| format!(", completed `{}`", c.result)).unwrap_or_default()
        );
        match (&self.answer, &self.error) {
            (_, Some(error)) => {
                let _ = writeln!(out, "error      {error}");
            }
            (Some(answer), None) => {
                let text = serde_json::to_string_pretty(answer).unwrap_or_default();
                let _ = writeln!(out, "answer\n{}", indent(&text));
            }
            (None, None) => {}
        }
        let r = &self.report;
        let _ = writeln!(out, "host calls ({})", r.host_calls.len());
        for call in &r.host_calls {
            let status = match &call.result {
                crate::plugins::report::HostCallResult::Ok => "ok".to_owned(),
                crate::plugins::report::HostCallResult::Denied { reason } => format!("DENIED: {reason}"),
                crate::plugins::report::HostCallResult::Error { code, message } => {
                    format!("error {code}: {message}")
                }
            };
            // One line per call: line breaks in a detail are shown escaped.
            let detail = call.detail.replace('\r', "\\r").replace('\n', "\\n");
            let _ = writeln!(out, "  {:<24} {:<40} {status}", call.function, detail);
        }
        let denied = r.denials().count();
        if denied > 0 {
            let _ = writeln!(out, "denied     {denied} host call(s)");
        }
        if !r.logs.is_empty() {
            let _ = writeln!(out, "log");
            for line in &r.logs {
                let _ = writeln!(out, "  [{:?}/{:?}] {}", line.source, line.level, line.message);
            }
        }
        for message in &r.messages {
            let _ = writeln!(out, "queued     {}", serde_json::to_string(message).unwrap_or_default());
        }
        for change in &r.contact_changes {
            let _ = writeln!(out, "contact    {}", serde_json::to_string(change).unwrap_or_default());
        }
        let _ = writeln!(out, "wall time  {:.3} ms", r.wall.as_secs_f64() * 1000.0);
        let _ = writeln!(out, "peak mem   {} KiB", r.peak_memory / 1024);
        let verdict = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Failed => "failed: the plugin answered with a failure",
            Verdict::Denied => "denied: a host call was refused",
            Verdict::Broken => "broken: the call gave no answer",
        };
        let _ = writeln!(out, "verdict    {verdict} (exit {})", self.verdict.code());
        out
    }
}

/// Loads the plugin and makes one call against the fixtures.
///
/// # Errors
///
/// When the component cannot be loaded or the fixtures are wrong. A call
/// that fails inside the plugin is not an error here: it is in the report.
pub async fn run(
    runtime: &Runtime,
    source: &Source,
    mode: Mode,
    max_bytes: usize,
    options: RunOptions,
) -> anyhow::Result<RunReport> {
    let bytes = source.bytes(max_bytes)?;
    let plugin: Arc<Plugin> = runtime.load(&bytes).await?;
    let grant = Arc::new(AccountGrant::new(Grant::parse_cli(&options.grants)?)?);
    let manifest = plugin.manifest();
    let mode = match (mode, manifest.kind) {
        (Mode::Auto, PluginKind::Action) => Mode::Execute,
        (Mode::Auto, PluginKind::Predicate) => Mode::Evaluate,
        (other, _) => other,
    };
    let overrides = options.step.clone().unwrap_or_default();
    let mut step = overrides.context;
    if !overrides.activation_set {
        step.activation = manifest.default_activation;
    }
    if let Some(result) = &options.result {
        if manifest.result(result).is_none() {
            let codes: Vec<_> = manifest.results.iter().map(|r| r.code.as_str()).collect();
            bail!("`{result}` is not a result of {} (results: {})", manifest.id, codes.join(", "));
        }
        step.activation = Activation::Manual;
        step.completion = Some(Completion { result: result.clone(), draft: None, user_id: "usr_runner".into() });
    }
    let mut directory = StaticDirectory::new(options.users);
    if let Some(names) = &options.contact_types {
        let names: Vec<&str> = names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()).collect();
        if names.is_empty() {
            bail!("--contact-types names no contact type");
        }
        directory = directory.with_contact_types(&names);
    }
    let directory: Arc<dyn Directory> = Arc::new(directory);
    let invocation = Invocation {
        grant: grant.clone(),
        step: step.clone(),
        subject: options.subject,
        directory: directory.clone(),
        effects: None,
    };
    let config = options.config.as_str();
    let (answer, error, failed, report) = match mode {
        // Checked as the server checks a saved step: granted what
        // validation is granted there, whatever `--grant` says.
        Mode::Validate => {
            let grant = Arc::new(AccountGrant::for_validation(manifest));
            let invocation = Invocation::validating(grant, &step.account_id, directory);
            split(runtime.validate_config(&plugin, invocation, config).await, |problems| !problems.is_empty())
        }
        Mode::Prepare => split(runtime.prepare(&plugin, invocation, config).await, Result::is_err),
        Mode::Execute | Mode::Auto => {
            split(runtime.execute(&plugin, invocation, config).await, |o| matches!(o, Outcome::Failed { .. }))
        }
        Mode::Evaluate => split(runtime.evaluate(&plugin, invocation, config).await, Result::is_err),
    };
    let verdict = if error.is_some() {
        Verdict::Broken
    } else if report.denials().next().is_some() {
        Verdict::Denied
    } else if failed {
        Verdict::Failed
    } else {
        Verdict::Ok
    };
    let plugin = format!("{} {}", manifest.id, manifest.version);
    Ok(RunReport { plugin, mode, step, answer, error, verdict, report })
}

/// The answer as JSON, the error, whether the answer is a failure
/// (`failed`), and the report.
fn split<T: Serialize>(
    result: Result<crate::plugins::Call<T>, crate::plugins::CallError>,
    failed: impl FnOnce(&T) -> bool,
) -> (Option<serde_json::Value>, Option<String>, bool, CallReport) {
    match result {
        Ok(call) => {
            let failed = failed(&call.value);
            (serde_json::to_value(call.value).ok(), None, failed, call.report)
        }
        Err(failure) => (None, Some(failure.error.to_string()), false, *failure.report),
    }
}

/// Reads a `--step` file: an object of [`step_fields`], each optional.
///
/// # Errors
///
/// When the file cannot be read, is not an object, names a field that is
/// not one of them, or a field does not fit; the message names the file
/// and the field.
pub fn read_step(path: &Path) -> anyhow::Result<StepOverrides> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
    let known = step_fields();
    let Some(fields) = value.as_object() else {
        bail!("{}: a step is a JSON object of {}", path.display(), known.join(", "));
    };
    if let Some(unknown) = fields.keys().find(|k| !known.contains(k)) {
        bail!("{}: `{unknown}` is not a step field (fields: {})", path.display(), known.join(", "));
    }
    let activation_set = fields.contains_key("activation");
    let context = serde_json::from_value(value).with_context(|| format!("{} does not fit a step", path.display()))?;
    Ok(StepOverrides { context, activation_set })
}

/// Reads a subject fixture: a bare contact, or contact, owner and company.
///
/// # Errors
///
/// When the file cannot be read or is neither shape; the message names the
/// file and the field.
pub fn read_subject(path: &Path) -> anyhow::Result<Subject> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
    if value.get("contact").is_some() {
        serde_json::from_value(value).with_context(|| format!("{} is not a subject", path.display()))
    } else {
        let contact: Contact =
            serde_json::from_value(value).with_context(|| format!("{} is not a contact", path.display()))?;
        Ok(Subject { contact, owner: None, company: None })
    }
}

/// Reads a JSON fixture of type `T`.
///
/// # Errors
///
/// When the file cannot be read or does not fit `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} does not fit", path.display()))
}

/// A company and owner can come in their own files too.
pub fn merge_subject(mut subject: Subject, owner: Option<User>, company: Option<Company>) -> Subject {
    if owner.is_some() {
        subject.owner = owner;
    }
    if company.is_some() {
        subject.company = company;
    }
    subject
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}
