//! The built-in plugins through the runtime, with real host calls: the
//! webhook against a local HTTP server, the task's to-do item and results.

use stepwise::plugins::builtin::BUILTIN;
use stepwise::plugins::types::{Activation, Completion, Outcome, StepContext};
use stepwise::plugins::{Invocation, Plugin, Runtime};
use stepwise_tests::{Recorder, ada, invocation, runtime};

async fn builtin(runtime: &Runtime, name: &str) -> std::sync::Arc<Plugin> {
    let (_, bytes) = BUILTIN.iter().find(|(n, _)| *n == name).expect("built in");
    runtime.load(bytes).await.expect("built-in plugin loads")
}

fn webhook_grants(base: &str) -> [String; 3] {
    ["render-template".into(), "log".into(), format!("http-fetch={base}")]
}

fn with_grants(grants: &[String]) -> Invocation {
    let grants: Vec<&str> = grants.iter().map(String::as_str).collect();
    invocation(ada(), &grants)
}

#[tokio::test]
async fn webhook_posts_rendered_fields_with_the_idempotency_key() {
    let server = Recorder::start(200, "ok").await;
    let runtime = runtime(true);
    let plugin = builtin(&runtime, "webhook").await;
    let config = serde_json::json!({
        "url": format!("{}/hooks/{{{{contact.id}}}}?src=stepwise", server.base),
        "headers": [{"name": "X-Owner", "value": "{{owner.name}}"}],
        "payload": {"mode": "fields", "fields": [
            {"key": "name", "value": "{{contact.full_name}}"},
            {"key": "plan", "value": "{{contact.attributes.plan | \"free\"}}"},
            {"key": "constant", "value": "5"}
        ]}
    });
    let call = runtime.execute(&plugin, with_grants(&webhook_grants(&server.base)), &config.to_string()).await.unwrap();
    assert_eq!(call.value, Outcome::Done { result: "done".into(), output: serde_json::json!({"status": 200}) });

    let received = server.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/hooks/con_ada?src=stepwise");
    assert_eq!(request.header("idempotency-key"), Some("act_test_1"));
    assert_eq!(request.header("x-owner"), Some("Grace Hopper"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body, serde_json::json!({"name": "Ada Lovelace", "plan": "free", "constant": "5"}));
}

#[tokio::test]
async fn webhook_sends_all_contact_fields_flat() {
    let server = Recorder::start(204, "").await;
    let runtime = runtime(true);
    let plugin = builtin(&runtime, "webhook").await;
    let mut subject = ada();
    subject.contact.attributes.insert("seats".into(), stepwise::crm::AttributeValue::Number(12.0));
    let config = serde_json::json!({"method": "PUT", "url": format!("{}/c", server.base), "payload": {"mode": "all_contact_fields"}});
    let grants = webhook_grants(&server.base);
    let mut inv = with_grants(&grants);
    inv.subject = subject;
    let call = runtime.execute(&plugin, inv, &config.to_string()).await.unwrap();
    assert!(matches!(call.value, Outcome::Done { .. }), "{:?}", call.value);
    let body: serde_json::Value = serde_json::from_slice(&server.received()[0].body).unwrap();
    assert_eq!(body["first_name"], "Ada");
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["attributes.seats"], 12.0);
    assert!(body.as_object().unwrap().values().all(|v| !v.is_object() && !v.is_array()), "flat: {body}");
}

#[tokio::test]
async fn webhook_non_2xx_fails_with_what_a_monitor_needs() {
    let server = Recorder::start(503, "upstream down").await;
    let runtime = runtime(true);
    let plugin = builtin(&runtime, "webhook").await;
    let mut config = serde_json::json!({
        "url": format!("{}/x", server.base),
        "headers": [{"name": "Authorization", "value": "Bearer s3cr3t"}],
        "payload": {"mode": "fields", "fields": [{"key": "a", "value": "b"}]}
    });
    // A 503 is worth another attempt, a minute later, until the last one.
    let call = runtime.execute(&plugin, with_grants(&webhook_grants(&server.base)), &config.to_string()).await.unwrap();
    let Outcome::Retry { after, reason } = call.value else { panic!("{:?}", call.value) };
    assert_eq!((after.as_secs(), reason.as_str()), (60, "attempt 1 of 3: webhook returned HTTP 503"));
    config["attempts"] = 1.into();
    let call = runtime.execute(&plugin, with_grants(&webhook_grants(&server.base)), &config.to_string()).await.unwrap();
    let Outcome::Failed { message, details } = call.value else { panic!("{:?}", call.value) };
    assert_eq!(message, "webhook returned HTTP 503");
    assert_eq!(details["response"]["status"], 503);
    assert_eq!(details["response"]["body"], "upstream down");
    assert_eq!(details["request"]["method"], "POST");
    let text = details.to_string();
    assert!(!text.contains("s3cr3t"), "secrets are masked: {text}");
    assert!(text.contains("***"), "{text}");
}

#[tokio::test]
async fn webhook_network_failure_and_denial_are_failed_outcomes() {
    let runtime = runtime(true);
    let plugin = builtin(&runtime, "webhook").await;
    // Nothing listens on port 9 of loopback.
    let config = serde_json::json!({"url": "http://127.0.0.1:9/x", "attempts": 1}).to_string();
    let call = runtime.execute(&plugin, with_grants(&webhook_grants("http://127.0.0.1:9")), &config).await.unwrap();
    let Outcome::Failed { details, .. } = call.value else { panic!("{:?}", call.value) };
    assert_eq!(details["error"]["code"], "transport", "{details}");

    // Without an http-fetch grant the host denies the call.
    let call = runtime.execute(&plugin, invocation(ada(), &["render-template", "log"]), &config).await.unwrap();
    let Outcome::Failed { details, .. } = call.value else { panic!("{:?}", call.value) };
    assert_eq!(details["error"]["code"], "denied", "{details}");
    assert_eq!(call.report.denials().count(), 1);
}

#[tokio::test]
async fn webhook_config_problems_name_their_fields() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "webhook").await;
    let grant = std::sync::Arc::new(
        stepwise::plugins::AccountGrant::new(stepwise::plugins::Grant::parse_cli(&["render-template".into()]).unwrap())
            .unwrap(),
    );
    let config = serde_json::json!({
        "method": "GET",
        "url": "ftp://x",
        "headers": [{"name": "bad name", "value": "{{contact.nope}}"}],
        "payload": {"mode": "fields", "fields": []}
    });
    let call = runtime
        .validate_config(&plugin, Invocation::detached(grant.as_ref().clone()), &config.to_string())
        .await
        .unwrap();
    let fields: Vec<&str> = call.value.iter().map(|p| p.field.as_str()).collect();
    for field in ["/url", "/headers/0/name", "/headers/0/value", "/payload"] {
        assert!(fields.contains(&field), "{field} missing from {:?}", call.value);
    }
    let call =
        runtime.validate_config(&plugin, Invocation::detached(grant.as_ref().clone()), r#"{"url": 5}"#).await.unwrap();
    assert_eq!(call.value[0].field, "/url");
}

#[tokio::test]
async fn task_prepares_a_rendered_to_do_item() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "task").await;
    assert_eq!(plugin.manifest().default_activation, Activation::Manual);
    let config = serde_json::json!({"title": "Call {{contact.first_name}}", "instructions": "Owner: {{owner.name}}"});
    let call = runtime.prepare(&plugin, invocation(ada(), &["render-template"]), &config.to_string()).await.unwrap();
    let item = call.value.unwrap();
    assert_eq!(item.title, "Call Ada");
    assert_eq!(item.body, "Owner: Grace Hopper");
}

#[tokio::test]
async fn task_results_continue_or_end_the_enrollment() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "task").await;
    let manifest = plugin.manifest();
    assert!(!manifest.result("none").unwrap().ends_enrollment);
    assert!(manifest.result("positive").unwrap().ends_enrollment);
    assert!(manifest.result("negative").unwrap().ends_enrollment);
    let config = serde_json::json!({"title": "Follow up"}).to_string();
    for result in ["none", "positive", "negative", "maybe"] {
        let mut inv = invocation(ada(), &["render-template"]);
        inv.step = StepContext {
            completion: Some(Completion { result: result.into(), draft: None, user_id: "usr_grace".into() }),
            ..inv.step
        };
        let call = runtime.execute(&plugin, inv, &config).await.unwrap();
        match (result, call.value) {
            ("maybe", Outcome::Failed { message, .. }) => assert!(message.contains("unknown result"), "{message}"),
            (code, Outcome::Done { result, .. }) => assert_eq!(result, code),
            (code, other) => panic!("{code}: {other:?}"),
        }
    }
}
