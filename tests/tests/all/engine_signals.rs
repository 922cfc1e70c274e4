//! Inbound signals (SPEC §6), the outbox and the scheduler's lease and
//! real-time behaviour, on both backends.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use stepwise::engagement::{
    ActionStatus, EnrollmentStatus, OnReply, OutboxState, PauseReason, SequenceSettings, TimingMode,
};
use stepwise::engine::{Engine, EngineConfig, RecordingTransport, Signal, SignalKind, SystemClock};
use stepwise_tests::db::{at, for_each_backend, t0};
use stepwise_tests::scenario::{DAY, World, registry, scripted, settings, task, trivial};

fn signal(kind: SignalKind, contact: &str) -> Signal {
    Signal { kind, contact_id: contact.into(), enrollment_id: None, action_id: None, return_date: None }
}

#[tokio::test]
async fn a_reply_stops_or_continues_per_the_sequence_and_sets_last_engaged() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let stop = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0), task(DAY)]).await;
        let go_on = SequenceSettings { on_reply: OnReply::Continue, ..settings() };
        let cont = w.sequence(TimingMode::AfterPrevious, go_on, vec![task(0), task(DAY)]).await;
        let contact = w.contact(|_| {}).await;
        let stopped = w.enroll(&contact, &stop).await;
        let continued = w.enroll(&contact, &cont).await;
        w.run().await;
        w.clock.advance(chrono::Duration::minutes(5));
        let changed = w.engine.signal(&w.account, &signal(SignalKind::Reply, &contact)).await.unwrap();
        assert_eq!(changed.len(), 2);
        assert_eq!(w.enrollment(&stopped.id).await.status, EnrollmentStatus::Replied);
        assert_eq!(w.enrollment(&continued.id).await.status, EnrollmentStatus::Running);
        assert_eq!(w.get_contact(&contact).await.last_engaged, Some(at(5)));
        assert!(w.engage(&w.agent).await.iter().all(|a| a.enrollment_id == continued.id));
    })
    .await;
}

#[tokio::test]
async fn bounce_and_unsubscribe_end_enrollments_and_ended_ones_stay_ended() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0)]).await;
        let other = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0)]).await;
        let contact = w.contact(|_| {}).await;
        let first = w.enroll(&contact, &seq).await;
        let second = w.enroll(&contact, &other).await;
        let bounce = Signal { enrollment_id: Some(first.id.clone()), ..signal(SignalKind::Bounce, &contact) };
        w.engine.signal(&w.account, &bounce).await.unwrap();
        assert_eq!(w.enrollment(&first.id).await.status, EnrollmentStatus::Bounced);
        assert_eq!(w.enrollment(&second.id).await.status, EnrollmentStatus::Pending, "only the named enrollment");

        w.engine.signal(&w.account, &signal(SignalKind::Unsubscribe, &contact)).await.unwrap();
        assert!(w.get_contact(&contact).await.opt_outs.email);
        assert_eq!(w.enrollment(&second.id).await.status, EnrollmentStatus::OptedOut);
        assert_eq!(w.enrollment(&first.id).await.status, EnrollmentStatus::Bounced, "never reopened or changed");
        w.engine.signal(&w.account, &signal(SignalKind::Reply, &contact)).await.unwrap();
        assert_eq!(w.enrollment(&second.id).await.status, EnrollmentStatus::OptedOut);

        let stranger = Signal { enrollment_id: Some(first.id.clone()), ..signal(SignalKind::Bounce, "con_nobody") };
        assert!(w.engine.signal(&w.account, &stranger).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn out_of_office_pauses_until_the_return_date_or_a_resume() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0), task(0)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        w.run().await;
        let away = Signal { return_date: Some(at(3 * 24 * 60)), ..signal(SignalKind::OutOfOffice, &contact) };
        w.engine.signal(&w.account, &away).await.unwrap();
        let paused = w.enrollment(&e.id).await;
        assert_eq!((paused.status, paused.pause_reason), (EnrollmentStatus::Paused, Some(PauseReason::OutOfOffice)));
        assert!(w.engage(&w.agent).await.is_empty());
        w.run_to(3 * 24 * 60 - 1).await;
        assert_eq!(w.enrollment(&e.id).await.status, EnrollmentStatus::Paused);
        w.run_to(3 * 24 * 60).await;
        assert_eq!(w.enrollment(&e.id).await.status, EnrollmentStatus::Running, "back on the return date");
        assert_eq!(w.action(&e.id, 0).await.status, ActionStatus::Active);

        // Without a date, it waits for a person.
        w.engine.signal(&w.account, &signal(SignalKind::OutOfOffice, &contact)).await.unwrap();
        w.run_to(30 * 24 * 60).await;
        assert_eq!(w.enrollment(&e.id).await.status, EnrollmentStatus::Paused);
        w.engine.resume(&w.account, &e.id, &w.agent).await.unwrap();
        w.run().await;
        assert_eq!(w.action(&e.id, 0).await.status, ActionStatus::Active);
    })
    .await;
}

#[tokio::test]
async fn clicks_and_opens_set_last_engaged_only() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        for (minutes, kind) in [(1, SignalKind::Open), (2, SignalKind::Click)] {
            w.clock.set(at(minutes));
            w.engine.signal(&w.account, &signal(kind, &contact)).await.unwrap();
            assert_eq!(w.get_contact(&contact).await.last_engaged, Some(at(minutes)));
        }
        assert_eq!(w.enrollment(&e.id).await.status, EnrollmentStatus::Pending);
    })
    .await;
}

#[tokio::test]
async fn sent_messages_go_through_the_outbox_once_under_the_actions_key() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w
            .sequence(
                TimingMode::AfterPrevious,
                settings(),
                vec![scripted(json!({"send": true, "set": {"stage": "warm"}}), 0)],
            )
            .await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        w.run().await;
        let action = w.action(&e.id, 0).await;
        let delivered = w.transport.delivered();
        assert_eq!(delivered.len(), 1);
        let message = &delivered[0];
        assert_eq!(message.action_id.as_deref(), Some(action.id.as_str()));
        assert!(message.idempotency_key.contains(&action.id), "{} from {}", message.idempotency_key, action.id);
        assert_eq!(message.payload["to"], "ada@example.com");
        let mut tx = w.store().begin_read().await.unwrap();
        assert_eq!(tx.message(&message.id).await.unwrap().state, OutboxState::Sent);
        drop(tx);
        assert_eq!(w.engine.dispatch_outbox().await.unwrap(), 0, "nothing is sent twice");
        let contact = w.get_contact(&contact).await;
        assert_eq!(contact.last_contacted, Some(t0()));
        assert_eq!(contact.attributes.get("stage").map(ToString::to_string).as_deref(), Some("warm"));
    })
    .await;
}

#[tokio::test]
async fn a_crashed_hosts_lease_expires_and_another_host_does_the_work() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![trivial(0)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        let crashed = w.store().claim_due_actions(t0(), 10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(crashed.len(), 1);
        w.run().await;
        assert_eq!(w.action(&e.id, 0).await.status, ActionStatus::Future, "leased to the crashed host");
        w.run_to(1).await;
        assert_eq!(w.action(&e.id, 0).await.status, ActionStatus::Completed);
    })
    .await;
}

#[tokio::test]
async fn the_running_scheduler_acts_within_a_second_of_the_due_time() {
    for_each_backend(|store| async move {
        // The real clock: enroll in a step due half a second from now.
        let transport = Arc::new(RecordingTransport::new());
        let engine =
            Engine::new(store.clone(), registry().await, Arc::new(SystemClock), transport, EngineConfig::default());
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![trivial(500)]).await;
        let contact = w.contact(|_| {}).await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runner = {
            let engine = engine.clone();
            tokio::spawn(async move { engine.run(async { stopped.await.unwrap_or(()) }).await })
        };
        // No pause for the runner to start: enrolling wakes it, and a wake-up
        // sent before it waits is kept.
        let e = engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        let due = w.action(&e.id, 0).await.due_at.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let done = loop {
            let action = w.action(&e.id, 0).await;
            if action.status == ActionStatus::Completed || tokio::time::Instant::now() > deadline {
                break action;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        stop.send(()).unwrap();
        runner.await.unwrap().unwrap();
        assert_eq!(done.status, ActionStatus::Completed);
        let late = done.completed_at.unwrap() - due;
        assert!(
            late >= chrono::Duration::zero() && late < chrono::Duration::seconds(1),
            "acted {late} after the due time"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_sharing_a_database_run_every_action_exactly_once() {
    for_each_backend(|store| async move {
        let w = World::new(store.clone()).await;
        // A second host: its own engine over the same database and clock.
        let other = Engine::new(
            store,
            registry().await,
            w.clock.clone(),
            Arc::new(RecordingTransport::new()),
            EngineConfig { batch_size: 7, ..EngineConfig::default() },
        );
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), (0..4).map(|_| trivial(0)).collect()).await;
        let mut enrollments = Vec::new();
        for i in 0..40 {
            let contact = w.contact(|c| c.email = Some(format!("h{i}@example.com"))).await;
            enrollments.push(w.enroll(&contact, &seq).await.id);
        }
        let (a, b) = tokio::join!(w.engine.run_until_idle(), other.run_until_idle());
        let handled = a.unwrap() + b.unwrap() + w.engine.run_until_idle().await.unwrap();
        assert_eq!(handled, 160, "each of the 160 actions was handled once, by one host or the other");
        for e in enrollments {
            assert_eq!(w.enrollment(&e).await.status, EnrollmentStatus::Completed);
            let events = w.events(&e).await;
            assert_eq!(
                events.iter().filter(|e| e.kind.as_str() == "action.completed").count(),
                4,
                "no action ran twice"
            );
        }
    })
    .await;
}

/// A transport that fails the first `temporary` deliveries for now, then
/// refuses anything addressed to `bad@example.com` for good.
#[derive(Debug, Default)]
struct Flaky {
    temporary: std::sync::Mutex<u32>,
    delivered: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl stepwise::engine::Transport for Flaky {
    async fn deliver(
        &self,
        message: &stepwise::engagement::OutboxMessage,
    ) -> Result<stepwise::engine::Delivery, stepwise::engine::TransportError> {
        use stepwise::engine::TransportError;
        if message.payload["to"] == "bad@example.com" {
            return Err(TransportError::Permanent("550 no such mailbox".into()));
        }
        let mut left = self.temporary.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return Err(TransportError::Temporary("421 try again later".into()));
        }
        self.delivered.lock().unwrap().push(message.idempotency_key.clone());
        Ok(stepwise::engine::Delivery { provider_id: None })
    }
}

#[tokio::test]
async fn failed_deliveries_back_off_and_permanent_ones_are_given_up() {
    for_each_backend(|store| async move {
        let w = World::new(store.clone()).await;
        let flaky = Arc::new(Flaky { temporary: std::sync::Mutex::new(1), ..Flaky::default() });
        let engine = Engine::new(store, registry().await, w.clock.clone(), flaky.clone(), EngineConfig::default());
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"send": true}), 0)]).await;
        let good = w.contact(|_| {}).await;
        let bad = w.contact(|c| c.email = Some("bad@example.com".into())).await;
        let first = engine.enroll(&w.account, &w.request(&good, &seq)).await.unwrap();
        engine.enroll(&w.account, &w.request(&bad, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();
        assert!(flaky.delivered.lock().unwrap().is_empty(), "the first attempt failed for now");
        let mut tx = w.store().begin_read().await.unwrap();
        let messages = tx.queued_messages(10).await.unwrap();
        drop(tx);
        assert_eq!(messages.len(), 1, "the permanent failure left the queue");
        assert_eq!(messages[0].next_attempt_at, at(0) + chrono::Duration::seconds(30), "tried again after a backoff");
        assert_eq!(messages[0].last_error.as_deref(), Some("temporary failure: 421 try again later"));
        assert_eq!(engine.dispatch_outbox().await.unwrap(), 0, "not before its time");
        w.clock.advance(chrono::Duration::seconds(30));
        assert_eq!(engine.dispatch_outbox().await.unwrap(), 1);
        let key = flaky.delivered.lock().unwrap()[0].clone();
        assert!(key.contains(&w.action(&first.id, 0).await.id));
        let mut tx = w.store().begin_read().await.unwrap();
        assert!(tx.queued_messages(10).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn without_a_transport_messages_stay_queued_in_the_outbox() {
    for_each_backend(|store| async move {
        let w = World::new(store.clone()).await;
        let engine = Engine::new(
            store,
            registry().await,
            w.clock.clone(),
            Arc::new(stepwise::engine::Unconfigured),
            EngineConfig::default(),
        );
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"send": true}), 0)]).await;
        let contact = w.contact(|_| {}).await;
        engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();
        assert_eq!(engine.dispatch_outbox().await.unwrap(), 0);
        let mut tx = w.store().begin_read().await.unwrap();
        let queued = tx.queued_messages(10).await.unwrap();
        assert_eq!(
            (queued.len(), queued[0].attempts, queued[0].state),
            (1, 0, OutboxState::Queued),
            "kept, untouched, visible"
        );
    })
    .await;
}
