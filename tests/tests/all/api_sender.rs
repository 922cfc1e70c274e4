//! Sending identities over the API: a rep sets the address and name their
//! emails come from, confirms it by the link emailed to it, and the
//! account's choice (the relay with Reply-To the rep, or the rep's own
//! verified address) shapes each step's email. On both backends.

use reqwest::Method;
use serde_json::{Value, json};
use stepwise::api::server::HttpConfig;
use stepwise::engagement::{ActionStatus, DeferralReason, OutboxMessage, TimingMode};
use stepwise::engine::EngineConfig;
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;
use stepwise_tests::scenario::{World, scripted, settings};

const PUBLIC_URL: &str = "https://stepwise.test";

async fn app(store: stepwise::store::Store) -> TestApp {
    let config = EngineConfig { public_url: Some(PUBLIC_URL.into()), ..EngineConfig::default() };
    TestApp::spawn_world(World::with_config(store, config).await, HttpConfig::default()).await
}

async fn call(app: &TestApp, method: Method, path: &str, key: &str, body: Value) -> Answer {
    app.call(method, path, Some(key), Some(&body)).await
}

/// The emails the world's transport delivered to `to`, oldest first.
fn emails_to(app: &TestApp, to: &str) -> Vec<Value> {
    app.world
        .transport
        .delivered()
        .iter()
        .map(|m: &OutboxMessage| m.payload.clone())
        .filter(|p| p["to"] == to)
        .collect()
}

/// The path of the confirmation link in an email.
fn link_path(email: &Value) -> String {
    let text = email["text"].as_str().unwrap();
    let start = text.find(PUBLIC_URL).unwrap_or_else(|| panic!("a link under the public URL: {text}"));
    let link = text[start..].split_whitespace().next().unwrap();
    link.strip_prefix(PUBLIC_URL).unwrap().to_owned()
}

#[tokio::test]
async fn a_rep_confirms_their_sending_address_by_the_link_emailed_to_it() {
    for_each_backend(|store| async move {
        let app = app(store).await;
        let w = &app.world;
        let bad = call(&app, Method::PUT, "/v1/me/sender", &app.agent_key, json!({"email": "not-an-address"})).await;
        assert_eq!(bad.status, 422, "{}", bad.text);
        assert_eq!(bad.json["errors"][0]["field"], "/email");

        let body = json!({"email": "grace@acme.example", "name": "Grace Hopper"});
        let set = call(&app, Method::PUT, "/v1/me/sender", &app.agent_key, body).await;
        assert_eq!(set.status, 200, "{}", set.text);
        assert_eq!(set.json["user"]["sender_email"], "grace@acme.example");
        assert_eq!(set.json["user"]["sender_connected"], false, "a new address is not verified yet");
        assert_eq!(set.json["confirmation_sent_to"], "grace@acme.example");
        w.run().await;
        let sent = emails_to(&app, "grace@acme.example");
        assert_eq!(sent.len(), 1, "{sent:#?}");
        let path = link_path(&sent[0]);
        assert!(path.starts_with("/sender/"), "{path}");

        let followed = app.get(&path, None).await;
        assert_eq!(followed.status, 200, "{}", followed.text);
        assert!(followed.text.contains("grace@acme.example"), "{}", followed.text);
        assert_eq!(app.get(&path, None).await.status, 404, "a link works once");
        let me = app.get("/v1/me", Some(&app.agent_key)).await;
        assert_eq!(me.json["user"]["sender_connected"], true, "{}", me.text);
        let again = call(&app, Method::POST, "/v1/me/sender/confirmation", &app.agent_key, json!({})).await;
        assert_eq!(again.status, 409, "verified already: {}", again.text);

        // A link for an address they no longer send from, or one too old,
        // confirms nothing.
        let moved = json!({"email": "grace@new.example"});
        assert_eq!(call(&app, Method::PUT, "/v1/me/sender", &app.agent_key, moved).await.status, 200);
        w.run().await;
        let stale = link_path(&emails_to(&app, "grace@new.example")[0]);
        let back = json!({"email": "grace@other.example"});
        assert_eq!(call(&app, Method::PUT, "/v1/me/sender", &app.agent_key, back).await.status, 200);
        let refused = app.get(&stale, None).await;
        assert_eq!(refused.status, 404, "{}", refused.text);
        w.run().await;
        let expiring = link_path(&emails_to(&app, "grace@other.example")[0]);
        w.clock.advance(chrono::Duration::hours(73));
        assert_eq!(app.get(&expiring, None).await.status, 404, "links last 72 hours");
        let me = app.get("/v1/me", Some(&app.agent_key)).await;
        assert_eq!(me.json["user"]["sender_connected"], false, "{}", me.text);
        let resent = call(&app, Method::POST, "/v1/me/sender/confirmation", &app.agent_key, json!({})).await;
        assert_eq!(resent.status, 202, "{}", resent.text);
        assert_eq!(resent.json["sent_to"], "grace@other.example");
    })
    .await;
}

#[tokio::test]
async fn the_account_chooses_the_relay_with_reply_to_or_the_reps_own_verified_address() {
    for_each_backend(|store| async move {
        let app = app(store).await;
        let w = &app.world;
        let account = format!("/v1/accounts/{}", w.account);
        let own = json!({"sender_mode": "own_address"});
        assert_eq!(call(&app, Method::PATCH, &account, &app.agent_key, own.clone()).await.status, 403);
        let elsewhere = call(&app, Method::PATCH, "/v1/accounts/acc_elsewhere", &app.admin_key, own.clone()).await;
        assert_eq!(elsewhere.status, 404, "{}", elsewhere.text);
        let bad = call(&app, Method::PATCH, &account, &app.admin_key, json!({"sender_mode": "carrier_pigeon"})).await;
        assert_eq!(bad.status, 422, "{}", bad.text);

        // The relay, the default: a new rep's automatic email goes at once,
        // replies to them.
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"send": true}), 0)]).await;
        let body = json!({"email": "grace@acme.example", "name": "Grace Hopper"});
        assert_eq!(call(&app, Method::PUT, "/v1/me/sender", &app.agent_key, body).await.status, 200);
        let ada = w
            .contact(|c| {
                c.owner_id = Some(w.agent.clone());
                c.email = Some("ada@example.com".into());
            })
            .await;
        let first = w.enroll(&ada, &seq).await;
        w.run().await;
        assert_eq!(w.action(&first.id, 0).await.status, ActionStatus::Completed);
        let relayed = emails_to(&app, "ada@example.com");
        assert_eq!(relayed[0]["reply_to"], "grace@acme.example", "{relayed:#?}");
        assert_eq!(relayed[0]["reply_to_name"], "Grace Hopper");
        assert_eq!(relayed[0].get("from"), None, "from the relay");

        // Their own address: held until it is verified, then from it.
        let changed = call(&app, Method::PATCH, &account, &app.admin_key, own).await;
        assert_eq!(changed.status, 200, "{}", changed.text);
        assert_eq!(changed.json["sender_mode"], "own_address");
        let bob = w
            .contact(|c| {
                c.owner_id = Some(w.agent.clone());
                c.email = Some("bob@example.com".into());
            })
            .await;
        let second = w.enroll(&bob, &seq).await;
        w.run().await;
        let held = w.action(&second.id, 0).await;
        assert_eq!(held.deferral_reason, Some(DeferralReason::SenderNotConnected), "{held:?}");
        let why = app.get(&format!("/v1/actions/{}/explain", held.id), Some(&app.agent_key)).await;
        assert!(
            why.text.contains("sending address grace@acme.example") && why.text.contains("is not verified"),
            "{}",
            why.text
        );
        let path = link_path(&emails_to(&app, "grace@acme.example")[0]);
        assert_eq!(app.get(&path, None).await.status, 200);
        w.run().await;
        assert_eq!(w.action(&second.id, 0).await.status, ActionStatus::Completed, "sent once verified");
        let own_sent = emails_to(&app, "bob@example.com");
        assert_eq!(own_sent[0]["from"], "grace@acme.example", "{own_sent:#?}");
        assert_eq!(own_sent[0]["from_name"], "Grace Hopper");
        assert_eq!(own_sent[0].get("reply_to"), None, "replies go to From");

        // Back to the relay: an unverified rep's email goes again at once.
        let relay = json!({"sender_mode": "relay"});
        assert_eq!(call(&app, Method::PATCH, &account, &app.admin_key, relay).await.status, 200);
        let audit = app.get("/v1/audit?target_type=account", Some(&app.admin_key)).await;
        assert!(audit.text.contains("account.sender_mode_changed"), "{}", audit.text);
    })
    .await;
}

#[tokio::test]
async fn a_reps_own_smtp_password_is_never_shown_again() {
    for_each_backend(|store| async move {
        let app = app(store).await;
        let empty = json!({"host": " ", "username": "grace", "password": "s3cret-smtp"});
        let refused = call(&app, Method::PUT, "/v1/me/sender/smtp", &app.agent_key, empty).await;
        assert_eq!(refused.status, 422, "{}", refused.text);
        assert_eq!(refused.json["errors"][0]["field"], "/host");
        let body =
            json!({"host": "smtp.acme.example", "security": "tls", "username": "grace", "password": "s3cret-smtp"});
        let set = call(&app, Method::PUT, "/v1/me/sender/smtp", &app.agent_key, body).await;
        assert_eq!(set.status, 200, "{}", set.text);
        assert_eq!(set.json, json!({"host": "smtp.acme.example", "port": 465, "security": "tls", "username": "grace"}));
        let mine = app.get("/v1/me/sender", Some(&app.agent_key)).await;
        assert_eq!(mine.json["smtp"]["host"], "smtp.acme.example", "{}", mine.text);
        assert_eq!(mine.json["email"], "grace@example.com");
        for (path, key) in [
            ("/v1/me/sender", &app.agent_key),
            ("/v1/me", &app.agent_key),
            ("/v1/users", &app.admin_key),
            ("/v1/audit", &app.admin_key),
        ] {
            let read = app.get(path, Some(key)).await;
            assert_eq!(read.status, 200, "{path}: {}", read.text);
            assert!(!read.text.contains("s3cret-smtp"), "{path} shows the password: {}", read.text);
        }
        let audit = app.get("/v1/audit?target_type=user", Some(&app.admin_key)).await;
        assert!(audit.text.contains("smtp.acme.example"), "the change is audited: {}", audit.text);
        let gone = app.call(Method::DELETE, "/v1/me/sender/smtp", Some(&app.agent_key), None).await;
        assert_eq!(gone.status, 204, "{}", gone.text);
        assert_eq!(app.get("/v1/me/sender", Some(&app.agent_key)).await.json["smtp"], Value::Null);
    })
    .await;
}

#[tokio::test]
async fn people_change_their_own_password_with_the_current_one() {
    for_each_backend(|store| async move {
        let app = app(store).await;
        let w = &app.world;
        let set = json!({"password": "the first password"});
        let path = format!("/v1/users/{}/password", w.agent);
        assert_eq!(call(&app, Method::PUT, &path, &app.admin_key, set).await.status, 204);
        let wrong = json!({"current_password": "not it at all", "new_password": "a better password"});
        let refused = call(&app, Method::PUT, "/v1/me/password", &app.agent_key, wrong).await;
        assert_eq!(refused.status, 422, "{}", refused.text);
        assert_eq!(refused.json["errors"][0]["field"], "/current_password");
        let short = json!({"current_password": "the first password", "new_password": "short"});
        let refused = call(&app, Method::PUT, "/v1/me/password", &app.agent_key, short).await;
        assert_eq!(refused.json["errors"][0]["field"], "/new_password", "{}", refused.text);
        let good = json!({"current_password": "the first password", "new_password": "a better password"});
        assert_eq!(call(&app, Method::PUT, "/v1/me/password", &app.agent_key, good).await.status, 204);
        let signed_in = w.engine.sign_in("grace@example.com", "a better password").await.unwrap();
        assert!(signed_in.is_some(), "the new password signs in");
        let old = w.engine.sign_in("grace@example.com", "the first password").await.unwrap();
        assert!(old.is_none(), "the old one no longer does");
    })
    .await;
}
