//! The README's journey over real HTTP: a sequence with a manual task and an
//! automatic webhook, a contact, an enrollment, the task on the owner's
//! Engage list, completed with `none`, the webhook delivered to a local
//! server, the enrollment complete, the timeline and the report.

use serde_json::{Value, json};
use stepwise_tests::Recorder;
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;

async fn send(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> Answer {
    let request = app.client.request(method, format!("{}{path}", app.base)).bearer_auth(&app.admin_key);
    app.send(request.header("content-type", "application/json").body(body.to_string())).await
}

#[tokio::test]
async fn a_task_then_a_webhook_from_sequence_to_report() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let hook = Recorder::start(204, "").await;
        let post = reqwest::Method::POST;

        // The webhook may reach the local server only once an admin grants it.
        let grant = json!({"enabled": true, "grant": {"capabilities": ["render-template", "http-fetch"], "http_allow": [hook.base.clone()]}});
        let granted = send(&app, reqwest::Method::PUT, "/v1/plugins/webhook/account", grant).await;
        assert_eq!(granted.status, 200, "{}", granted.text);

        let sequence = json!({
            "name": "Onboarding",
            "steps": [
                {"position": 0, "name": "Welcome call", "plugin": {"id": "task", "version": "*"},
                 "config": {"title": "Call {{contact.first_name}}"}, "timing": {"kind": "delay", "ms": 0},
                 "activation": "manual", "owner": {"rule": "contact_owner"}},
                {"position": 1, "name": "Tell the CRM", "plugin": {"id": "webhook", "version": "*"},
                 "config": {"url": format!("{}/hooks/{{{{contact.id}}}}", hook.base),
                            "payload": {"mode": "fields", "fields": [{"key": "name", "value": "{{contact.first_name}}"}]}},
                 "timing": {"kind": "delay", "ms": 0}, "activation": "automatic", "owner": {"rule": "contact_owner"}}
            ]
        });
        let made = send(&app, post.clone(), "/v1/sequences", sequence).await;
        assert_eq!(made.status, 201, "{}", made.text);
        let seq = made.json["sequence"]["id"].as_str().unwrap().to_owned();
        assert_eq!(send(&app, post.clone(), &format!("/v1/sequences/{seq}/state"), json!({"state": "active"})).await.status, 200);

        let contact = send(&app, post.clone(), "/v1/contacts", json!({"first_name": "Ada", "email": "ada@example.com", "owner_id": app.world.agent})).await;
        let contact = contact.json["contact"]["id"].as_str().unwrap().to_owned();
        let enrolled = send(&app, post.clone(), "/v1/enrollments", json!({"contact_id": contact, "sequence_id": seq})).await;
        let enrollment = enrolled.json["enrollment"]["id"].as_str().unwrap().to_owned();
        app.world.run().await;

        let engage = app.get("/v1/engage", Some(&app.agent_key)).await;
        let task = engage.json["actions"][0]["id"].as_str().expect("the task is on the owner's list").to_owned();
        let request = app.client.post(format!("{}/v1/actions/{task}/complete", app.base)).bearer_auth(&app.agent_key);
        let done = app.send(request.header("content-type", "application/json").body(json!({"result": "none"}).to_string())).await;
        assert_eq!(done.status, 200, "{}", done.text);
        app.world.run().await;

        let received = hook.received();
        assert_eq!(received.len(), 1, "the webhook was delivered once");
        assert_eq!(received[0].uri, format!("/hooks/{contact}"));
        assert_eq!(serde_json::from_slice::<Value>(&received[0].body).unwrap(), json!({"name": "Ada"}));
        assert!(received[0].header("idempotency-key").is_some());
        let read = app.get(&format!("/v1/enrollments/{enrollment}"), Some(&app.agent_key)).await;
        assert_eq!(read.json["enrollment"]["status"], "completed", "{}", read.text);
        assert_eq!(read.json["enrollment"]["outcome"], "neutral");

        let timeline = app.get(&format!("/v1/contacts/{contact}/timeline"), Some(&app.agent_key)).await;
        assert!(timeline.json["events"].as_array().unwrap().len() >= 5, "{}", timeline.text);
        let report = app.get(&format!("/v1/sequences/{seq}/report"), Some(&app.agent_key)).await;
        assert_eq!(report.json["by_status"], json!({"completed": 1}));
        assert_eq!(report.json["steps"][0]["completed"], 1);
        assert_eq!(report.json["steps"][1]["completed"], 1);
    })
    .await;
}
