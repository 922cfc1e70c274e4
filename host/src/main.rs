//! The `stepwise` command: a thin shell over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use stepwise::plugins::{Limits, NetPolicy, Runtime, RuntimeConfig};
use stepwise::runner::{self, Mode, RunOptions, Source};
use stepwise::supervise::{Ended, Supervisor};

/// Stepwise: sales-engagement sequences whose every step is a sandboxed
/// WebAssembly component.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Serve the HTTP API and run the scheduler in one process, until
    /// SIGINT or SIGTERM. Creates or migrates the schema; on a database with
    /// no account, creates one with an admin and prints the admin's API key
    /// once.
    #[command(after_help = environment_help())]
    Serve(ServeArgs),
    /// Administration.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Run the sequence scheduler against the database until interrupted
    /// (SIGINT or SIGTERM): due actions are processed continuously and the
    /// outbox is delivered. In-flight actions finish before it exits.
    #[command(after_help = delivery_help())]
    Scheduler(SchedulerArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// A TOML file of settings (keys: listen, database_url, cache_dir,
    /// rate_limit_per_second, rate_limit_burst, allow_private_network,
    /// public_url, admin_email, [scheduler] batch_size, concurrency, lease_seconds,
    /// max_idle_ms, [smtp] host, port, security, ca_file, username,
    /// password, from, from_name, envelope_from, timeout_seconds, [sms] url, account_sid,
    /// auth_token, from, timeout_seconds).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The first admin's email address, used when the database has no
    /// account yet (overrides STEPWISE_ADMIN_EMAIL and the file).
    #[arg(long, value_name = "EMAIL")]
    admin_email: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// On a database with no account, create one with an admin user and
    /// print the admin's API key (shown once).
    #[command(after_help = environment_help())]
    Bootstrap(ServeArgs),
}

fn delivery_help() -> String {
    let mut help = String::from(
        "Delivery: the outbox's transports read public_url, [smtp] and [sms] from --config, then these variables:\n",
    );
    for (name, what) in stepwise::config::ENVIRONMENT {
        if name.starts_with("STEPWISE_SMTP_") || name.starts_with("STEPWISE_SMS_") || *name == "STEPWISE_PUBLIC_URL" {
            help.push_str(&format!("  {name:<34} {what}\n"));
        }
    }
    help
}

fn environment_help() -> String {
    let mut help = String::from("Settings: defaults, then the file, then these environment variables:\n");
    for (name, what) in stepwise::config::ENVIRONMENT {
        help.push_str(&format!("  {name:<34} {what}\n"));
    }
    help
}

#[derive(Debug, clap::Args)]
struct SchedulerArgs {
    /// The database, over the settings' `database_url`:
    /// `sqlite://PATH?mode=rwc` (the embedded default) or
    /// `postgres://USER@HOST/DB` for several hosts sharing one database.
    #[arg(long)]
    database_url: Option<String>,
    /// Where compiled plugins are cached, over the settings' `cache_dir`.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// A TOML file of settings, as for `serve` (the scheduler reads all but
    /// `listen` and the rate limits); `STEPWISE_*` variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Process what is due now, deliver the outbox, and exit.
    #[arg(long)]
    once: bool,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// List the built-in plugins.
    List,
    /// Print a component's manifest, WIT version, capabilities and size.
    Inspect {
        /// A `.wasm` component, or `builtin:<name>`.
        component: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The largest component read, in bytes (the upload limit unless set).
        #[arg(long, default_value_t = stepwise::plugins::MAX_COMPONENT_BYTES)]
        max_bytes: usize,
    },
    /// Run a component against fixture JSON and print what it did.
    #[command(after_help = RUN_EXIT_CODES)]
    Run(Box<RunArgs>),
    /// Write a new plugin project: a step or a criterion in Rust,
    /// JavaScript or Python, with a test, fixtures and `./build.sh`.
    New {
        /// The plugin's id, also the project's directory: lowercase
        /// letters, digits and dashes, such as `chat-notify`.
        name: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: stepwise::scaffold::Lang,
        /// A step type or a criteria predicate.
        #[arg(long, value_enum, default_value = "action")]
        kind: stepwise::scaffold::Kind,
        /// Where to make the project's directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Where a Rust project takes the plugin SDK from: a path to
        /// Stepwise's `plugin-sdk/`, or a git URL (Stepwise's repository
        /// unless set).
        #[arg(long, default_value = env!("CARGO_PKG_REPOSITORY"))]
        sdk: String,
    },
}

/// What `stepwise plugin run` exits with, as `--help` says.
const RUN_EXIT_CODES: &str = "Exit codes:
  0  the plugin answered, and no host call was denied
  1  the run could not start: a fixture that does not read, a component refused on load
  2  a bad command line
  3  the plugin answered with a failure: a failed outcome, an error from prepare or
     evaluate, or problems in the configuration (--mode validate)
  4  a host call was denied: not declared, not granted, or off the http-fetch allowlist
  5  the call gave no answer: a trap, a limit (time, memory, log, input, output, host
     calls), or an answer the host could not read

Compiled components are cached on disk as the server caches them (STEPWISE_CACHE_DIR,
else $XDG_CACHE_HOME/stepwise/plugins; `off` compiles on every run).";

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// A `.wasm` component, or `builtin:<name>`.
    component: String,
    /// The largest component read, in bytes (the upload limit unless set).
    #[arg(long, default_value_t = stepwise::plugins::MAX_COMPONENT_BYTES)]
    max_bytes: usize,
    /// The step's configuration (JSON file); `{}` when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The contact (JSON file): a contact, or `{"contact", "owner", "company"}`.
    #[arg(long)]
    contact: Option<PathBuf>,
    /// The action's owner (JSON file).
    #[arg(long)]
    owner: Option<PathBuf>,
    /// The contact's company (JSON file).
    #[arg(long)]
    company: Option<PathBuf>,
    /// Users the directory knows (JSON file with a list of users).
    #[arg(long)]
    users: Option<PathBuf>,
    /// The account's contact types, in order, the last being the default
    /// (`account.contact-types`). A new account's unless given: Clients,
    /// Employees, Partners, Vendors, Other.
    #[arg(long, value_name = "NAME[,NAME…]", value_delimiter = ',')]
    contact_types: Option<Vec<String>>,
    /// Step context overrides (JSON file): an object of `account_id`,
    /// `sequence_id`, `sequence_version`, `enrollment_id`, `action_id`,
    /// `step_number` (from 1), `attempt` (from 1), `idempotency_key`, `now`
    /// and `event_date` (RFC 3339), `activation` (`manual` or `automatic`;
    /// the plugin's default unless set) and `completion` (`{"result",
    /// "user_id", "draft"}`, as a rep completes a manual step; `--result`
    /// is shorter). Each is optional; another field is an error.
    #[arg(long)]
    step: Option<PathBuf>,
    /// A capability to grant: `log`, `render-template`, `send-email`,
    /// `send-sms`, `lookup-user`, `read-contact-types`, `list-users`,
    /// `http-fetch=URL-PATTERN[,…]`, `update-contact=FIELD[,…]`. Repeat for more. Nothing is granted
    /// unless named.
    #[arg(long = "grant", value_name = "CAPABILITY")]
    grants: Vec<String>,
    /// What to call. `validate` is granted what the server grants it (of
    /// what the plugin declares, `render-template`, `lookup-user`,
    /// `read-contact-types` and `list-users`; nothing else), whatever
    /// `--grant` says.
    #[arg(long, value_enum, default_value = "auto")]
    mode: Mode,
    /// Complete a manual step with this result.
    #[arg(long)]
    result: Option<String>,
    /// Let `http-fetch` reach private and loopback addresses (for a local
    /// test server).
    #[arg(long)]
    allow_private_network: bool,
    /// Wall-clock limit of the call, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Memory limit of the instance, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mib: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEPWISE_LOG")
                // Warnings, and a line per request answered (the access log).
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,stepwise::api::trace=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Plugin(PluginCommand::List) => {
            for (name, bytes) in stepwise::plugins::builtin::BUILTIN {
                println!("builtin:{name:<12} {} bytes", bytes.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Inspect { component, json, max_bytes }) => {
            let cache_dir = load_settings(None)?.plugin_cache();
            let runtime = Runtime::new(RuntimeConfig { cache_dir, ..RuntimeConfig::default() })?;
            let report = runner::inspect_component(&runtime, &Source::parse(&component), max_bytes).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Run(args)) => run(*args).await,
        Command::Plugin(PluginCommand::New { name, lang, kind, dir, sdk }) => {
            let project = stepwise::scaffold::create(&dir, &name, lang, kind, &sdk)?;
            println!("wrote {}", project.display());
            println!("build it:  cd {} && ./build.sh", project.display());
            println!("run it:    see {}", project.join("README.md").display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Scheduler(args) => scheduler(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Admin(AdminCommand::Bootstrap(args)) => bootstrap(args).await,
    }
}

fn settings(args: &ServeArgs) -> anyhow::Result<stepwise::config::Settings> {
    let mut settings = load_settings(args.config.as_deref())?;
    if let Some(email) = &args.admin_email {
        anyhow::ensure!(stepwise::crm::is_email(email), "--admin-email: `{email}` is not an email address");
        settings.admin_email.clone_from(email);
    }
    Ok(settings)
}

fn load_settings(file: Option<&std::path::Path>) -> anyhow::Result<stepwise::config::Settings> {
    let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("STEPWISE_")).collect();
    Ok(stepwise::config::Settings::load(file, &env)?)
}

async fn open_store(settings: &stepwise::config::Settings) -> anyhow::Result<stepwise::store::Store> {
    stepwise::store::Store::connect(&settings.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", stepwise::config::redact(&settings.database_url)))
}

/// Says what the first start made: the account, its admin and their API
/// key.
fn print_bootstrap(made: &stepwise::engine::Bootstrapped) {
    println!("created account {} with admin {} <{}>", made.account_id, made.admin.id, made.admin.email);
    println!("admin API key (shown once; keep it safe): {}", made.secret);
}

/// Says where the first admin sets their console password: a one-time link
/// under `base`.
fn print_password_link(made: &stepwise::engine::Bootstrapped, base: &str) {
    println!(
        "set the admin's console password (once, within 72 hours): {}/set-password/{}",
        base.trim_end_matches('/'),
        made.password_token
    );
}

async fn bootstrap(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(&args)?;
    let store = open_store(&settings).await?;
    let made = stepwise::engine::bootstrap_as(&store, &settings.admin_email, chrono::Utc::now()).await?;
    store.close().await;
    match made {
        Some(made) => {
            print_bootstrap(&made);
            print_password_link(&made, &settings.console_url(settings.listen));
            Ok(ExitCode::SUCCESS)
        }
        None => anyhow::bail!("the database already has an account; make further keys through the API"),
    }
}

/// The engine over `store`, delivering through `transport` and placing
/// automatic calls through its SMS provider when one is configured.
fn build_engine(
    store: stepwise::store::Store,
    registry: std::sync::Arc<stepwise::plugins::Registry>,
    transport: stepwise::delivery::Channels,
    config: stepwise::engine::EngineConfig,
) -> stepwise::engine::Engine {
    use stepwise::engine::{Engine, SystemClock};
    let voice = transport.sms().cloned();
    let engine = Engine::new(store, registry, std::sync::Arc::new(SystemClock), std::sync::Arc::new(transport), config);
    match voice {
        Some(voice) => engine.with_voice(std::sync::Arc::new(voice)),
        None => engine,
    }
}

/// An engine over `store` with the settings' plugin runtime, delivery and
/// scheduler settings; add-ons stored by other hosts are loaded. `serve`
/// and `scheduler` start the same way.
async fn start(
    settings: &stepwise::config::Settings,
    store: &stepwise::store::Store,
    transport: stepwise::delivery::Channels,
) -> anyhow::Result<stepwise::engine::Engine> {
    let net = NetPolicy { allow_private: settings.allow_private_network, ..NetPolicy::default() };
    let runtime = Runtime::new(RuntimeConfig { cache_dir: settings.plugin_cache(), net, ..RuntimeConfig::default() })?;
    let registry = std::sync::Arc::new(stepwise::plugins::Registry::with_builtins(runtime).await?);
    // A channel without a transport keeps its messages queued in the outbox.
    eprintln!("delivery: {}", transport.describe());
    let engine = build_engine(store.clone(), registry, transport, settings.engine());
    let add_ons = engine.sync_add_ons().await?;
    if add_ons > 0 {
        eprintln!("loaded {add_ons} add-on plugin(s) from the database");
    }
    Ok(engine)
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(&args)?;
    // Bootstrapped first: the engine never starts on a database no one
    // can reach through the API.
    // Settings that cannot work stop the start before anything is written.
    let transport = settings.transport()?;
    let store = open_store(&settings).await?;
    let made = stepwise::engine::bootstrap_as(&store, &settings.admin_email, chrono::Utc::now()).await?;
    if let Some(made) = &made {
        print_bootstrap(made);
    }
    let engine = start(&settings, &store, transport).await?;
    let app = stepwise::api::Application::build_with(engine.clone(), settings.listen, settings.http())
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    if let Some(made) = &made {
        print_password_link(made, &settings.console_url(app.local_addr()?));
    }
    eprintln!("stepwise listening on http://{} ({:?} database); stop with Ctrl-C", app.local_addr()?, store.backend());
    // One signal stops both: the API finishes its requests, the scheduler
    // its actions in flight. Either ending on its own (an error or a
    // panic) stops the other, and the process says which and exits
    // non-zero rather than serve half a product.
    let mut supervisor = Supervisor::new();
    let stopped = supervisor.stopped();
    supervisor.spawn("the API", async move { Ok(app.run(stopped).await?) });
    let stopped = supervisor.stopped();
    supervisor.spawn("the scheduler", async move { Ok(engine.run(stopped).await?) });
    let ended = supervisor.run(async {
        shutdown_signal().await;
        eprintln!("stopping: finishing requests and actions in flight");
    });
    let code = match ended.await {
        Ended::Stopped(None) => ExitCode::SUCCESS,
        Ended::Stopped(Some(error)) => {
            store.close().await;
            return Err(error);
        }
        Ended::Died { which, why } => {
            eprintln!("error: {which} failed: {why:#}; stopped the rest");
            ExitCode::FAILURE
        }
    };
    store.close().await;
    Ok(code)
}

async fn scheduler(args: SchedulerArgs) -> anyhow::Result<ExitCode> {
    // The same settings as `serve`: the file, then the environment, then
    // these flags.
    let mut settings = load_settings(args.config.as_deref())?;
    if let Some(url) = args.database_url {
        settings.database_url = url;
    }
    if let Some(dir) = args.cache_dir {
        settings.cache_dir = Some(dir);
    }
    let transport = settings.transport()?;
    let store = open_store(&settings).await?;
    let engine = start(&settings, &store, transport).await?;
    if args.once {
        let handled = engine.run_until_idle().await?;
        println!("processed {handled} due actions on {:?}", store.backend());
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("stepwise scheduler running on {:?}; stop with Ctrl-C", store.backend());
    engine.run(shutdown_signal()).await?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            text
        }
        None => "{}".to_owned(),
    };
    let subject = match &args.contact {
        Some(path) => runner::read_subject(path)?,
        None => Default::default(),
    };
    let owner = args.owner.as_deref().map(runner::read_json).transpose()?;
    let company = args.company.as_deref().map(runner::read_json).transpose()?;
    let options = RunOptions {
        config,
        subject: runner::merge_subject(subject, owner, company),
        users: args.users.as_deref().map(runner::read_json).transpose()?.unwrap_or_default(),
        contact_types: args.contact_types,
        grants: args.grants,
        result: args.result,
        step: args.step.as_deref().map(runner::read_step).transpose()?,
    };
    let limits = Limits {
        call_timeout: std::time::Duration::from_millis(args.timeout_ms),
        memory_bytes: args.memory_mib << 20,
        concurrent_calls: 4,
        ..Limits::default()
    };
    let net = NetPolicy { allow_private: args.allow_private_network, ..NetPolicy::default() };
    let cache_dir = load_settings(None)?.plugin_cache();
    let runtime = Runtime::new(RuntimeConfig { limits, net, cache_dir, threads: Some(1) })?;
    let report = runner::run(&runtime, &Source::parse(&args.component), args.mode, args.max_bytes, options).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(ExitCode::from(report.verdict.code()))
}
