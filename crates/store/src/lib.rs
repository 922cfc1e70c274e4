//! The store: the only crate that issues SQL. SQLite (one file, WAL) is the
//! embedded default and PostgreSQL serves scale-out; one database URL chooses.
//!
//! # Two backends, one query text
//!
//! Every query is written once, with `$1`-style placeholders that both
//! SQLite and PostgreSQL accept, and executed through [`on_tx!`] or
//! [`on_pool!`], which expand the same code once per backend over the
//! concrete `sqlx` connection type. Only where the SQL must differ (the lease
//! claim) is it written per backend. Row structs derive `FromRow`, which is
//! generic over the row type, so decoding is written once too. Statements
//! whose length depends on their input (an `IN (…)` list, the `VALUES`
//! rows of a batch) are built with `sqlx::QueryBuilder`, which numbers the
//! placeholders for each backend.
//!
//! `sqlx::Any` was not chosen: it would erase the types the two drivers
//! decode natively (booleans, `BYTEA`), route every value through its own
//! boxed representation, and still need per-backend SQL for the claim. The
//! enum costs one `match` per query and keeps each driver's native path.
//!
//! # Conventions
//!
//! Time is passed in by the caller (`now`) and stored as Unix milliseconds;
//! the store never reads the clock, so tests run virtual time. Ids are
//! prefixed random strings ([`new_id`]). Reads and writes run inside a
//! [`Tx`] so that the engine commits an action's new state, the next
//! action's due date, its events and its outbox rows together or not at all.
//! Invariants live in the schema (`migrations/`): one current action per
//! enrollment, one unfinished enrollment per contact and sequence, unique
//! outbox keys, foreign keys and CHECKs on every enum column; the store maps
//! their violations to [`StoreError`] variants.

mod accounts;
mod actions;
mod audit;
mod contacts;
mod enrollments;
mod events;
mod health;
mod keys;
mod monitor;
mod outbox;
mod plugins;
mod sequences;
mod sessions;
mod sync;
mod templates;
mod wake;
mod webhooks;
mod work;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Postgres, Sqlite, Transaction};

pub use accounts::SenderSmtp;
pub use actions::{ActionCompletion, BatchCompletion, HeldFilter, HoldScope, NewAction, NewActionLog, Schedule};
pub use audit::{AuditFilter, NewAudit};
pub use enrollments::{NewEnrollment, SequenceReport, SequenceWeeks};
pub use events::{NewEvent, Timeline};
pub use health::{Activity, Family, HealthSnapshot, MAX_FAMILY};
pub use keys::{ApiKey, Idempotent, KeyHolder};
pub use monitor::{WebhookFailure, WebhookFailureFilter};
pub use outbox::{DeliveryOutcome, MessageFilter, NewOutboxMessage};
pub use sequences::NewSequence;
pub use sessions::{Credentials, PasswordLink, Session};
pub use sync::{Collection, Deletion, SyncPage};
pub use templates::Template;
pub use wake::{WAKE_CHANNEL, WakeListener};
pub use webhooks::{
    ClaimedDelivery, DeliveryFilter, NewSubscription, WebhookDelivery, WebhookSubscription, webhook_body,
};
pub use work::{EnrollmentFilter, EnrollmentRow, WorkCursor, WorkFilter, WorkRow, WorkSort, WorkState};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a SQLite connection waits for another writer before failing.
/// Writers are serialized by SQLite; transactions are short, so a few
/// seconds only matter under pathological load.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The figures of `/metrics`, read from the database so that every host
/// reports the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// Current actions due now and not yet processed.
    pub due_backlog: i64,
    /// Current actions under a lease that expired and that no host has
    /// claimed again yet: the work of a host that stopped, waiting to be
    /// picked up.
    pub expired_leases: i64,
    /// How long past its lease's expiry the oldest of those has waited.
    pub expired_lease_age: Duration,
    /// `(plugin, status, count)`.
    pub actions: Vec<(String, String, i64)>,
    /// `(deferral reason, count)` of unperformed actions.
    pub deferrals: Vec<(String, i64)>,
    /// `(state, count)` of outbox messages.
    pub outbox: Vec<(String, i64)>,
}

/// The database behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist (or belongs to another account).
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked up, such as `contact`.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A uniqueness rule refused the write.
    #[error("conflict: {what}")]
    Conflict {
        /// The schema constraint, named as on PostgreSQL on both backends
        /// (such as `enrollments_one_open_per_contact`).
        constraint: String,
        /// What conflicted, in words.
        what: String,
    },
    /// The write would break a rule: a cycle, a missing referenced record,
    /// a value outside its CHECK, an immutable row.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The lease token no longer matches: another host claimed the action
    /// after this one's lease expired, or it was already completed.
    #[error("lease lost on action {0}")]
    LeaseLost(String),
    /// A stored value this host cannot read.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Connecting or migrating failed.
    #[error("cannot open the database: {0}")]
    Connect(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

/// The unique constraints the store knows by name: the PostgreSQL name, the
/// columns SQLite lists in its message, and what conflicted in words.
const UNIQUE_CONSTRAINTS: &[(&str, &str, &str)] = &[
    (
        "enrollments_one_open_per_contact",
        "enrollments.sequence_id, enrollments.contact_id",
        "the contact already has an unfinished enrollment in this sequence",
    ),
    ("actions_one_current_per_enrollment", "actions.enrollment_id", "the enrollment already has a current action"),
    ("actions_enrollment_id_step_key", "actions.enrollment_id, actions.step", "the enrollment already has this step"),
    ("outbox_idempotency_key_key", "outbox.idempotency_key", "the outbox idempotency key is already used"),
    ("users_account_id_email_key", "users.account_id, users.email", "the email is already used in this account"),
    (
        "contact_types_account_id_name_key",
        "contact_types.account_id, contact_types.name",
        "the contact type name is already used in this account",
    ),
    (
        "sequence_versions_pkey",
        "sequence_versions.sequence_id, sequence_versions.version",
        "the sequence version already exists",
    ),
    ("plugins_pkey", "plugins.id, plugins.version", "the plugin version already exists"),
    (
        "templates_account_id_name_key",
        "templates.account_id, templates.name",
        "the template name is already used in this account",
    ),
    (
        "plugin_accounts_pkey",
        "plugin_accounts.account_id, plugin_accounts.plugin_id",
        "the plugin already has settings for this account",
    ),
];

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        let sqlx::Error::Database(db) = &error else {
            return StoreError::Database(error);
        };
        let message = db.message();
        match db.kind() {
            ErrorKind::UniqueViolation => {
                // PostgreSQL names the constraint; SQLite lists its columns
                // after "UNIQUE constraint failed: ".
                let sqlite_columns = message.split_once(": ").map(|(_, c)| c);
                let known = UNIQUE_CONSTRAINTS
                    .iter()
                    .find(|(name, columns, _)| db.constraint() == Some(*name) || sqlite_columns == Some(*columns));
                match known {
                    Some((name, _, what)) => {
                        StoreError::Conflict { constraint: (*name).to_owned(), what: (*what).to_owned() }
                    }
                    None => {
                        let name = db.constraint().or(sqlite_columns).unwrap_or("unique").to_owned();
                        StoreError::Conflict { what: format!("duplicate value for {name}"), constraint: name }
                    }
                }
            }
            ErrorKind::ForeignKeyViolation => {
                StoreError::Invalid(format!("a referenced record does not exist or is still referenced ({message})"))
            }
            ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                StoreError::Invalid(format!("a value breaks a schema rule ({message})"))
            }
            // Triggers raise these (sequence versions are immutable).
            _ if message.contains("immutable") => StoreError::Invalid(message.to_owned()),
            _ => StoreError::Database(error),
        }
    }
}

impl From<stepwise_domain::engagement::UnknownVariant> for StoreError {
    fn from(error: stepwise_domain::engagement::UnknownVariant) -> Self {
        StoreError::Corrupt(error.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        StoreError::Corrupt(format!("stored json does not parse: {error}"))
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The store: a pool of connections to one database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// SQLite has one writer at a time. Writers of this process queue here,
    /// asynchronously, instead of inside SQLite's busy handler, which
    /// sleeps in steps of milliseconds between retries.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The channel hosts on this database and schema announce work on
    /// ([`wake::channel`]).
    wake_channel: std::sync::Arc<str>,
    /// Told when a transaction that wrote webhook deliveries commits, so
    /// this host's dispatcher sends them at once.
    deliveries: std::sync::Arc<tokio::sync::Notify>,
}

#[derive(Debug)]
enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A transaction that only reads: every query of the store's records is a
/// method of this type, and none of them writes. The API is given these
/// alone; the engine, which holds the [`Store`], writes through [`Tx`].
///
/// On SQLite it is a deferred `BEGIN`, which takes no write lock, so reads
/// (and the plugin calls that follow them) never hold up writers.
#[derive(Debug)]
pub struct ReadTx {
    inner: TxInner,
}

/// A transaction that writes. Every read and write of the store takes one;
/// nothing is visible to others until [`Tx::commit`], and dropping it rolls
/// back. It reads through the methods of [`ReadTx`], which it derefs to.
///
/// After a method returns an error from the database, drop the transaction:
/// PostgreSQL refuses every further statement in it.
#[derive(Debug)]
pub struct Tx {
    read: ReadTx,
    /// Held for the life of a SQLite write transaction.
    _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// The store's [`Store::deliveries_written`], told at commit when this
    /// transaction wrote webhook deliveries.
    deliveries: std::sync::Arc<tokio::sync::Notify>,
    /// The lanes this transaction wrote deliveries to, settled at commit.
    lanes: webhooks::Lanes,
}

impl std::ops::Deref for Tx {
    type Target = ReadTx;
    fn deref(&self) -> &ReadTx {
        &self.read
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut ReadTx {
        &mut self.read
    }
}

/// Runs `$body` once per backend with `$c` bound to the transaction's
/// concrete connection (`&mut SqliteConnection` or `&mut PgConnection`).
/// Write `&mut *$c` where a query takes the executor, so it can be reused.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match &mut $tx.inner {
            $crate::TxInner::Sqlite(t) => {
                let $c: &mut ::sqlx::SqliteConnection = &mut **t;
                $body
            }
            $crate::TxInner::Postgres(t) => {
                let $c: &mut ::sqlx::PgConnection = &mut **t;
                $body
            }
        }
    };
}
use on_tx;

/// Fetches the rows of `$select` (a `SELECT … FROM …` without `WHERE`)
/// whose `$account` column is `$account_id` and whose `$id` column is one
/// of `$ids`: the batch reads of one account's records.
macro_rules! fetch_of_account {
    ($tx:expr, $select:expr, $account:literal = $account_id:expr, $id:literal in $ids:expr) => {
        on_tx!($tx, |c| {
            let mut q = ::sqlx::QueryBuilder::new($select);
            q.push(concat!(" WHERE ", $account, " = ")).push_bind($account_id).push(concat!(" AND ", $id, " IN "));
            $crate::in_list(&mut q, $ids);
            q.build_query_as().fetch_all(&mut *c).await?
        })
    };
}
use fetch_of_account;

/// Runs `$body` once per backend with `$p` bound to the concrete pool, for
/// single statements that need no transaction around them.
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($p) => $body,
            $crate::Pool::Postgres($p) => $body,
        }
    };
}
use on_pool;

/// The page cache of each SQLite connection: negative, in KiB (32 MiB).
const SQLITE_CACHE_KIB: &str = "-32768";
/// How much of the SQLite file is read through a memory map (256 MiB).
const SQLITE_MMAP_BYTES: &str = "268435456";

impl Store {
    /// Connects to `url` (`sqlite://path?mode=rwc`, `postgres://…`) and
    /// applies the migrations of its backend.
    ///
    /// SQLite is opened in WAL mode (readers never block the writer), with
    /// foreign keys on, a busy timeout, and `synchronous=NORMAL` (durable
    /// across application crashes; a power loss may lose the last
    /// transactions but never corrupts the file). Each connection keeps up
    /// to 32 MiB of pages in its cache and the file is read through a
    /// shared memory map of up to 256 MiB: rows with random ids land on
    /// random pages, and with SQLite's default 2 MiB cache a large table's
    /// inserts and lookups go to the file page by page.
    ///
    /// # Errors
    ///
    /// [`StoreError::Connect`] when the URL is neither SQLite nor PostgreSQL,
    /// does not parse, the database cannot be reached, or a migration fails.
    pub async fn connect(url: &str) -> Result<Store> {
        let connect = |e: &dyn std::fmt::Display| StoreError::Connect(e.to_string());
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| connect(&e))?
                .journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .synchronous(SqliteSynchronous::Normal)
                .pragma("cache_size", SQLITE_CACHE_KIB)
                .pragma("mmap_size", SQLITE_MMAP_BYTES);
            // Migrations run on a connection of their own with foreign keys
            // off, as SQLite's way of changing a table's constraints (a
            // rebuild: the old table dropped) requires, and the keys are
            // checked after.
            let unchecked = options.clone().foreign_keys(false);
            let mut migrating = sqlx::ConnectOptions::connect(&unchecked).await.map_err(|e| connect(&e))?;
            SQLITE_MIGRATIONS.run(&mut migrating).await.map_err(|e| connect(&e))?;
            let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
                .fetch_all(&mut migrating)
                .await
                .map_err(|e| connect(&e))?;
            if let Some((table,)) = broken.first() {
                return Err(StoreError::Connect(format!("after the migrations, rows of `{table}` reference nothing")));
            }
            sqlx::Connection::close(migrating).await.map_err(|e| connect(&e))?;
            let pool =
                SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(|e| connect(&e))?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(|e| connect(&e))?;
            let pool = PgPoolOptions::new().max_connections(16).connect_with(options).await.map_err(|e| connect(&e))?;
            POSTGRES_MIGRATIONS.run(&pool).await.map_err(|e| connect(&e))?;
            Pool::Postgres(pool)
        } else {
            return Err(StoreError::Connect("the database url must start with sqlite: or postgres:".into()));
        };
        let wake_channel = match &pool {
            Pool::Postgres(pool) => {
                let schema: String =
                    sqlx::query_scalar("SELECT current_schema()").fetch_one(pool).await.map_err(|e| connect(&e))?;
                wake::channel(&schema)
            }
            Pool::Sqlite(_) => WAKE_CHANNEL.to_owned(),
        };
        Ok(Store {
            pool,
            writer: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            wake_channel: wake_channel.into(),
            deliveries: std::sync::Arc::default(),
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a transaction.
    ///
    /// On SQLite it is `BEGIN IMMEDIATE`: it takes the write lock at once,
    /// waiting up to the busy timeout, instead of failing with `SQLITE_BUSY`
    /// when a transaction that has read tries to upgrade to a write while
    /// another writer committed (which busy-waiting cannot resolve).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when no connection can be had.
    pub async fn begin(&self) -> Result<Tx> {
        let deliveries = self.deliveries.clone();
        Ok(match &self.pool {
            Pool::Sqlite(pool) => {
                let writer = self.writer.clone().lock_owned().await;
                let inner = TxInner::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?);
                Tx { read: ReadTx { inner }, _writer: Some(writer), deliveries, lanes: webhooks::Lanes::default() }
            }
            Pool::Postgres(pool) => Tx {
                read: ReadTx { inner: TxInner::Postgres(pool.begin().await?) },
                _writer: None,
                deliveries,
                lanes: webhooks::Lanes::default(),
            },
        })
    }

    /// Told (a permit kept when nobody waits) whenever a transaction that
    /// wrote webhook deliveries has committed.
    pub fn deliveries_written(&self) -> &tokio::sync::Notify {
        &self.deliveries
    }

    /// Starts a transaction for reading only ([`ReadTx`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when no connection can be had.
    pub async fn begin_read(&self) -> Result<ReadTx> {
        let inner = match &self.pool {
            Pool::Sqlite(pool) => TxInner::Sqlite(pool.begin_with("BEGIN").await?),
            Pool::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
        };
        Ok(ReadTx { inner })
    }

    /// When the next out-of-office enrollment is due back.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn next_resume_at(&self) -> Result<Option<DateTime<Utc>>> {
        let next: Option<i64> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT MIN(resume_at) FROM enrollments WHERE resume_at IS NOT NULL AND status = 'paused'"
        )
        .fetch_one(p)
        .await?);
        time_opt(next)
    }

    /// Checks the database answers.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when it does not.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, |p| sqlx::query("SELECT 1").execute(p).await?.rows_affected());
        Ok(())
    }

    /// The figures `/metrics` reports.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn metrics(&self, now: DateTime<Utc>) -> Result<Metrics> {
        let backlog = format!(
            "SELECT COUNT(*) FROM actions WHERE is_current AND status = 'future' AND {} <= $1",
            actions::NEXT_LOOK
        );
        let due_backlog: i64 = on_pool!(self, |p| sqlx::query_scalar(&backlog).bind(ms(now)).fetch_one(p).await?);
        let actions: Vec<(String, String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT plugin_id, status, COUNT(*) FROM actions GROUP BY plugin_id, status ORDER BY plugin_id, status"
        )
        .fetch_all(p)
        .await?);
        let deferrals: Vec<(String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT deferral_reason, COUNT(*) FROM actions
             WHERE deferral_reason IS NOT NULL AND status = 'future' GROUP BY deferral_reason ORDER BY deferral_reason"
        )
        .fetch_all(p)
        .await?);
        let outbox: Vec<(String, i64)> =
            on_pool!(self, |p| sqlx::query_as("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")
                .fetch_all(p)
                .await?);
        let (expired_leases, oldest): (i64, Option<i64>) = on_pool!(self, |p| sqlx::query_as(
            "SELECT COUNT(*), MIN(lease_expires_at) FROM actions
             WHERE lease_token IS NOT NULL AND is_current AND status = 'future' AND lease_expires_at <= $1"
        )
        .bind(ms(now))
        .fetch_one(p)
        .await?);
        let expired_lease_age = oldest.map_or(Duration::ZERO, |at| {
            Duration::from_millis(u64::try_from(ms(now).saturating_sub(at)).unwrap_or_default())
        });
        Ok(Metrics { due_backlog, expired_leases, expired_lease_age, actions, deferrals, outbox })
    }

    /// Executes one statement as written, outside the typed API. It exists
    /// for tests that check the schema refuses what the API never writes,
    /// and for maintenance; application code never calls it.
    ///
    /// # Errors
    ///
    /// As the statement fails, mapped like every other query.
    #[doc(hidden)]
    pub async fn execute_unchecked(&self, sql: &str) -> Result<u64> {
        Ok(on_pool!(self, |p| sqlx::query(sql).execute(p).await?.rows_affected()))
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }
}

impl Tx {
    /// Commits.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when the commit fails; nothing was written.
    pub async fn commit(mut self) -> Result<()> {
        let wrote = self.settle_lanes().await?;
        // The writer lock (if any) is released when `self` is dropped here,
        // after the commit.
        let deliveries = self.deliveries.clone();
        self.read.end(true).await?;
        if wrote {
            deliveries.notify_one();
        }
        Ok(())
    }

    /// Rolls back (dropping the transaction does too).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when the connection fails.
    pub async fn rollback(self) -> Result<()> {
        self.read.end(false).await
    }
}

impl ReadTx {
    /// Ends the transaction, releasing its snapshot (dropping it does too).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when the connection fails.
    pub async fn rollback(self) -> Result<()> {
        self.end(false).await
    }

    async fn end(self, commit: bool) -> Result<()> {
        match (self.inner, commit) {
            (TxInner::Sqlite(t), true) => t.commit().await?,
            (TxInner::Sqlite(t), false) => t.rollback().await?,
            (TxInner::Postgres(t), true) => t.commit().await?,
            (TxInner::Postgres(t), false) => t.rollback().await?,
        }
        Ok(())
    }
}

/// A new id: `prefix`, an underscore and 128 random bits in hex (UUID v4,
/// which takes them from the operating system's generator).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// The most values bound in one statement: SQLite takes 32,766 and
/// PostgreSQL 65,535, so bulk statements are cut into chunks of rows whose
/// values stay under this.
const MAX_BINDS: usize = 30_000;

/// Pushes `(v1, v2, …)` onto `q`, each value bound. `QueryBuilder` numbers
/// placeholders for each backend: `$n` on PostgreSQL, anonymous `?` on
/// SQLite (where sqlx would look every numbered one up by name, which makes
/// a statement with thousands of them slow).
fn in_list<'q, 'a: 'q, DB: sqlx::Database, T>(
    q: &'q mut sqlx::QueryBuilder<'a, DB>,
    values: &'a [T],
) -> &'q mut sqlx::QueryBuilder<'a, DB>
where
    &'a T: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut list = q.separated(", ");
    list.push_unseparated("(");
    for value in values {
        list.push_bind(value);
    }
    list.push_unseparated(")");
    q
}

/// A time as stored: Unix milliseconds.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// An optional time as stored.
fn ms_opt(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(ms)
}

/// A stored time.
fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("time {ms} is out of range")))
}

/// An optional stored time.
fn time_opt(ms: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    ms.map(time).transpose()
}

/// An optional stored enum.
fn parse_opt<T: FromStr<Err = stepwise_domain::engagement::UnknownVariant>>(s: Option<String>) -> Result<Option<T>> {
    Ok(s.map(|s| s.parse()).transpose()?)
}

/// The `before` and `after` of each of `items` as stored (JSON text).
fn changes_as_text<'a>(
    items: impl Iterator<Item = (&'a Option<serde_json::Value>, &'a Option<serde_json::Value>)>,
) -> Result<Vec<(Option<String>, Option<String>)>> {
    items
        .map(|(before, after)| {
            let before = before.as_ref().map(serde_json::to_string).transpose()?;
            let after = after.as_ref().map(serde_json::to_string).transpose()?;
            Ok((before, after))
        })
        .collect()
}

/// Optional stored JSON.
fn json_opt(s: Option<String>) -> Result<Option<serde_json::Value>> {
    Ok(s.map(|s| serde_json::from_str(&s)).transpose()?)
}

/// `NotFound` when a lookup found nothing.
fn found<T>(row: Option<T>, what: &'static str, id: &str) -> Result<T> {
    row.ok_or_else(|| StoreError::NotFound { what, id: id.to_owned() })
}
