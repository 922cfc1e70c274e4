//! Tenant isolation and the API's contract under hostile and careless
//! clients: a regression test for each finding, named for what broke, and a
//! cross-account sweep that tries every id-taking path, query and body field
//! of every operation of `/openapi.json` with another account's ids, as
//! every role, and checks that both accounts' data are unchanged. On both
//! backends.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};
use stepwise::crm::{Role, User};
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn call(app: &TestApp, method: Method, path: &str, key: Option<&str>, body: Option<&Value>) -> Answer {
    app.call(method, path, key, body).await
}

async fn post(app: &TestApp, path: &str, key: &str, body: &Value) -> Answer {
    call(app, Method::POST, path, Some(key), Some(body)).await
}

fn is_problem(answer: &Answer) -> bool {
    answer.content_type.starts_with("application/problem+json")
        && answer.json["type"].as_str().is_some_and(|t| t.starts_with("urn:stepwise:problem:"))
        && answer.json["status"] == answer.status
}

/// Another account, with an admin: its id, the admin's id and key.
async fn other_account(app: &TestApp, name: &str) -> (String, String, String) {
    let store = app.world.store();
    let mut tx = store.begin().await.unwrap();
    let account = tx.create_account(name, None, app.world.now()).await.unwrap().id;
    let admin = User {
        name: format!("{name} admin"),
        email: format!("admin@{}.example", name.to_lowercase()),
        role: Role::Admin,
        ..User::default()
    };
    let admin = tx.create_user(&account, &admin, app.world.now()).await.unwrap().id;
    let (_, key) = tx.create_api_key(&account, &admin, "t", app.world.now()).await.unwrap();
    tx.commit().await.unwrap();
    (account, admin, key)
}

/// A key for a new user of the app's account with `role`: the user's id
/// and the key.
async fn member(app: &TestApp, name: &str, role: Role) -> (String, String) {
    let user = User { name: name.into(), email: format!("{name}@example.com"), role, ..User::default() };
    let user = app.world.user(user).await;
    let mut tx = app.world.store().begin().await.unwrap();
    let (_, key) = tx.create_api_key(&app.world.account, &user, "t", app.world.now()).await.unwrap();
    tx.commit().await.unwrap();
    (user, key)
}

/// One record of each kind made over the API with an admin's `key`, an
/// action on `owner`'s Engage view among them: the ids, by collection.
async fn records(app: &TestApp, key: &str, owner: &str, tag: &str) -> BTreeMap<&'static str, String> {
    let id = |answer: &Answer, pointer: &str| answer.string(pointer);
    let mut ids = BTreeMap::new();
    let user = post(app, "/v1/users", key, &json!({"name": tag, "email": format!("{tag}@example.com")})).await;
    ids.insert("users", id(&user, "/id"));
    let company = post(app, "/v1/companies", key, &json!({"name": tag})).await;
    ids.insert("companies", id(&company, "/id"));
    let contact = json!({"first_name": tag, "email": format!("c.{tag}@example.com"), "owner_id": owner,
                         "company_id": ids["companies"]});
    let contact = post(app, "/v1/contacts", key, &contact).await;
    ids.insert("contacts", id(&contact, "/contact/id"));
    let template = post(app, "/v1/templates", key, &json!({"name": tag, "subject": "Hi", "body": "Hello"})).await;
    ids.insert("templates", id(&template, "/template/id"));
    let step = json!({"position": 0, "name": "call", "plugin": {"id": "task", "version": "*"},
                      "config": {"title": "Call"}, "timing": {"kind": "delay", "ms": 0},
                      "activation": "manual", "owner": {"rule": "contact_owner"}});
    let sequence = post(app, "/v1/sequences", key, &json!({"name": tag, "steps": [step]})).await;
    ids.insert("sequences", id(&sequence, "/sequence/id"));
    let active =
        post(app, &format!("/v1/sequences/{}/state", ids["sequences"]), key, &json!({"state": "active"})).await;
    assert_eq!(active.status, 200, "{}", active.text);
    // Nobody listens there: its deliveries fail and wait for a retry.
    let hook = json!({"url": "http://127.0.0.1:9/events", "event_types": ["enrollment.started"]});
    let subscription = post(app, "/v1/webhook-subscriptions", key, &hook).await;
    ids.insert("webhook-subscriptions", id(&subscription, "/subscription/id"));
    let enrolled =
        post(app, "/v1/enrollments", key, &json!({"contact_id": ids["contacts"], "sequence_id": ids["sequences"]}))
            .await;
    ids.insert("enrollments", id(&enrolled, "/enrollment/id"));
    app.world.run().await;
    let log = format!("/v1/webhook-subscriptions/{}/deliveries", ids["webhook-subscriptions"]);
    ids.insert("deliveries", id(&call(app, Method::GET, &log, Some(key), None).await, "/deliveries/0/id"));
    let read = call(app, Method::GET, &format!("/v1/enrollments/{}", ids["enrollments"]), Some(key), None).await;
    ids.insert("actions", id(&read, "/actions/0/id"));
    let types = call(app, Method::GET, "/v1/contact-types", Some(key), None).await;
    ids.insert("contact-types", id(&types, "/contact_types/1/id"));
    let made = post(app, "/v1/keys", key, &json!({"name": tag})).await;
    ids.insert("keys", id(&made, "/key/id"));
    ids.insert("plugins", "task".to_owned());
    ids.insert("accounts", call(app, Method::GET, "/v1/me", Some(key), None).await.string("/account_id"));
    ids
}

/// Everything an account's admin can read of it, by path: what the sweep
/// must leave as it was. Key listings are left out (reading records use).
async fn snapshot(app: &TestApp, key: &str, ids: &BTreeMap<&'static str, String>) -> BTreeMap<String, Value> {
    let mut paths = vec![
        "/v1/users".to_owned(),
        "/v1/contacts".to_owned(),
        "/v1/companies".to_owned(),
        "/v1/templates".to_owned(),
        "/v1/sequences".to_owned(),
        "/v1/contact-types".to_owned(),
        "/v1/plugins".to_owned(),
        "/v1/notifications".to_owned(),
        "/v1/webhook-failures".to_owned(),
        "/v1/outbox".to_owned(),
        "/v1/accounts".to_owned(),
        "/v1/webhook-subscriptions".to_owned(),
    ];
    for (collection, id) in ids {
        match *collection {
            "contacts" => {
                for tail in ["", "/enrollments", "/timeline"] {
                    paths.push(format!("/v1/contacts/{id}{tail}"));
                }
            }
            "companies" => paths.extend([format!("/v1/companies/{id}"), format!("/v1/companies/{id}/timeline")]),
            "sequences" => {
                for tail in ["", "/enrollments", "/report", "/versions/1"] {
                    paths.push(format!("/v1/sequences/{id}{tail}"));
                }
            }
            "enrollments" | "users" | "templates" => paths.push(format!("/v1/{collection}/{id}")),
            "webhook-subscriptions" => paths.extend([
                format!("/v1/webhook-subscriptions/{id}"),
                format!("/v1/webhook-subscriptions/{id}/deliveries"),
                format!("/v1/webhook-subscriptions/{id}/deliveries/{}", ids["deliveries"]),
            ]),
            "actions" => paths.extend([format!("/v1/actions/{id}"), format!("/v1/actions/{id}/explain")]),
            _ => {}
        }
    }
    let mut reads = BTreeMap::new();
    for path in paths {
        let answer = call(app, Method::GET, &path, Some(key), None).await;
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text);
        reads.insert(path, answer.json);
    }
    reads
}

/// One operation of the document, with what names records in it.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    path: String,
    roles: Vec<String>,
    /// Query parameters.
    query: Vec<String>,
    /// Top-level body properties.
    body: Vec<String>,
    /// Statuses the document lists.
    statuses: BTreeSet<u16>,
}

fn operations(document: &Value) -> Vec<Operation> {
    let schemas = &document["components"]["schemas"];
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let roles: Vec<String> =
                op["x-stepwise-roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
            let query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            let mut schema = &op["requestBody"]["content"]["application/json"]["schema"];
            if let Some(name) = schema["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
                schema = &schemas[name];
            }
            let body = schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
            let statuses = op["responses"].as_object().unwrap().keys().map(|s| s.parse().unwrap()).collect();
            operations.push(Operation {
                method: method.to_uppercase().parse().unwrap(),
                path: path.clone(),
                roles,
                query,
                body,
                statuses,
            });
        }
    }
    operations
}

/// The collection whose ids a path segment, query parameter or body field
/// names, if any.
fn collection_of(name: &str) -> Option<&'static str> {
    Some(match name.trim_end_matches("_ids").trim_end_matches("_id") {
        "user" | "owner" => "users",
        "contact" => "contacts",
        "company" | "parent" => "companies",
        "sequence" | "next_sequence" => "sequences",
        "enrollment" => "enrollments",
        "action" => "actions",
        "template" => "templates",
        _ => return None,
    })
}

fn fill(path: &str, ids: &BTreeMap<&'static str, String>) -> String {
    let mut collection = "";
    path.split('/')
        .map(|segment| {
            let filled = match segment {
                "{id}" => ids.get(collection).cloned().unwrap_or_else(|| panic!("an id for {collection}")),
                "{n}" => "1".to_owned(),
                "{delivery_id}" => ids["deliveries"].clone(),
                "{token}" => "not-a-token".to_owned(),
                other => other.to_owned(),
            };
            collection = if segment.starts_with('{') { collection } else { segment };
            filled
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A body the op takes in shape, naming the caller's own records.
fn body_for(op: &Operation, ours: &BTreeMap<&'static str, String>) -> Value {
    let step = json!({"position": 0, "name": "call", "plugin": {"id": "task", "version": "*"},
                      "config": {"title": "Call"}, "timing": {"kind": "delay", "ms": 0},
                      "activation": "manual", "owner": {"rule": "contact_owner"}});
    match (op.method.as_str(), op.path.as_str()) {
        ("POST", "/v1/users") => json!({"name": "New", "email": "new@example.com"}),
        ("PUT", "/v1/users/{id}") => json!({"name": "Renamed", "email": "renamed@example.com"}),
        ("PUT", "/v1/users/{id}/password") => json!({"password": "a long enough password"}),
        ("POST" | "PUT", "/v1/contacts" | "/v1/contacts/{id}") => json!({"first_name": "Renamed"}),
        ("POST" | "PUT", "/v1/companies" | "/v1/companies/{id}") => json!({"name": "Renamed"}),
        ("POST", "/v1/sequences") => json!({"name": "New", "steps": [step]}),
        ("PATCH", "/v1/sequences/{id}") => json!({"name": "Renamed"}),
        ("POST", "/v1/sequences/{id}/versions") => json!({"steps": [step]}),
        ("POST", "/v1/sequences/{id}/state") => json!({"state": "paused"}),
        ("POST", "/v1/enrollments") => json!({"contact_id": ours["contacts"], "sequence_id": ours["sequences"]}),
        ("POST", "/v1/enrollments/bulk") => {
            json!({"sequence_id": ours["sequences"], "contact_ids": [ours["contacts"]]})
        }
        ("POST", "/v1/enrollments/{id}/stop") => json!({"disposition": "keep"}),
        ("POST", "/v1/enrollments/{id}/migrate") => json!({"version": 1}),
        ("PUT", "/v1/enrollments/{id}/event-date") => json!({"event_date": null}),
        ("POST", "/v1/actions/{id}/complete") => json!({"result": "none"}),
        ("POST", "/v1/actions/{id}/reschedule") => json!({"due_at": "2030-01-01T00:00:00Z"}),
        ("POST", "/v1/signals") => json!({"kind": "click", "contact_id": ours["contacts"]}),
        ("POST", "/v1/keys") => json!({"name": "k"}),
        ("POST", "/v1/templates") | ("PUT", "/v1/templates/{id}") => json!({"name": "T", "body": "Hello"}),
        ("PUT", "/v1/contact-types/{id}") => json!({"name": "Allies"}),
        ("PUT", "/v1/plugins/{id}/account") => json!({"enabled": true}),
        ("POST", "/v1/webhook-subscriptions") => {
            json!({"url": "http://127.0.0.1:9/new", "event_types": ["action.completed"]})
        }
        ("PATCH", "/v1/webhook-subscriptions/{id}") => json!({"description": "renamed"}),
        ("PATCH", "/v1/accounts/{id}") => json!({"sender_mode": "own_address"}),
        _ => json!({}),
    }
}

/// Bodies naming one of `theirs` records, each in a field of the body: the
/// top-level `_id` fields of the op's schema, and the nested ones a
/// sequence's steps carry.
fn foreign_bodies(
    op: &Operation,
    ours: &BTreeMap<&'static str, String>,
    theirs: &BTreeMap<&'static str, String>,
) -> Vec<(String, Value)> {
    let base = body_for(op, ours);
    let mut bodies = Vec::new();
    for field in &op.body {
        let Some(collection) = collection_of(field) else { continue };
        let mut body = base.clone();
        body[field] = if field.ends_with("_ids") { json!([theirs[collection]]) } else { json!(theirs[collection]) };
        bodies.push((format!("/{field}"), body));
    }
    if base["steps"].is_array() {
        let mut owned = base.clone();
        owned["steps"][0]["owner"] = json!({"rule": "specific_user", "user_id": theirs["users"]});
        bodies.push(("/steps/0/owner/user_id".into(), owned));
        let mut templated = base.clone();
        templated["steps"][0]["plugin"] = json!({"id": "email", "version": "*"});
        templated["steps"][0]["config"] = json!({"template_id": theirs["templates"]});
        bodies.push(("/steps/0/config/template_id".into(), templated));
    }
    if op.body.iter().any(|f| f == "settings") {
        let mut chained = base.clone();
        chained["settings"] = json!({"next_sequence_id": theirs["sequences"]});
        bodies.push(("/settings/next_sequence_id".into(), chained));
    }
    bodies
}

#[tokio::test]
async fn every_id_in_paths_queries_and_bodies_is_resolved_inside_the_callers_account() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn_with_rate(store, (100_000, 100_000)).await;
        let (_, viewer_key) = member(&app, "vi", Role::Viewer).await;
        let (_, their_admin, their_key) = other_account(&app, "Globex").await;
        let ours = records(&app, &app.admin_key, &app.world.agent, "ours").await;
        let theirs = records(&app, &their_key, &their_admin, "theirs").await;
        let keys = [("admin", app.admin_key.clone()), ("agent", app.agent_key.clone()), ("viewer", viewer_key)];
        let document = app.get("/openapi.json", None).await.json;
        let ops = operations(&document);
        // Any id of theirs in an answer, but the one the request sent.
        let leaked = |answer: &Answer, sent: &str| -> Option<String> {
            theirs
                .iter()
                .filter(|(c, id)| **c != "plugins" && !sent.contains(id.as_str()))
                .map(|(_, id)| id.clone())
                .find(|id| answer.text.contains(id))
        };
        let ours_before = snapshot(&app, &app.admin_key, &ours).await;
        let theirs_before = snapshot(&app, &their_key, &theirs).await;

        let mut tried = 0;
        for op in ops.iter().filter(|op| !op.roles.is_empty()) {
            for (role, key) in keys.iter().filter(|(role, _)| op.roles.iter().any(|r| r == role)) {
                let what = format!("{} {} as {role}", op.method, op.path);
                // Their ids in the path: not found.
                if op.path.contains("{id}") && op.path != "/v1/plugins/{id}/account" {
                    let body = (op.method != Method::GET && op.method != Method::DELETE).then(|| body_for(op, &ours));
                    let answer =
                        call(&app, op.method.clone(), &fill(&op.path, &theirs), Some(key), body.as_ref()).await;
                    // A guarded op may refuse the role before it looks.
                    assert!(
                        matches!(answer.status, 404 | 403),
                        "{what} with their id: {} {}",
                        answer.status,
                        answer.text
                    );
                    assert!(is_problem(&answer) && op.statuses.contains(&answer.status), "{what}: {}", answer.text);
                    tried += 1;
                }
                // Their ids in the query: nothing of theirs, found or listed.
                for parameter in op.query.iter().filter(|q| {
                    collection_of(q).is_some()
                        || q.as_str() == "sequence"
                        || q.as_str() == "contact"
                        || q.as_str() == "user"
                }) {
                    let collection = collection_of(&format!("{parameter}_id")).unwrap();
                    let path = format!("{}?{parameter}={}", fill(&op.path, &ours), theirs[collection]);
                    let answer = call(&app, op.method.clone(), &path, Some(key), None).await;
                    assert!(
                        op.statuses.contains(&answer.status),
                        "{what} ?{parameter}: {} undocumented",
                        answer.status
                    );
                    assert!(matches!(answer.status, 200 | 404 | 403), "{what} ?{parameter}: {}", answer.text);
                    assert_eq!(leaked(&answer, &path), None, "{what} ?{parameter}=theirs leaked: {}", answer.text);
                    tried += 1;
                }
                // Their ids in the body: refused, with nothing of theirs shown.
                if op.method != Method::GET {
                    for (field, body) in foreign_bodies(op, &ours, &theirs) {
                        let answer =
                            call(&app, op.method.clone(), &fill(&op.path, &ours), Some(key), Some(&body)).await;
                        // Bulk operations answer a result per row.
                        let per_row = op.path.ends_with("/bulk") && answer.status == 200;
                        assert!(
                            per_row || matches!(answer.status, 403 | 404 | 422),
                            "{what} with their id at {field}: {} {}",
                            answer.status,
                            answer.text
                        );
                        assert!(per_row || is_problem(&answer), "{what}: {}", answer.text);
                        assert!(op.statuses.contains(&answer.status), "{what}: {} undocumented", answer.status);
                        let sent = body.to_string();
                        assert_eq!(leaked(&answer, &sent), None, "{what} with their {field} leaked: {}", answer.text);
                        tried += 1;
                    }
                }
            }
        }
        assert!(tried > 120, "only {tried} requests tried");
        app.world.run().await;
        assert_eq!(snapshot(&app, &app.admin_key, &ours).await, ours_before, "our data changed");
        assert_eq!(snapshot(&app, &their_key, &theirs).await, theirs_before, "their data changed");
    })
    .await;
}

#[tokio::test]
async fn engage_never_shows_another_accounts_actions_through_user_or_sequence() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let (_, their_admin, their_key) = other_account(&app, "Initech").await;
        let theirs = records(&app, &their_key, &their_admin, "theirs").await;
        let own = app.get("/v1/engage", Some(&their_key)).await;
        assert_eq!(own.json["actions"][0]["id"], json!(theirs["actions"]), "they see their own: {}", own.text);

        let by_user = app.get(&format!("/v1/engage?user={their_admin}"), Some(&app.admin_key)).await;
        assert_eq!(by_user.status, 404, "{}", by_user.text);
        assert!(is_problem(&by_user));
        assert!(!by_user.text.contains(&theirs["actions"]), "{}", by_user.text);
        let by_sequence = app.get(&format!("/v1/engage?sequence={}", theirs["sequences"]), Some(&app.admin_key)).await;
        assert_eq!(by_sequence.status, 200, "{}", by_sequence.text);
        assert_eq!(by_sequence.json["actions"], json!([]));
    })
    .await;
}

#[tokio::test]
async fn an_idempotent_replay_never_answers_a_revoked_key_or_an_inactive_user() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let (agent, agent_key) = member(&app, "kim", Role::Agent).await;
        let keyed = |key: &str, idempotency: &'static str| {
            let request = app.client.post(format!("{}/v1/keys", app.base)).bearer_auth(key);
            request
                .header("content-type", "application/json")
                .header("idempotency-key", idempotency)
                .body(r#"{"name": "ci"}"#)
        };
        let first = app.send(keyed(&agent_key, "r1")).await;
        assert_eq!(first.status, 201, "{}", first.text);
        let secret = first.json["secret"].as_str().unwrap().to_owned();
        let replay = app.send(keyed(&agent_key, "r1")).await;
        assert_eq!((replay.status, replay.headers.get("idempotent-replayed").is_some()), (201, true));

        // The key that made it is revoked: a replay is a 401, without the secret.
        let me = app.get("/v1/me", Some(&agent_key)).await.json["key_id"].as_str().unwrap().to_owned();
        let revoked = call(&app, Method::DELETE, &format!("/v1/keys/{me}"), Some(&app.admin_key), None).await;
        assert_eq!(revoked.status, 204, "{}", revoked.text);
        let replay = app.send(keyed(&agent_key, "r1")).await;
        assert_eq!(replay.status, 401, "{}", replay.text);
        assert!(!replay.text.contains(&secret) && is_problem(&replay), "{}", replay.text);

        // The same for a user made inactive, with a key that still exists.
        let second = app.send(keyed(&secret, "r2")).await;
        assert_eq!(second.status, 201, "{}", second.text);
        let user = app.get(&format!("/v1/users/{agent}"), Some(&app.admin_key)).await.json;
        let mut inactive = user.clone();
        inactive["active"] = json!(false);
        let put = call(&app, Method::PUT, &format!("/v1/users/{agent}"), Some(&app.admin_key), Some(&inactive)).await;
        assert_eq!(put.status, 200, "{}", put.text);
        let replay = app.send(keyed(&secret, "r2")).await;
        assert_eq!(replay.status, 401, "{}", replay.text);
        assert!(!replay.text.contains("\"secret\""), "{}", replay.text);
    })
    .await;
}

/// Sends a request's head declaring a `Content-Length` of 40 MB and a few
/// bytes of body on a raw socket, and reads the status line of the answer
/// that comes without the rest.
async fn status_before_the_body(app: &TestApp, key: &str) -> u16 {
    let addr = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/contacts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nIdempotency-Key: big\r\n\
         Content-Type: application/json\r\nContent-Length: 40000000\r\n\r\n{{\"first_name\": \""
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let line = String::from_utf8_lossy(&answer[..read]).lines().next().unwrap_or_default().to_owned();
    line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a status line: {line}"))
}

#[tokio::test]
async fn unauthenticated_and_unpermitted_requests_write_no_idempotency_row_and_read_no_body() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn_with_rate(store, (10_000, 10_000)).await;
        let (_, viewer_key) = member(&app, "vi", Role::Viewer).await;
        let kept = app.world.store().idempotency_keys_kept().await.unwrap();
        for i in 0..50 {
            let request = app.client.post(format!("{}/v1/contacts", app.base)).bearer_auth(format!("sw_made_up_{i}"));
            let answer = app
                .send(
                    request
                        .header("content-type", "application/json")
                        .header("idempotency-key", format!("k{i}"))
                        .body("{}"),
                )
                .await;
            assert_eq!(answer.status, 401, "{}", answer.text);
        }
        let request = app.client.post(format!("{}/v1/contacts", app.base)).bearer_auth(&viewer_key);
        let answer = app
            .send(request.header("content-type", "application/json").header("idempotency-key", "v").body("{}"))
            .await;
        assert_eq!(answer.status, 403, "{}", answer.text);
        assert_eq!(app.world.store().idempotency_keys_kept().await.unwrap(), kept, "no row was written");

        assert_eq!(status_before_the_body(&app, "sw_made_up").await, 401);
        assert_eq!(status_before_the_body(&app, &viewer_key).await, 403);
    })
    .await;
}

#[tokio::test]
async fn a_delay_too_long_to_schedule_is_refused_when_the_sequence_is_saved() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        for ms in [i64::MAX, 10 * 366 * 24 * 3_600_000 + 1] {
            let step = json!({"position": 0, "name": "later", "plugin": {"id": "task", "version": "*"},
                              "config": {"title": "Later"}, "timing": {"kind": "delay", "ms": ms},
                              "activation": "manual", "owner": {"rule": "contact_owner"}});
            let request = app.client.post(format!("{}/v1/sequences", app.base)).bearer_auth(&app.admin_key);
            let answer = app
                .send(
                    request
                        .header("content-type", "application/json")
                        .header("idempotency-key", format!("huge-{ms}"))
                        .body(json!({"name": "Far", "steps": [step]}).to_string()),
                )
                .await;
            assert_eq!(answer.status, 422, "{}", answer.text);
            assert_eq!(answer.json["errors"][0]["field"], "/steps/0/timing/ms", "{}", answer.text);
        }
        // Ten years is the most a step may wait, and it enrolls.
        let step = json!({"position": 0, "name": "later", "plugin": {"id": "task", "version": "*"},
                          "config": {"title": "Later"}, "timing": {"kind": "delay", "ms": 10_i64 * 366 * 24 * 3_600_000},
                          "activation": "manual", "owner": {"rule": "contact_owner"}});
        let made = post(&app, "/v1/sequences", &app.admin_key, &json!({"name": "Far", "steps": [step]})).await;
        assert_eq!(made.status, 201, "{}", made.text);
        let seq = made.json["sequence"]["id"].as_str().unwrap().to_owned();
        post(&app, &format!("/v1/sequences/{seq}/state"), &app.admin_key, &json!({"state": "active"})).await;
        let contact = app.world.contact(|_| {}).await;
        let enrolled = post(&app, "/v1/enrollments", &app.admin_key, &json!({"contact_id": contact, "sequence_id": seq})).await;
        assert_eq!(enrolled.status, 201, "{}", enrolled.text);
    })
    .await;
}

#[tokio::test]
async fn renaming_the_default_contact_type_keeps_contact_creation_working() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let types = app.get("/v1/contact-types", Some(&app.admin_key)).await.json;
        let other = types["contact_types"].as_array().unwrap().iter().find(|t| t["name"] == "Other").unwrap().clone();
        assert_eq!(other["default"], true, "{types}");
        let renamed = call(
            &app,
            Method::PUT,
            &format!("/v1/contact-types/{}", other["id"].as_str().unwrap()),
            Some(&app.admin_key),
            Some(&json!({"name": "Misc"})),
        )
        .await;
        assert_eq!(renamed.status, 200, "{}", renamed.text);
        let made = post(&app, "/v1/contacts", &app.admin_key, &json!({"first_name": "New lead"})).await;
        assert_eq!(made.status, 201, "{}", made.text);
        assert_eq!(made.json["contact"]["contact_type"], "Misc", "{}", made.text);
        let read = app
            .get(&format!("/v1/contacts/{}", made.json["contact"]["id"].as_str().unwrap()), Some(&app.admin_key))
            .await;
        assert_eq!(read.json["contact_type"], "Misc");
        let imported =
            post(&app, "/v1/contacts/import", &app.admin_key, &json!({"contacts": [{"first_name": "Row"}]})).await;
        assert_eq!(imported.json["created"], 1, "{}", imported.text);
    })
    .await;
}

#[tokio::test]
async fn a_json_array_is_never_taken_for_an_object_body() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let ours = records(&app, &app.admin_key, &app.world.agent, "ours").await;
        let enrollment = format!("/v1/enrollments/{}", ours["enrollments"]);
        let before = app.get(&enrollment, Some(&app.admin_key)).await.json;
        let stop = post(&app, &format!("{enrollment}/stop"), &app.admin_key, &json!([])).await;
        assert_eq!(stop.status, 422, "{}", stop.text);
        assert!(is_problem(&stop));
        assert!(stop.text.contains("expected object, not an array"), "{}", stop.text);
        assert_eq!(app.get(&enrollment, Some(&app.admin_key)).await.json, before, "nothing changed");
        // Nested too: a step given as an array.
        let nested = post(&app, "/v1/sequences", &app.admin_key, &json!({"name": "S", "steps": [[]]})).await;
        assert_eq!(nested.status, 422, "{}", nested.text);
        assert_eq!(nested.json["errors"][0]["field"], "/steps/0", "{}", nested.text);
    })
    .await;
}

#[tokio::test]
async fn answers_outside_the_contract_are_problems_the_document_lists() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let document = app.get("/openapi.json", None).await.json;
        let statuses = |method: &str, path: &str| -> BTreeSet<u16> {
            document["paths"][path][method]["responses"].as_object().unwrap().keys().map(|s| s.parse().unwrap()).collect()
        };

        let limit = app.get("/v1/contacts?limit=abc", Some(&app.admin_key)).await;
        assert_eq!(limit.status, 400, "{}", limit.text);
        assert!(is_problem(&limit) && limit.text.contains("limit"), "{}", limit.text);
        let version = app.get("/v1/sequences/x/versions/abc", Some(&app.admin_key)).await;
        assert_eq!(version.status, 400, "{}", version.text);
        assert!(is_problem(&version), "{}", version.text);
        assert!(statuses("get", "/v1/sequences/{id}/versions/{n}").contains(&400));

        let delete = call(&app, Method::DELETE, "/v1/contacts", Some(&app.admin_key), None).await;
        assert_eq!(delete.status, 405);
        assert!(is_problem(&delete), "{}", delete.text);
        let allow = delete.headers.get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

        let unknown =
            post(&app, "/v1/enrollments", &app.admin_key, &json!({"contact_id": "con_nobody", "sequence_id": "seq_none"})).await;
        assert_eq!(unknown.status, 404, "{}", unknown.text);
        assert!(statuses("post", "/v1/enrollments").contains(&404));

        // `GET /v1/sequences` answers what the document says.
        let ours = records(&app, &app.admin_key, &app.world.agent, "ours").await;
        let listed = app.get("/v1/sequences", Some(&app.admin_key)).await;
        let item = &listed.json["sequences"][0];
        assert_eq!(item["sequence"]["id"], json!(ours["sequences"]));
        assert_eq!(item["locked"], false);
        let items = &document["paths"]["/v1/sequences"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["properties"]["sequences"]["items"]["$ref"];
        let name = items.as_str().unwrap().rsplit('/').next().unwrap();
        let properties = &document["components"]["schemas"][name]["properties"];
        assert!(properties["sequence"].is_object() && properties["locked"].is_object(), "{properties}");

        // The probes answer the media type documented.
        let health = app.get("/healthz", None).await;
        assert!(health.content_type.starts_with("text/plain"), "{}", health.content_type);
        let documented = &document["paths"]["/healthz"]["get"]["responses"]["200"]["content"];
        assert!(documented.get("text/plain").is_some(), "{documented}");
    })
    .await;
}
