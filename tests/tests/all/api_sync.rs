//! Incremental sync, as an integrator keeping a CRM in step would: lists in
//! creation order with stable cursors, `?updated_since=` and
//! `?created_since=`, timestamps on every record, and the tombstones of
//! deleted records. Two syncs with changes in between get exactly the
//! changes. On both backends.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;

async fn call(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> Answer {
    app.call(method, path, Some(&app.admin_key), body).await
}

/// Every item of a list, following `next_after` with pages of two.
async fn all(app: &TestApp, path: &str, key: &str) -> Vec<Value> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut after = String::new();
    loop {
        let page = call(app, Method::GET, &format!("{path}{separator}limit=2{after}"), None).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text);
        items.extend(page.json[key].as_array().unwrap().iter().cloned());
        match page.json["next_after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return items,
        }
    }
}

fn ids(items: &[Value]) -> BTreeSet<String> {
    items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn two_syncs_with_changes_in_between_get_exactly_the_changes() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let clock = app.world.clock.clone();
        let mut made = Vec::new();
        for name in ["Ada", "Grace", "Edsger"] {
            let contact = call(&app, Method::POST, "/v1/contacts", Some(&json!({"first_name": name}))).await;
            assert_eq!(contact.status, 201, "{}", contact.text);
            assert_eq!(contact.json["contact"]["created_at"], contact.json["contact"]["updated_at"]);
            made.push(contact.json["contact"]["id"].as_str().unwrap().to_owned());
            clock.advance(chrono::Duration::seconds(1));
        }
        let template = call(&app, Method::POST, "/v1/templates", Some(&json!({"name": "Hi", "body": "Hello"}))).await;
        let template = template.json["template"]["id"].as_str().unwrap().to_owned();

        // The first sync: everything, in creation order, across pages.
        let first = all(&app, "/v1/contacts", "contacts").await;
        assert_eq!(first.iter().map(|c| c["id"].as_str().unwrap()).collect::<Vec<_>>(), made, "creation order");
        assert!(first.iter().all(|c| c["created_at"].is_string() && c["updated_at"].is_string()));
        let synced_at = app.world.now();
        clock.advance(chrono::Duration::minutes(1));

        // Changes: one contact edited, one made, one deleted, a template deleted.
        let mut edited = call(&app, Method::GET, &format!("/v1/contacts/{}", made[0]), None).await.json;
        edited["last_name"] = json!("Lovelace");
        let put = call(&app, Method::PUT, &format!("/v1/contacts/{}", made[0]), Some(&edited)).await;
        assert_eq!(put.status, 200, "{}", put.text);
        let new = call(&app, Method::POST, "/v1/contacts", Some(&json!({"first_name": "Barbara"}))).await;
        let new = new.json["contact"]["id"].as_str().unwrap().to_owned();
        assert_eq!(call(&app, Method::DELETE, &format!("/v1/contacts/{}", made[1]), None).await.status, 204);
        assert_eq!(call(&app, Method::DELETE, &format!("/v1/templates/{template}"), None).await.status, 204);

        // The second sync gets exactly those.
        let since = synced_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).replace('+', "%2B");
        let changed = all(&app, &format!("/v1/contacts?updated_since={since}"), "contacts").await;
        assert_eq!(ids(&changed), BTreeSet::from([made[0].clone(), new.clone()]));
        let edited = changed.iter().find(|c| c["id"] == json!(made[0])).unwrap();
        assert_eq!(edited["last_name"], "Lovelace");
        assert_ne!(edited["updated_at"], edited["created_at"]);
        let created = all(&app, &format!("/v1/contacts?created_since={since}"), "contacts").await;
        assert_eq!(ids(&created), BTreeSet::from([new]));
        let deleted = all(&app, &format!("/v1/deletions?since={since}"), "deletions").await;
        let deleted: BTreeSet<(String, String)> = deleted
            .iter()
            .map(|d| (d["collection"].as_str().unwrap().to_owned(), d["id"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            deleted,
            BTreeSet::from([("contacts".to_owned(), made[1].clone()), ("templates".to_owned(), template.clone())])
        );
        let only = all(&app, &format!("/v1/deletions?since={since}&collection=templates"), "deletions").await;
        assert_eq!(ids(&only), BTreeSet::from([template]));
        for list in ["/v1/users", "/v1/companies", "/v1/templates", "/v1/sequences"] {
            let key = list.rsplit('/').next().unwrap();
            assert_eq!(all(&app, &format!("{list}?updated_since={since}"), key).await, Vec::<Value>::new(), "{list}");
        }

        // A cursor from another list shape is refused by name.
        let bad = call(&app, Method::GET, "/v1/contacts?after=con_123", None).await;
        assert_eq!(bad.status, 400, "{}", bad.text);
        let bad = call(&app, Method::GET, "/v1/contacts?updated_since=yesterday", None).await;
        assert_eq!(bad.status, 400, "{}", bad.text);
        assert!(bad.text.contains("updated_since"), "{}", bad.text);
    })
    .await;
}

#[tokio::test]
async fn enrollments_carry_timestamps_and_sync_by_change() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let w = &app.world;
        let step = json!({"position": 0, "name": "call", "plugin": {"id": "task", "version": "*"},
                          "config": {"title": "Call"}, "timing": {"kind": "delay", "ms": 0},
                          "activation": "manual", "owner": {"rule": "contact_owner"}});
        let seq = call(&app, Method::POST, "/v1/sequences", Some(&json!({"name": "S", "steps": [step]}))).await;
        let seq = seq.json["sequence"]["id"].as_str().unwrap().to_owned();
        call(&app, Method::POST, &format!("/v1/sequences/{seq}/state"), Some(&json!({"state": "active"}))).await;
        let contact = w.contact(|_| {}).await;
        let enrolled =
            call(&app, Method::POST, "/v1/enrollments", Some(&json!({"contact_id": contact, "sequence_id": seq})))
                .await;
        let enrollment = enrolled.json["enrollment"]["id"].as_str().unwrap().to_owned();
        // `updated_since` includes its instant: the sync starts a second on.
        w.clock.advance(chrono::Duration::seconds(1));
        let since = w.now();
        w.clock.advance(chrono::Duration::minutes(1));
        let path = |since: chrono::DateTime<chrono::Utc>| {
            let since = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).replace('+', "%2B");
            format!("/v1/sequences/{seq}/enrollments?updated_since={since}")
        };
        assert_eq!(all(&app, &path(since), "enrollments").await, Vec::<Value>::new(), "nothing changed yet");
        let paused = call(&app, Method::POST, &format!("/v1/enrollments/{enrollment}/pause"), None).await;
        assert_eq!(paused.status, 200, "{}", paused.text);
        let changed = all(&app, &path(since), "enrollments").await;
        assert_eq!(ids(&changed), BTreeSet::from([enrollment.clone()]));
        assert_eq!(changed[0]["status"], "paused");
        assert!(changed[0]["created_at"].as_str() < changed[0]["updated_at"].as_str());
        let removed = call(&app, Method::DELETE, &format!("/v1/enrollments/{enrollment}"), None).await;
        assert_eq!(removed.status, 204);
        let deleted = all(&app, "/v1/deletions?collection=enrollments", "deletions").await;
        assert_eq!(ids(&deleted), BTreeSet::from([enrollment]));
    })
    .await;
}
