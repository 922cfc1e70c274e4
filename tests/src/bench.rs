//! Pieces the benchmarks share: a fresh store on either backend, and
//! records made in bulk with SQL so that a benchmark can stand among a
//! million of them without spending an hour making them through the API.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use stepwise::crm::{Contact, User};
use stepwise::engagement::{
    Activation, Editor, OwnerRule, PlanType, PluginAccount, PluginRef, SequenceSettings, SequenceState, Step,
    StepTiming, TimingMode,
};
use stepwise::engine::{Engine, EngineConfig, EnrollRequest, RecordingTransport, SystemClock};
use stepwise::plugins::{Limits, NetPolicy, Registry, Runtime, RuntimeConfig};
use stepwise::store::{NewSequence, Store};

use crate::db::{POSTGRES_URL_VAR, postgres_schema};

/// Drops what [`open`] made.
pub type Cleanup = Pin<Box<dyn Future<Output = ()>>>;

/// A fresh store on `backend` (`sqlite`: a file in `dir`; `postgres`: a
/// schema of its own on the server `STEPWISE_TEST_POSTGRES_URL` names),
/// with its URL, for the bulk inserts of [`Bulk`].
///
/// # Panics
///
/// When the backend is unknown or cannot be reached.
pub async fn open(backend: &str, dir: &tempfile::TempDir) -> (Store, String, Cleanup) {
    match backend {
        "sqlite" => {
            let path = dir.path().join(format!("bench-{}.db", uuid::Uuid::new_v4().simple()));
            let url = format!("sqlite://{}?mode=rwc", path.display());
            let store = Store::connect(&url).await.expect("sqlite");
            (store, url, Box::pin(async {}))
        }
        "postgres" => {
            let admin_url = std::env::var(POSTGRES_URL_VAR).expect("STEPWISE_TEST_POSTGRES_URL");
            let (admin, schema, url) = postgres_schema(&admin_url, "stepwise_bench").await;
            let store = Store::connect(&url).await.expect("store");
            let cleanup = Box::pin(async move {
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.expect("drop");
                admin.close().await;
            });
            (store, url, cleanup)
        }
        other => panic!("unknown backend {other}"),
    }
}

/// The backends to run: those named with `--backend`, else SQLite and,
/// when `STEPWISE_TEST_POSTGRES_URL` is set, PostgreSQL.
pub fn backends(named: Vec<String>) -> Vec<String> {
    if !named.is_empty() {
        return named;
    }
    let mut all = vec!["sqlite".to_owned()];
    if std::env::var(POSTGRES_URL_VAR).is_ok() {
        all.push("postgres".to_owned());
    }
    all
}

/// An account named `name` with an agent, the trivial add-on enabled, and
/// an active sequence of `steps` trivial steps `delay_ms` apart: the
/// account's, the agent's and the sequence's ids.
///
/// # Panics
///
/// When the store refuses.
pub async fn trivial_sequence(
    store: &Store,
    name: &str,
    steps: usize,
    delay_ms: i64,
    now: DateTime<Utc>,
) -> (String, String, String) {
    let mut tx = store.begin().await.unwrap();
    let account = tx.create_account(name, None, now).await.unwrap().id;
    let user = User { name: "Agent".into(), email: "agent@example.com".into(), ..User::default() };
    let user = tx.create_user(&account, &user, now).await.unwrap().id;
    let settings = PluginAccount {
        account_id: account.clone(),
        plugin_id: "trivial".into(),
        enabled: true,
        grants: serde_json::json!({}),
        approved_capabilities: vec![],
    };
    tx.set_plugin_account(&settings, now).await.unwrap();
    let new = NewSequence {
        name: name.into(),
        description: String::new(),
        plan_type: PlanType::General,
        timing_mode: TimingMode::AfterPrevious,
        settings: SequenceSettings::default(),
    };
    let sequence = tx.create_sequence(&account, &new, now).await.unwrap().id;
    let steps: Vec<Step> = (0..steps)
        .map(|i| Step {
            position: u32::try_from(i).unwrap(),
            name: format!("step {i}"),
            plugin: PluginRef { id: "trivial".into(), version: "*".into() },
            config: serde_json::json!({}),
            timing: StepTiming::Delay { ms: delay_ms },
            activation: Activation::Automatic,
            owner: OwnerRule::ContactOwner,
            criteria: vec![],
            notify: false,
            regarding: None,
        })
        .collect();
    tx.publish_version(&account, &sequence, &steps, Some(&user), now).await.unwrap();
    tx.set_sequence_state(&account, &sequence, SequenceState::Active, now).await.unwrap();
    tx.commit().await.unwrap();
    (account, user, sequence)
}

/// `n` contacts of `account` owned by `user`, made through the engine.
///
/// # Panics
///
/// When the engine refuses.
pub async fn contacts(engine: &Engine, account: &str, user: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let contact = Contact {
            first_name: format!("Contact {i}"),
            email: Some(format!("c{i}@example.com")),
            owner_id: Some(user.to_owned()),
            contact_type: "Clients".into(),
            ..Contact::default()
        };
        ids.push(engine.create_contact(account, &contact, &Editor::user(user)).await.unwrap().0.id);
    }
    ids
}

/// Rows written straight into the schema, thousands a statement, for
/// benchmarks that need a large database around them. Every row is one
/// the engine could have written (statuses, foreign keys and current
/// actions as it keeps them).
#[derive(Debug)]
pub struct Bulk {
    pool: Pool,
}

#[derive(Debug)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$p` bound to the concrete pool.
macro_rules! on_pool {
    ($bulk:expr, |$p:ident| $body:expr) => {
        match &$bulk.pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// Numbers `0..$n` for the statements below: a recursive CTE, which both
/// backends run.
const NUMBERS: &str = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $1)";

impl Bulk {
    /// Connects to the database at `url` (as [`open`] gave it).
    ///
    /// # Panics
    ///
    /// When it cannot.
    pub async fn connect(url: &str) -> Bulk {
        let pool = if url.starts_with("sqlite:") {
            Pool::Sqlite(sqlx::SqlitePool::connect(url).await.expect("sqlite"))
        } else {
            Pool::Postgres(sqlx::PgPool::connect(url).await.expect("postgres"))
        };
        Bulk { pool }
    }

    async fn run(&self, sql: &str, n: usize, text: &[&str], at: i64) {
        let n = i64::try_from(n).expect("a count");
        on_pool!(self, |p| {
            let mut q = sqlx::query(sql).bind(n).bind(at);
            for value in text {
                q = q.bind(*value);
            }
            q.execute(p).await.map(|_| ()).unwrap_or_else(|e| panic!("{e}: {sql}"))
        });
    }

    /// `n` active agents of `account`, `{prefix}u_0` …, with connected
    /// mailboxes.
    pub async fn users(&self, account: &str, prefix: &str, n: usize, now: DateTime<Utc>) {
        let sql = format!(
            "{NUMBERS} INSERT INTO users (id, account_id, name, email, role, active, delegate, timezone, signature,
                                          sender_connected, created_at, updated_at)
             SELECT $4 || 'u_' || i, $3, 'Rep ' || i, $4 || 'rep' || i || '@example.com', 'agent', TRUE, FALSE,
                    'UTC', '', TRUE, $2, $2
             FROM n"
        );
        self.run(&sql, n, &[account, prefix], now.timestamp_millis()).await;
    }

    /// `n` contacts of `account` with email addresses, `{prefix}c_0` …,
    /// owned in turn by the `count` users `{owners}u_…` (as
    /// [`Bulk::users`] made them), of the account's first contact type.
    pub async fn contacts(
        &self,
        account: &str,
        prefix: &str,
        n: usize,
        (owners, count): (&str, usize),
        now: DateTime<Utc>,
    ) {
        let sql = format!(
            "{NUMBERS} INSERT INTO contacts (id, account_id, kind, first_name, last_name, email, owner_id,
                                             contact_type_id, opt_out_email, opt_out_sms, opt_out_phone, attributes,
                                             created_at, updated_at)
             SELECT $4 || 'c_' || i, $3, 'contact', 'Contact', '' || i, $4 || 'c' || i || '@example.com',
                    $5 || 'u_' || (i % {count}),
                    (SELECT id FROM contact_types WHERE account_id = $3 ORDER BY position, id LIMIT 1),
                    FALSE, FALSE, FALSE, '{{}}', $2, $2
             FROM n"
        );
        self.run(&sql, n, &[account, prefix, owners], now.timestamp_millis()).await;
    }

    /// An enrollment of each of the `n` contacts `{prefix}c_…` in version 1
    /// of `sequence`, running, at its first step: a manual action due long
    /// after `now` (future), except every tenth, which is on its owner's
    /// Engage view (active, due in the past).
    pub async fn enrollments(&self, account: &str, prefix: &str, sequence: &str, n: usize, now: DateTime<Utc>) {
        let month: i64 = 30 * 24 * 3_600_000;
        let due = format!("CASE WHEN (i / 1009) % 10 = 0 THEN $2 - i ELSE $2 + {month} + i END");
        let step = FirstStep {
            plugin: "task",
            activation: "manual",
            status: "CASE WHEN (i / 1009) % 10 = 0 THEN 'active' ELSE 'future' END",
            due: &due,
            on_engage: "(i / 1009) % 10 = 0",
        };
        self.at_first_step((account, prefix, sequence), n, &step, now).await;
    }

    /// [`Bulk::enrollments`] of the contacts `{contacts}c_…` (made by an
    /// earlier call), the enrollments and actions named `{prefix}e_…` and
    /// `{prefix}a_…`: a second, third, … sequence for the same contacts.
    pub async fn more_enrollments(
        &self,
        account: &str,
        (contacts, prefix): (&str, &str),
        sequence: &str,
        n: usize,
        now: DateTime<Utc>,
    ) {
        let month: i64 = 30 * 24 * 3_600_000;
        let due = format!("CASE WHEN (i / 1009) % 10 = 0 THEN $2 - i ELSE $2 + {month} + i END");
        let sql = format!(
            "{NUMBERS} INSERT INTO enrollments (id, account_id, contact_id, sequence_id, version, initiated_by, status,
                                                current_step, started_at, next_action_at, created_at, updated_at)
             SELECT $4 || 'e_' || i, $3, $6 || 'c_' || i, $5, 1, NULL, 'running', 0, $2, {due}, $2, $2
             FROM n"
        );
        self.run(&sql, n, &[account, prefix, sequence, contacts], now.timestamp_millis()).await;
        let sql = format!(
            "{NUMBERS} INSERT INTO actions (id, account_id, enrollment_id, step, plugin_id, activation, owner_id,
                                            status, due_at, show_on_engage, opt_out, attempts,
                                            skip_criteria_evaluated, is_current, created_at, updated_at)
             SELECT $4 || 'a_' || i, $3, $4 || 'e_' || i, 0, 'task', 'manual',
                    (SELECT owner_id FROM contacts WHERE id = $5 || 'c_' || i),
                    CASE WHEN (i / 1009) % 10 = 0 THEN 'active' ELSE 'future' END, {due}, (i / 1009) % 10 = 0,
                    FALSE, 0, FALSE, TRUE, $2, $2
             FROM n"
        );
        self.run(&sql, n, &[account, prefix, contacts], now.timestamp_millis()).await;
    }

    /// `n` companies of `account`, `{prefix}co_0` …, and the contacts
    /// `{contacts}c_…` spread over them in turn.
    pub async fn companies(&self, account: &str, prefix: &str, n: usize, contacts: &str, now: DateTime<Utc>) {
        let sql = format!(
            "{NUMBERS} INSERT INTO companies (id, account_id, name, created_at, updated_at)
             SELECT $4 || 'co_' || i, $3, 'Company ' || i, $2, $2 FROM n"
        );
        self.run(&sql, n, &[account, prefix], now.timestamp_millis()).await;
        let skip = contacts.len() + 3;
        let sql = format!(
            "UPDATE contacts SET company_id = $4 || 'co_' || (CAST(SUBSTR(id, {skip}) AS BIGINT) % $1)
             WHERE account_id = $3 AND id LIKE $5 || 'c\\_%' ESCAPE '\\' AND $2 = $2"
        );
        self.run(&sql, n, &[account, prefix, contacts], now.timestamp_millis()).await;
    }

    /// A burst: an enrollment of each of the `n` contacts `{prefix}c_…` in
    /// version 1 of `sequence`, running, whose current action is its first
    /// step, automatic, of `plugin`, and due, the oldest `n` milliseconds
    /// before `now` (as a large enrollment leaves them).
    pub async fn due_burst(
        &self,
        account: &str,
        prefix: &str,
        (sequence, plugin): (&str, &str),
        n: usize,
        now: DateTime<Utc>,
    ) {
        let step =
            FirstStep { plugin, activation: "automatic", status: "'future'", due: "$2 - $1 + i", on_engage: "FALSE" };
        self.at_first_step((account, prefix, sequence), n, &step, now).await;
    }

    /// Enrollments of the `n` contacts `{prefix}c_…` of `account` in version
    /// 1 of `sequence`, running, each with its current action at the first
    /// step as `step` describes it.
    async fn at_first_step(
        &self,
        (account, prefix, sequence): (&str, &str, &str),
        n: usize,
        step: &FirstStep<'_>,
        now: DateTime<Utc>,
    ) {
        let FirstStep { plugin, activation, status, due, on_engage } = step;
        let sql = format!(
            "{NUMBERS} INSERT INTO enrollments (id, account_id, contact_id, sequence_id, version, initiated_by, status,
                                                current_step, started_at, next_action_at, created_at, updated_at)
             SELECT $4 || 'e_' || i, $3, $4 || 'c_' || i, $5, 1, NULL, 'running', 0, $2, {due}, $2, $2
             FROM n"
        );
        self.run(&sql, n, &[account, prefix, sequence], now.timestamp_millis()).await;
        let sql = format!(
            "{NUMBERS} INSERT INTO actions (id, account_id, enrollment_id, step, plugin_id, activation, owner_id,
                                            status, due_at, show_on_engage, opt_out, attempts,
                                            skip_criteria_evaluated, is_current, created_at, updated_at)
             SELECT $4 || 'a_' || i, $3, $4 || 'e_' || i, 0, $5, '{activation}',
                    (SELECT owner_id FROM contacts WHERE id = $4 || 'c_' || i),
                    {status}, {due}, {on_engage}, FALSE, 0, FALSE, TRUE, $2, $2
             FROM n"
        );
        self.run(&sql, n, &[account, prefix, plugin], now.timestamp_millis()).await;
    }

    /// How many current actions are due at `at` (the background a
    /// benchmark stands among must have none).
    pub async fn due(&self, at: DateTime<Utc>) -> i64 {
        let sql = "SELECT COUNT(*) FROM actions WHERE is_current AND status = 'future' AND due_at <= $1";
        on_pool!(self, |p| sqlx::query_scalar(sql).bind(at.timestamp_millis()).fetch_one(p).await.expect("count"))
    }

    /// Refreshes the planner's statistics, as a database in service has them.
    pub async fn analyze(&self) {
        on_pool!(self, |p| sqlx::query("ANALYZE").execute(p).await.map(|_| ()).expect("analyze"));
    }

    /// [`Bulk::analyze`], and on PostgreSQL a `VACUUM` as autovacuum gives
    /// tables in service soon after a bulk load: it sets the visibility
    /// map that index-only scans read instead of the rows.
    pub async fn vacuum_analyze(&self) {
        match &self.pool {
            Pool::Sqlite(p) => sqlx::query("ANALYZE").execute(p).await.map(|_| ()).expect("analyze"),
            Pool::Postgres(p) => sqlx::query("VACUUM ANALYZE").execute(p).await.map(|_| ()).expect("vacuum"),
        }
    }

    /// Closes the connections.
    pub async fn close(self) {
        on_pool!(self, |p| p.close().await);
    }
}

/// The current action [`Bulk`] gives each enrollment it makes: its plugin
/// and activation, and SQL over the row number `i` and the time `$2` for its
/// status, due date and place on the Engage view.
struct FirstStep<'a> {
    plugin: &'a str,
    activation: &'a str,
    status: &'a str,
    due: &'a str,
    on_engage: &'a str,
}

/// The benchmarks' plugin registry: the built-ins and the trivial add-on,
/// on a runtime allowing 256 calls at once.
///
/// # Panics
///
/// When the runtime cannot start or a plugin does not load.
pub async fn registry_with_trivial() -> Arc<Registry> {
    let runtime = Runtime::new(RuntimeConfig {
        limits: Limits { concurrent_calls: 256, ..Limits::default() },
        // Events out go to receivers on the loopback.
        net: NetPolicy { allow_private: true, ..NetPolicy::default() },
        cache_dir: Some(std::env::temp_dir().join("stepwise-test-artifacts")),
        threads: None,
    })
    .expect("runtime");
    let registry = Registry::with_builtins(runtime).await.expect("built-ins");
    registry.add(crate::guests::TRIVIAL).await.expect("trivial loads");
    Arc::new(registry)
}

/// Reads a benchmark's arguments: each `--backend NAME` names a backend to
/// run (the result, as [`backends`] completes it); any other flag goes to
/// `option` with the arguments after it, to take the values it needs
/// ([`value`]). Flags `option` does not know are ignored (cargo bench
/// passes `--bench`).
pub fn arguments(mut option: impl FnMut(&str, &mut dyn Iterator<Item = String>)) -> Vec<String> {
    let mut named = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--backend" {
            named.push(args.next().expect("--backend sqlite|postgres"));
        } else {
            option(&flag, &mut args);
        }
    }
    backends(named)
}

/// The value after the option `flag` among a benchmark's arguments.
///
/// # Panics
///
/// When it is missing or does not parse.
pub fn value<T: std::str::FromStr>(args: &mut dyn Iterator<Item = String>, flag: &str) -> T {
    args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{flag} takes a value"))
}

/// How late the first action of each of `enrollments` ran after its due
/// time, in milliseconds: p50, p99 and max.
///
/// # Panics
///
/// When one has not run, or there are none.
pub async fn first_step_lateness(store: &Store, enrollments: &[String]) -> [f64; 3] {
    let mut lateness = Vec::with_capacity(enrollments.len());
    let mut tx = store.begin_read().await.unwrap();
    for id in enrollments {
        let actions = tx.actions_of_enrollment(id).await.unwrap();
        let a = &actions[0];
        let late = a.completed_at.expect("completed") - a.due_at.expect("due");
        lateness.push(late.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
    }
    lateness.sort_by(f64::total_cmp);
    let pick = |q: f64| lateness[((lateness.len() as f64 * q) as usize).min(lateness.len() - 1)];
    [pick(0.5), pick(0.99), pick(1.0)]
}

/// An engine over `store` on the system clock, with the default settings
/// and a transport that records what it is handed.
pub fn real_time_engine(store: &Store, registry: &Arc<Registry>) -> Engine {
    Engine::new(
        store.clone(),
        registry.clone(),
        Arc::new(SystemClock),
        Arc::new(RecordingTransport::new()),
        EngineConfig::default(),
    )
}

/// An engine's scheduler running on a task of its own until stopped.
#[derive(Debug)]
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    runner: tokio::task::JoinHandle<stepwise::engine::Result<()>>,
}

impl Running {
    /// Starts `engine`'s scheduler.
    pub fn start(engine: &Engine) -> Running {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let engine = engine.clone();
        let runner = tokio::spawn(async move { engine.run(async { stopped.await.unwrap_or(()) }).await });
        Running { stop, runner }
    }

    /// Stops it once what it runs is done.
    ///
    /// # Panics
    ///
    /// When the scheduler failed.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.runner.await.expect("the scheduler task").expect("the scheduler runs");
    }
}

/// Enrolls `contact` of `account` in `sequence`, initiated by `user`;
/// returns the enrollment's id.
///
/// # Panics
///
/// When the engine refuses.
pub async fn enroll(engine: &Engine, account: &str, user: &str, sequence: &str, contact: &str) -> String {
    let request = EnrollRequest {
        contact_id: contact.to_owned(),
        sequence_id: sequence.to_owned(),
        initiated_by: Some(user.to_owned()),
        event_date: None,
    };
    engine.enroll(account, &request).await.unwrap().id
}
