//! The API's contract, route by route, driven by its own OpenAPI document:
//! every route is documented (in `/openapi.json` and in the README), answers
//! its own account's records, refuses callers without a key or without the
//! role it declares, hides another account's records behind a 404, and turns
//! malformed, oversized and wrong-type bodies into problems that change
//! nothing. On both backends.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};
use stepwise::crm::{Role, User};
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;
use stepwise_tests::guests;

/// One operation of the document.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    path: String,
    /// Roles allowed; empty for routes without a key.
    roles: Vec<String>,
    /// The body limit of a JSON body; `None` without a JSON body.
    json_limit: Option<usize>,
    /// The body limit of a component upload.
    wasm_limit: Option<usize>,
}

impl Operation {
    fn open(&self) -> bool {
        self.roles.is_empty()
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let roles: Vec<String> = op["x-stepwise-roles"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} names its roles"))
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect();
            let body = &op["requestBody"];
            let limit = body["x-stepwise-max-body-bytes"].as_u64().map(|n| n as usize);
            let json_body = body["content"].get("application/json").is_some();
            operations.push(Operation {
                method: method.to_uppercase().parse().unwrap(),
                path: path.clone(),
                roles,
                json_limit: limit.filter(|_| json_body),
                wasm_limit: limit.filter(|_| !json_body),
            });
        }
    }
    operations
}

/// `(method, path)` of every route the README's route table names, with
/// its shorthands expanded: `GET/POST /a`, `…/b` (under the previous path's
/// last `{param}`), `/a/{id}/b\|c` and `?query`.
fn readme_routes() -> BTreeSet<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme.split("\n## ").find(|s| s.starts_with("The HTTP API")).expect("the README's API section");
    let mut routes = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        // The first cell ends at the first `|` not escaped as `\|`.
        let cell_end = line[1..]
            .char_indices()
            .find(|&(i, c)| c == '|' && line.as_bytes()[1..].get(i.wrapping_sub(1)).is_none_or(|b| *b != b'\\'))
            .map_or(line.len(), |(i, _)| i + 1);
        let cell = &line[1..cell_end];
        let (mut previous, mut methods) = (String::new(), "");
        for span in cell.split('`').skip(1).step_by(2) {
            // A span without a method has the previous span's.
            let path = match span.split_once(' ') {
                Some((named, path)) => {
                    methods = named;
                    path
                }
                None => span,
            };
            let path = path.split('?').next().unwrap();
            let path = match path.strip_prefix('…') {
                Some(rest) => {
                    let base = previous.rfind('}').map_or(previous.as_str(), |i| &previous[..=i]);
                    format!("{base}{rest}")
                }
                None => path.to_owned(),
            };
            let (parent, last) = path.rsplit_once('/').unwrap();
            for alternative in last.split("\\|") {
                for method in methods.split('/') {
                    routes.insert((method.to_owned(), format!("{parent}/{alternative}")));
                }
            }
            previous = path;
        }
    }
    routes
}

fn fill(path: &str, ids: &BTreeMap<&'static str, String>) -> String {
    path.split('/')
        .scan("", |collection, segment| {
            let filled = match segment {
                "{id}" => ids.get(collection).cloned().unwrap_or_else(|| panic!("an id for {collection}")),
                "{n}" => "1".to_owned(),
                "{token}" => "not-a-token".to_owned(),
                "{delivery_id}" => ids["deliveries"].clone(),
                other => other.to_owned(),
            };
            *collection = segment;
            Some(filled)
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn call(app: &TestApp, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Answer {
    app.call(method, path, key, body.as_ref()).await
}

async fn post(app: &TestApp, path: &str, key: &str, body: Value) -> Value {
    let answer = call(app, Method::POST, path, Some(key), Some(body)).await;
    assert!(answer.status < 300, "POST {path}: {} {}", answer.status, answer.text);
    answer.json
}

/// One record of each kind, made over the API with an admin's `key`: the
/// ids that fill `{id}` in each collection.
async fn records(app: &TestApp, key: &str, tag: &str) -> BTreeMap<&'static str, String> {
    let mut ids = BTreeMap::new();
    let user = post(app, "/v1/users", key, json!({"name": tag, "email": format!("{tag}@example.com")})).await;
    let user = user["id"].as_str().unwrap().to_owned();
    let contact = post(
        app,
        "/v1/contacts",
        key,
        json!({"first_name": tag, "email": format!("c.{tag}@example.com"), "owner_id": user}),
    )
    .await;
    let contact = contact["contact"]["id"].as_str().unwrap().to_owned();
    let company = post(app, "/v1/companies", key, json!({"name": tag})).await["id"].as_str().unwrap().to_owned();
    let step = json!({"position": 0, "name": "call", "plugin": {"id": "task", "version": "*"},
                      "config": {"title": "Call"}, "timing": {"kind": "delay", "ms": 0},
                      "activation": "manual", "owner": {"rule": "contact_owner"}});
    let sequence = post(app, "/v1/sequences", key, json!({"name": tag, "steps": [step]})).await;
    let sequence = sequence["sequence"]["id"].as_str().unwrap().to_owned();
    post(app, &format!("/v1/sequences/{sequence}/state"), key, json!({"state": "active"})).await;
    // Nobody listens there: its delivery fails and waits for a retry.
    let hook = json!({"url": "http://127.0.0.1:9/events", "event_types": ["enrollment.started"]});
    let subscription = post(app, "/v1/webhook-subscriptions", key, hook).await;
    let subscription = subscription["subscription"]["id"].as_str().unwrap().to_owned();
    let enrolled = post(app, "/v1/enrollments", key, json!({"contact_id": contact, "sequence_id": sequence})).await;
    let enrollment = enrolled["enrollment"]["id"].as_str().unwrap().to_owned();
    app.world.run().await;
    let log = format!("/v1/webhook-subscriptions/{subscription}/deliveries");
    let log = call(app, Method::GET, &log, Some(key), None).await;
    let delivery = log.json["deliveries"][0]["id"].as_str().unwrap_or_else(|| panic!("a delivery: {}", log.text));
    ids.insert("deliveries", delivery.to_owned());
    ids.insert("webhook-subscriptions", subscription);
    let read = call(app, Method::GET, &format!("/v1/enrollments/{enrollment}"), Some(key), None).await;
    let action = read.json["actions"][0]["id"].as_str().unwrap_or_else(|| panic!("an action: {}", read.text));
    let template = post(app, "/v1/templates", key, json!({"name": tag, "subject": "Hi", "body": "Hello"})).await;
    ids.insert("templates", template["template"]["id"].as_str().unwrap().to_owned());
    let types = call(app, Method::GET, "/v1/contact-types", Some(key), None).await;
    let partners = types.json["contact_types"].as_array().and_then(|t| t.iter().find(|t| t["name"] == "Partners"));
    let partners = partners.unwrap_or_else(|| panic!("the default contact types: {}", types.text));
    ids.insert("contact-types", partners["id"].as_str().unwrap().to_owned());
    let made = post(app, "/v1/keys", key, json!({"name": tag})).await;
    ids.insert("keys", made["key"]["id"].as_str().unwrap().to_owned());
    ids.insert("actions", action.to_owned());
    ids.insert("users", user);
    ids.insert("contacts", contact);
    ids.insert("companies", company);
    ids.insert("sequences", sequence);
    ids.insert("enrollments", enrollment);
    ids.insert("plugins", "task".to_owned());
    ids.insert("accounts", call(app, Method::GET, "/v1/me", Some(key), None).await.string("/account_id"));
    ids
}

/// A body the op accepts in shape, so that what answers is the record's
/// account, not the body's.
fn valid_body(op: &Operation) -> Option<Value> {
    op.json_limit?;
    let step = json!({"position": 0, "name": "call", "plugin": {"id": "task", "version": "*"},
                      "config": {"title": "Call"}, "timing": {"kind": "delay", "ms": 0},
                      "activation": "manual", "owner": {"rule": "contact_owner"}});
    Some(match (op.method.as_str(), op.path.as_str()) {
        ("PUT", "/v1/users/{id}") => json!({"name": "Renamed", "email": "renamed@example.com"}),
        ("PUT", "/v1/users/{id}/password") => json!({"password": "a long enough password"}),
        ("PUT", "/v1/contacts/{id}") => json!({"first_name": "Renamed"}),
        ("PUT", "/v1/companies/{id}") => json!({"name": "Renamed"}),
        ("PATCH", "/v1/sequences/{id}") => json!({"name": "Renamed"}),
        ("POST", "/v1/sequences/{id}/versions") => json!({"steps": [step]}),
        ("POST", "/v1/sequences/{id}/state") => json!({"state": "paused"}),
        ("POST", "/v1/enrollments/{id}/stop") => json!({"disposition": "keep"}),
        ("POST", "/v1/enrollments/{id}/migrate") => json!({"version": 1}),
        ("PUT", "/v1/enrollments/{id}/event-date") => json!({"event_date": null}),
        ("POST", "/v1/actions/{id}/complete") => json!({"result": "none"}),
        ("POST", "/v1/actions/{id}/reschedule") => json!({"due_at": "2030-01-01T00:00:00Z"}),
        ("PUT", "/v1/plugins/{id}/account") => json!({"enabled": true}),
        ("PUT", "/v1/contact-types/{id}") => json!({"name": "Allies"}),
        ("PUT", "/v1/templates/{id}") => json!({"name": "Renamed", "body": "Hello"}),
        ("POST", "/v1/webhook-subscriptions") => {
            json!({"url": "http://127.0.0.1:9/new", "event_types": ["action.completed"]})
        }
        _ => json!({}),
    })
}

fn is_problem(answer: &Answer) -> bool {
    answer.content_type.starts_with("application/problem+json")
        && answer.json["type"].as_str().is_some_and(|t| t.starts_with("urn:stepwise:problem:"))
        && answer.json["status"] == answer.status
}

/// Every `/v1` read of `ids`, by path: what a sweep of bad requests must
/// leave as it was. Keys are left out: reading them records their use.
async fn reads(app: &TestApp, ops: &[Operation], ids: &BTreeMap<&'static str, String>) -> BTreeMap<String, Value> {
    let mut reads = BTreeMap::new();
    for op in ops.iter().filter(|op| op.method == Method::GET && !op.open() && op.path != "/v1/keys") {
        let path = fill(&op.path, ids);
        let answer = call(app, Method::GET, &path, Some(&app.admin_key), None).await;
        reads.insert(path, answer.json);
    }
    reads
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_the_readme() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let answer = app.get("/openapi.json", None).await;
        assert_eq!(answer.status, 200, "the document needs no key: {}", answer.text);
        assert_eq!(answer.content_type, "application/json");
        let document = answer.json;
        assert_eq!(document["openapi"], "3.1.0");
        assert!(document["components"]["schemas"]["Contact"]["properties"]["email"].is_object(), "schemas from code");
        assert!(document["components"]["schemas"]["Problem"].is_object());

        let documented: BTreeSet<(String, String)> =
            operations(&document).iter().map(|op| (op.method.to_string(), op.path.clone())).collect();
        let readme = readme_routes();
        let missing: Vec<_> = readme.difference(&documented).collect();
        assert!(missing.is_empty(), "README routes missing from /openapi.json: {missing:?}");
        let undocumented: Vec<_> = documented.difference(&readme).collect();
        assert!(undocumented.is_empty(), "routes missing from the README's table: {undocumented:?}");

        // Every documented op is served: none falls through to the router's
        // "no route" answer or is the wrong method.
        for op in operations(&document) {
            let path = op.path.replace("{n}", "1").replace(['{', '}'], "x");
            let answer = call(&app, op.method.clone(), &path, Some(&app.admin_key), None).await;
            assert_ne!(answer.status, 405, "{}", op.name());
            assert!(!answer.text.contains("no route"), "{} is not served: {}", op.name(), answer.text);
        }
        let unknown = call(&app, Method::GET, "/v1/nothing-here", Some(&app.admin_key), None).await;
        assert!(unknown.text.contains("no route"), "the probe above can tell: {}", unknown.text);
    })
    .await;
}

#[tokio::test]
async fn every_route_checks_keys_roles_accounts_and_bodies() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn_with_rate(store.clone(), (10_000, 10_000)).await;
        let document = app.get("/openapi.json", None).await.json;
        let ops = operations(&document);
        assert!(ops.len() >= 60, "{} ops", ops.len());

        let viewer = User { name: "Vi".into(), email: "vi@example.com".into(), role: Role::Viewer, ..User::default() };
        let viewer = app.world.user(viewer).await;
        // Another account, with its own admin and records.
        let mut tx = store.begin().await.unwrap();
        let (_, viewer_key) = tx.create_api_key(&app.world.account, &viewer, "t", app.world.now()).await.unwrap();
        let globex = tx.create_account("Globex", None, app.world.now()).await.unwrap().id;
        let hank =
            User { name: "Hank".into(), email: "hank@globex.example".into(), role: Role::Admin, ..User::default() };
        let hank = tx.create_user(&globex, &hank, app.world.now()).await.unwrap().id;
        let (_, globex_key) = tx.create_api_key(&globex, &hank, "t", app.world.now()).await.unwrap();
        tx.commit().await.unwrap();
        let ours = records(&app, &app.admin_key, "ours").await;
        let mut theirs = records(&app, &globex_key, "theirs").await;
        let uploaded = app
            .send(
                app.client
                    .post(format!("{}/v1/plugins", app.base))
                    .bearer_auth(&globex_key)
                    .header("content-type", "application/wasm")
                    .body(guests::HOST_CALLER.to_vec()),
            )
            .await;
        assert_eq!(uploaded.status, 201, "{}", uploaded.text);
        // An add-on of theirs (not one the test host offers every account).
        theirs.insert("plugins", "host-caller".to_owned());

        // Success: every read of the account's own records.
        for op in ops.iter().filter(|op| op.method == Method::GET && !op.path.contains("{token}")) {
            let path = fill(&op.path, &ours);
            let answer = call(&app, Method::GET, &path, Some(&app.admin_key), None).await;
            assert_eq!(answer.status, 200, "GET {path}: {}", answer.text);
        }

        let before = reads(&app, &ops, &ours).await;
        let mut checked = 0;
        for op in &ops {
            let ours_path = fill(&op.path, &ours);
            let body = valid_body(op);
            if !op.open() {
                // No key.
                let answer = call(&app, op.method.clone(), &ours_path, None, body.clone()).await;
                assert_eq!(answer.status, 401, "{} without a key: {}", op.name(), answer.text);
                assert!(is_problem(&answer), "{}: {}", op.name(), answer.text);
                // Each role the op does not declare.
                for (role, key) in [("viewer", &viewer_key), ("agent", &app.agent_key)] {
                    if op.roles.iter().any(|r| r == role) {
                        continue;
                    }
                    let answer = call(&app, op.method.clone(), &ours_path, Some(key), body.clone()).await;
                    assert_eq!(answer.status, 403, "{} as {role}: {}", op.name(), answer.text);
                    assert!(is_problem(&answer), "{}: {}", op.name(), answer.text);
                }
                // Another account's record.
                if op.path.contains("{id}") {
                    let path = fill(&op.path, &theirs);
                    let answer = call(&app, op.method.clone(), &path, Some(&app.admin_key), body.clone()).await;
                    assert_eq!(answer.status, 404, "{} of another account: {}", op.name(), answer.text);
                    assert!(is_problem(&answer), "{}: {}", op.name(), answer.text);
                }
            }
            if let Some(limit) = op.json_limit {
                let send = |content_type: &'static str, body: Vec<u8>| {
                    let request = app.client.request(op.method.clone(), format!("{}{ours_path}", app.base));
                    app.send(request.bearer_auth(&app.admin_key).header("content-type", content_type).body(body))
                };
                let broken = send("application/json", b"{,}".to_vec()).await;
                assert_eq!(broken.status, 400, "{} with broken JSON: {}", op.name(), broken.text);
                let text = send("text/plain", b"name=x".to_vec()).await;
                assert_eq!(text.status, 415, "{} with text: {}", op.name(), text.text);
                let wrong = send("application/json", b"\"a string\"".to_vec()).await;
                assert_eq!(wrong.status, 422, "{} with a string: {}", op.name(), wrong.text);
                let mut oversized = b"{\"name\": \"".to_vec();
                oversized.resize(limit + 16, b'a');
                oversized.extend_from_slice(b"\"}");
                let large = send("application/json", oversized).await;
                assert_eq!(large.status, 413, "{} over {limit} bytes: {}", op.name(), large.text);
                for answer in [&broken, &text, &wrong, &large] {
                    assert!(is_problem(answer), "{}: {}", op.name(), answer.text);
                }
            }
            if let Some(limit) = op.wasm_limit {
                let request = app.client.request(op.method.clone(), format!("{}{ours_path}", app.base));
                let request = request.bearer_auth(&app.admin_key).header("content-type", "application/wasm");
                let large = app.send(request.body(vec![0u8; limit + 1])).await;
                assert_eq!(large.status, 413, "{} over {limit} bytes: {}", op.name(), large.text);
                assert!(is_problem(&large), "{}: {}", op.name(), large.text);
                let request = app.client.request(op.method.clone(), format!("{}{ours_path}", app.base));
                let request = request.bearer_auth(&app.admin_key).header("content-type", "application/wasm");
                let garbage = app.send(request.body(b"not a component".to_vec())).await;
                assert_eq!(garbage.status, 422, "{} with garbage: {}", op.name(), garbage.text);
            }
            checked += 1;
        }
        assert_eq!(checked, ops.len());
        assert_eq!(reads(&app, &ops, &ours).await, before, "refused requests changed nothing");
    })
    .await;
}
