//! Text messages and calls through a Twilio-style provider's HTTP API, a
//! local server standing in for it: the form, the basic auth, the
//! idempotency header, retries of 429 and 5xx, failures of other 4xx, a
//! handover interrupted by a stopped host sent again under the same key,
//! and channels without a transport left queued. On both backends.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use stepwise::delivery::sms::{Call, CallScript, SmsConfig, SmsProvider};
use stepwise::delivery::{Channels, Secret};
use stepwise::engagement::{
    Activation, EnrollmentStatus, OutboxChannel, OutboxMessage, OutboxState, StepTiming, TimingMode,
};
use stepwise::engine::{Engine, EngineConfig, Transport, TransportError};
use stepwise::store::Store;
use stepwise_tests::db::{at, for_each_backend};
use stepwise_tests::delivery::Provider;
use stepwise_tests::scenario::{DAY, World, registry, scripted, settings, step, trivial};

const SID: &str = "AC123";
/// `AC123:tok3n`, base64.
const BASIC: &str = "Basic QUMxMjM6dG9rM24=";
const SENT: (u16, &str) = (201, r#"{"sid": "SM0001", "status": "queued"}"#);

fn provider_config(provider: &Provider) -> SmsConfig {
    SmsConfig {
        url: format!("{}/2010-04-01", provider.base).parse().unwrap(),
        account_sid: SID.into(),
        auth_token: Secret::new("tok3n"),
        from: "+15550199".into(),
        timeout: Duration::from_secs(5),
    }
}

fn client(provider: &Provider) -> SmsProvider {
    SmsProvider::new(provider_config(provider)).unwrap()
}

async fn engine(w: &World, transport: Channels) -> Engine {
    Engine::new(w.store().clone(), registry().await, w.clock.clone(), Arc::new(transport), EngineConfig::default())
}

async fn outbox(store: &Store, account: &str) -> Vec<OutboxMessage> {
    let mut tx = store.begin_read().await.unwrap();
    tx.messages_page(account, Default::default(), None, 100).await.unwrap()
}

/// A text step, then a task a day later.
async fn text_sequence(w: &World) -> String {
    let texter = step("texter", json!({}), Activation::Automatic, StepTiming::Delay { ms: 0 });
    w.sequence(TimingMode::AfterPrevious, settings(), vec![texter, trivial(DAY)]).await
}

#[tokio::test]
async fn a_text_goes_to_the_provider_as_a_form_with_basic_auth_and_its_idempotency_key() {
    for_each_backend(|store| async move {
        let provider = Provider::start(&[SENT]).await;
        let w = World::new(store).await;
        let engine = engine(&w, Channels::new(None, Some(client(&provider)))).await;
        let seq = text_sequence(&w).await;
        let contact = w.contact(|_| {}).await;
        engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();

        let received = provider.received();
        assert_eq!(received.len(), 1);
        let request = &received[0];
        assert_eq!(request.path, "/2010-04-01/Accounts/AC123/Messages.json");
        assert_eq!(request.header("authorization"), Some(BASIC));
        assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
        assert_eq!(
            (request.field("To"), request.field("From"), request.field("Body")),
            (Some("+15550100"), Some("+15550199"), Some("Hello"))
        );
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!(request.header("idempotency-key"), Some(message.idempotency_key.as_str()));
        assert_eq!((message.state, message.attempts), (OutboxState::Sent, 1));
        assert_eq!(message.provider_id.as_deref(), Some("SM0001"), "the provider's sid");
    })
    .await;
}

#[tokio::test]
async fn a_429_or_5xx_is_tried_again_under_the_same_key() {
    for_each_backend(|store| async move {
        let busy = (429, r#"{"code": 20429, "message": "Too Many Requests"}"#);
        let broken = (503, "upstream unavailable");
        let provider = Provider::start(&[busy, broken, SENT]).await;
        let w = World::new(store).await;
        let engine = engine(&w, Channels::new(None, Some(client(&provider)))).await;
        let seq = text_sequence(&w).await;
        let contact = w.contact(|_| {}).await;
        engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();

        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!((message.state, message.attempts), (OutboxState::Queued, 1));
        assert_eq!(
            message.last_error.as_deref(),
            Some("temporary failure: the SMS provider answered HTTP 429: Too Many Requests (code 20429)")
        );
        assert_eq!(message.next_attempt_at, at(0) + chrono::Duration::seconds(30));
        w.clock.advance(chrono::Duration::seconds(30));
        assert_eq!(engine.dispatch_outbox().await.unwrap(), 0);
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!(
            message.last_error.as_deref(),
            Some("temporary failure: the SMS provider answered HTTP 503: upstream unavailable")
        );
        assert_eq!(message.next_attempt_at, at(0) + chrono::Duration::seconds(90), "30 s, then a minute");
        w.clock.advance(chrono::Duration::seconds(60));
        assert_eq!(engine.dispatch_outbox().await.unwrap(), 1);
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!(
            (message.state, message.attempts, message.provider_id.as_deref()),
            (OutboxState::Sent, 3, Some("SM0001"))
        );
        let keys: Vec<_> = provider.received().iter().map(|r| r.header("idempotency-key").map(str::to_owned)).collect();
        assert_eq!(keys, vec![Some(message.idempotency_key.clone()); 3], "every attempt under the message's key");
    })
    .await;
}

#[tokio::test]
async fn another_4xx_fails_the_text_with_the_providers_words_and_is_no_bounce() {
    for_each_backend(|store| async move {
        let invalid = (400, r#"{"code": 21211, "message": "The 'To' number +15550100 is not a valid phone number."}"#);
        let provider = Provider::start(&[invalid]).await;
        let w = World::new(store).await;
        let engine = engine(&w, Channels::new(None, Some(client(&provider)))).await;
        let seq = text_sequence(&w).await;
        let contact = w.contact(|_| {}).await;
        let e = engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();

        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!((message.state, message.attempts), (OutboxState::Failed, 1));
        assert_eq!(
            message.last_error.as_deref(),
            Some(
                "permanent failure: the SMS provider answered HTTP 400: \
                 The 'To' number +15550100 is not a valid phone number. (code 21211)"
            )
        );
        assert_eq!(w.enrollment(&e.id).await.status, EnrollmentStatus::Running, "only emails bounce");
        assert!(w.events(&e.id).await.iter().any(|e| e.kind.as_str() == "message.failed"), "on the timeline");
        w.clock.advance(chrono::Duration::hours(2));
        assert_eq!(engine.dispatch_outbox().await.unwrap(), 0);
        assert_eq!(provider.received().len(), 1, "never tried again");
    })
    .await;
}

#[tokio::test]
async fn a_text_whose_handover_a_stopped_host_never_recorded_is_sent_again_under_its_key() {
    for_each_backend(|store| async move {
        let provider = Provider::start(&[SENT]).await;
        let w = World::new(store.clone()).await;
        let sms = client(&provider);
        let seq = text_sequence(&w).await;
        let contact = w.contact(|_| {}).await;
        w.enroll(&contact, &seq).await;
        w.engine.tick().await.unwrap();

        // A host claims it, marks the handover, sends it, and stops before
        // recording the answer.
        let claimed = store.claim_messages(w.now(), 10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let (message, lease) = (&claimed[0].message, &claimed[0].lease_token);
        let mut tx = store.begin().await.unwrap();
        tx.begin_handover(&message.id, lease, w.now(), w.now() + chrono::Duration::seconds(60)).await.unwrap();
        tx.commit().await.unwrap();
        sms.deliver(message).await.unwrap();

        let engine = engine(&w, Channels::new(None, Some(sms))).await;
        assert_eq!(engine.dispatch_outbox().await.unwrap(), 0, "leased to the stopped host");
        w.clock.advance(chrono::Duration::seconds(61));
        assert_eq!(engine.dispatch_outbox().await.unwrap(), 1, "the provider deduplicates: handed over again");
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!((message.state, message.handover_started_at), (OutboxState::Sent, None));
        let keys: Vec<_> = provider.received().iter().map(|r| r.header("idempotency-key").map(str::to_owned)).collect();
        assert_eq!(keys, vec![Some(message.idempotency_key.clone()); 2], "both under the same key");
    })
    .await;
}

#[tokio::test]
async fn a_channel_without_a_transport_keeps_its_messages_queued_and_unleased() {
    for_each_backend(|store| async move {
        let provider = Provider::start(&[SENT]).await;
        let w = World::new(store.clone()).await;
        let engine = engine(&w, Channels::new(None, Some(client(&provider)))).await;
        let texts = text_sequence(&w).await;
        let emails = w.sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"send": true}), 0)]).await;
        let contact = w.contact(|_| {}).await;
        engine.enroll(&w.account, &w.request(&contact, &texts)).await.unwrap();
        engine.enroll(&w.account, &w.request(&contact, &emails)).await.unwrap();
        engine.run_until_idle().await.unwrap();

        let messages = outbox(w.store(), &w.account).await;
        let state =
            |channel: OutboxChannel| messages.iter().find(|m| m.channel == channel).map(|m| (m.state, m.attempts));
        assert_eq!(state(OutboxChannel::Sms), Some((OutboxState::Sent, 1)));
        assert_eq!(state(OutboxChannel::Email), Some((OutboxState::Queued, 0)), "no email transport: left as it was");
        let free =
            store.claim_messages_of(&[OutboxChannel::Email], w.now(), 10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(free.len(), 1, "and not leased: a host with an email transport takes it at once");
        assert!(!Channels::default().configured(), "nothing configured: the dispatcher does nothing");
    })
    .await;
}

#[tokio::test]
async fn calls_are_placed_with_to_from_and_a_url_or_twiml() {
    let provider = Provider::start(&[
        (201, r#"{"sid": "CA0001", "status": "queued"}"#),
        (201, r#"{"sid": "CA0002", "status": "ringing"}"#),
        (400, r#"{"code": 21205, "message": "Url is not a valid URL."}"#),
        (500, "{}"),
    ])
    .await;
    let client = client(&provider);
    let call = |script| Call { to: "+15550100".into(), script, idempotency_key: "act_1_call".into() };
    let placed = client.place_call(&call(CallScript::Url("https://example.com/script.xml".into()))).await.unwrap();
    assert_eq!((placed.sid.as_deref(), placed.status.as_deref()), (Some("CA0001"), Some("queued")));
    let twiml = "<Response><Say>Hello Ada</Say></Response>";
    let placed = client.place_call(&call(CallScript::Twiml(twiml.into()))).await.unwrap();
    assert_eq!(placed.sid.as_deref(), Some("CA0002"));
    let refused = client.place_call(&call(CallScript::Url("nope".into()))).await.unwrap_err();
    assert_eq!(
        refused,
        TransportError::Permanent("the SMS provider answered HTTP 400: Url is not a valid URL. (code 21205)".into())
    );
    let broken = client.place_call(&call(CallScript::Url("https://example.com/x".into()))).await.unwrap_err();
    assert!(matches!(broken, TransportError::Temporary(_)), "{broken:?}");

    let received = provider.received();
    assert!(received.iter().all(|r| r.path == "/2010-04-01/Accounts/AC123/Calls.json"), "{received:#?}");
    assert!(received.iter().all(|r| r.header("authorization") == Some(BASIC)));
    assert!(received.iter().all(|r| r.header("idempotency-key") == Some("act_1_call")));
    assert_eq!(
        (received[0].field("To"), received[0].field("From"), received[0].field("Url")),
        (Some("+15550100"), Some("+15550199"), Some("https://example.com/script.xml"))
    );
    assert_eq!((received[1].field("Twiml"), received[1].field("Url")), (Some(twiml), None));
}

#[tokio::test]
async fn an_unreachable_or_silent_provider_is_tried_again_later() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = SmsConfig { url: format!("http://127.0.0.1:{port}").parse().unwrap(), ..sample_config() };
    let error = SmsProvider::new(config).unwrap().send_sms("+15550100", "Hi", "k1").await.unwrap_err();
    assert!(
        matches!(&error, TransportError::Temporary(e) if e.starts_with("the SMS provider cannot be reached")),
        "{error:?}"
    );
    // A server that accepts the connection and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap()).parse().unwrap();
    let config = SmsConfig { url, timeout: Duration::from_millis(300), ..sample_config() };
    let error = SmsProvider::new(config).unwrap().send_sms("+15550100", "Hi", "k1").await.unwrap_err();
    assert_eq!(error, TransportError::Temporary("the SMS provider did not answer within 300ms".into()));
    assert!(!error.to_string().contains(SID), "the account sid stays out of errors");
}

fn sample_config() -> SmsConfig {
    SmsConfig {
        url: "http://127.0.0.1:9".parse().unwrap(),
        account_sid: SID.into(),
        auth_token: Secret::new("tok3n"),
        from: "+15550199".into(),
        timeout: Duration::from_secs(5),
    }
}
