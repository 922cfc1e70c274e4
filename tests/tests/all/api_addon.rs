//! An add-on built apart from the host, used over real HTTP as an operator
//! would: `plugins/proposal-paid`, compiled to its own component by this
//! crate's build script and never embedded, is uploaded by one account,
//! stays invisible and unusable to another, holds a step until the
//! contact's proposal is paid, and releases it as soon as the contact says
//! so, without waiting for the re-check. On both backends.

use serde_json::{Value, json};
use stepwise::plugins::builtin::BUILTIN;
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;
use stepwise_tests::{add_ons, guests};

/// `method path` with `key` and a JSON body.
async fn send(app: &TestApp, key: &str, method: reqwest::Method, path: &str, body: &Value) -> Answer {
    let request = app.client.request(method, format!("{}{path}", app.base)).bearer_auth(key);
    app.send(request.header("content-type", "application/json").body(body.to_string())).await
}

/// `POST path` with `key` and a JSON body.
async fn post(app: &TestApp, key: &str, path: &str, body: &Value) -> Answer {
    send(app, key, reqwest::Method::POST, path, body).await
}

/// The plugin ids `key`'s account sees.
async fn listed(app: &TestApp, key: &str) -> Vec<String> {
    let answer = app.get("/v1/plugins", Some(key)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["plugins"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect()
}

/// A one-step sequence: a manual task held by `criterion`.
fn held_task(criterion: &Value) -> Value {
    json!({
        "name": "Kick-off after payment",
        "steps": [{"position": 0, "name": "Schedule the kick-off", "plugin": {"id": "task", "version": "*"},
                   "config": {"title": "Schedule the kick-off with {{contact.first_name}}"},
                   "timing": {"kind": "delay", "ms": 0}, "activation": "manual",
                   "owner": {"rule": "contact_owner"}, "criteria": [criterion]}]
    })
}

/// The proposal-paid criterion with `config`, holding its step.
fn proposal_paid(config: &Value) -> Value {
    json!({"plugin": {"id": "proposal-paid", "version": "*"}, "config": config, "on_unmet": "hold"})
}

/// Uploads the add-on as `key`, as `curl --data-binary @FILE -H
/// 'Content-Type: application/wasm'` does.
async fn upload(app: &TestApp, key: &str) -> Answer {
    let component = std::fs::read(add_ons::PROPOSAL_PAID).expect("the build script built the add-on");
    let request = app.client.post(format!("{}/v1/plugins", app.base)).bearer_auth(key);
    app.send(request.header("content-type", "application/wasm").body(component)).await
}

/// Enables the add-on for `key`'s account with nothing granted: it asks
/// for nothing.
async fn enable(app: &TestApp, key: &str) -> Answer {
    let body = json!({"enabled": true, "grant": {"capabilities": []}});
    send(app, key, reqwest::Method::PUT, "/v1/plugins/proposal-paid/account", &body).await
}

#[tokio::test]
async fn an_add_on_built_apart_is_seen_enabled_and_used_only_by_the_account_that_uploaded_it() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let admin = app.admin_key.as_str();
        let id = "proposal-paid".to_owned();

        // Built apart: the host does not embed it, and nobody has it yet.
        assert!(BUILTIN.iter().all(|(name, _)| *name != id), "the add-on is not built in");
        assert!(!listed(&app, admin).await.contains(&id));

        // A second account: a sub-account, whose admin's key is shown once.
        let sub = json!({"name": "Acme EMEA", "admin_name": "Hank", "admin_email": "hank@emea.example"});
        let created = post(&app, admin, "/v1/accounts", &sub).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let other = created.json["secret"].as_str().unwrap().to_owned();

        let uploaded = upload(&app, admin).await;
        assert_eq!(uploaded.status, 201, "{}", uploaded.text);
        assert_eq!(uploaded.json["id"], "proposal-paid");
        assert_eq!(uploaded.json["manifest"]["kind"], "predicate", "{}", uploaded.text);
        assert_eq!(uploaded.json["manifest"]["capabilities"], json!([]), "it asks for nothing");
        assert!(listed(&app, admin).await.contains(&id));

        // The other account neither sees it, nor enables it, nor uses it.
        assert!(!listed(&app, &other).await.contains(&id));
        let refused = enable(&app, &other).await;
        assert_eq!(refused.status, 404, "{}", refused.text);
        let theirs = post(&app, &other, "/v1/sequences", &held_task(&proposal_paid(&json!({})))).await;
        assert_eq!(theirs.status, 422, "{}", theirs.text);
        assert_eq!(theirs.json["errors"][0]["field"], "/steps/0/criteria/0/plugin", "{}", theirs.text);
        let mine = post(&app, admin, "/v1/sequences", &held_task(&proposal_paid(&json!({})))).await;
        assert_eq!(mine.status, 201, "the uploader's own account saves it: {}", mine.text);
    })
    .await;
}

#[tokio::test]
async fn a_step_held_by_the_add_on_goes_on_as_soon_as_the_contact_is_paid() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let admin = app.admin_key.as_str();
        assert_eq!(upload(&app, admin).await.status, 201);

        // A bad config is refused at its field.
        let blank = post(&app, admin, "/v1/sequences", &held_task(&proposal_paid(&json!({"attribute": " "})))).await;
        assert_eq!(blank.status, 422, "{}", blank.text);
        assert_eq!(blank.json["errors"][0]["field"], "/steps/0/criteria/0/config/attribute", "{}", blank.text);
        let unknown = post(&app, admin, "/v1/sequences", &held_task(&proposal_paid(&json!({"paid": true})))).await;
        assert_eq!(unknown.status, 422, "{}", unknown.text);
        let message = unknown.json["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("unknown field `paid`"), "{}", unknown.text);

        let granted = enable(&app, admin).await;
        assert_eq!(granted.status, 200, "{}", granted.text);
        let made = post(&app, admin, "/v1/sequences", &held_task(&proposal_paid(&json!({})))).await;
        assert_eq!(made.status, 201, "{}", made.text);
        let seq = made.json["sequence"]["id"].as_str().unwrap().to_owned();
        let active = post(&app, admin, &format!("/v1/sequences/{seq}/state"), &json!({"state": "active"})).await;
        assert_eq!(active.status, 200, "{}", active.text);

        // Not paid yet: the step is held, and says why.
        let contact = json!({"first_name": "Ada", "email": "ada@example.com", "owner_id": app.world.agent,
                             "attributes": {"proposal_paid": "no"}});
        let contact = post(&app, admin, "/v1/contacts", &contact).await;
        assert_eq!(contact.status, 201, "{}", contact.text);
        let contact = contact.json["contact"]["id"].as_str().unwrap().to_owned();
        let enrolled = post(&app, admin, "/v1/enrollments", &json!({"contact_id": contact, "sequence_id": seq})).await;
        assert_eq!(enrolled.status, 201, "{}", enrolled.text);
        let enrollment = enrolled.json["enrollment"]["id"].as_str().unwrap().to_owned();
        app.world.run().await;
        let read = app.get(&format!("/v1/enrollments/{enrollment}"), Some(admin)).await;
        let action = read.json["actions"][0]["id"].as_str().unwrap().to_owned();
        let held = app.get(&format!("/v1/actions/{action}"), Some(admin)).await;
        assert_eq!((&held.json["status"], &held.json["deferral_reason"]), (&json!("future"), &json!("criteria_unmet")));
        let explained = app.get(&format!("/v1/actions/{action}/explain"), Some(admin)).await;
        let checks = explained.json["checks"].as_array().unwrap();
        let check = checks.iter().find(|c| c["name"] == "criterion:proposal-paid");
        assert_eq!(check.map(|c| &c["ok"]), Some(&json!(false)), "{}", explained.text);

        // Paid: the contact says so, and the step goes on the owner's Engage
        // view at once, with no time passing on the clock (the re-check is
        // 15 minutes away).
        let before = app.world.now();
        let mut changed = app.get(&format!("/v1/contacts/{contact}"), Some(admin)).await.json;
        changed["attributes"]["proposal_paid"] = json!(true);
        let put = send(&app, admin, reqwest::Method::PUT, &format!("/v1/contacts/{contact}"), &changed).await;
        assert_eq!(put.status, 200, "{}", put.text);
        app.world.run().await;
        assert_eq!(app.world.now(), before);
        let released = app.get(&format!("/v1/actions/{action}"), Some(admin)).await;
        assert_eq!((&released.json["status"], &released.json["deferral_reason"]), (&json!("active"), &Value::Null));
        let engage = app.get("/v1/engage", Some(&app.agent_key)).await;
        let on_engage = engage.json["actions"].as_array().unwrap();
        assert_eq!(on_engage.iter().map(|a| &a["id"]).collect::<Vec<_>>(), [&json!(action)], "{}", engage.text);

        // Text counts too: a contact already paid ("Yes") is never held.
        let paid = json!({"first_name": "Grace", "email": "grace@example.com", "owner_id": app.world.agent,
                          "attributes": {"proposal_paid": "Yes"}});
        let paid = post(&app, admin, "/v1/contacts", &paid).await.json["contact"]["id"].as_str().unwrap().to_owned();
        let enrolled = post(&app, admin, "/v1/enrollments", &json!({"contact_id": paid, "sequence_id": seq})).await;
        let enrollment = enrolled.json["enrollment"]["id"].as_str().unwrap().to_owned();
        app.world.run().await;
        let read = app.get(&format!("/v1/enrollments/{enrollment}"), Some(admin)).await;
        assert_eq!(read.json["actions"][0]["status"], "active", "{}", read.text);
    })
    .await;
}

/// Regression: account B uploaded its own component under the id of
/// account C's add-on, one version higher, and C's hold criterion was then
/// decided by B's code.
#[tokio::test]
async fn another_accounts_upload_under_your_add_on_id_never_decides_your_criteria() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let c = app.admin_key.as_str();
        let sub = json!({"name": "Initech", "admin_name": "Bill", "admin_email": "bill@initech.example"});
        let b = post(&app, c, "/v1/accounts", &sub).await.json["secret"].as_str().unwrap().to_owned();

        // C uses its add-on as a hold criterion; the contact has not paid.
        assert_eq!(upload(&app, c).await.status, 201);
        assert_eq!(enable(&app, c).await.status, 200);
        let made = post(&app, c, "/v1/sequences", &held_task(&proposal_paid(&json!({})))).await;
        let seq = made.json["sequence"]["id"].as_str().unwrap().to_owned();
        assert_eq!(post(&app, c, &format!("/v1/sequences/{seq}/state"), &json!({"state": "active"})).await.status, 200);
        let contact = json!({"first_name": "Ada", "owner_id": app.world.agent, "attributes": {"proposal_paid": "no"}});
        let contact = post(&app, c, "/v1/contacts", &contact).await.json["contact"]["id"].as_str().unwrap().to_owned();
        let enrolled = post(&app, c, "/v1/enrollments", &json!({"contact_id": contact, "sequence_id": seq})).await;
        let enrollment = enrolled.json["enrollment"]["id"].as_str().unwrap().to_owned();
        app.world.run().await;

        // B publishes an always-true component under the same id, 0.1.1.
        let request = app.client.post(format!("{}/v1/plugins", app.base)).bearer_auth(&b);
        let shadow = app
            .send(request.header("content-type", "application/wasm").body(guests::SHADOW_PROPOSAL_PAID.to_vec()))
            .await;
        assert_eq!(shadow.status, 409, "the id is C's: {}", shadow.text);
        assert!(shadow.text.contains("another account"), "{}", shadow.text);
        let enabled = enable(&app, &b).await;
        assert_eq!(enabled.status, 404, "{}", enabled.text);

        // C's step is still held, by C's own 0.1.0.
        let contact_changed = app.get(&format!("/v1/contacts/{contact}"), Some(c)).await.json;
        let put = send(&app, c, reqwest::Method::PUT, &format!("/v1/contacts/{contact}"), &contact_changed).await;
        assert_eq!(put.status, 200, "{}", put.text);
        app.world.run_to(60).await;
        let read = app.get(&format!("/v1/enrollments/{enrollment}"), Some(c)).await;
        let action = read.json["actions"][0]["id"].as_str().unwrap().to_owned();
        let held = app.get(&format!("/v1/actions/{action}"), Some(c)).await;
        assert_eq!(held.json["deferral_reason"], "criteria_unmet", "{}", held.text);
        let plugins = app.get("/v1/plugins", Some(c)).await;
        let versions: Vec<&Value> =
            plugins.json["plugins"].as_array().unwrap().iter().filter(|p| p["id"] == "proposal-paid").collect();
        assert_eq!(versions.len(), 1, "{}", plugins.text);
        assert_eq!(versions[0]["version"], "0.1.0");
        assert!(!listed(&app, &b).await.contains(&"proposal-paid".to_owned()));
    })
    .await;
}
