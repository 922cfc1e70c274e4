//! Crashes, restarts and many hosts, with real processes: `stepwise serve`
//! and `stepwise scheduler` hosts share one database; a sequence of two
//! webhooks and an email runs for many contacts against a local webhook
//! receiver and a local SMTP server while hosts are killed with SIGKILL and
//! started again (and, on PostgreSQL, the database restarts). Every action
//! must end completed (or parked with evidence that its effect may have
//! begun), nothing may be delivered twice, and a dead host's work must be
//! taken up within its lease and a second. The account's webhook
//! subscription must receive every event written for it, under the id it
//! was written with, each enrollment's in order.
//!
//! `STEPWISE_CRASH_CONTACTS` sets the contacts per run (three actions each).

mod support;

use std::time::Duration;

use support::{Db, Outcome, Plan, run};

/// One scenario at a time: they kill processes and restart the database.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn contacts() -> usize {
    std::env::var("STEPWISE_CRASH_CONTACTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_500)
}

/// Six kills of one of `schedulers` hosts, against a receiver slow enough
/// that every host always has a batch in flight, so that a kill lands
/// mid-batch.
fn plan(schedulers: usize, restart: Option<fn()>) -> Plan {
    Plan { contacts: contacts(), schedulers, kills: 6, restart, receiver_delay: Duration::from_millis(20) }
}

/// What every run must show.
fn check(outcome: &Outcome) {
    let n = outcome.actions / 3;
    assert_eq!(outcome.completed + outcome.parked, outcome.actions as i64, "{outcome:?}");
    assert_eq!(outcome.parked_never_started, 0, "no action that never began is parked: {outcome:?}");
    assert_eq!(outcome.parked, 0, "webhooks retry with their key and emails commit with the answer: {outcome:?}");
    assert_eq!(outcome.webhook_keys, 2 * n, "each webhook reached the receiver: {outcome:?}");
    assert_eq!(outcome.email_duplicates, 0, "no email twice: {outcome:?}");
    // An email a killed host handed over but did not record is both
    // received and held as interrupted: never sent again.
    assert!(
        outcome.emails <= n && outcome.emails + outcome.emails_interrupted as usize >= n,
        "each email sent once, or held as interrupted: {outcome:?}"
    );
    assert_eq!(outcome.events, 4 * n, "three steps and the enrollment completed, each written once: {outcome:?}");
    assert_eq!(outcome.events_missing, 0, "no event is lost between commit and delivery: {outcome:?}");
    assert_eq!(outcome.events_unknown, 0, "no event arrives under an id of its own: {outcome:?}");
    assert_eq!(outcome.events_out_of_order, 0, "an enrollment's events arrive in order: {outcome:?}");
    assert!(
        outcome.longest_expired_lease <= Duration::from_secs(1),
        "a dead host's work is taken within its lease and a second: {outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_scheduler_hosts_on_sqlite_lose_nothing_and_send_nothing_twice() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("crash.db").display());
    let outcome = run(url, plan(1, None)).await;
    check(&outcome);
}

/// The cluster a PostgreSQL URL's port runs as, restarted by its tools.
fn restart_postgres() {
    let url = std::env::var("STEPWISE_TEST_POSTGRES_URL").unwrap();
    let port = url::Url::parse(&url).unwrap().port().unwrap_or(5432).to_string();
    let clusters = std::process::Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .expect("restarting PostgreSQL needs pg_lsclusters (Debian's postgresql-common)");
    let listing = String::from_utf8_lossy(&clusters.stdout);
    let cluster = listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&port.as_str()))
        .unwrap_or_else(|| panic!("no PostgreSQL cluster on port {port} in:\n{listing}"));
    let status =
        std::process::Command::new("pg_ctlcluster").args([cluster[0], cluster[1], "restart"]).status().unwrap();
    assert!(status.success(), "pg_ctlcluster {} {} restart failed", cluster[0], cluster[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_scheduler_hosts_and_a_database_restart_on_postgresql_lose_nothing_and_send_nothing_twice() {
    let Ok(admin_url) = std::env::var("STEPWISE_TEST_POSTGRES_URL") else { return };
    let _one = ONE_AT_A_TIME.lock().await;
    let admin = Db::connect(&admin_url).await;
    let schema = format!("stepwise_crash_{}", std::process::id());
    admin.execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
    admin.execute(&format!("CREATE SCHEMA {schema}")).await;
    admin.close().await;
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{separator}options[search_path]={schema}");
    let outcome = run(url, plan(2, Some(restart_postgres))).await;
    let admin = Db::connect(&admin_url).await;
    admin.execute(&format!("DROP SCHEMA {schema} CASCADE")).await;
    check(&outcome);
}
