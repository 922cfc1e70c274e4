//! Message templates (tokens checked when saved) and the webhook monitor
//! (retries, then a monitor entry, a notification and a timeline note), over
//! real HTTP on both backends.

use serde_json::{Value, json};
use stepwise_tests::Recorder;
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;

async fn send(app: &TestApp, method: reqwest::Method, path: &str, key: &str, body: Value) -> Answer {
    let request = app.client.request(method, format!("{}{path}", app.base)).bearer_auth(key);
    app.send(request.header("content-type", "application/json").body(body.to_string())).await
}

#[tokio::test]
async fn templates_are_checked_when_saved_and_edited_in_place() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let post = reqwest::Method::POST;
        let welcome = json!({"name": "Welcome", "subject": "Hi {{contact.first_name}}", "body": "Glad you came, {{contact.first_name | \"friend\"}}."});
        let made = send(&app, post.clone(), "/v1/templates", &app.agent_key, welcome.clone()).await;
        assert_eq!(made.status, 201, "{}", made.text);
        assert_eq!(made.json["warnings"], json!([]));
        let id = made.json["template"]["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("tpl_"));

        let typo = json!({"name": "Typo", "subject": "Hi {{contact.frist_name}}", "body": "x {{contact.nickname}}"});
        let refused = send(&app, post.clone(), "/v1/templates", &app.agent_key, typo).await;
        assert_eq!(refused.status, 422, "{}", refused.text);
        assert_eq!(refused.json["errors"][0]["field"], "/subject");
        let message = refused.json["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("contact.frist_name") && message.contains("contact.first_name"), "{message}");
        assert_eq!(refused.json["errors"][1]["field"], "/body");

        let legacy = json!({"name": "Old", "subject": "Hello", "body": "Dear {!Contact.FirstName},"});
        let saved = send(&app, post.clone(), "/v1/templates", &app.agent_key, legacy).await;
        assert_eq!(saved.status, 201, "{}", saved.text);
        assert!(saved.json["warnings"][0].as_str().unwrap().contains("legacy_merge_syntax"), "{}", saved.text);

        let taken = send(&app, post.clone(), "/v1/templates", &app.agent_key, welcome).await;
        assert_eq!(taken.status, 409, "names are unique in an account: {}", taken.text);

        let edited = json!({"name": "Welcome", "subject": "Welcome aboard", "body": "Hello {{contact.first_name}}"});
        let put = send(&app, reqwest::Method::PUT, &format!("/v1/templates/{id}"), &app.agent_key, edited).await;
        assert_eq!(put.status, 200, "{}", put.text);
        let read = app.get(&format!("/v1/templates/{id}"), Some(&app.agent_key)).await;
        assert_eq!(read.json["template"]["subject"], "Welcome aboard");
        assert_eq!(app.get("/v1/templates", Some(&app.agent_key)).await.json["templates"].as_array().unwrap().len(), 2);

        let gone = app.send(app.client.delete(format!("{}/v1/templates/{id}", app.base)).bearer_auth(&app.admin_key));
        assert_eq!(gone.await.status, 204);
        assert_eq!(app.get(&format!("/v1/templates/{id}"), Some(&app.agent_key)).await.status, 404);
    })
    .await;
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_is_retried_then_lands_in_the_monitor() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let hook = Recorder::start(503, "down for maintenance").await;
        let grant = json!({"enabled": true, "grant": {"capabilities": ["render-template", "http-fetch", "log"], "http_allow": [hook.base.clone()]}});
        let put = reqwest::Method::PUT;
        assert_eq!(send(&app, put, "/v1/plugins/webhook/account", &app.admin_key, grant).await.status, 200);
        let step = json!({
            "position": 0, "name": "Tell the CRM", "plugin": {"id": "webhook", "version": "*"},
            "config": {"url": format!("{}/crm", hook.base), "attempts": 2, "backoff_ms": 1000,
                       "headers": [{"name": "Authorization", "value": "Bearer s3cret-token"}]},
            "timing": {"kind": "delay", "ms": 0}, "activation": "automatic", "owner": {"rule": "contact_owner"}
        });
        let post = reqwest::Method::POST;
        let made = send(&app, post.clone(), "/v1/sequences", &app.admin_key, json!({"name": "Sync", "steps": [step]})).await;
        assert_eq!(made.status, 201, "{}", made.text);
        let seq = made.json["sequence"]["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/sequences/{seq}/state");
        assert_eq!(send(&app, post.clone(), &path, &app.admin_key, json!({"state": "active"})).await.status, 200);
        let contact = app.world.contact(|c| c.owner_id = Some(app.world.agent.clone())).await;
        let enrolled = app.world.enroll(&contact, &seq).await;

        app.world.run().await;
        assert_eq!(hook.received().len(), 1);
        let monitor = app.get("/v1/webhook-failures", Some(&app.agent_key)).await;
        assert_eq!(monitor.json["failures"], json!([]), "not before the last attempt: {}", monitor.text);

        // The second and last attempt, a second later.
        app.world.run_to(1).await;
        assert_eq!(hook.received().len(), 2);
        let monitor = app.get(&format!("/v1/webhook-failures?sequence={seq}"), Some(&app.agent_key)).await;
        assert_eq!(monitor.status, 200, "{}", monitor.text);
        let failures = monitor.json["failures"].as_array().unwrap();
        assert_eq!(failures.len(), 1, "{}", monitor.text);
        let failure = &failures[0];
        assert_eq!(failure["contact_id"], contact.as_str());
        assert_eq!(failure["enrollment_id"], enrolled.id.as_str());
        assert_eq!(failure["attempts"], 2);
        assert_eq!(failure["response"]["status"], 503);
        assert_eq!(failure["request"]["url"], format!("{}/crm", hook.base));
        assert!(!monitor.text.contains("s3cret-token"), "secrets are masked: {}", monitor.text);
        let other = app.get("/v1/webhook-failures?contact=con_nobody", Some(&app.agent_key)).await;
        assert_eq!(other.json["failures"], json!([]));

        let notes = app.get("/v1/notifications", Some(&app.agent_key)).await;
        let told = notes.json["notifications"].as_array().unwrap().iter().any(|n| {
            n["reason"].as_str().is_some_and(|r| r.contains("could not reach") && r.contains("2 attempt(s)"))
        });
        assert!(told, "the step's owner is told: {}", notes.text);
        let timeline = app.get(&format!("/v1/contacts/{contact}/timeline"), Some(&app.agent_key)).await;
        assert!(timeline.json["events"].as_array().unwrap().iter().any(|e| e["kind"] == "note"), "{}", timeline.text);
        let read = app.get(&format!("/v1/enrollments/{}", enrolled.id), Some(&app.agent_key)).await;
        assert_eq!(read.json["enrollment"]["pause_reason"], "error", "{}", read.text);
    })
    .await;
}
