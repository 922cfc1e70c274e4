//! A fresh store per test on every backend: SQLite always, PostgreSQL when
//! `STEPWISE_TEST_POSTGRES_URL` is set, each test in its own schema so tests
//! run in parallel.

use std::future::Future;

use chrono::{DateTime, TimeZone, Utc};
use stepwise::store::Store;

/// The variable naming the PostgreSQL server tests may use.
pub const POSTGRES_URL_VAR: &str = "STEPWISE_TEST_POSTGRES_URL";

/// Runs `test` against a fresh SQLite store and, when the variable is set, a
/// fresh PostgreSQL store (its own schema, dropped afterwards, even when the
/// test panics; the panic is then resumed).
pub async fn for_each_backend<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("stepwise.db").display());
    let store = Store::connect(&url).await.expect("sqlite store opens");
    let outcome = tokio::spawn(test(store.clone())).await;
    store.close().await;
    if let Err(error) = outcome {
        eprintln!("failed on sqlite");
        std::panic::resume_unwind(error.into_panic());
    }

    let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else { return };
    let (admin, schema, url) = postgres_schema(&admin_url, "stepwise_t").await;
    let store = Store::connect(&url).await.expect("postgres store opens");
    let outcome = tokio::spawn(test(store.clone())).await;
    store.close().await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.expect("schema dropped");
    admin.close().await;
    if let Err(error) = outcome {
        eprintln!("failed on postgres");
        std::panic::resume_unwind(error.into_panic());
    }
}

/// A new schema `{prefix}_{random}` on the PostgreSQL server at
/// `admin_url`: the admin connection (to drop it with), its name, and a
/// URL whose connections work inside it.
///
/// # Panics
///
/// When the server cannot be reached or the schema made.
pub async fn postgres_schema(admin_url: &str, prefix: &str) -> (sqlx::PgPool, String, String) {
    let admin = sqlx::PgPool::connect(admin_url).await.expect("postgres reachable");
    let schema = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.expect("schema created");
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{separator}options[search_path]={schema}");
    (admin, schema, url)
}

/// A fixed instant tests count from: 2025-01-06 09:00 UTC (a Monday).
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, 0).unwrap()
}

/// `t0` plus `minutes`.
pub fn at(minutes: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(minutes)
}

/// An account with a user, a contact, an active sequence with one published
/// two-step version, and the contact enrolled in it.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The account.
    pub account: String,
    /// An agent.
    pub user: String,
    /// A contact owned by the agent.
    pub contact: String,
    /// The sequence.
    pub sequence: String,
    /// The contact's running enrollment.
    pub enrollment: String,
}

/// Two automatic steps, one minute apart.
pub fn two_steps() -> Vec<stepwise::engagement::Step> {
    use stepwise::engagement::{Activation, OwnerRule, PluginRef, Step, StepTiming};
    (0..2)
        .map(|position| Step {
            position,
            name: format!("step {position}"),
            plugin: PluginRef { id: "task".into(), version: "^0.1".into() },
            config: serde_json::json!({"title": "call"}),
            timing: StepTiming::Delay { ms: 60_000 },
            activation: Activation::Automatic,
            owner: OwnerRule::ContactOwner,
            criteria: vec![],
            notify: false,
            regarding: None,
        })
        .collect()
}

/// Builds a [`Fixture`] at [`t0`].
pub async fn fixture(store: &Store) -> Fixture {
    use stepwise::crm::{Contact, User};
    use stepwise::engagement::{EnrollmentStatus, PlanType, SequenceSettings, SequenceState, TimingMode};
    use stepwise::store::{NewEnrollment, NewSequence};
    let mut tx = store.begin().await.unwrap();
    let account = tx.create_account("Acme", None, t0()).await.unwrap().id;
    let user = User { name: "Grace".into(), email: "grace@example.com".into(), ..User::default() };
    let user = tx.create_user(&account, &user, t0()).await.unwrap().id;
    let contact = Contact {
        first_name: "Ada".into(),
        email: Some("ada@example.com".into()),
        owner_id: Some(user.clone()),
        contact_type: "Clients".into(),
        ..Contact::default()
    };
    let contact = tx.create_contact(&account, &contact, t0()).await.unwrap().id;
    let new = NewSequence {
        name: "Welcome".into(),
        description: String::new(),
        plan_type: PlanType::Connection,
        timing_mode: TimingMode::AfterPrevious,
        settings: SequenceSettings::default(),
    };
    let sequence = tx.create_sequence(&account, &new, t0()).await.unwrap().id;
    tx.set_sequence_state(&account, &sequence, SequenceState::Active, t0()).await.unwrap();
    let version = tx.publish_version(&account, &sequence, &two_steps(), Some(&user), t0()).await.unwrap();
    let new = NewEnrollment {
        contact_id: contact.clone(),
        sequence_id: sequence.clone(),
        version: version.version,
        initiated_by: Some(user.clone()),
        status: EnrollmentStatus::Running,
        event_date: None,
    };
    let enrollment = tx.create_enrollment(&account, &new, t0()).await.unwrap().id;
    tx.commit().await.unwrap();
    Fixture { account, user, contact, sequence, enrollment }
}

/// Adds a `future` action for `step` of the fixture's enrollment.
pub async fn action(
    tx: &mut stepwise::store::Tx,
    enrollment: &str,
    step: i64,
    due_at: DateTime<Utc>,
    current: bool,
) -> stepwise::store::Result<stepwise::engagement::Action> {
    let new = stepwise::store::NewAction {
        enrollment_id: enrollment.to_owned(),
        step,
        plugin_id: "task".into(),
        activation: stepwise::engagement::Activation::Automatic,
        owner_id: None,
        due_at: Some(due_at),
        current,
        priority: stepwise::engagement::Priority::Normal,
    };
    tx.insert_action(&new, t0()).await
}
