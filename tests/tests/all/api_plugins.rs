//! Plugins over the API: listing, uploading add-ons, enabling and granting
//! them per account, and loading stored add-ons at start, on both backends.

use std::sync::Arc;

use serde_json::{Value, json};
use stepwise::engagement::{ActionStatus, DeferralReason, TimingMode};
use stepwise::engine::{Engine, EngineConfig, Unconfigured};
use stepwise::plugins::Registry;
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;
use stepwise_tests::scenario::{scripted, settings};
use stepwise_tests::{guests, runtime};

async fn upload(app: &TestApp, key: &str, content_type: &str, bytes: &[u8]) -> Answer {
    let request = app.client.post(format!("{}/v1/plugins", app.base)).bearer_auth(key);
    app.send(request.header("content-type", content_type).body(bytes.to_vec())).await
}

async fn set_account(app: &TestApp, plugin: &str, body: Value) -> Answer {
    let request = app.client.put(format!("{}/v1/plugins/{plugin}/account", app.base)).bearer_auth(&app.admin_key);
    app.send(request.header("content-type", "application/json").body(body.to_string())).await
}

#[tokio::test]
async fn admins_upload_add_ons_and_bad_components_are_refused_by_name() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store.clone()).await;
        let listed = app.get("/v1/plugins", Some(&app.agent_key)).await;
        let ids: Vec<&str> =
            listed.json["plugins"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"task") && ids.contains(&"webhook"), "{ids:?}");
        assert!(!ids.contains(&"trivial"), "an add-on shows only to the account that uploaded it: {ids:?}");

        assert_eq!(upload(&app, &app.agent_key, "application/wasm", guests::TRIVIAL).await.status, 403);
        assert_eq!(upload(&app, &app.admin_key, "application/octet-stream", guests::TRIVIAL).await.status, 415);
        let wrong = upload(&app, &app.admin_key, "application/wasm", guests::WRONG_WORLD).await;
        assert_eq!(wrong.status, 422, "{}", wrong.text);
        assert!(wrong.json["detail"].as_str().unwrap().contains("stepwise:plugin"), "{}", wrong.text);
        let future = upload(&app, &app.admin_key, "application/wasm", guests::FUTURE_WIT).await;
        assert_eq!(future.status, 422, "{}", future.text);
        let http = upload(&app, &app.admin_key, "application/wasm", guests::WASI_HTTP).await;
        assert_eq!(http.status, 422, "{}", http.text);
        let detail = http.json["detail"].as_str().unwrap();
        assert!(detail.contains("wasi:http/handler@0.3.0") && detail.contains("http-fetch"), "{detail}");
        let (_, task) = stepwise::plugins::builtin::BUILTIN.iter().find(|(name, _)| *name == "task").unwrap();
        let taken = upload(&app, &app.admin_key, "application/wasm", task).await;
        assert_eq!(taken.status, 409, "{}", taken.text);

        let added = upload(&app, &app.admin_key, "application/wasm", guests::TRIVIAL).await;
        assert_eq!(added.status, 201, "{}", added.text);
        assert_eq!(added.json["id"], "trivial");
        let mut tx = store.begin_read().await.unwrap();
        let record = tx.plugin("trivial", added.json["version"].as_str().unwrap()).await.unwrap();
        assert_eq!(record.wasm.as_deref(), Some(guests::TRIVIAL), "stored so every host can load it");
        drop(tx);

        let mine = app.get("/v1/plugins", Some(&app.admin_key)).await;
        assert!(mine.text.contains("\"trivial\""), "the uploader sees it");

        // Another account neither sees nor enables it.
        let mut tx = store.begin().await.unwrap();
        let other = tx.create_account("Globex", None, app.world.now()).await.unwrap().id;
        let admin = stepwise::crm::User {
            name: "Hank".into(),
            email: "hank@globex.example".into(),
            role: stepwise::crm::Role::Admin,
            ..stepwise::crm::User::default()
        };
        let admin = tx.create_user(&other, &admin, app.world.now()).await.unwrap().id;
        let (_, key) = tx.create_api_key(&other, &admin, "t", app.world.now()).await.unwrap();
        tx.commit().await.unwrap();
        let theirs = app.get("/v1/plugins", Some(&key)).await;
        assert!(!theirs.text.contains("\"trivial\""), "{}", theirs.text);
        let request = app.client.put(format!("{}/v1/plugins/trivial/account", app.base)).bearer_auth(&key);
        let enable = app
            .send(request.header("content-type", "application/json").body(json!({"enabled": true}).to_string()))
            .await;
        assert_eq!(enable.status, 404, "{}", enable.text);
        assert_eq!(upload(&app, &key, "application/wasm", guests::TRIVIAL).await.status, 409, "not theirs to install");

        // A host starting on this database loads it from there.
        let fresh = Arc::new(Registry::with_builtins(runtime(false)).await.unwrap());
        assert!(fresh.get(&app.world.account, "trivial", "*").unwrap().is_none());
        let engine =
            Engine::new(store, fresh.clone(), app.world.clock.clone(), Arc::new(Unconfigured), EngineConfig::default());
        assert_eq!(engine.sync_add_ons().await.unwrap(), 1);
        assert!(fresh.get(&app.world.account, "trivial", "*").unwrap().is_some());
    })
    .await;
}

#[tokio::test]
async fn enabling_and_granting_decide_what_an_add_on_may_do_at_once() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let w = &app.world;
        assert_eq!(upload(&app, &app.admin_key, "application/wasm", guests::SCRIPTED).await.status, 201);
        let off = set_account(&app, "scripted", json!({"enabled": false})).await;
        assert_eq!(off.status, 200, "{}", off.text);
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"send": true}), 0)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        w.run().await;
        assert_eq!(w.action(&e.id, 0).await.deferral_reason, Some(DeferralReason::PluginDisabled));

        // Enabled without the send-email grant: the plugin runs, is denied,
        // and the step fails on its own terms.
        assert_eq!(set_account(&app, "scripted", json!({"enabled": true})).await.status, 200);
        w.engine.reschedule_action(&w.account, &w.action(&e.id, 0).await.id, &w.agent, w.now()).await.unwrap();
        w.run().await;
        let failed = w.action(&e.id, 0).await;
        assert_eq!(failed.status, ActionStatus::Failed);
        assert!(failed.output.unwrap()["error"].as_str().unwrap().contains("send-email"));

        let granted = set_account(
            &app,
            "scripted",
            json!({"enabled": true, "grant": {"capabilities": ["send-email", {"update-contact": ["attributes"]}]}}),
        )
        .await;
        assert_eq!(granted.status, 200, "{}", granted.text);
        assert_eq!(granted.json["account"]["approved_capabilities"], json!(["send-email", "update-contact"]));
        w.engine.resume(&w.account, &e.id, &w.agent).await.unwrap();
        w.run().await;
        assert_eq!(w.action(&e.id, 0).await.status, ActionStatus::Completed, "usable at once, no restart");

        let bad =
            set_account(&app, "scripted", json!({"enabled": true, "grant": {"capabilities": ["teleport"]}})).await;
        assert_eq!(bad.status, 422, "{}", bad.text);
        let allow =
            set_account(&app, "scripted", json!({"enabled": true, "grant": {"http_allow": ["ftp://nope"]}})).await;
        assert_eq!(allow.status, 422, "{}", allow.text);
        // A trailing `/*` would never match: refused, naming the entry and the rule.
        let star = json!({"enabled": true, "grant": {"http_allow": ["http://127.0.0.1:8080/*"]}});
        let star = set_account(&app, "scripted", star).await;
        assert_eq!(star.status, 422, "{}", star.text);
        assert_eq!(star.json["errors"][0]["field"], "/grant/http_allow", "{}", star.text);
        let message = star.json["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("http://127.0.0.1:8080/*") && message.contains("literal prefix"), "{message}");
        assert_eq!(set_account(&app, "nothing", json!({"enabled": true})).await.status, 404);
    })
    .await;
}

#[tokio::test]
async fn a_step_of_another_accounts_add_on_cannot_be_saved() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let step = json!({"position": 0, "name": "x", "plugin": {"id": "trivial", "version": "*"}, "config": {},
                          "timing": {"kind": "delay", "ms": 0}, "activation": "automatic", "owner": {"rule": "initiator"}});
        let body = json!({"name": "Uses an add-on", "steps": [step]});
        let send = || {
            app.client
                .post(format!("{}/v1/sequences", app.base))
                .bearer_auth(&app.admin_key)
                .header("content-type", "application/json")
                .body(body.to_string())
        };
        let refused = app.send(send()).await;
        assert_eq!(refused.status, 422, "not uploaded by this account: {}", refused.text);
        assert_eq!(refused.json["errors"][0]["field"], "/steps/0/plugin");
        assert_eq!(upload(&app, &app.admin_key, "application/wasm", guests::TRIVIAL).await.status, 201);
        assert_eq!(app.send(send()).await.status, 201, "its own add-on is fine");
    })
    .await;
}

#[tokio::test]
async fn an_add_on_uploaded_through_one_host_runs_on_another_without_a_restart() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store.clone()).await;
        // A second host on the same database, started before the upload.
        let registry = Arc::new(Registry::with_builtins(runtime(false)).await.unwrap());
        let clock = app.world.clock.clone();
        let other =
            Engine::new(store.clone(), registry.clone(), clock, Arc::new(Unconfigured), EngineConfig::default());
        let served = stepwise::api::Application::build(other.clone(), std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let other_base = format!("http://{}", served.local_addr().unwrap());
        tokio::spawn(served.run(std::future::pending()));

        assert_eq!(upload(&app, &app.admin_key, "application/wasm", guests::TRIVIAL).await.status, 201);
        assert!(
            registry.get(&app.world.account, "trivial", "*").unwrap().is_none(),
            "the other host has not loaded it yet"
        );

        // Saving a step on the other host finds the upload at once.
        let step = json!({"position": 0, "name": "noop", "plugin": {"id": "trivial", "version": "*"},
                          "config": {}, "timing": {"kind": "delay", "ms": 0}, "activation": "automatic",
                          "owner": {"rule": "contact_owner"}});
        let post = |path: &str, body: Value| {
            let request = app.client.post(format!("{other_base}{path}")).bearer_auth(&app.admin_key);
            app.send(request.header("content-type", "application/json").body(body.to_string()))
        };
        let made = post("/v1/sequences", json!({"name": "Elsewhere", "steps": [step]})).await;
        assert_eq!(made.status, 201, "{}", made.text);
        assert!(registry.get(&app.world.account, "trivial", "*").unwrap().is_some());
        let seq = made.json["sequence"]["id"].as_str().unwrap().to_owned();
        assert_eq!(post(&format!("/v1/sequences/{seq}/state"), json!({"state": "active"})).await.status, 200);
        let contact = app.world.contact(|_| {}).await;
        let enrolled = post("/v1/enrollments", json!({"contact_id": contact, "sequence_id": seq})).await;
        assert_eq!(enrolled.status, 201, "{}", enrolled.text);

        // And its scheduler runs the step.
        other.run_until_idle().await.unwrap();
        let id = enrolled.json["enrollment"]["id"].as_str().unwrap();
        let read = app.get(&format!("/v1/enrollments/{id}"), Some(&app.admin_key)).await;
        assert_eq!(read.json["actions"][0]["status"], ActionStatus::Completed.as_str(), "{}", read.text);
    })
    .await;
}
