//! Email delivery over SMTP against a real server on loopback (aiosmtpd):
//! what the server receives (envelope, headers, parts, Message-ID,
//! List-Unsubscribe), a 4xx tried again, a 5xx bouncing the enrollment, a
//! host stopping mid-handover never sending an email twice, and STARTTLS and
//! TLS with a private CA's certificate: delivered when the CA is trusted
//! (`STEPWISE_SMTP_CA_FILE`), kept and tried again when it is not, never
//! sent in clear text. On both backends.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use stepwise::config::Settings;
use stepwise::delivery::smtp::{CaCertificates, Security, SmtpConfig, SmtpTransport};
use stepwise::delivery::{Channels, Secret};
use stepwise::engagement::{EnrollmentStatus, OutboxMessage, OutboxState, SequenceSettings, TimingMode};
use stepwise::engine::{Engine, EngineConfig, INTERRUPTED};
use stepwise::store::{NewOutboxMessage, Store};
use stepwise_tests::db::{at, for_each_backend};
use stepwise_tests::delivery::{ServerOptions, ServerTls, SmtpServer, TestPki};
use stepwise_tests::scenario::{DAY, World, registry, scripted, settings, trivial};

const PUBLIC_URL: &str = "https://stepwise.example.com";

fn smtp(server: &SmtpServer) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: server.port,
        security: Security::None,
        ca: None,
        credentials: None,
        from: "sales@stepwise.test".parse().unwrap(),
        from_name: Some("Acme Sales".into()),
        envelope_from: None,
        timeout: Duration::from_secs(10),
        connections: 4,
    }
}

/// An engine over the world's store and clock that delivers email through
/// `config`'s server.
async fn engine(w: &World, config: SmtpConfig) -> Engine {
    engine_with(w, config, EngineConfig::default()).await
}

/// [`engine`] with the rest of the engine's settings from `engine`.
async fn engine_with(w: &World, config: SmtpConfig, engine: EngineConfig) -> Engine {
    let transport = Channels::new(Some(SmtpTransport::new(config)), None);
    let config = EngineConfig { public_url: Some(PUBLIC_URL.into()), ..engine };
    Engine::new(w.store().clone(), registry().await, w.clock.clone(), Arc::new(transport), config)
}

/// Every message of the world's account.
async fn outbox(store: &Store, account: &str) -> Vec<OutboxMessage> {
    let mut tx = store.begin_read().await.unwrap();
    tx.messages_page(account, Default::default(), None, 100).await.unwrap()
}

/// A sequence of one email step, then a task a day later (so that the
/// enrollment is still running when the email goes out).
async fn email_sequence(w: &World, unsubscribe_link: bool) -> String {
    let settings = SequenceSettings { unsubscribe_link, ..settings() };
    w.sequence(TimingMode::AfterPrevious, settings, vec![scripted(json!({"send": true}), 0), trivial(DAY)]).await
}

#[tokio::test]
async fn an_email_goes_out_with_its_headers_message_id_and_unsubscribe_link() {
    for_each_backend(|store| async move {
        let server = SmtpServer::with_login("sales", "hunter2").await;
        let w = World::new(store).await;
        let config = SmtpConfig { credentials: Some(("sales".into(), Secret::new("hunter2"))), ..smtp(&server) };
        let engine = engine(&w, config).await;
        let seq = email_sequence(&w, true).await;
        let contact = w.contact(|_| {}).await;
        engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();

        let received = server.received();
        assert_eq!(received.len(), 1, "{received:#?}");
        let mail = &received[0];
        assert_eq!(mail.mail_from, "sales@stepwise.test");
        assert_eq!(mail.rcpt_tos, ["ada@example.com"]);
        assert_eq!(mail.login.as_deref(), Some("sales"), "authenticated with the configured user");
        assert_eq!(mail.header("To"), Some("ada@example.com"));
        assert_eq!(mail.header("From"), Some("Acme Sales <sales@stepwise.test>"));
        assert_eq!(mail.header("Reply-To"), Some("Grace <grace@example.com>"), "replies reach the step's owner");
        assert_eq!(mail.header("Subject"), Some("Step 1 for Ada"));
        assert!(mail.header("Date").is_some_and(|d| d.contains(" +0000") || d.contains("GMT")), "{mail:#?}");
        assert_eq!(mail.text.as_deref().map(str::trim_end), Some("Hello Ada"));
        assert_eq!(mail.html, None);

        let messages = outbox(w.store(), &w.account).await;
        let message = &messages[0];
        let message_id = format!("<{}@stepwise.test>", message.idempotency_key);
        assert_eq!(mail.header("Message-ID"), Some(message_id.as_str()), "derived from the idempotency key");
        let token = engine.unsubscribe_token(&w.account, &contact).await.unwrap();
        let link = format!("<{PUBLIC_URL}/u/{token}>");
        assert_eq!(mail.header("List-Unsubscribe"), Some(link.as_str()));
        assert_eq!(mail.header("List-Unsubscribe-Post"), Some("List-Unsubscribe=One-Click"));

        assert_eq!((message.state, message.attempts), (OutboxState::Sent, 1));
        assert_eq!(message.provider_id.as_deref(), Some(message_id.as_str()));
        assert_eq!(message.handover_started_at, None, "the handover mark is cleared with the outcome");
        assert_eq!(engine.dispatch_outbox().await.unwrap(), 0);
        assert_eq!(server.received().len(), 1, "sent once");
    })
    .await;
}

#[tokio::test]
async fn an_email_comes_from_the_reps_verified_address_when_the_account_sends_so() {
    for_each_backend(|store| async move {
        let server = SmtpServer::start().await;
        let w = World::new(store).await;
        let config = SmtpConfig { envelope_from: Some("bounces@stepwise.test".parse().unwrap()), ..smtp(&server) };
        let engine = engine(&w, config).await;
        let seq = email_sequence(&w, false).await;
        // Through the relay: its address, Reply-To the rep's identity, the
        // configured envelope sender.
        w.update_user(&w.agent, |u| {
            u.sender_email = Some("grace@acme.example".into());
            u.sender_name = Some("Grace Hopper".into());
        })
        .await;
        let ada = w.contact(|_| {}).await;
        engine.enroll(&w.account, &w.request(&ada, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();
        // From their own verified address.
        let mut tx = w.store().begin().await.unwrap();
        tx.set_sender_mode(&w.account, stepwise::engagement::SenderMode::OwnAddress).await.unwrap();
        tx.commit().await.unwrap();
        let bob = w.contact(|c| c.email = Some("bob@example.com".into())).await;
        engine.enroll(&w.account, &w.request(&bob, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();

        let received = server.received();
        assert_eq!(received.len(), 2, "{received:#?}");
        let (relayed, own) = (&received[0], &received[1]);
        assert_eq!(relayed.header("From"), Some("Acme Sales <sales@stepwise.test>"));
        assert_eq!(relayed.header("Reply-To"), Some("Grace Hopper <grace@acme.example>"));
        assert_eq!(relayed.mail_from, "bounces@stepwise.test", "the configured envelope sender");
        assert_eq!(own.rcpt_tos, ["bob@example.com"]);
        assert_eq!(own.header("From"), Some("Grace Hopper <grace@acme.example>"));
        assert_eq!(own.header("Reply-To"), None, "replies go to From");
        assert_eq!(own.mail_from, "bounces@stepwise.test", "bounces still reach the host's mailbox");
        let id = own.header("Message-ID").unwrap();
        assert!(id.ends_with("@stepwise.test>"), "{id}");
    })
    .await;
}

#[tokio::test]
async fn a_reps_email_from_their_own_address_goes_through_their_own_server_with_their_login() {
    for_each_backend(|store| async move {
        let relay = SmtpServer::start().await;
        let theirs = SmtpServer::with_login("grace", "her-own-password").await;
        let w = World::new(store).await;
        let engine = engine(&w, smtp(&relay)).await;
        let seq = email_sequence(&w, false).await;
        w.update_user(&w.agent, |u| u.sender_email = Some("grace@acme.example".into())).await;
        let own = stepwise::delivery::SmtpAccount {
            host: "127.0.0.1".into(),
            port: theirs.port,
            security: Security::None,
            username: "grace".into(),
            password: Secret::new("her-own-password"),
        };
        let mut tx = w.store().begin().await.unwrap();
        tx.set_sender_mode(&w.account, stepwise::engagement::SenderMode::OwnAddress).await.unwrap();
        tx.set_sender_smtp(&w.account, &w.agent, Some(&own), w.now()).await.unwrap();
        tx.commit().await.unwrap();
        let ada = w.contact(|_| {}).await;
        engine.enroll(&w.account, &w.request(&ada, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();

        assert!(relay.received().is_empty(), "not through the relay: {:#?}", relay.received());
        let received = theirs.received();
        assert_eq!(received.len(), 1, "{received:#?}");
        let mail = &received[0];
        assert_eq!(mail.login.as_deref(), Some("grace"), "with their login");
        assert_eq!(mail.mail_from, "grace@acme.example", "their server sends for them");
        assert_eq!(mail.header("From"), Some("Grace <grace@acme.example>"));
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!(message.state, OutboxState::Sent);
        assert!(!message.payload.to_string().contains("her-own-password"), "{}", message.payload);
        assert_eq!(engine.dispatch_outbox().await.unwrap(), 0);
        assert_eq!(theirs.received().len(), 1, "sent once");
    })
    .await;
}

#[tokio::test]
async fn an_html_email_has_both_parts_and_no_unsubscribe_link_unless_its_sequence_asks() {
    for_each_backend(|store| async move {
        let server = SmtpServer::start().await;
        let w = World::new(store).await;
        let engine = engine(&w, smtp(&server)).await;
        // From a step whose sequence does not ask for links.
        let seq = email_sequence(&w, false).await;
        let contact = w.contact(|_| {}).await;
        engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        // And one queued by hand, with HTML and text beyond ASCII.
        let mut tx = w.store().begin().await.unwrap();
        let payload = json!({"channel": "email", "id": "msg_by_hand_1", "to": "grace@example.com",
            "subject": "Café ☕ news", "text": "Plain ünïcode\nsecond line", "html": "<p>Hi <b>Grace</b> ☕</p>"});
        let new = NewOutboxMessage {
            account_id: w.account.clone(),
            action_id: None,
            channel: stepwise::engagement::OutboxChannel::Email,
            payload,
            idempotency_key: "msg_by_hand_1".into(),
        };
        tx.enqueue_message(&new, w.now()).await.unwrap();
        tx.commit().await.unwrap();
        engine.run_until_idle().await.unwrap();

        let received = server.received();
        assert_eq!(received.len(), 2, "{received:#?}");
        let stepped = received.iter().find(|m| m.rcpt_tos == ["ada@example.com"]).unwrap();
        assert_eq!(stepped.header("List-Unsubscribe"), None, "the sequence does not ask for a link");
        let by_hand = received.iter().find(|m| m.rcpt_tos == ["grace@example.com"]).unwrap();
        assert_eq!(by_hand.header("Subject"), Some("Café ☕ news"));
        assert_eq!(by_hand.header("Message-ID"), Some("<msg_by_hand_1@stepwise.test>"));
        assert!(by_hand.header("Content-Type").is_some_and(|c| c.starts_with("multipart/alternative")));
        let text = by_hand.text.as_deref().map(|t| t.replace("\r\n", "\n"));
        assert_eq!(text.as_deref().map(str::trim_end), Some("Plain ünïcode\nsecond line"));
        assert_eq!(by_hand.html.as_deref().map(str::trim_end), Some("<p>Hi <b>Grace</b> ☕</p>"));
        assert!(by_hand.raw.is_ascii(), "encoded for any server");
        assert!(outbox(w.store(), &w.account).await.iter().all(|m| m.state == OutboxState::Sent));
    })
    .await;
}

#[tokio::test]
async fn a_4xx_reply_is_tried_again_after_a_backoff() {
    for_each_backend(|store| async move {
        let server = SmtpServer::start().await;
        let w = World::new(store).await;
        let engine = engine(&w, smtp(&server)).await;
        let seq = email_sequence(&w, false).await;
        let contact = w.contact(|c| c.email = Some("busy@example.com".into())).await;
        let e = engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();

        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!((message.state, message.attempts), (OutboxState::Queued, 1));
        let error = message.last_error.clone().unwrap();
        assert!(error.starts_with("temporary failure: the server refused the recipient (RCPT TO): 451"), "{error}");
        assert!(error.contains("mailbox busy"), "the server's reply is kept: {error}");
        assert_eq!(message.next_attempt_at, at(0) + chrono::Duration::seconds(30));
        assert_eq!(message.handover_started_at, None);
        assert!(server.received().is_empty());

        assert_eq!(engine.dispatch_outbox().await.unwrap(), 0, "not before the backoff");
        w.clock.advance(chrono::Duration::seconds(30));
        assert_eq!(engine.dispatch_outbox().await.unwrap(), 1);
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!((message.state, message.attempts), (OutboxState::Sent, 2));
        assert_eq!(server.received().len(), 1);
        assert_eq!(w.enrollment(&e.id).await.status, EnrollmentStatus::Running, "a 4xx is no bounce");
    })
    .await;
}

#[tokio::test]
async fn a_5xx_reply_fails_the_email_and_bounces_the_enrollment() {
    for_each_backend(|store| async move {
        let server = SmtpServer::start().await;
        let w = World::new(store).await;
        let engine = engine(&w, smtp(&server)).await;
        let seq = email_sequence(&w, false).await;
        let contact = w.contact(|c| c.email = Some("bounce@example.com".into())).await;
        let e = engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();

        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!((message.state, message.attempts), (OutboxState::Failed, 1));
        let error = message.last_error.unwrap();
        assert!(
            error.contains("550") && error.contains("Recipient address rejected: no such user here"),
            "the server's reply is kept: {error}"
        );
        let enrollment = w.enrollment(&e.id).await;
        assert_eq!(enrollment.status, EnrollmentStatus::Bounced, "a hard bounce ends the enrollment (SPEC §6)");
        let events = w.events(&e.id).await;
        let failed =
            events.iter().find(|e| e.kind.as_str() == "message.failed").expect("the failure is on the timeline");
        assert!(failed.reason.as_deref().is_some_and(|r| r.contains("550")), "{failed:?}");
        let ended = events.iter().rev().find(|e| e.reason.as_deref().is_some_and(|r| r.contains("bounced"))).unwrap();
        assert_eq!(ended.actor, "outbox");
        assert!(server.received().is_empty());
        // The task a day later never runs.
        engine.run_until(&w.clock, at(2 * 24 * 60)).await.unwrap();
        assert_eq!(w.enrollment(&e.id).await.status, EnrollmentStatus::Bounced);
        assert_eq!(outbox(w.store(), &w.account).await.len(), 1, "nothing else was queued");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_handing_an_email_over_keeps_it_while_it_lives_and_gives_it_up_a_lease_after_it_stops() {
    for_each_backend(|store| async move {
        let server = SmtpServer::start().await;
        let w = World::new(store).await;
        let held = EngineConfig { outbox_handover_lease: Duration::from_millis(300), ..EngineConfig::default() };
        // The server takes the content and then does not answer in time.
        let first = engine_with(&w, smtp(&server), held.clone()).await;
        let seq = email_sequence(&w, false).await;
        let contact = w.contact(|c| c.email = Some("slow@example.com".into())).await;
        first.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        first.tick().await.unwrap();
        let dispatching = tokio::spawn({
            let first = first.clone();
            async move { first.dispatch_outbox().await }
        });
        server.wait_for(1).await;

        // Long past its first lease, the first host still holds it: it
        // renews the lease while the server keeps it waiting.
        w.clock.advance(chrono::Duration::minutes(10));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let next = engine_with(&w, smtp(&server), held).await;
        assert_eq!(next.dispatch_outbox().await.unwrap(), 0);
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!(message.state, OutboxState::Queued, "still the first host's");
        assert!(message.handover_started_at.is_some());

        // It stops: a lease later the next host finds the mark and fails
        // the message rather than send it again.
        dispatching.abort();
        assert!(dispatching.await.unwrap_err().is_cancelled());
        w.clock.advance(chrono::Duration::seconds(1));
        assert_eq!(next.dispatch_outbox().await.unwrap(), 0, "not sent again");
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!(message.state, OutboxState::Failed);
        assert!(message.last_error.unwrap().starts_with(INTERRUPTED));
        assert_eq!(server.received().len(), 1, "the server received it exactly once");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_stopping_mid_handover_never_sends_the_email_twice() {
    for_each_backend(|store| async move {
        let server = SmtpServer::start().await;
        let w = World::new(store).await;
        // The server takes the content and then does not answer in time.
        let first = engine(&w, smtp(&server)).await;
        let seq = email_sequence(&w, false).await;
        let contact = w.contact(|c| c.email = Some("slow@example.com".into())).await;
        let e = first.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        first.tick().await.unwrap();
        assert_eq!(outbox(w.store(), &w.account).await[0].state, OutboxState::Queued, "queued, not sent yet");

        // The first host hands it over, and stops before it hears back.
        let dispatching = tokio::spawn({
            let first = first.clone();
            async move { first.dispatch_outbox().await }
        });
        server.wait_for(1).await;
        dispatching.abort();
        assert!(dispatching.await.unwrap_err().is_cancelled());
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!((message.state, message.attempts), (OutboxState::Queued, 0));
        assert!(message.handover_started_at.is_some(), "the handover was recorded before the transport was called");

        // The next host: nothing while the first one may still be sending
        // (its handover lease has not ended), then the message fails instead
        // of going out again.
        let next = engine(&w, smtp(&server)).await;
        assert_eq!(next.dispatch_outbox().await.unwrap(), 0);
        let lease = chrono::Duration::from_std(EngineConfig::default().outbox_handover_lease).unwrap();
        w.clock.advance(lease - chrono::Duration::seconds(1));
        assert_eq!(next.dispatch_outbox().await.unwrap(), 0);
        assert_eq!(outbox(w.store(), &w.account).await[0].state, OutboxState::Queued, "still the first host's");
        w.clock.advance(chrono::Duration::seconds(2));
        assert_eq!(next.dispatch_outbox().await.unwrap(), 0, "not sent again");
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!((message.state, message.attempts), (OutboxState::Failed, 1));
        let error = message.last_error.unwrap();
        assert!(error.starts_with(INTERRUPTED), "{error}");
        assert_eq!(message.handover_started_at, None);
        w.clock.advance(chrono::Duration::hours(2));
        assert_eq!(next.dispatch_outbox().await.unwrap(), 0);
        assert_eq!(server.received().len(), 1, "the server received it exactly once");
        assert_ne!(w.enrollment(&e.id).await.status, EnrollmentStatus::Bounced, "a lost answer is no bounce");
    })
    .await;
}

#[tokio::test]
async fn an_email_whose_server_goes_silent_after_the_content_is_not_sent_again() {
    for_each_backend(|store| async move {
        let server = SmtpServer::start().await;
        let w = World::new(store).await;
        // One second per step of the dialogue: the slow server's reply to
        // the content never comes in time.
        let engine = engine(&w, SmtpConfig { timeout: Duration::from_secs(1), ..smtp(&server) }).await;
        let seq = email_sequence(&w, false).await;
        let contact = w.contact(|c| c.email = Some("slow@example.com".into())).await;
        engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!(message.state, OutboxState::Failed);
        let error = message.last_error.unwrap();
        assert!(error.starts_with("delivery uncertain: sending the content timed out after 1s"), "{error}");
        w.clock.advance(chrono::Duration::hours(2));
        assert_eq!(engine.dispatch_outbox().await.unwrap(), 0);
        assert_eq!(server.received().len(), 1, "once");
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_is_tried_again_later() {
    for_each_backend(|store| async move {
        // A port nothing listens on: bind one, then let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let w = World::new(store).await;
        let config = SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            security: Security::None,
            ca: None,
            credentials: None,
            from: "sales@stepwise.test".parse().unwrap(),
            from_name: None,
            envelope_from: None,
            timeout: Duration::from_secs(5),
            connections: 1,
        };
        let engine = engine(&w, config).await;
        let seq = email_sequence(&w, false).await;
        let contact = w.contact(|_| {}).await;
        engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!((message.state, message.attempts), (OutboxState::Queued, 1));
        let error = message.last_error.unwrap();
        assert!(error.starts_with("temporary failure: connecting to the server"), "{error}");
    })
    .await;
}

/// A server over `tls` with its own private CA, requiring `AUTH` as
/// sales/hunter2 (over STARTTLS, only once the connection is encrypted).
async fn secured_server(tls: ServerTls) -> SmtpServer {
    let login = Some(("sales".to_owned(), "hunter2".to_owned()));
    SmtpServer::with(ServerOptions { login, tls, ..ServerOptions::default() }).await
}

/// The settings of a host sending through `server` with `security`,
/// trusting `ca_file` when given, read as `stepwise serve` reads them.
fn settings_for(server: &SmtpServer, security: &str, ca_file: Option<&std::path::Path>) -> SmtpConfig {
    let port = server.port.to_string();
    let mut vars = vec![
        ("STEPWISE_SMTP_HOST", "127.0.0.1".to_owned()),
        ("STEPWISE_SMTP_PORT", port),
        ("STEPWISE_SMTP_SECURITY", security.to_owned()),
        ("STEPWISE_SMTP_USERNAME", "sales".to_owned()),
        ("STEPWISE_SMTP_PASSWORD", "hunter2".to_owned()),
        ("STEPWISE_SMTP_FROM", "sales@stepwise.test".to_owned()),
        ("STEPWISE_SMTP_FROM_NAME", "Acme Sales".to_owned()),
        ("STEPWISE_SMTP_TIMEOUT_SECONDS", "10".to_owned()),
    ];
    if let Some(path) = ca_file {
        vars.push(("STEPWISE_SMTP_CA_FILE", path.display().to_string()));
    }
    let vars: Vec<(String, String)> = vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Settings::load(None, &vars).unwrap().smtp().unwrap().expect("a configured transport")
}

/// One email through a server over `tls`, its CA trusted through the
/// settings: received intact, over TLS, after `AUTH`.
async fn an_email_goes_out_encrypted(tls: ServerTls, security: &'static str) {
    for_each_backend(|store| async move {
        let server = secured_server(tls).await;
        let w = World::new(store).await;
        let engine = engine(&w, settings_for(&server, security, Some(&server.ca_file()))).await;
        let seq = email_sequence(&w, true).await;
        let contact = w.contact(|_| {}).await;
        let e = engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();

        let received = server.received();
        assert_eq!(received.len(), 1, "{received:#?}");
        let mail = &received[0];
        assert!(mail.tls.as_deref().is_some_and(|v| v.starts_with("TLSv1.")), "came over TLS: {mail:#?}");
        assert_eq!(mail.login.as_deref(), Some("sales"), "authenticated over the encrypted connection");
        assert_eq!(
            (mail.mail_from.as_str(), mail.rcpt_tos.as_slice()),
            ("sales@stepwise.test", &["ada@example.com".to_owned()][..])
        );
        assert_eq!(mail.header("From"), Some("Acme Sales <sales@stepwise.test>"));
        assert_eq!(mail.header("Subject"), Some("Step 1 for Ada"));
        assert_eq!(mail.text.as_deref().map(str::trim_end), Some("Hello Ada"));
        let message = outbox(w.store(), &w.account).await.remove(0);
        let message_id = format!("<{}@stepwise.test>", message.idempotency_key);
        assert_eq!(mail.header("Message-ID"), Some(message_id.as_str()));
        assert!(mail.header("List-Unsubscribe").is_some_and(|l| l.starts_with(&format!("<{PUBLIC_URL}/u/"))));
        assert_eq!((message.state, message.attempts, message.last_error), (OutboxState::Sent, 1, None));
        assert_eq!(message.provider_id.as_deref(), Some(message_id.as_str()));
        assert_eq!(w.enrollment(&e.id).await.status, EnrollmentStatus::Running);
    })
    .await;
}

#[tokio::test]
async fn an_email_goes_out_over_starttls_to_a_server_of_a_trusted_private_ca() {
    an_email_goes_out_encrypted(ServerTls::Starttls, "starttls").await;
}

#[tokio::test]
async fn an_email_goes_out_over_tls_to_a_server_of_a_trusted_private_ca() {
    an_email_goes_out_encrypted(ServerTls::Implicit, "tls").await;
}

/// An untrusted certificate is a configuration problem, this host's or the
/// server's: nothing is sent, the email is not a bounce and stays queued
/// with the TLS error kept, tried again after the backoff like any failure
/// to connect, and goes out once the host trusts the CA.
#[tokio::test]
async fn a_server_whose_certificate_is_not_trusted_gets_nothing_and_the_email_is_tried_again() {
    for_each_backend(|store| async move {
        for (tls, security) in [(ServerTls::Starttls, "starttls"), (ServerTls::Implicit, "tls")] {
            let server = secured_server(tls).await;
            let w = World::new(store.clone()).await;
            let seq = email_sequence(&w, false).await;
            let contact = w.contact(|_| {}).await;
            // Only the built-in roots; then another private CA than the
            // server's.
            let elsewhere = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(elsewhere.path(), TestPki::new(&["127.0.0.1"]).ca_pem).unwrap();
            let untrusting = engine(&w, settings_for(&server, security, None)).await;
            let e = untrusting.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
            untrusting.run_until_idle().await.unwrap();
            let wrong_ca = engine(&w, settings_for(&server, security, Some(elsewhere.path()))).await;
            w.clock.advance(chrono::Duration::seconds(30));
            assert_eq!(wrong_ca.dispatch_outbox().await.unwrap(), 0, "{security}: tried, not delivered");

            let message = outbox(w.store(), &w.account).await.remove(0);
            assert_eq!((message.state, message.attempts), (OutboxState::Queued, 2), "{security}");
            let error = message.last_error.clone().unwrap();
            assert!(
                error.starts_with("temporary failure: the server's TLS certificate is not trusted (UnknownIssuer)")
                    && error.contains("ca_file (STEPWISE_SMTP_CA_FILE)"),
                "{security}: {error}"
            );
            assert_eq!(message.next_attempt_at, w.now() + chrono::Duration::minutes(1), "{security}: backoff");
            assert!(server.received().is_empty(), "{security}: nothing reached the server");
            assert_eq!(w.enrollment(&e.id).await.status, EnrollmentStatus::Running, "{security}: no bounce");
            assert!(
                !w.events(&e.id).await.iter().any(|ev| ev.kind.as_str() == "message.failed"),
                "{security}: not given up"
            );

            // The operator names the CA: the next attempt goes out.
            let trusting = engine(&w, settings_for(&server, security, Some(&server.ca_file()))).await;
            w.clock.advance(chrono::Duration::minutes(1));
            assert_eq!(trusting.dispatch_outbox().await.unwrap(), 1);
            let message = outbox(w.store(), &w.account).await.remove(0);
            assert_eq!((message.state, message.attempts), (OutboxState::Sent, 3), "{security}");
            let received = server.received();
            assert_eq!(received.len(), 1, "{security}: once");
            assert!(received[0].tls.is_some(), "{security}");
        }
    })
    .await;
}

/// A certificate that does not name the configured host is refused, even
/// from a trusted CA; when the attempts run out, the email fails with the
/// TLS error kept, and the enrollment is not bounced.
#[tokio::test]
async fn a_certificate_for_another_name_is_refused_even_from_a_trusted_ca() {
    for_each_backend(|store| async move {
        let certificate_names = vec!["mail.example.com".to_owned()];
        let options = ServerOptions { tls: ServerTls::Implicit, certificate_names, ..ServerOptions::default() };
        let server = SmtpServer::with(options).await;
        let w = World::new(store).await;
        let config = SmtpConfig {
            security: Security::Tls,
            ca: Some(CaCertificates::read(&server.ca_file()).unwrap()),
            ..smtp(&server)
        };
        let engine = engine(&w, config).await;
        let seq = email_sequence(&w, false).await;
        let contact = w.contact(|_| {}).await;
        let e = engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        engine.run_until_idle().await.unwrap();
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!((message.state, message.attempts), (OutboxState::Queued, 1));
        let error = message.last_error.unwrap();
        assert!(error.starts_with("temporary failure: the server's TLS certificate is not trusted"), "{error}");
        assert!(error.contains("127.0.0.1") && error.contains("mail.example.com"), "both names: {error}");
        assert!(error.contains("the host setting must be a name the certificate carries"), "{error}");

        let attempts = EngineConfig::default().outbox_max_attempts;
        for _ in 1..attempts {
            w.clock.advance(chrono::Duration::hours(1));
            assert_eq!(engine.dispatch_outbox().await.unwrap(), 0);
        }
        let message = outbox(w.store(), &w.account).await.remove(0);
        assert_eq!((message.state, message.attempts), (OutboxState::Failed, i64::from(attempts)));
        assert_eq!(message.last_error.as_deref(), Some(error.as_str()), "the TLS error is kept");
        let events = w.events(&e.id).await;
        let failed = events.iter().find(|ev| ev.kind.as_str() == "message.failed").expect("on the timeline");
        assert!(failed.reason.as_deref().is_some_and(|r| r.contains("not trusted")), "{failed:?}");
        assert_ne!(w.enrollment(&e.id).await.status, EnrollmentStatus::Bounced, "not a bounce");
        assert!(server.received().is_empty());
    })
    .await;
}

/// `starttls` is required, never skipped: a server that does not offer it
/// (or a man in the middle that strips it) gets no message in clear text.
/// Nor does `tls` fall back to plain text.
#[tokio::test]
async fn a_server_without_starttls_or_tls_gets_nothing_in_clear_text() {
    for_each_backend(|store| async move {
        let server = SmtpServer::start().await;
        let w = World::new(store).await;
        let seq = email_sequence(&w, false).await;
        for (security, expected) in [
            (Security::Starttls, format!("temporary failure: 127.0.0.1:{} does not offer STARTTLS", server.port)),
            (Security::Tls, "temporary failure: connecting to the server: ".to_owned()),
        ] {
            let engine = engine(&w, SmtpConfig { security, ..smtp(&server) }).await;
            let to = format!("{security:?}@example.com").to_lowercase();
            let contact = w.contact(|c| c.email = Some(to.clone())).await;
            engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
            engine.run_until_idle().await.unwrap();
            let messages = outbox(w.store(), &w.account).await;
            let message = messages.iter().find(|m| m.payload["to"] == to.as_str()).unwrap();
            assert_eq!((message.state, message.attempts), (OutboxState::Queued, 1), "{security:?}");
            let error = message.last_error.clone().unwrap();
            assert!(error.starts_with(&expected), "{security:?}: {error}");
        }
        assert!(server.received().is_empty(), "nothing was sent in clear text");
    })
    .await;
}

/// Many emails go out over a few connections at once, each connection
/// reused for message after message, never more open than the setting
/// allows; each email is sent once and recorded sent.
#[tokio::test]
async fn emails_go_out_in_parallel_over_a_bounded_pool_of_reused_connections() {
    for_each_backend(|store| async move {
        let server = SmtpServer::start().await;
        let w = World::new(store).await;
        let engine = engine(&w, SmtpConfig { connections: 3, ..smtp(&server) }).await;
        let seq = email_sequence(&w, false).await;
        let contacts: Vec<String> = (0..40).map(|i| format!("c{i}@example.com")).collect();
        for email in &contacts {
            let contact = w.contact(|c| c.email = Some(email.clone())).await;
            engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap();
        }
        engine.run_until_idle().await.unwrap();
        let received = server.wait_for(40).await;
        let mut to: Vec<&str> = received.iter().map(|m| m.rcpt_tos[0].as_str()).collect();
        to.sort_unstable();
        to.dedup();
        assert_eq!(to.len(), 40, "each email once");
        let connections: std::collections::HashSet<u16> = received.iter().map(|m| m.peer).collect();
        assert!(connections.len() <= 3, "at most the pool's connections: {connections:?}");
        assert!(received.iter().all(|m| m.open <= 3), "never more open at once than allowed");
        assert!(received.iter().any(|m| m.open >= 2), "sent in parallel");
        let messages = outbox(w.store(), &w.account).await;
        assert!(messages.iter().all(|m| m.state == OutboxState::Sent && m.attempts == 1), "{messages:?}");
    })
    .await;
}

/// Counts the handovers asked for, and refuses them when told to.
struct Gate {
    asked: std::sync::atomic::AtomicUsize,
    refuse: bool,
}

#[async_trait::async_trait]
impl stepwise::delivery::Handover for Gate {
    async fn begin(&self) -> Result<(), String> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.refuse { Err("the lease was lost".into()) } else { Ok(()) }
    }
}

/// The handover mark is asked for only once the server is ready for the
/// content: a recipient refused before it needs none (nothing left), and a
/// handover refused then sends nothing (the server discards the
/// unfinished transaction).
#[tokio::test]
async fn the_handover_is_marked_only_when_the_content_is_about_to_leave() {
    for_each_backend(|store| async move {
        let server = SmtpServer::start().await;
        let w = World::new(store).await;
        let mut tx = w.store().begin().await.unwrap();
        for (key, to) in
            [("msg_bounce", "bounce@example.com"), ("msg_refused", "ada@example.com"), ("msg_ok", "bob@example.com")]
        {
            let new = NewOutboxMessage {
                account_id: w.account.clone(),
                action_id: None,
                channel: stepwise::engagement::OutboxChannel::Email,
                payload: json!({"to": to, "subject": "Hi", "text": "Hello"}),
                idempotency_key: key.into(),
            };
            tx.enqueue_message(&new, w.now()).await.unwrap();
        }
        tx.commit().await.unwrap();
        let messages = outbox(w.store(), &w.account).await;
        let message = |key: &str| messages.iter().find(|m| m.idempotency_key == key).unwrap().clone();
        let transport = SmtpTransport::new(smtp(&server));
        let gate = |refuse| Gate { asked: 0.into(), refuse };
        use stepwise::engine::Transport as _;

        let bounced = gate(false);
        let error = transport.deliver_with(&message("msg_bounce"), &bounced).await.unwrap_err();
        assert!(error.to_string().contains("550"), "{error}");
        assert_eq!(bounced.asked.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing was about to leave");

        let refused = gate(true);
        let error = transport.deliver_with(&message("msg_refused"), &refused).await.unwrap_err();
        assert!(error.to_string().contains("not handed over"), "{error}");
        assert_eq!(refused.asked.load(std::sync::atomic::Ordering::SeqCst), 1);

        let handed = gate(false);
        transport.deliver_with(&message("msg_ok"), &handed).await.unwrap();
        assert_eq!(handed.asked.load(std::sync::atomic::Ordering::SeqCst), 1);
        server.wait_for(1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let received = server.received();
        assert_eq!(received.len(), 1, "only the message handed over arrived: {received:#?}");
        assert_eq!(received[0].rcpt_tos, ["bob@example.com"]);
    })
    .await;
}
