//! The built-in `email` step end to end, over the API on both backends:
//! templates (read when the step runs), the owner's signature, the manual
//! draft a rep edits, legacy merge fields, opt-outs, missing addresses and a
//! denied capability.

use serde_json::{Value, json};
use stepwise::engagement::OutboxMessage;
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;

async fn send(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> Answer {
    let request = app.client.request(method, format!("{}{path}", app.base)).bearer_auth(&app.admin_key);
    app.send(request.header("content-type", "application/json").body(body.to_string())).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> Answer {
    send(app, reqwest::Method::POST, path, body).await
}

fn email_step(config: Value, activation: &str) -> Value {
    json!({"position": 0, "name": "Say hello", "plugin": {"id": "email", "version": "*"}, "config": config,
           "timing": {"kind": "delay", "ms": 0}, "activation": activation, "owner": {"rule": "contact_owner"}})
}

/// An active sequence of one email step, made over the API.
async fn sequence(app: &TestApp, step: Value) -> String {
    let made = post(app, "/v1/sequences", json!({"name": "Hello", "steps": [step]})).await;
    assert_eq!(made.status, 201, "{}", made.text);
    let id = made.json["sequence"]["id"].as_str().unwrap().to_owned();
    assert_eq!(post(app, &format!("/v1/sequences/{id}/state"), json!({"state": "active"})).await.status, 200);
    id
}

/// A contact owned by the world's agent, whose signature is set.
async fn contact(app: &TestApp, email: Option<&str>) -> String {
    app.world.update_user(&app.world.agent, |u| u.signature = "Grace Hopper\nAcme Corp".into()).await;
    let owner = app.world.agent.clone();
    app.world
        .contact(|c| {
            c.first_name = "Ada".into();
            c.email = email.map(str::to_owned);
            c.owner_id = Some(owner);
        })
        .await
}

fn payload(message: &OutboxMessage) -> (String, String, String) {
    let field = |name: &str| message.payload[name].as_str().unwrap_or_default().to_owned();
    (field("to"), field("subject"), field("text"))
}

#[tokio::test]
async fn an_automatic_email_takes_its_template_as_it_reads_when_sent() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let template = json!({"name": "Welcome", "subject": "Welcome, {{contact.first_name}}", "body": "Hello {{contact.first_name}}!"});
        let made = post(&app, "/v1/templates", template).await;
        let template = made.json["template"]["id"].as_str().unwrap().to_owned();
        let seq = sequence(&app, email_step(json!({"template_id": template}), "automatic")).await;

        let first = contact(&app, Some("ada@example.com")).await;
        app.world.enroll(&first, &seq).await;
        app.world.run().await;
        let sent = app.world.transport.delivered();
        assert_eq!(sent.len(), 1);
        let (to, subject, text) = payload(&sent[0]);
        assert_eq!((to.as_str(), subject.as_str()), ("ada@example.com", "Welcome, Ada"));
        assert_eq!(text, "Hello Ada!\n\n-- \nGrace Hopper\nAcme Corp", "signed by the owner");

        // An edit of the template reaches the step at once.
        let edited = json!({"name": "Welcome", "subject": "A warm welcome", "body": "Hi {{contact.first_name}}."});
        let put = send(&app, reqwest::Method::PUT, &format!("/v1/templates/{template}"), edited).await;
        assert_eq!(put.status, 200, "{}", put.text);
        let second = contact(&app, Some("ada2@example.com")).await;
        app.world.enroll(&second, &seq).await;
        app.world.run().await;
        let sent = app.world.transport.delivered();
        assert_eq!(payload(&sent[1]).1, "A warm welcome");
    })
    .await;
}

#[tokio::test]
async fn email_steps_are_checked_when_saved() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        for (config, field, words) in [
            (json!({"template_id": "tpl_missing"}), "/steps/0/config/template_id", "no template tpl_missing"),
            (json!({"subject": "Hi {{contact.frist_name}}", "body": "x"}), "/steps/0/config/subject", "frist_name"),
            (json!({"subject": "Hi"}), "/steps/0/config/body", "needs a body"),
            (json!({"subject": "Hi", "body": "x", "bcc": "spy@example.com"}), "/steps/0/config", "bcc"),
        ] {
            let made =
                post(&app, "/v1/sequences", json!({"name": "Bad", "steps": [email_step(config, "automatic")]})).await;
            assert_eq!(made.status, 422, "{}", made.text);
            let found = made.json["errors"].as_array().unwrap().iter().any(|e| {
                e["field"].as_str().is_some_and(|f| f.starts_with(field))
                    && e["message"].as_str().is_some_and(|m| m.contains(words))
            });
            assert!(found, "{field} {words}: {}", made.text);
        }
    })
    .await;
}

#[tokio::test]
async fn a_manual_email_is_a_draft_the_rep_edits_then_sends() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let config = json!({"subject": "Hi {{contact.first_name}}", "body": "Shall we talk?"});
        let seq = sequence(&app, email_step(config, "manual")).await;
        let ada = contact(&app, Some("ada@example.com")).await;
        let enrolled = app.world.enroll(&ada, &seq).await;
        app.world.run().await;
        assert!(app.world.transport.delivered().is_empty(), "nothing goes out before the rep sends it");

        let action = app.world.action(&enrolled.id, 0).await.id;
        let item = app.get(&format!("/v1/actions/{action}/item"), Some(&app.agent_key)).await;
        assert_eq!(item.status, 200, "{}", item.text);
        assert_eq!(item.json["draft"]["subject"], "Hi Ada");
        assert_eq!(item.json["draft"]["body"], "Shall we talk?\n\n-- \nGrace Hopper\nAcme Corp");

        let draft = json!({"channel": "email", "to": "ada@example.com", "subject": "Hi Ada, quick question",
                           "body": "Edited by the rep.\n\n-- \nGrace"});
        let request = app.client.post(format!("{}/v1/actions/{action}/complete", app.base)).bearer_auth(&app.agent_key);
        let body = json!({"result": "sent", "draft": draft}).to_string();
        let done = app.send(request.header("content-type", "application/json").body(body)).await;
        assert_eq!(done.status, 200, "{}", done.text);
        app.world.run().await;
        let sent = app.world.transport.delivered();
        assert_eq!(sent.len(), 1);
        let (_, subject, text) = payload(&sent[0]);
        assert_eq!((subject.as_str(), text.as_str()), ("Hi Ada, quick question", "Edited by the rep.\n\n-- \nGrace"));
    })
    .await;
}

#[tokio::test]
async fn legacy_merge_fields_hold_the_step_until_the_template_is_fixed() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let old = json!({"name": "Old", "subject": "Hello", "body": "Dear {!Contact.FirstName},"});
        let template = post(&app, "/v1/templates", old).await.json["template"]["id"].as_str().unwrap().to_owned();
        let seq = sequence(&app, email_step(json!({"template_id": template}), "automatic")).await;
        let ada = contact(&app, Some("ada@example.com")).await;
        let enrolled = app.world.enroll(&ada, &seq).await;
        app.world.run().await;
        assert!(app.world.transport.delivered().is_empty());
        let action = app.world.action(&enrolled.id, 0).await;
        assert_eq!(action.deferral_reason.map(|r| r.as_str()), Some("legacy_merge_syntax"));

        let fixed = json!({"name": "Old", "subject": "Hello", "body": "Dear {{contact.first_name}},"});
        assert_eq!(send(&app, reqwest::Method::PUT, &format!("/v1/templates/{template}"), fixed).await.status, 200);
        // Fixing the template releases the held step at once.
        app.world.run().await;
        let sent = app.world.transport.delivered();
        assert_eq!(sent.len(), 1, "sent once the template is fixed");
        assert!(payload(&sent[0]).2.starts_with("Dear Ada,"));
    })
    .await;
}

#[tokio::test]
async fn opted_out_or_unreachable_contacts_get_no_email_and_a_denied_grant_fails_the_step() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let seq = sequence(&app, email_step(json!({"subject": "Hi", "body": "Hello"}), "automatic")).await;
        let opted_out = contact(&app, Some("no@example.com")).await;
        app.world.update_contact(&opted_out, |c| c.opt_outs.email = true).await;
        let unreachable = contact(&app, None).await;
        let out = app.world.enroll(&opted_out, &seq).await;
        let missing = app.world.enroll(&unreachable, &seq).await;
        app.world.run().await;
        assert!(app.world.transport.delivered().is_empty());
        let skipped = app.world.action(&out.id, 0).await;
        assert_eq!(skipped.deferral_reason.map(|r| r.as_str()), Some("opted_out"));
        let held = app.world.action(&missing.id, 0).await;
        assert_eq!(held.deferral_reason.map(|r| r.as_str()), Some("missing_email"));

        // Without `send-email` granted, the step cannot queue its message.
        let grant = json!({"enabled": true, "grant": {"capabilities": ["render-template"]}});
        let put = send(&app, reqwest::Method::PUT, "/v1/plugins/email/account", grant).await;
        assert_eq!(put.status, 200, "{}", put.text);
        let ada = contact(&app, Some("ada@example.com")).await;
        let denied = app.world.enroll(&ada, &seq).await;
        app.world.run().await;
        assert!(app.world.transport.delivered().is_empty());
        let read = app.get(&format!("/v1/enrollments/{}", denied.id), Some(&app.admin_key)).await;
        assert_eq!(read.json["enrollment"]["pause_reason"], "error", "{}", read.text);
        assert!(read.text.contains("send-email"), "the failure names the capability: {}", read.text);
    })
    .await;
}
