//! The audit trail, as an admin answering "who changed this?" reads it:
//! every edit of a contact, company, user, key, template, plugin setting,
//! sequence or contact type made through the API leaves an entry naming
//! the user, the key and the request, with the record before and after;
//! entries outlive their records, only admins read them, and each account
//! reads only its own. On both backends.

use reqwest::Method;
use serde_json::{Value, json};
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;

/// `method path` as the admin, the clock a second on afterwards, so that
/// entries are in the order of their requests.
async fn edit(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Answer {
    let answer = app.call(method.clone(), path, Some(&app.admin_key), body.as_ref()).await;
    assert!(answer.status < 300, "{method} {path}: {} {}", answer.status, answer.text);
    app.world.clock.advance(chrono::Duration::seconds(1));
    answer
}

fn id(answer: &Answer, pointer: &str) -> String {
    answer.string(pointer)
}

fn request_id(answer: &Answer) -> String {
    answer.headers["request-id"].to_str().unwrap().to_owned()
}

/// Every entry `query` lists for `key`, following `next_after` with pages
/// of three.
async fn trail(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut after = String::new();
    loop {
        let page = app.get(&format!("/v1/audit?limit=3{query}{after}"), Some(key)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        entries.extend(page.json["entries"].as_array().unwrap().iter().cloned());
        match page.json["next_after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return entries,
        }
    }
}

#[tokio::test]
async fn every_api_edit_is_audited_with_its_editor_key_request_and_the_record_before_and_after() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let me = app.get("/v1/me", Some(&app.admin_key)).await;
        let (admin, key_id) = (id(&me, "/user/id"), id(&me, "/key_id"));
        // (action, target, request id) of each edit, in order.
        let mut expected: Vec<(String, String, String)> = Vec::new();
        let mut note = |action: &str, target: &str, answer: &Answer| {
            expected.push((action.to_owned(), target.to_owned(), request_id(answer)));
        };

        let made =
            edit(&app, Method::POST, "/v1/contacts", Some(json!({"first_name": "Ada", "last_name": "Byron"}))).await;
        let contact = id(&made, "/contact/id");
        note("contact.created", &contact, &made);
        let body = json!({"first_name": "Ada", "last_name": "Lovelace"});
        let renamed = edit(&app, Method::PUT, &format!("/v1/contacts/{contact}"), Some(body)).await;
        note("contact.updated", &contact, &renamed);

        let made = edit(&app, Method::POST, "/v1/companies", Some(json!({"name": "Analytical"}))).await;
        let company = id(&made, "/id");
        note("company.created", &company, &made);
        let changed =
            edit(&app, Method::PUT, &format!("/v1/companies/{company}"), Some(json!({"name": "Engines"}))).await;
        note("company.updated", &company, &changed);

        let made = edit(&app, Method::POST, "/v1/users", Some(json!({"name": "Bo", "email": "bo@example.com"}))).await;
        let user = id(&made, "/id");
        note("user.created", &user, &made);
        let body = json!({"name": "Bo", "email": "bo@example.com", "role": "viewer"});
        let demoted = edit(&app, Method::PUT, &format!("/v1/users/{user}"), Some(body)).await;
        note("user.updated", &user, &demoted);

        let made = edit(&app, Method::POST, "/v1/keys", Some(json!({"name": "zapier"}))).await;
        let (key, secret) = (id(&made, "/key/id"), id(&made, "/secret"));
        note("api_key.created", &key, &made);
        let revoked = edit(&app, Method::DELETE, &format!("/v1/keys/{key}"), None).await;
        note("api_key.revoked", &key, &revoked);

        let body = json!({"name": "Hello", "subject": "Hi", "body": "Hello {{contact.first_name}}"});
        let made = edit(&app, Method::POST, "/v1/templates", Some(body)).await;
        let template = id(&made, "/template/id");
        note("template.created", &template, &made);
        let body = json!({"name": "Hello", "subject": "Hi", "body": "Hi there"});
        let replaced = edit(&app, Method::PUT, &format!("/v1/templates/{template}"), Some(body)).await;
        note("template.updated", &template, &replaced);
        let deleted = edit(&app, Method::DELETE, &format!("/v1/templates/{template}"), None).await;
        note("template.deleted", &template, &deleted);

        let grant = json!({"enabled": true, "grant": {"capabilities": [], "http_allow": []}});
        let granted = edit(&app, Method::PUT, "/v1/plugins/task/account", Some(grant)).await;
        note("plugin.account_changed", "task", &granted);

        let step = json!({"position": 0, "name": "call", "plugin": {"id": "task", "version": "*"},
                          "config": {"title": "Call"}, "timing": {"kind": "delay", "ms": 0},
                          "activation": "manual", "owner": {"rule": "contact_owner"}});
        let made = edit(&app, Method::POST, "/v1/sequences", Some(json!({"name": "Onboarding"}))).await;
        let sequence = id(&made, "/sequence/id");
        note("sequence.created", &sequence, &made);
        let path = format!("/v1/sequences/{sequence}");
        let renamed = edit(&app, Method::PATCH, &path, Some(json!({"name": "Welcome"}))).await;
        note("sequence.edited", &sequence, &renamed);
        let published = edit(&app, Method::POST, &format!("{path}/versions"), Some(json!({"steps": [step]}))).await;
        note("sequence.published", &sequence, &published);
        let activated = edit(&app, Method::POST, &format!("{path}/state"), Some(json!({"state": "active"}))).await;
        note("sequence.state_changed", &sequence, &activated);

        let types = app.get("/v1/contact-types", Some(&app.admin_key)).await;
        let partners = types.json["contact_types"].as_array().unwrap().iter().find(|t| t["name"] == "Partners");
        let partners = partners.unwrap()["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/contact-types/{partners}");
        let renamed = edit(&app, Method::PUT, &path, Some(json!({"name": "Allies"}))).await;
        note("contact_type.renamed", &partners, &renamed);

        let body = json!({"name": "Subsidiary", "admin_name": "Sub Admin", "admin_email": "sub@example.com"});
        let made = edit(&app, Method::POST, "/v1/accounts", Some(body)).await;
        let (sub, sub_secret) = (id(&made, "/account/id"), id(&made, "/secret"));
        note("account.created", &sub, &made);

        let gone = edit(&app, Method::DELETE, &format!("/v1/contacts/{contact}"), None).await;
        note("contact.deleted", &contact, &gone);

        // The whole trail, in order, each entry naming its editor.
        let entries = trail(&app, &app.admin_key, "").await;
        let text = |e: &Value, field: &str| e[field].as_str().unwrap_or_else(|| panic!("{field}: {e}")).to_owned();
        let listed: Vec<(String, String, String)> = entries
            .iter()
            .map(|e| {
                assert_eq!(e["actor"], admin.as_str(), "{e}");
                assert_eq!(e["key_id"], key_id.as_str(), "{e}");
                (text(e, "action"), text(e, "target_id"), text(e, "request_id"))
            })
            .collect();
        assert_eq!(listed, expected);

        // Before and after, as the records were.
        let updated = entries.iter().find(|e| e["action"] == "contact.updated").unwrap();
        assert_eq!(
            (updated["before"]["last_name"].as_str(), updated["after"]["last_name"].as_str()),
            (Some("Byron"), Some("Lovelace"))
        );
        assert_eq!(updated["target_type"], "contact");
        let demoted = entries.iter().find(|e| e["action"] == "user.updated").unwrap();
        assert_eq!(
            (demoted["before"]["role"].as_str(), demoted["after"]["role"].as_str()),
            (Some("agent"), Some("viewer"))
        );
        let created = entries.iter().find(|e| e["action"] == "template.created").unwrap();
        assert!(created["before"].is_null() && created["after"]["body"] == "Hello {{contact.first_name}}");
        let deleted = entries.iter().find(|e| e["action"] == "template.deleted").unwrap();
        assert!(deleted["after"].is_null() && deleted["before"]["body"] == "Hi there");
        let state = entries.iter().find(|e| e["action"] == "sequence.state_changed").unwrap();
        assert_eq!(
            (state["before"]["state"].as_str(), state["after"]["state"].as_str()),
            (Some("draft"), Some("active"))
        );

        // No secret is ever kept: not the new key's, not the sub-account's.
        let text = serde_json::to_string(&entries).unwrap();
        assert!(!text.contains(&secret) && !text.contains(&sub_secret), "a secret in the trail");

        // A deleted contact's trail outlives it, and one record's trail
        // is asked for by its type and id.
        let theirs = trail(&app, &app.admin_key, &format!("&target_type=contact&target_id={contact}")).await;
        let actions: Vec<&str> = theirs.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["contact.created", "contact.updated", "contact.deleted"]);

        // A contact's own timeline shows the API's edit as it shows the
        // engine's: checked on a contact that still exists.
        let made = edit(&app, Method::POST, "/v1/contacts", Some(json!({"first_name": "Cy"}))).await;
        let cy = id(&made, "/contact/id");
        edit(&app, Method::PUT, &format!("/v1/contacts/{cy}"), Some(json!({"first_name": "Cyd"}))).await;
        let timeline = app.get(&format!("/v1/contacts/{cy}/timeline"), Some(&app.admin_key)).await;
        let event = timeline.json["events"].as_array().unwrap().iter().find(|e| e["kind"] == "contact.updated");
        let event = event.unwrap_or_else(|| panic!("no contact.updated event: {}", timeline.text));
        assert_eq!(
            (event["before"]["first_name"].as_str(), event["after"]["first_name"].as_str()),
            (Some("Cy"), Some("Cyd"))
        );
        assert_eq!(event["actor"], admin.as_str());

        // Only admins read the trail, and each account reads its own.
        let agent = app.get("/v1/audit", Some(&app.agent_key)).await;
        assert_eq!(agent.status, 403, "{}", agent.text);
        let sub_trail = trail(&app, &sub_secret, "").await;
        assert!(sub_trail.is_empty(), "the sub-account reads its parent's trail: {sub_trail:?}");

        // A filter that names nothing known is a 400 naming the parameter.
        let bad = app.get("/v1/audit?target_type=planet", Some(&app.admin_key)).await;
        assert_eq!(bad.status, 400, "{}", bad.text);
        assert!(bad.text.contains("target_type"), "{}", bad.text);
    })
    .await;
}

#[tokio::test]
async fn a_refused_edit_leaves_no_entry() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let made = edit(&app, Method::POST, "/v1/companies", Some(json!({"name": "Acme"}))).await;
        let company = id(&made, "/id");
        // A company that would be its own parent is refused whole.
        let body = json!({"name": "Acme", "parent_id": company});
        let refused =
            app.call(Method::PUT, &format!("/v1/companies/{company}"), Some(&app.admin_key), Some(&body)).await;
        assert_eq!(refused.status, 422, "{}", refused.text);
        // An agent may not rename a contact type.
        let types = app.get("/v1/contact-types", Some(&app.admin_key)).await;
        let first = types.json["contact_types"][0]["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/contact-types/{first}");
        let denied = app.call(Method::PUT, &path, Some(&app.agent_key), Some(&json!({"name": "Allies"}))).await;
        assert_eq!(denied.status, 403, "{}", denied.text);
        let actions: Vec<String> =
            trail(&app, &app.admin_key, "").await.iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
        assert_eq!(actions, ["company.created"]);
    })
    .await;
}
