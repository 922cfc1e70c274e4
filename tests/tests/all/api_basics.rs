//! The API's foundation: health, readiness, metrics, keys and problem
//! documents, against a real server, on both backends.

use serde_json::json;
use stepwise::engagement::TimingMode;
use stepwise_tests::app::TestApp;
use stepwise_tests::db::for_each_backend;
use stepwise_tests::scenario::{scripted, settings};

#[tokio::test]
async fn health_and_readiness_answer_without_a_key() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let health = app.get("/healthz", None).await;
        assert_eq!((health.status, health.text.as_str()), (200, "ok\n"));
        assert_eq!(app.get("/readyz", None).await.status, 200);
    })
    .await;
}

#[tokio::test]
async fn a_missing_malformed_unknown_or_revoked_key_is_a_401_problem() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let missing = app.get("/v1/me", None).await;
        assert_eq!(missing.status, 401);
        assert_eq!(missing.content_type, "application/problem+json");
        assert_eq!(missing.json["type"], "urn:stepwise:problem:unauthorized");
        assert_eq!(missing.json["status"], 401);
        assert!(missing.json["detail"].as_str().unwrap().contains("Bearer"), "{}", missing.text);
        assert_eq!(missing.headers.get("www-authenticate").unwrap(), "Bearer");

        let malformed =
            app.send(app.client.get(format!("{}/v1/me", app.base)).header("authorization", "Basic abc")).await;
        assert_eq!(malformed.status, 401);
        assert_eq!(app.get("/v1/me", Some("sw_0000")).await.status, 401);

        let me = app.get("/v1/me", Some(&app.agent_key)).await;
        assert_eq!(me.status, 200, "{}", me.text);
        assert_eq!(me.json["user"]["email"], "grace@example.com");
        assert_eq!(me.json["account_id"], app.world.account.as_str());

        let mut tx = app.world.store().begin().await.unwrap();
        let key_id = me.json["key_id"].as_str().unwrap();
        tx.revoke_api_key(&app.world.account, key_id, app.world.now()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(app.get("/v1/me", Some(&app.agent_key)).await.status, 401, "revoked");

        // An inactive user's keys stop working.
        app.world.update_user(&app.world.agent, |u| u.active = false).await;
        let mut tx = app.world.store().begin().await.unwrap();
        let (_, fresh) =
            tx.create_api_key(&app.world.account, &app.world.agent, "again", app.world.now()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(app.get("/v1/me", Some(&fresh)).await.status, 401, "inactive user");
    })
    .await;
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let answer = app.get("/v1/nothing-here", Some(&app.admin_key)).await;
        assert_eq!(answer.status, 404);
        assert_eq!(answer.json["type"], "urn:stepwise:problem:not-found");
        assert_eq!(answer.json["detail"], "no route /v1/nothing-here");
    })
    .await;
}

#[tokio::test]
async fn metrics_report_the_backlog_actions_deferrals_and_outbox() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let w = &app.world;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"send": true}), 0)]).await;
        let sent = w.contact(|_| {}).await;
        let unreachable = w.contact(|c| c.email = None).await;
        w.enroll(&sent, &seq).await;
        let waiting = w.enroll(&unreachable, &seq).await;
        let before = app.get("/metrics", None).await;
        assert!(before.text.contains("stepwise_due_actions 2\n"), "{}", before.text);
        w.engine.run_until_idle().await.unwrap();
        let after = app.get("/metrics", None).await;
        assert_eq!(after.status, 200);
        assert!(after.content_type.starts_with("text/plain"), "{}", after.content_type);
        for line in [
            "stepwise_due_actions 0\n",
            "stepwise_actions{plugin=\"scripted\",status=\"completed\"} 1\n",
            "stepwise_actions{plugin=\"scripted\",status=\"future\"} 1\n",
            "stepwise_deferred_actions{reason=\"missing_email\"} 1\n",
            "stepwise_outbox_messages{state=\"sent\"} 1\n",
            "stepwise_plugin_call_seconds_count{plugin=\"scripted\",call=\"execute\"} 1\n",
        ] {
            assert!(after.text.contains(line), "missing {line:?} in\n{}", after.text);
        }
        assert!(!waiting.id.is_empty());
    })
    .await;
}

#[tokio::test]
async fn bootstrap_makes_an_admin_key_once() {
    for_each_backend(|store| async move {
        let made =
            stepwise::engine::bootstrap(&store, stepwise_tests::db::t0()).await.unwrap().expect("a fresh database");
        let holder = store.authenticate(&made.secret, stepwise_tests::db::t0()).await.unwrap().expect("the key works");
        assert_eq!(holder.user.role, stepwise::crm::Role::Admin);
        assert!(stepwise::engine::bootstrap(&store, stepwise_tests::db::t0()).await.unwrap().is_none(), "only once");
        let mut tx = store.begin_read().await.unwrap();
        let keys = tx.api_keys(&made.account_id, &made.admin.id).await.unwrap();
        assert_eq!(keys.len(), 1);
        assert!(made.secret.starts_with(&keys[0].prefix), "listed by its prefix, never its secret");
    })
    .await;
}

#[tokio::test]
async fn a_key_over_its_rate_gets_a_429_with_retry_after() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let limited = stepwise::api::Application::build_with_rate(
            app.world.engine.clone(),
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            (1, 2),
        )
        .await
        .unwrap();
        let base = format!("http://{}", limited.local_addr().unwrap());
        tokio::spawn(limited.run(std::future::pending()));
        let get = || app.client.get(format!("{base}/v1/me")).bearer_auth(&app.agent_key);
        assert_eq!(app.send(get()).await.status, 200);
        assert_eq!(app.send(get()).await.status, 200);
        let over = app.send(get()).await;
        assert_eq!(over.status, 429, "{}", over.text);
        assert_eq!(over.json["type"], "urn:stepwise:problem:rate-limited");
        assert_eq!(over.headers.get("retry-after").unwrap(), "1");
        let other = app.send(app.client.get(format!("{base}/v1/me")).bearer_auth(&app.admin_key)).await;
        assert_eq!(other.status, 200, "another key has its own bucket");
        assert_eq!(app.send(app.client.get(format!("{base}/healthz"))).await.status, 200, "probes are never limited");
    })
    .await;
}

#[tokio::test]
async fn held_actions_are_listed_by_reason_a_page_at_a_time_and_reps_see_their_own() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let w = &app.world;
        let texter = stepwise_tests::scenario::step(
            "texter",
            serde_json::json!({}),
            stepwise::engagement::Activation::Automatic,
            stepwise::engagement::StepTiming::Delay { ms: 0 },
        );
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![texter]).await;
        let sam = w
            .user(stepwise::crm::User { name: "Sam".into(), email: "sam@example.com".into(), ..Default::default() })
            .await;
        let mut mine = Vec::new();
        for owner in [&w.agent, &w.agent, &w.agent, &sam] {
            let contact = w
                .contact(|c| {
                    c.phone = None;
                    c.owner_id = Some(owner.clone());
                })
                .await;
            let e = w.enroll(&contact, &seq).await;
            if *owner == w.agent {
                mine.push(e.id);
            }
        }
        w.run().await;
        let mut held_mine = Vec::new();
        for e in &mine {
            held_mine.push(w.action(e, 0).await.id);
        }
        held_mine.sort();

        let ids = |answer: &stepwise_tests::app::Answer| -> Vec<String> {
            answer.json["actions"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect()
        };
        // An admin sees the account's, a page at a time.
        let first = app.get("/v1/actions?deferral=missing_phone&limit=3", Some(&app.admin_key)).await;
        assert_eq!(first.status, 200, "{}", first.text);
        assert_eq!(ids(&first).len(), 3);
        let after = first.json["next_after"].as_str().unwrap().to_owned();
        let second = app.get(&format!("/v1/actions?deferral=missing_phone&after={after}"), Some(&app.admin_key)).await;
        assert_eq!((ids(&second).len(), &second.json["next_after"]), (1, &serde_json::Value::Null));
        assert!(second.json["actions"][0]["deferral_reason"] == "missing_phone");
        let other = app.get("/v1/actions?deferral=duplicate_attempt", Some(&app.admin_key)).await;
        assert!(ids(&other).is_empty(), "nothing is held for another reason");
        let sams = app.get(&format!("/v1/actions?deferral=missing_phone&owner={sam}"), Some(&app.admin_key)).await;
        assert_eq!(ids(&sams).len(), 1);

        // A rep sees their own, and may not ask for another's.
        let own = app.get("/v1/actions?deferral=missing_phone", Some(&app.agent_key)).await;
        assert_eq!(ids(&own), held_mine);
        let denied = app.get(&format!("/v1/actions?deferral=missing_phone&owner={sam}"), Some(&app.agent_key)).await;
        assert_eq!(denied.status, 403, "{}", denied.text);

        // Without a reason, those held for any; a reason that does not
        // exist is named in the error.
        let any = app.get("/v1/actions", Some(&app.admin_key)).await;
        assert_eq!((any.status, ids(&any).len()), (200, 4), "{}", any.text);
        let bad = app.get("/v1/actions?deferral=asleep", Some(&app.admin_key)).await;
        assert_eq!(bad.status, 400);
        assert!(bad.text.contains("asleep"), "{}", bad.text);
    })
    .await;
}

/// A send that may have left is held for a person: the owner and the
/// admins find it in their notifications and in the held list, and
/// resolve it through the API.
#[tokio::test]
async fn a_send_held_as_a_duplicate_attempt_is_shown_and_resolved_through_the_api() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let w = &app.world;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"send": true}), 0)]).await;
        for i in 0..3 {
            let contact = w.contact(|c| c.email = Some(format!("d{i}@example.com"))).await;
            w.enroll(&contact, &seq).await;
        }
        let t0 = stepwise_tests::db::t0();
        let claimed = w.store.claim_due_actions(t0, 10, std::time::Duration::from_secs(60)).await.unwrap();
        let mut tx = w.store.begin().await.unwrap();
        for action in &claimed {
            tx.record_send_attempt(&action.id, &action.lease_token, t0).await.unwrap();
        }
        tx.commit().await.unwrap();
        w.run_to(2).await;

        let held = app.get("/v1/actions?deferral=duplicate_attempt", Some(&app.agent_key)).await;
        let held: Vec<String> =
            held.json["actions"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(held.len(), 3);
        for key in [&app.agent_key, &app.admin_key] {
            let told = app.get("/v1/notifications", Some(key)).await;
            let about: Vec<&str> = told.json["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|n| n["after"]["action_id"].as_str())
                .collect();
            assert_eq!(about.len(), 3, "owner and admins are told: {}", told.text);
        }
        let metrics = app.get("/metrics", None).await;
        assert!(metrics.text.contains("stepwise_deferred_actions{reason=\"duplicate_attempt\"} 3"), "{}", metrics.text);

        let app = &app;
        let post = |path: String, body: serde_json::Value| async move {
            app.call(reqwest::Method::POST, &path, Some(&app.agent_key), Some(&body)).await
        };
        let marked = post(format!("/v1/actions/{}/mark-sent", held[0]), json!({})).await;
        let answer = (marked.status, &marked.json["status"], &marked.json["result"]);
        assert_eq!(answer, (200, &json!("completed"), &json!("sent")), "{}", marked.text);
        let bad = post(format!("/v1/actions/{}/mark-sent", held[1]), json!({"result": "posted"})).await;
        assert_eq!(bad.status, 422, "{}", bad.text);
        assert!(bad.text.contains("`posted`"), "{}", bad.text);
        let again = post(format!("/v1/actions/{}/send-again", held[1]), json!({})).await;
        assert_eq!((again.status, &again.json["deferral_reason"]), (200, &json!(null)), "{}", again.text);
        let twice = post(format!("/v1/actions/{}/send-again", held[0]), json!({})).await;
        assert_eq!(twice.status, 409, "{}", twice.text);
        w.run().await;
        let left = app.get("/v1/actions?deferral=duplicate_attempt", Some(&app.admin_key)).await;
        assert_eq!(left.json["actions"].as_array().unwrap().len(), 1, "{}", left.text);
        assert_eq!(w.transport.delivered().len(), 1, "only the one sent again left");
    })
    .await;
}

#[tokio::test]
async fn people_change_their_own_profile_but_not_their_role() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let patch = |body: serde_json::Value| {
            let app = &app;
            async move { app.call(reqwest::Method::PATCH, "/v1/me", Some(&app.agent_key), Some(&body)).await }
        };
        let changed =
            patch(json!({"name": "Grace H.", "timezone": "Europe/Paris", "signature": "Grace\nAcme sales"})).await;
        assert_eq!(changed.status, 200, "{}", changed.text);
        assert_eq!((changed.string("/name"), changed.string("/timezone")), ("Grace H.".into(), "Europe/Paris".into()));
        let me = app.get("/v1/me", Some(&app.agent_key)).await;
        assert_eq!(me.json["user"]["signature"], "Grace\nAcme sales");
        assert_eq!(me.json["user"]["role"], "agent");

        // Only their own fields: a role is an admin's to give.
        let promoted = patch(json!({"role": "admin"})).await;
        assert_eq!(promoted.status, 422, "{}", promoted.text);
        assert!(promoted.text.contains("unknown field `role`"), "{}", promoted.text);
        let bad = patch(json!({"name": " ", "timezone": "Mars/Olympus", "signature": "x".repeat(10_001)})).await;
        assert_eq!(bad.status, 422, "{}", bad.text);
        let fields: Vec<&str> =
            bad.json["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["/name", "/timezone", "/signature"]);
        let me = app.get("/v1/me", Some(&app.agent_key)).await;
        assert_eq!(
            (me.json["user"]["name"].as_str(), me.json["user"]["role"].as_str()),
            (Some("Grace H."), Some("agent"))
        );

        // The first admin saves their own profile as bootstrapped.
        let admin = app.get("/v1/me", Some(&app.admin_key)).await;
        let path = format!("/v1/users/{}", admin.string("/user/id"));
        let saved = app.call(reqwest::Method::PUT, &path, Some(&app.admin_key), Some(&admin.json["user"])).await;
        assert_eq!(saved.status, 200, "{}", saved.text);
    })
    .await;
}
