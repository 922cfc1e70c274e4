//! Hosts sharing one PostgreSQL database hear each other (work one host
//! makes due is claimed by another at once, not at its next poll) and
//! sweep without doing the same work twice.

use std::sync::Arc;
use std::time::Duration;

use stepwise::engagement::{ActionStatus, EnrollmentStatus, EventKind, TimingMode};
use stepwise::engine::{Engine, EngineConfig, RecordingTransport, Signal, SignalKind, SystemClock};
use stepwise::store::Store;
use stepwise_tests::db::{POSTGRES_URL_VAR, at, postgres_schema};
use stepwise_tests::scenario::{DAY, World, registry, settings, trivial};

/// Runs `test` on a store of its own on PostgreSQL (a fresh schema,
/// dropped afterwards, even when the test panics); nothing without
/// `STEPWISE_TEST_POSTGRES_URL`.
async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else { return };
    let (admin, schema, url) = postgres_schema(&admin_url, "stepwise_hosts").await;
    let store = Store::connect(&url).await.unwrap();
    let outcome = tokio::spawn(test(store.clone())).await;
    store.close().await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

#[tokio::test]
async fn a_host_claims_at_once_what_another_host_made_due() {
    on_postgres(|store| async move {
        // The world's engine is the host people talk to; it runs no
        // scheduler. The other polls only every minute.
        let w = World::new(store.clone()).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![trivial(0)]).await;
        let config = EngineConfig { max_idle: Duration::from_secs(60), ..EngineConfig::default() };
        let transport = Arc::new(RecordingTransport::new());
        let other = Engine::new(store, registry().await, Arc::new(SystemClock), transport, config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(async move { other.run(async { stopped.await.unwrap_or(()) }).await });
        // Listening and asleep, with nothing due.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        let heard = tokio::time::timeout(Duration::from_secs(10), async {
            while w.action(&e.id, 0).await.status != ActionStatus::Completed {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let _ = stop.send(());
        running.await.unwrap().unwrap();
        assert!(heard.is_ok(), "the other host claimed the action long before its next poll");
    })
    .await;
}

/// Out-of-office returns are swept by every host, and each returning
/// enrollment is resumed by one of them, once.
#[tokio::test]
async fn hosts_sweeping_out_of_office_returns_at_once_resume_each_enrollment_once() {
    on_postgres(|store| async move {
        let w = World::new(store.clone()).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![stepwise_tests::scenario::task(DAY)]).await;
        let mut enrollments = Vec::new();
        for i in 0..200 {
            let contact = w.contact(|c| c.email = Some(format!("c{i}@example.com"))).await;
            enrollments.push(w.enroll(&contact, &seq).await.id);
            let away = Signal {
                kind: SignalKind::OutOfOffice,
                contact_id: contact,
                enrollment_id: None,
                action_id: None,
                return_date: Some(at(60)),
            };
            w.engine.signal(&w.account, &away).await.unwrap();
        }
        w.clock.set(at(61));
        // Two more hosts on the same clock sweep at the same time.
        let host = || {
            let transport = Arc::new(RecordingTransport::new());
            Engine::new(store.clone(), w.engine.registry().clone(), w.clock.clone(), transport, EngineConfig::default())
        };
        let (a, b) = (host(), host());
        let (x, y) = tokio::join!(a.run_until_idle(), b.run_until_idle());
        x.unwrap();
        y.unwrap();
        for e in &enrollments {
            let resumed = w.events(e).await.iter().filter(|ev| ev.kind == EventKind::EnrollmentResumed).count();
            assert_eq!(resumed, 1, "{e} resumed once");
            assert_eq!(w.enrollment(e).await.status, EnrollmentStatus::Running);
        }
    })
    .await;
}

/// Two hosts freeing drip slots at the same moment hand each slot on once:
/// each to a different queued enrollment, and never more than the limit.
#[tokio::test]
async fn hosts_freeing_drip_slots_at_once_hand_each_slot_on_once() {
    on_postgres(|store| async move {
        let w = World::new(store.clone()).await;
        let drip = stepwise::engagement::SequenceSettings { drip_limit: Some(2), ..settings() };
        let seq = w.sequence(TimingMode::AfterPrevious, drip, vec![stepwise_tests::scenario::task(0)]).await;
        let mut enrollments = Vec::new();
        for i in 0..12 {
            let contact = w.contact(|c| c.email = Some(format!("c{i}@example.com"))).await;
            enrollments.push(w.enroll(&contact, &seq).await.id);
        }
        let transport = Arc::new(RecordingTransport::new());
        let other = Engine::new(
            store.clone(),
            w.engine.registry().clone(),
            w.clock.clone(),
            transport,
            EngineConfig::default(),
        );
        for round in 0..5 {
            let mut holders = Vec::new();
            for e in &enrollments {
                if matches!(w.enrollment(e).await.status, EnrollmentStatus::Pending | EnrollmentStatus::Running) {
                    holders.push(e.clone());
                }
            }
            assert_eq!(holders.len(), 2, "round {round}: the limit's worth hold slots");
            let (x, y) = tokio::join!(
                w.engine.cancel(&w.account, &holders[0], &w.agent),
                other.cancel(&w.account, &holders[1], &w.agent)
            );
            x.unwrap();
            y.unwrap();
        }
        let mut dequeued = 0;
        let mut holding = 0;
        for e in &enrollments {
            let once = w.events(e).await.iter().filter(|ev| ev.kind == EventKind::EnrollmentDequeued).count();
            assert!(once <= 1, "{e} dequeued {once} times");
            dequeued += once;
            if matches!(w.enrollment(e).await.status, EnrollmentStatus::Pending | EnrollmentStatus::Running) {
                holding += 1;
            }
        }
        assert_eq!((dequeued, holding), (10, 2), "every slot freed went on once");
    })
    .await;
}

/// A change that makes work due only after every host's next poll is not
/// announced; one that makes work due now is.
#[tokio::test]
async fn only_work_due_before_the_next_poll_is_announced() {
    on_postgres(|store| async move {
        let w = World::new(store.clone()).await;
        let later = w.sequence(TimingMode::AfterPrevious, settings(), vec![trivial(DAY)]).await;
        let now = w.sequence(TimingMode::AfterPrevious, settings(), vec![trivial(0)]).await;
        let (first, second) = (w.contact(|_| {}).await, w.contact(|c| c.email = Some("b@example.com".into())).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut listener = store.listen().await.unwrap().expect("PostgreSQL listens");

        w.enroll(&first, &later).await;
        let heard = tokio::time::timeout(Duration::from_millis(500), listener.next()).await;
        assert!(heard.is_err(), "a step due tomorrow wakes nobody: {heard:?}");

        w.enroll(&second, &now).await;
        let heard = tokio::time::timeout(Duration::from_secs(5), listener.next()).await;
        let payload = heard.expect("announced").unwrap();
        assert!(payload.starts_with("due "), "{payload}");
    })
    .await;
}
