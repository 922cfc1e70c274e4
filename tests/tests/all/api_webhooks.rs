//! Events out: webhook subscriptions over the API, delivered to a local
//! receiver that verifies every signature as the README tells receivers to;
//! ordering per enrollment, retries, the delivery log, replay, automatic
//! disabling with a notice to admins, and another account's subscriptions
//! out of reach. On both backends.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use stepwise::api::server::HttpConfig;
use stepwise::crm::{Role, User};
use stepwise::engagement::TimingMode;
use stepwise::engine::{EngineConfig, WebhookConfig};
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;
use stepwise_tests::scenario::{World, settings, task, trivial};
use stepwise_tests::{Received, Recorder};

async fn post(app: &TestApp, path: &str, key: &str, body: &Value) -> Answer {
    app.call(Method::POST, path, Some(key), Some(body)).await
}

/// Whether `webhook-signature` holds the signature a receiver computes
/// with the secret (`whsec_` and base64) over
/// `{webhook-id}.{webhook-timestamp}.{body}`.
fn signed_by(secret: &str, delivery: &Received) -> bool {
    let id = delivery.header("webhook-id").expect("webhook-id");
    let timestamp = delivery.header("webhook-timestamp").expect("webhook-timestamp");
    let key = BASE64.decode(secret.strip_prefix("whsec_").expect("whsec_ prefix")).expect("base64 key");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&delivery.body);
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    delivery.header("webhook-signature").expect("webhook-signature").split(' ').any(|s| s == expected)
}

/// What a receiver does with a delivery: checks its signature and returns
/// its body.
fn verified(secret: &str, delivery: &Received) -> Value {
    let timestamp = delivery.header("webhook-timestamp").expect("webhook-timestamp");
    assert!(timestamp.parse::<i64>().is_ok(), "seconds since the epoch: {timestamp}");
    assert!(signed_by(secret, delivery), "the signature verifies: {:?}", delivery.headers);
    assert_eq!(delivery.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&delivery.body).expect("a JSON body");
    assert_eq!(body["id"], delivery.header("webhook-id").unwrap(), "the body's id is the webhook-id");
    body
}

/// The verified bodies of what `hook` received, in order.
fn bodies(secret: &str, hook: &Recorder) -> Vec<Value> {
    hook.received().iter().map(|r| verified(secret, r)).collect()
}

fn types_of(bodies: &[Value]) -> Vec<String> {
    bodies.iter().map(|b| b["type"].as_str().unwrap().to_owned()).collect()
}

/// Subscribes `url` to `types` as the app's admin: the subscription's id and
/// secret.
async fn subscribe(app: &TestApp, url: &str, types: &[&str]) -> (String, String) {
    let made = post(app, "/v1/webhook-subscriptions", &app.admin_key, &json!({"url": url, "event_types": types})).await;
    assert_eq!(made.status, 201, "{}", made.text);
    (made.string("/subscription/id"), made.string("/secret"))
}

#[tokio::test]
async fn events_are_delivered_signed_in_order_and_logged() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let w = &app.world;
        let hook = Recorder::start(204, "").await;
        let url = format!("{}/in", hook.base);
        let types = ["enrollment.started", "action.activated", "action.completed", "enrollment.completed"];
        let body = json!({"url": url, "event_types": types, "description": "CRM sync"});

        // Only admins subscribe; every problem is named at its field.
        let refused = post(&app, "/v1/webhook-subscriptions", &app.agent_key, &body).await;
        assert_eq!(refused.status, 403, "{}", refused.text);
        for (bad, field) in [
            (json!({"url": "http://169.254.169.254/latest/meta-data", "event_types": types}), "/url"),
            (json!({"url": "ftp://example.com/in", "event_types": types}), "/url"),
            (json!({"url": "not a url", "event_types": types}), "/url"),
            (json!({"url": url, "event_types": []}), "/event_types"),
            (json!({"url": url, "event_types": ["enrollment.exploded"]}), "/event_types/0"),
        ] {
            let answer = post(&app, "/v1/webhook-subscriptions", &app.admin_key, &bad).await;
            assert_eq!(answer.status, 422, "{bad}: {}", answer.text);
            assert_eq!(answer.json["errors"][0]["field"], field, "{bad}: {}", answer.text);
        }

        let made = post(&app, "/v1/webhook-subscriptions", &app.admin_key, &body).await;
        assert_eq!(made.status, 201, "{}", made.text);
        let (sub, secret) = (made.string("/subscription/id"), made.string("/secret"));
        assert!(secret.starts_with("whsec_"), "{secret}");
        assert_eq!(made.json["subscription"]["status"], "active");
        let read = app.get(&format!("/v1/webhook-subscriptions/{sub}"), Some(&app.admin_key)).await;
        assert_eq!(read.status, 200, "{}", read.text);
        assert!(!read.text.contains(&secret), "the secret is shown once: {}", read.text);
        assert_eq!(read.json["description"], "CRM sync");
        let listed = app.get("/v1/webhook-subscriptions", Some(&app.admin_key)).await;
        assert_eq!(listed.json["subscriptions"][0]["id"], sub.as_str(), "{}", listed.text);
        assert!(!listed.text.contains(&secret));

        // Two automatic steps, and a contact enrolled twice over: each
        // enrollment's events arrive in the order they were committed.
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![trivial(0), trivial(60_000)]).await;
        let ada = w.contact(|c| c.first_name = "Ada".into()).await;
        let bob = w.contact(|c| c.first_name = "Bob".into()).await;
        let first = w.enroll(&ada, &seq).await;
        let second = w.enroll(&bob, &seq).await;
        w.run_to(2).await;
        let got = bodies(&secret, &hook);
        let of = |enrollment: &str| -> Vec<String> {
            let mine: Vec<Value> = got.iter().filter(|b| b["data"]["enrollment_id"] == enrollment).cloned().collect();
            types_of(&mine)
        };
        let expected = ["enrollment.started", "action.completed", "action.completed", "enrollment.completed"];
        assert_eq!(of(&first.id), expected, "{got:#?}");
        assert_eq!(of(&second.id), expected, "{got:#?}");
        assert_eq!(got.len(), 8, "nothing else: {got:#?}");
        let completed = got.iter().find(|b| b["type"] == "enrollment.completed").unwrap();
        assert_eq!(completed["account_id"], w.account.as_str());
        assert_eq!(completed["data"]["after"]["status"], "completed");
        assert!(completed["timestamp"].as_str().unwrap().ends_with('Z'));
        let ids: std::collections::BTreeSet<&str> = got.iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 8, "every event has an id of its own");
        assert!(hook.received().iter().all(|r| r.uri == "/in" && r.method == "POST"));

        // The log: every delivery with the receiver's answer.
        let log = app.get(&format!("/v1/webhook-subscriptions/{sub}/deliveries"), Some(&app.admin_key)).await;
        assert_eq!(log.status, 200, "{}", log.text);
        let deliveries = log.json["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), 8, "{}", log.text);
        assert!(
            deliveries.iter().all(|d| d["status"] == "succeeded" && d["response_status"] == 204 && d["attempts"] == 1)
        );
        let page = app.get(&format!("/v1/webhook-subscriptions/{sub}/deliveries?limit=5"), Some(&app.admin_key)).await;
        let after = page.string("/next_after");
        let rest = app
            .get(&format!("/v1/webhook-subscriptions/{sub}/deliveries?limit=5&after={after}"), Some(&app.admin_key))
            .await;
        assert_eq!(rest.json["deliveries"].as_array().unwrap().len(), 3, "{}", rest.text);
        let none =
            app.get(&format!("/v1/webhook-subscriptions/{sub}/deliveries?status=failed"), Some(&app.admin_key)).await;
        assert_eq!(none.json["deliveries"], json!([]));

        // A replay sends the same event again, under the same id.
        let one = &deliveries[0];
        let path = format!("/v1/webhook-subscriptions/{sub}/deliveries/{}/replay", one["id"].as_str().unwrap());
        let replayed = post(&app, &path, &app.admin_key, &json!({})).await;
        assert_eq!(replayed.status, 201, "{}", replayed.text);
        assert_eq!(replayed.json["event_id"], one["event_id"]);
        assert_eq!(replayed.json["replay_of"], one["id"]);
        w.run().await;
        let again = bodies(&secret, &hook);
        assert_eq!(again.len(), 9);
        assert_eq!(again[8]["id"], one["event_id"], "the same webhook-id");
        assert_eq!(again[8], one["payload"], "the same body");

        // A manual step's activation, once subscribed to.
        let manual = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0)]).await;
        let carol = w.contact(|c| c.owner_id = Some(w.agent.clone())).await;
        w.enroll(&carol, &manual).await;
        w.run().await;
        let last = bodies(&secret, &hook);
        assert_eq!(types_of(&last[9..]), ["enrollment.started", "action.activated"]);

        // A new secret signs what follows; the old one no longer verifies.
        let rotated = post(&app, &format!("/v1/webhook-subscriptions/{sub}/secret"), &app.admin_key, &json!({})).await;
        assert_eq!(rotated.status, 200, "{}", rotated.text);
        let fresh = rotated.string("/secret");
        assert_ne!(fresh, secret);
        let dave = w.contact(|_| {}).await;
        w.enroll(&dave, &seq).await;
        w.run().await;
        let received = hook.received();
        let newest = received.last().unwrap();
        verified(&fresh, newest);
        assert!(!signed_by(&secret, newest), "the old secret no longer verifies");
    })
    .await;
}

#[tokio::test]
async fn a_failing_receiver_holds_its_enrollments_order_then_is_disabled_and_admins_told() {
    for_each_backend(|store| async move {
        let webhooks = WebhookConfig {
            retry_after: vec![Duration::from_secs(60); 2],
            disable_after_failures: 4,
            disable_after: Duration::from_secs(120),
            ..WebhookConfig::default()
        };
        let world = World::with_config(store, EngineConfig { webhooks, ..EngineConfig::default() }).await;
        let app = TestApp::spawn_world(world, HttpConfig::default()).await;
        let w = &app.world;
        let hook = Recorder::start(500, "busy").await;
        let (sub, secret) =
            subscribe(&app, &format!("{}/in", hook.base), &["enrollment.started", "action.completed"]).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![trivial(0)]).await;
        let ada = w.contact(|_| {}).await;
        let enrollment = w.enroll(&ada, &seq).await;
        w.run().await;
        // The first event failed; the second waits behind it.
        let got = bodies(&secret, &hook);
        assert_eq!(types_of(&got), ["enrollment.started"], "{got:#?}");
        let log = app.get(&format!("/v1/webhook-subscriptions/{sub}/deliveries"), Some(&app.admin_key)).await;
        let by_type: BTreeMap<String, Value> = log.json["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["event_type"].as_str().unwrap().to_owned(), d.clone()))
            .collect();
        let started = &by_type["enrollment.started"];
        assert_eq!(started["status"], "pending", "{}", log.text);
        assert_eq!(started["attempts"], 1);
        assert_eq!(started["response_status"], 500);
        assert_eq!(started["response_body"], "busy");
        assert!(started["error"].as_str().unwrap().contains("500"), "{}", log.text);
        assert_eq!(by_type["action.completed"]["attempts"], 0, "it waits its turn: {}", log.text);

        // The receiver recovers: the retry goes, then the one behind it.
        hook.answer(200);
        w.run_to(2).await;
        let got = bodies(&secret, &hook);
        assert_eq!(types_of(&got), ["enrollment.started", "enrollment.started", "action.completed"], "{got:#?}");
        assert_eq!(got[0]["id"], got[1]["id"], "a retry keeps its webhook-id");
        assert!(got.iter().all(|b| b["data"]["enrollment_id"] == enrollment.id.as_str()));
        let read = app.get(&format!("/v1/webhook-subscriptions/{sub}"), Some(&app.admin_key)).await;
        assert_eq!(read.json["consecutive_failures"], 0, "a success ends the run: {}", read.text);

        // It fails again for longer than the subscription may: attempts
        // stop after the schedule (once and twice again), and after four
        // failures over two minutes the subscription is disabled and the
        // admins told.
        hook.answer(503);
        for _ in 0..3 {
            let contact = w.contact(|_| {}).await;
            w.enroll(&contact, &seq).await;
        }
        w.run_to(10).await;
        let read = app.get(&format!("/v1/webhook-subscriptions/{sub}"), Some(&app.admin_key)).await;
        assert_eq!(read.json["status"], "disabled", "{}", read.text);
        assert!(read.json["disabled_reason"].as_str().unwrap().contains("failed attempts"), "{}", read.text);
        let notes = app.get("/v1/notifications", Some(&app.admin_key)).await;
        let told = notes.json["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["reason"].as_str().is_some_and(|r| r.contains(&sub) && r.contains("disabled")));
        assert!(told, "admins are told: {}", notes.text);
        let agents = app.get("/v1/notifications", Some(&app.agent_key)).await;
        assert!(!agents.text.contains(&sub), "agents are not: {}", agents.text);

        // Disabled: nothing more is sent, and new events are not written.
        let sent = hook.received().len();
        let late = w.contact(|_| {}).await;
        w.enroll(&late, &seq).await;
        w.run_to(30).await;
        assert_eq!(hook.received().len(), sent, "a disabled subscription is not told");

        // Enabled again: its pending deliveries go at once, in order.
        hook.answer(200);
        let patch = json!({"enabled": true});
        let enabled = app
            .call(Method::PATCH, &format!("/v1/webhook-subscriptions/{sub}"), Some(&app.admin_key), Some(&patch))
            .await;
        assert_eq!(enabled.status, 200, "{}", enabled.text);
        assert_eq!(enabled.json["status"], "active");
        assert_eq!(enabled.json["consecutive_failures"], 0);
        w.run().await;
        let log =
            app.get(&format!("/v1/webhook-subscriptions/{sub}/deliveries?status=pending"), Some(&app.admin_key)).await;
        assert_eq!(log.json["deliveries"], json!([]), "{}", log.text);
        let failed =
            app.get(&format!("/v1/webhook-subscriptions/{sub}/deliveries?status=failed"), Some(&app.admin_key)).await;
        let failed = failed.json["deliveries"].as_array().unwrap();
        // Given up at their third attempt: the one whose attempt disabled
        // the subscription at least (retries are spread a little, so the
        // others may have waited for it to be enabled again).
        assert!((1..=3).contains(&failed.len()), "{failed:#?}");
        for d in failed {
            assert_eq!(d["attempts"], 3, "once and two retries: {d}");
            assert_eq!(d["next_attempt_at"], Value::Null);
        }
        let tail: Vec<Value> = bodies(&secret, &hook)[sent..].to_vec();
        for pair in tail.windows(2) {
            if pair[0]["data"]["enrollment_id"] == pair[1]["data"]["enrollment_id"] {
                assert_eq!(pair[0]["type"], "enrollment.started", "started before completed: {tail:#?}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn another_accounts_subscriptions_are_not_found() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let hook = Recorder::start(200, "").await;
        let (sub, _) = subscribe(&app, &format!("{}/in", hook.base), &["enrollment.started"]).await;
        let w = &app.world;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0)]).await;
        let ada = w.contact(|_| {}).await;
        w.enroll(&ada, &seq).await;
        w.run().await;
        let log = app.get(&format!("/v1/webhook-subscriptions/{sub}/deliveries"), Some(&app.admin_key)).await;
        let delivery = log.string("/deliveries/0/id");

        let mut tx = w.store().begin().await.unwrap();
        let other = tx.create_account("Globex", None, w.now()).await.unwrap().id;
        let admin =
            User { name: "Hank".into(), email: "hank@globex.example".into(), role: Role::Admin, ..User::default() };
        let admin = tx.create_user(&other, &admin, w.now()).await.unwrap().id;
        let (_, key) = tx.create_api_key(&other, &admin, "t", w.now()).await.unwrap();
        tx.commit().await.unwrap();

        for path in [
            format!("/v1/webhook-subscriptions/{sub}"),
            format!("/v1/webhook-subscriptions/{sub}/deliveries"),
            format!("/v1/webhook-subscriptions/{sub}/deliveries/{delivery}"),
        ] {
            assert_eq!(app.get(&path, Some(&key)).await.status, 404, "{path}");
        }
        let replay = format!("/v1/webhook-subscriptions/{sub}/deliveries/{delivery}/replay");
        assert_eq!(post(&app, &replay, &key, &json!({})).await.status, 404);
        assert_eq!(post(&app, &format!("/v1/webhook-subscriptions/{sub}/secret"), &key, &json!({})).await.status, 404);
        let patch = json!({"url": "https://evil.example/in"});
        let path = format!("/v1/webhook-subscriptions/{sub}");
        assert_eq!(app.call(Method::PATCH, &path, Some(&key), Some(&patch)).await.status, 404);
        assert_eq!(app.call(Method::DELETE, &path, Some(&key), None).await.status, 404);
        let theirs = app.get("/v1/webhook-subscriptions", Some(&key)).await;
        assert_eq!(theirs.json["subscriptions"], json!([]), "{}", theirs.text);

        // Their own subscription hears nothing of this account.
        let made = post(
            &app,
            "/v1/webhook-subscriptions",
            &key,
            &json!({"url": format!("{}/globex", hook.base), "event_types": ["enrollment.started"]}),
        )
        .await;
        assert_eq!(made.status, 201, "{}", made.text);
        let bob = w.contact(|_| {}).await;
        w.enroll(&bob, &seq).await;
        w.run().await;
        assert!(hook.received().iter().all(|r| r.uri == "/in"), "nothing of Acme reaches Globex's receiver");
        let ours = app.get(&path, Some(&app.admin_key)).await;
        assert_eq!(ours.json["url"], format!("{}/in", hook.base), "unchanged: {}", ours.text);
        let gone = app.call(Method::DELETE, &path, Some(&app.admin_key), None).await;
        assert_eq!(gone.status, 204);
        assert_eq!(app.get(&path, Some(&app.admin_key)).await.status, 404);
    })
    .await;
}

#[tokio::test]
async fn a_webhook_step_that_fails_for_good_is_told_to_subscribers() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let events = Recorder::start(200, "").await;
        let (_, secret) =
            subscribe(&app, &format!("{}/in", events.base), &["webhook_step.failed", "action.failed"]).await;
        let crm = Recorder::start(503, "down").await;
        let grant = json!({"enabled": true, "grant": {"capabilities": ["render-template", "http-fetch", "log"], "http_allow": [crm.base.clone()]}});
        let put = app.call(Method::PUT, "/v1/plugins/webhook/account", Some(&app.admin_key), Some(&grant)).await;
        assert_eq!(put.status, 200, "{}", put.text);
        let step = json!({
            "position": 0, "name": "Tell the CRM", "plugin": {"id": "webhook", "version": "*"},
            "config": {"url": format!("{}/crm", crm.base), "attempts": 1},
            "timing": {"kind": "delay", "ms": 0}, "activation": "automatic", "owner": {"rule": "contact_owner"}
        });
        let made = post(&app, "/v1/sequences", &app.admin_key, &json!({"name": "Sync", "steps": [step]})).await;
        assert_eq!(made.status, 201, "{}", made.text);
        let seq = made.string("/sequence/id");
        post(&app, &format!("/v1/sequences/{seq}/state"), &app.admin_key, &json!({"state": "active"})).await;
        let contact = app.world.contact(|c| c.owner_id = Some(app.world.agent.clone())).await;
        let enrolled = app.world.enroll(&contact, &seq).await;
        app.world.run().await;
        let got = bodies(&secret, &events);
        let kinds = types_of(&got);
        assert!(kinds.contains(&"action.failed".to_owned()), "{got:#?}");
        let failed = got.iter().find(|b| b["type"] == "webhook_step.failed").unwrap_or_else(|| panic!("{got:#?}"));
        assert_eq!(failed["data"]["enrollment_id"], enrolled.id.as_str());
        assert_eq!(failed["data"]["webhook_failure"]["response"]["status"], 503, "{failed:#}");
        assert_eq!(failed["data"]["webhook_failure"]["request"]["url"], format!("{}/crm", crm.base));
    })
    .await;
}

#[tokio::test]
async fn an_upload_asking_for_more_than_was_approved_is_told_to_subscribers() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let w = &app.world;
        let events = Recorder::start(200, "").await;
        let (_, secret) = subscribe(&app, &format!("{}/in", events.base), &["plugin.needs_approval"]).await;
        // The account approved what an earlier version asked for.
        let mut tx = w.store().begin().await.unwrap();
        let mut settings = tx.plugin_account(&w.account, "scripted").await.unwrap().unwrap();
        settings.approved_capabilities = vec!["send-email".into()];
        tx.set_plugin_account(&settings, w.now()).await.unwrap();
        tx.commit().await.unwrap();
        let request = app.client.post(format!("{}/v1/plugins", app.base)).bearer_auth(&app.admin_key);
        let uploaded = app
            .send(request.header("content-type", "application/wasm").body(stepwise_tests::guests::SCRIPTED.to_vec()));
        let uploaded = uploaded.await;
        assert_eq!(uploaded.status, 201, "{}", uploaded.text);
        w.run().await;
        let got = bodies(&secret, &events);
        assert_eq!(types_of(&got), ["plugin.needs_approval"], "{got:#?}");
        assert_eq!(got[0]["data"]["plugin_id"], "scripted");
        assert_eq!(got[0]["data"]["unapproved_capabilities"], json!(["update-contact"]));
    })
    .await;
}
