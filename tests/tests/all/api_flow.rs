//! The API as users drive it: sequences, contacts, enrollments, the Engage
//! view, signals; roles, account isolation and bad input, on both backends.

use serde_json::{Value, json};
use stepwise::crm::{Role, User};
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;

async fn post(app: &TestApp, path: &str, key: &str, body: Value) -> Answer {
    let request = app.client.post(format!("{}{path}", app.base)).bearer_auth(key);
    app.send(request.header("content-type", "application/json").body(body.to_string())).await
}

fn task_step(title: &str) -> Value {
    json!({
        "position": 0, "name": "call", "plugin": {"id": "task", "version": "*"},
        "config": {"title": title}, "timing": {"kind": "delay", "ms": 0},
        "activation": "manual", "owner": {"rule": "contact_owner"}
    })
}

/// An active sequence of one task step, made over the API.
async fn sequence(app: &TestApp) -> String {
    let made = post(
        app,
        "/v1/sequences",
        &app.admin_key,
        json!({"name": "Welcome", "steps": [task_step("Call {{contact.first_name}}")]}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let id = made.json["sequence"]["id"].as_str().unwrap().to_owned();
    let active = post(app, &format!("/v1/sequences/{id}/state"), &app.admin_key, json!({"state": "active"})).await;
    assert_eq!(active.status, 200, "{}", active.text);
    id
}

#[tokio::test]
async fn a_rep_works_a_sequence_from_contact_to_completion() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        // Steps are checked by their plugins when saved: unknown tokens and
        // missing plugins are named with their field.
        let bad = post(
            &app,
            "/v1/sequences",
            &app.admin_key,
            json!({
                "name": "Broken",
                "steps": [task_step("Hi {{contact.nickname}}"), {
                    "position": 1, "name": "x", "plugin": {"id": "nope", "version": "*"}, "config": {},
                    "timing": {"kind": "offset", "ms": 0}, "activation": "automatic", "owner": {"rule": "initiator"}
                }]
            }),
        )
        .await;
        assert_eq!(bad.status, 422, "{}", bad.text);
        let fields: Vec<&str> =
            bad.json["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&"/steps/0/config/title"), "{fields:?}");
        assert!(fields.contains(&"/steps/1/plugin") && fields.contains(&"/steps/1/timing"), "{fields:?}");
        assert!(
            app.get("/v1/sequences", Some(&app.admin_key)).await.json["sequences"].as_array().unwrap().is_empty(),
            "nothing saved"
        );

        let seq = sequence(&app).await;
        let contact = post(
            &app,
            "/v1/contacts",
            &app.agent_key,
            json!({"first_name": "Ada", "email": "ada@example.com", "owner_id": app.world.agent}),
        )
        .await;
        assert_eq!(contact.status, 201, "{}", contact.text);
        let contact_id = contact.json["contact"]["id"].as_str().unwrap().to_owned();
        let enrolled =
            post(&app, "/v1/enrollments", &app.agent_key, json!({"contact_id": contact_id, "sequence_id": seq})).await;
        assert_eq!(enrolled.status, 201, "{}", enrolled.text);
        let enrollment_id = enrolled.json["enrollment"]["id"].as_str().unwrap().to_owned();
        let twice =
            post(&app, "/v1/enrollments", &app.agent_key, json!({"contact_id": contact_id, "sequence_id": seq})).await;
        assert_eq!((twice.status, twice.json["type"].as_str()), (409, Some("urn:stepwise:problem:conflict")));

        app.world.run().await;
        let engage = app.get("/v1/engage", Some(&app.agent_key)).await;
        let actions = engage.json["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 1, "{}", engage.text);
        let action = actions[0]["id"].as_str().unwrap().to_owned();
        let explained = app.get(&format!("/v1/actions/{action}/explain"), Some(&app.agent_key)).await;
        assert_eq!(explained.json["on_engage"], true, "{}", explained.text);

        let wrong =
            post(&app, &format!("/v1/actions/{action}/complete"), &app.agent_key, json!({"result": "maybe"})).await;
        assert_eq!(wrong.status, 422, "{}", wrong.text);
        let done =
            post(&app, &format!("/v1/actions/{action}/complete"), &app.agent_key, json!({"result": "positive"})).await;
        assert_eq!((done.status, done.json["status"].as_str()), (200, Some("completed")), "{}", done.text);
        let read = app.get(&format!("/v1/enrollments/{enrollment_id}"), Some(&app.agent_key)).await;
        assert_eq!(read.json["enrollment"]["status"], "completed");
        assert_eq!(read.json["enrollment"]["outcome"], "positive");
        let timeline = app.get(&format!("/v1/contacts/{contact_id}/timeline"), Some(&app.agent_key)).await;
        let kinds: Vec<&str> =
            timeline.json["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        for kind in
            ["contact.created", "enrollment.created", "action.activated", "action.completed", "enrollment.ended"]
        {
            assert!(kinds.contains(&kind), "missing {kind} in {kinds:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn roles_limit_what_a_caller_may_do() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let viewer = app
            .world
            .user(User { name: "Vi".into(), email: "vi@example.com".into(), role: Role::Viewer, ..User::default() })
            .await;
        let mut tx = app.world.store().begin().await.unwrap();
        let (_, viewer_key) = tx.create_api_key(&app.world.account, &viewer, "t", app.world.now()).await.unwrap();
        tx.commit().await.unwrap();
        let seq = sequence(&app).await;

        assert_eq!(app.get("/v1/sequences", Some(&viewer_key)).await.status, 200, "viewers read");
        let denied = post(&app, "/v1/contacts", &viewer_key, json!({"first_name": "X"})).await;
        assert_eq!((denied.status, denied.json["type"].as_str()), (403, Some("urn:stepwise:problem:forbidden")));
        assert_eq!(
            post(&app, "/v1/sequences", &app.agent_key, json!({"name": "Mine"})).await.status,
            403,
            "agents do not manage sequences"
        );

        // Another rep's action is not the agent's to complete.
        let other = app.world.user(User { name: "Oz".into(), email: "oz@example.com".into(), ..User::default() }).await;
        let contact = app.world.contact(|c| c.owner_id = Some(other.clone())).await;
        let enrolled = app.world.enroll(&contact, &seq).await;
        app.world.run().await;
        let action = app.world.action(&enrolled.id, 0).await.id;
        let not_yours = post(&app, &format!("/v1/actions/{action}/skip"), &app.agent_key, json!({})).await;
        assert_eq!(not_yours.status, 403, "{}", not_yours.text);
        assert_eq!(app.get(&format!("/v1/engage?user={other}"), Some(&app.agent_key)).await.status, 403);
        let as_admin = app.get(&format!("/v1/engage?user={other}"), Some(&app.admin_key)).await;
        assert_eq!(as_admin.json["actions"].as_array().unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn another_accounts_records_are_not_found() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store.clone()).await;
        let seq = sequence(&app).await;
        let contact = app.world.contact(|_| {}).await;
        // A second account with its own admin.
        let mut tx = store.begin().await.unwrap();
        let other = tx.create_account("Globex", None, app.world.now()).await.unwrap().id;
        let admin =
            User { name: "Hank".into(), email: "hank@globex.example".into(), role: Role::Admin, ..User::default() };
        let admin = tx.create_user(&other, &admin, app.world.now()).await.unwrap().id;
        let (_, key) = tx.create_api_key(&other, &admin, "t", app.world.now()).await.unwrap();
        tx.commit().await.unwrap();
        for path in [
            format!("/v1/contacts/{contact}"),
            format!("/v1/sequences/{seq}"),
            format!("/v1/contacts/{contact}/timeline"),
        ] {
            let answer = app.get(&path, Some(&key)).await;
            assert_eq!(answer.status, 404, "{path}: {}", answer.text);
        }
        let enroll = post(&app, "/v1/enrollments", &key, json!({"contact_id": contact, "sequence_id": seq})).await;
        assert_eq!(enroll.status, 404, "{}", enroll.text);
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_a_clear_problem_and_changes_nothing() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let url = format!("{}/v1/contacts", app.base);
        let broken = app
            .send(
                app.client
                    .post(&url)
                    .bearer_auth(&app.agent_key)
                    .header("content-type", "application/json")
                    .body("{\"first_name\": "),
            )
            .await;
        assert_eq!(
            (broken.status, broken.json["type"].as_str()),
            (400, Some("urn:stepwise:problem:bad-request")),
            "{}",
            broken.text
        );
        let text = app.send(app.client.post(&url).bearer_auth(&app.agent_key).body("first_name=Ada")).await;
        assert_eq!(text.status, 415, "{}", text.text);
        let unknown = post(&app, "/v1/contacts", &app.agent_key, json!({"first_name": "Ada", "nick": "A"})).await;
        assert_eq!(unknown.status, 422, "{}", unknown.text);
        assert!(unknown.json["detail"].as_str().unwrap().contains("unknown field `nick`"), "{}", unknown.text);
        let email =
            post(&app, "/v1/contacts", &app.agent_key, json!({"first_name": "Ada", "email": "not-an-address"})).await;
        assert_eq!(email.status, 422);
        assert_eq!(email.json["errors"][0]["field"], "/email");
        let kind =
            post(&app, "/v1/contacts", &app.agent_key, json!({"first_name": "Ada", "contact_type": "Martians"})).await;
        assert_eq!(kind.status, 422, "{}", kind.text);
        assert!(kind.json["detail"].as_str().unwrap().contains("Martians"), "{}", kind.text);
        let limit = app.get("/v1/contacts?limit=9999", Some(&app.agent_key)).await;
        assert_eq!(limit.status, 422);
        let listed = app.get("/v1/contacts", Some(&app.agent_key)).await;
        assert!(listed.json["contacts"].as_array().unwrap().is_empty(), "nothing was created: {}", listed.text);
    })
    .await;
}

#[tokio::test]
async fn a_reply_signal_ends_the_enrollment() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let seq = sequence(&app).await;
        let contact = app.world.contact(|_| {}).await;
        let enrolled = app.world.enroll(&contact, &seq).await;
        let replied = post(&app, "/v1/signals", &app.agent_key, json!({"kind": "reply", "contact_id": contact})).await;
        assert_eq!(replied.status, 200, "{}", replied.text);
        assert_eq!(replied.json["enrollments"][0]["status"], "replied");
        assert_eq!(app.world.enrollment(&enrolled.id).await.status, stepwise::engagement::EnrollmentStatus::Replied);
        let unknown = post(&app, "/v1/signals", &app.agent_key, json!({"kind": "sneeze", "contact_id": contact})).await;
        assert_eq!(unknown.status, 422, "{}", unknown.text);
    })
    .await;
}

#[tokio::test]
async fn admins_manage_users_and_everyone_their_own_keys() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let made = post(
            &app,
            "/v1/users",
            &app.admin_key,
            json!({"name": "Sam", "email": "sam@example.com", "role": "agent"}),
        )
        .await;
        assert_eq!(made.status, 201, "{}", made.text);
        let sam = made.json["id"].as_str().unwrap().to_owned();
        let again = post(&app, "/v1/users", &app.admin_key, json!({"name": "Sam", "email": "sam@example.com"})).await;
        assert_eq!(again.status, 409, "one login per address: {}", again.text);
        let bad =
            post(&app, "/v1/users", &app.admin_key, json!({"name": "", "email": "x", "timezone": "Mars/Base"})).await;
        let fields: Vec<&str> =
            bad.json["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["/name", "/email", "/timezone"]);
        assert_eq!(
            post(&app, "/v1/users", &app.agent_key, json!({"name": "Eve", "email": "eve@example.com"})).await.status,
            403
        );

        // An agent makes a key of their own; the secret is shown once.
        let key = post(&app, "/v1/keys", &app.agent_key, json!({"name": "laptop"})).await;
        assert_eq!(key.status, 201, "{}", key.text);
        let secret = key.json["secret"].as_str().unwrap().to_owned();
        assert_eq!(app.get("/v1/me", Some(&secret)).await.status, 200);
        let listed = app.get("/v1/keys", Some(&app.agent_key)).await;
        assert!(!listed.text.contains(&secret), "never listed");
        assert_eq!(post(&app, "/v1/keys", &app.agent_key, json!({"name": "x", "user_id": sam})).await.status, 403);
        let key_id = key.json["key"]["id"].as_str().unwrap();
        let revoked =
            app.send(app.client.delete(format!("{}/v1/keys/{key_id}", app.base)).bearer_auth(&app.agent_key)).await;
        assert_eq!(revoked.status, 204);
        assert_eq!(app.get("/v1/me", Some(&secret)).await.status, 401);
    })
    .await;
}

#[tokio::test]
async fn company_hierarchies_refuse_cycles_and_gather_their_timeline() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let parent = post(&app, "/v1/companies", &app.agent_key, json!({"name": "Holding"})).await;
        assert_eq!(parent.status, 201, "{}", parent.text);
        let parent = parent.json["id"].as_str().unwrap().to_owned();
        let child = post(&app, "/v1/companies", &app.agent_key, json!({"name": "Branch", "parent_id": parent})).await;
        let child = child.json["id"].as_str().unwrap().to_owned();
        let cycle = app
            .send(
                app.client
                    .put(format!("{}/v1/companies/{parent}", app.base))
                    .bearer_auth(&app.agent_key)
                    .header("content-type", "application/json")
                    .body(json!({"name": "Holding", "parent_id": child}).to_string()),
            )
            .await;
        assert_eq!(cycle.status, 422, "{}", cycle.text);
        assert_eq!(cycle.json["errors"][0]["field"], "/parent_id");
        let missing =
            post(&app, "/v1/companies", &app.agent_key, json!({"name": "Orphan", "parent_id": "com_nope"})).await;
        assert_eq!(missing.status, 422, "{}", missing.text);

        let contact =
            post(&app, "/v1/contacts", &app.agent_key, json!({"first_name": "Bo", "company_id": child})).await;
        assert_eq!(contact.status, 201, "{}", contact.text);
        let timeline = app.get(&format!("/v1/companies/{child}/timeline"), Some(&app.agent_key)).await;
        assert_eq!(timeline.json["events"][0]["kind"], "contact.created", "{}", timeline.text);
    })
    .await;
}

#[tokio::test]
async fn the_sequence_report_counts_statuses_outcomes_and_steps() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let seq = sequence(&app).await;
        let w = &app.world;
        let mut actions = Vec::new();
        for i in 0..3 {
            let contact = w.contact(|c| c.email = Some(format!("r{i}@example.com"))).await;
            let e = w.enroll(&contact, &seq).await;
            w.run().await;
            actions.push((contact, w.action(&e.id, 0).await.id));
        }
        w.engine.complete_action(&w.account, &actions[0].1, &w.agent, "positive").await.unwrap();
        w.engine.skip_action(&w.account, &actions[1].1, &w.agent).await.unwrap();
        let reply = stepwise::engine::Signal {
            kind: stepwise::engine::SignalKind::Reply,
            contact_id: actions[2].0.clone(),
            enrollment_id: None,
            action_id: None,
            return_date: None,
        };
        w.engine.signal(&w.account, &reply).await.unwrap();
        let report = app.get(&format!("/v1/sequences/{seq}/report"), Some(&app.agent_key)).await;
        assert_eq!(report.status, 200, "{}", report.text);
        assert_eq!(report.json["enrolled"], 3);
        assert_eq!(report.json["by_status"], json!({"completed": 2, "replied": 1}));
        assert_eq!(report.json["outcomes"], json!({"positive": 1, "neutral": 1}));
        assert_eq!(report.json["replies"], 1);
        assert_eq!(report.json["steps"][0]["completed"], 1);
        assert_eq!(report.json["steps"][0]["skipped"], json!({"skipped_by_user": 1, "enrollment_replied": 1}));
    })
    .await;
}

#[tokio::test]
async fn imports_and_bulk_enrollments_answer_row_by_row() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let seq = sequence(&app).await;
        let rows = json!({"contacts": [
            {"first_name": "Ann", "email": "ann@example.com"},
            {"first_name": "Bad", "email": "nope"},
            {"first_name": "Cy", "shoe_size": 44},
            {"first_name": "Di", "email": "di@example.com"}
        ]});
        let imported = post(&app, "/v1/contacts/import", &app.agent_key, rows).await;
        assert_eq!(imported.status, 200, "{}", imported.text);
        assert_eq!((imported.json["created"].as_u64(), imported.json["failed"].as_u64()), (Some(2), Some(2)));
        let results = imported.json["results"].as_array().unwrap();
        assert_eq!(results[1]["errors"][0]["field"], "/email");
        assert!(results[2]["error"].as_str().unwrap().contains("shoe_size"), "{}", imported.text);
        let ids = [results[0]["id"].as_str().unwrap(), results[3]["id"].as_str().unwrap()];

        let body = json!({"sequence_id": seq, "contact_ids": [ids[0], "con_missing", ids[1], ids[0]]});
        let enrolled = post(&app, "/v1/enrollments/bulk", &app.agent_key, body).await;
        assert_eq!(enrolled.status, 200, "{}", enrolled.text);
        assert_eq!((enrolled.json["enrolled"].as_u64(), enrolled.json["failed"].as_u64()), (Some(2), Some(2)));
        let results = enrolled.json["results"].as_array().unwrap();
        assert!(results[1]["error"].as_str().unwrap().contains("not found"), "{}", enrolled.text);
        assert!(results[3]["error"].as_str().unwrap().contains("already enrolled"), "{}", enrolled.text);

        let too_many: Vec<Value> = (0..10_001).map(|_| json!({"first_name": "x"})).collect();
        let refused = post(&app, "/v1/contacts/import", &app.agent_key, json!({"contacts": too_many})).await;
        assert_eq!(refused.status, 413, "{}", refused.text);
    })
    .await;
}

#[tokio::test]
async fn sequences_export_as_json_and_csv_and_import_again() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let seq = sequence(&app).await;
        let edited = app
            .send(
                app.client
                    .patch(format!("{}/v1/sequences/{seq}", app.base))
                    .bearer_auth(&app.admin_key)
                    .header("content-type", "application/json")
                    .body(json!({"description": "first touch, \"warm\""}).to_string()),
            )
            .await;
        assert_eq!(edited.status, 200, "{}", edited.text);
        let exported = app.get(&format!("/v1/sequences/{seq}/export"), Some(&app.agent_key)).await;
        assert_eq!(exported.json["format"], "stepwise.sequence/1");
        assert_eq!(exported.json["steps"][0]["plugin"]["id"], "task");
        let csv = app.get(&format!("/v1/sequences/{seq}/export?format=csv"), Some(&app.agent_key)).await;
        assert!(csv.content_type.starts_with("text/csv"), "{}", csv.content_type);
        let lines: Vec<&str> = csv.text.lines().collect();
        assert_eq!(lines[0], "position,name,plugin,version,activation,timing,owner,criteria,notify,config");
        assert!(lines[1].starts_with("0,call,task,*,manual,\"{\"\"kind\"\":\"\"delay\"\""), "{}", lines[1]);

        let imported = post(&app, "/v1/sequences/import", &app.admin_key, exported.json.clone()).await;
        assert_eq!(imported.status, 201, "{}", imported.text);
        assert_eq!(imported.json["sequence"]["description"], "first touch, \"warm\"");
        assert_eq!(imported.json["sequence"]["state"], "draft");
        assert_eq!(imported.json["version"]["steps"], exported.json["steps"]);
        let mut wrong = exported.json.clone();
        wrong["format"] = json!("other/9");
        assert_eq!(post(&app, "/v1/sequences/import", &app.admin_key, wrong).await.status, 422);
    })
    .await;
}

#[tokio::test]
async fn the_signed_unsubscribe_link_opts_the_contact_out_and_cannot_be_forged() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let seq = sequence(&app).await;
        let contact = app.world.contact(|_| {}).await;
        let enrolled = app.world.enroll(&contact, &seq).await;
        let token = app.world.engine.unsubscribe_token(&app.world.account, &contact).await.unwrap();
        assert_eq!(token, app.world.engine.unsubscribe_token(&app.world.account, &contact).await.unwrap(), "stable");

        // Altered: another contact's id with this signature.
        let other = app.world.contact(|c| c.email = Some("o@example.com".into())).await;
        let forged =
            format!("{}.{}", hex_of(&format!("{}:{other}", app.world.account)), token.split_once('.').unwrap().1);
        for bad in [forged.as_str(), "nonsense", "00.00"] {
            let answer = app.get(&format!("/u/{bad}"), None).await;
            assert_eq!(answer.status, 404, "{bad}: {}", answer.text);
        }
        assert!(!app.world.get_contact(&other).await.opt_outs.email);

        let answer = app.send(app.client.post(format!("{}/u/{token}", app.base))).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert!(answer.content_type.starts_with("text/html") && answer.text.contains("unsubscribed"));
        assert!(app.world.get_contact(&contact).await.opt_outs.email);
        assert_eq!(app.world.enrollment(&enrolled.id).await.status, stepwise::engagement::EnrollmentStatus::OptedOut);
        assert_eq!(app.get(&format!("/u/{token}"), None).await.status, 200, "using it twice is harmless");
    })
    .await;
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_step_with_notify_on_notifies_its_owner() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let mut step = task_step("Call {{contact.first_name}}");
        step["notify"] = json!(true);
        let made = post(&app, "/v1/sequences", &app.admin_key, json!({"name": "Notify", "steps": [step]})).await;
        let seq = made.json["sequence"]["id"].as_str().unwrap().to_owned();
        post(&app, &format!("/v1/sequences/{seq}/state"), &app.admin_key, json!({"state": "active"})).await;
        let contact = app.world.contact(|_| {}).await;
        app.world.enroll(&contact, &seq).await;
        app.world.run().await;
        let mine = app.get("/v1/notifications", Some(&app.agent_key)).await;
        let list = mine.json["notifications"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{}", mine.text);
        assert!(list[0]["reason"].as_str().unwrap().contains("on your Engage view"));
        let admins = app.get("/v1/notifications", Some(&app.admin_key)).await;
        assert!(admins.json["notifications"].as_array().unwrap().is_empty(), "only the owner is told");
    })
    .await;
}

#[tokio::test]
async fn sub_accounts_read_their_parents_locked_sequences_only() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let shared = post(
            &app,
            "/v1/sequences",
            &app.admin_key,
            json!({"name": "Shared", "settings": {"shared_locked": true}, "steps": [task_step("Call")]}),
        )
        .await;
        let shared = shared.json["sequence"]["id"].as_str().unwrap().to_owned();
        let private = sequence(&app).await;
        let sub = post(
            &app,
            "/v1/accounts",
            &app.admin_key,
            json!({"name": "Branch", "admin_name": "Bea", "admin_email": "bea@branch.example"}),
        )
        .await;
        assert_eq!(sub.status, 201, "{}", sub.text);
        let key = sub.json["secret"].as_str().unwrap().to_owned();
        let mine = app.get("/v1/accounts", Some(&key)).await;
        assert_eq!(mine.json["parent"]["id"], app.world.account.as_str());
        let parents = app.get("/v1/accounts", Some(&app.admin_key)).await;
        assert_eq!(parents.json["sub_accounts"][0]["name"], "Branch");

        let listed = app.get("/v1/sequences", Some(&key)).await;
        let seen: Vec<(&str, bool)> = listed.json["sequences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["sequence"]["id"].as_str().unwrap(), s["locked"].as_bool().unwrap()))
            .collect();
        assert_eq!(seen, vec![(shared.as_str(), true)], "the locked one, read-only; never the private one");
        assert_eq!(app.get(&format!("/v1/sequences/{shared}"), Some(&key)).await.json["locked"], true);
        assert_eq!(app.get(&format!("/v1/sequences/{private}"), Some(&key)).await.status, 404);
        let write = post(&app, &format!("/v1/sequences/{shared}/state"), &key, json!({"state": "active"})).await;
        assert_eq!(write.status, 403, "{}", write.text);
        // A copy can be made: export there, import here.
        let exported = app.get(&format!("/v1/sequences/{shared}/export"), Some(&key)).await;
        assert_eq!(post(&app, "/v1/sequences/import", &key, exported.json).await.status, 201);
        assert_eq!(
            post(
                &app,
                "/v1/accounts",
                &app.agent_key,
                json!({"name": "X", "admin_name": "Y", "admin_email": "y@x.example"})
            )
            .await
            .status,
            403
        );
    })
    .await;
}

#[tokio::test]
async fn sub_accounts_enroll_their_own_contacts_in_shared_plans_and_see_only_their_own() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let body = json!({"name": "Shared", "settings": {"shared_locked": true}, "steps": [task_step("Call {{contact.first_name}}")]});
        let shared = post(&app, "/v1/sequences", &app.admin_key, body).await.string("/sequence/id");
        post(&app, &format!("/v1/sequences/{shared}/state"), &app.admin_key, json!({"state": "active"})).await;
        let private = sequence(&app).await;
        let sub = json!({"name": "Branch", "admin_name": "Bea", "admin_email": "bea@branch.example"});
        let key = post(&app, "/v1/accounts", &app.admin_key, sub).await.string("/secret");
        let bea = app.get("/v1/me", Some(&key)).await.string("/user/id");

        // Their own contact, their own owner, in the parent's plan.
        let ada = json!({"first_name": "Ada", "email": "ada@branch.example", "owner_id": bea});
        let ada = post(&app, "/v1/contacts", &key, ada).await.string("/contact/id");
        let enrolled = post(&app, "/v1/enrollments", &key, json!({"contact_id": ada, "sequence_id": shared})).await;
        assert_eq!(enrolled.status, 201, "{}", enrolled.text);
        let private_try = post(&app, "/v1/enrollments", &key, json!({"contact_id": ada, "sequence_id": private})).await;
        assert_eq!(private_try.status, 404, "a plan not shared is not theirs: {}", private_try.text);
        // The parent enrolls one of its own too.
        let own = app.world.contact(|c| c.owner_id = Some(app.world.agent.clone())).await;
        let parents = post(&app, "/v1/enrollments", &app.admin_key, json!({"contact_id": own, "sequence_id": shared})).await;
        assert_eq!(parents.status, 201, "{}", parents.text);
        app.world.run().await;

        // The step lands on Bea's Engage view, and only there.
        let engage = app.get("/v1/engage", Some(&key)).await;
        let rows = engage.json["actions"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{}", engage.text);
        assert_eq!(rows[0]["sequence_name"], "Shared", "{}", engage.text);
        let action = rows[0]["id"].as_str().unwrap().to_owned();
        let agents = app.get("/v1/engage", Some(&app.agent_key)).await;
        assert!(!agents.text.contains(&action), "{}", agents.text);

        // Each account lists its own enrollments; the sub-account's report
        // counts its own, the owner's every account's.
        let path = format!("/v1/sequences/{shared}/enrollments");
        let theirs = app.get(&path, Some(&key)).await;
        assert_eq!(theirs.json["enrollments"].as_array().unwrap().len(), 1, "{}", theirs.text);
        assert_eq!(theirs.json["enrollments"][0]["contact_id"], ada.as_str());
        let ours = app.get(&path, Some(&app.admin_key)).await;
        assert_eq!(ours.json["enrollments"].as_array().unwrap().len(), 1, "{}", ours.text);
        assert_eq!(ours.json["enrollments"][0]["contact_id"], own.as_str());
        let complete = post(&app, &format!("/v1/actions/{action}/complete"), &key, json!({"result": "none"})).await;
        assert_eq!(complete.status, 200, "{}", complete.text);
        let report = app.get(&format!("/v1/sequences/{shared}/report"), Some(&key)).await;
        assert_eq!(report.status, 200, "{}", report.text);
        assert_eq!(report.json["enrolled"], 1, "{}", report.text);
        assert_eq!(report.json["by_status"]["completed"], 1, "{}", report.text);
        let owners = app.get(&format!("/v1/sequences/{shared}/report"), Some(&app.admin_key)).await;
        assert_eq!(owners.json["enrolled"], 2, "{}", owners.text);
        let listed = app.get(&format!("/v1/contacts/{ada}/enrollments"), Some(&key)).await;
        assert_eq!(listed.json["enrollments"][0]["sequence_name"], "Shared", "{}", listed.text);
        assert_eq!(app.get(&format!("/v1/sequences/{shared}/versions/1"), Some(&key)).await.status, 200);

        // Still the parent's to edit.
        let edit = app.call(reqwest::Method::PATCH, &format!("/v1/sequences/{shared}"), Some(&key), Some(&json!({"name": "Mine"}))).await;
        assert_eq!(edit.status, 403, "{}", edit.text);
        let publish = post(&app, &format!("/v1/sequences/{shared}/versions"), &key, json!({"steps": [task_step("X")]})).await;
        assert_eq!(publish.status, 403, "{}", publish.text);
        // The parent may stop sharing: the running ones go on, no new ones.
        let unshare = json!({"settings": {"shared_locked": false}});
        let path = format!("/v1/sequences/{shared}");
        assert_eq!(app.call(reqwest::Method::PATCH, &path, Some(&app.admin_key), Some(&unshare)).await.status, 200);
        let bob = post(&app, "/v1/contacts", &key, json!({"first_name": "Bob", "owner_id": bea})).await.string("/contact/id");
        let refused = post(&app, "/v1/enrollments", &key, json!({"contact_id": bob, "sequence_id": shared})).await;
        assert_eq!(refused.status, 404, "{}", refused.text);
    })
    .await;
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let keyed = |body: Value| {
            app.client
                .post(format!("{}/v1/contacts", app.base))
                .bearer_auth(&app.agent_key)
                .header("content-type", "application/json")
                .header("idempotency-key", "import-42")
                .body(body.to_string())
        };
        let first = app.send(keyed(json!({"first_name": "Ada"}))).await;
        assert_eq!(first.status, 201, "{}", first.text);
        let again = app.send(keyed(json!({"first_name": "Ada"}))).await;
        assert_eq!((again.status, again.text.as_str()), (201, first.text.as_str()), "the first answer, again");
        assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
        let listed = app.get("/v1/contacts", Some(&app.agent_key)).await;
        assert_eq!(listed.json["contacts"].as_array().unwrap().len(), 1, "created once");
        let other = app.send(keyed(json!({"first_name": "Bob"}))).await;
        assert_eq!(other.status, 422, "{}", other.text);
        assert!(other.json["detail"].as_str().unwrap().contains("different request"));
        // Another API key has its own keys.
        let theirs = app
            .send(
                app.client
                    .post(format!("{}/v1/contacts", app.base))
                    .bearer_auth(&app.admin_key)
                    .header("content-type", "application/json")
                    .header("idempotency-key", "import-42")
                    .body(json!({"first_name": "Bob"}).to_string()),
            )
            .await;
        assert_eq!(theirs.status, 201, "{}", theirs.text);
    })
    .await;
}

#[tokio::test]
async fn lists_page_by_cursor() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        for i in 0..3 {
            let user = json!({"name": format!("U{i}"), "email": format!("u{i}@example.com")});
            assert_eq!(post(&app, "/v1/users", &app.admin_key, user).await.status, 201);
            assert_eq!(
                post(&app, "/v1/contacts", &app.agent_key, json!({"first_name": format!("C{i}")})).await.status,
                201
            );
        }
        // Three tasks on the agent's Engage view, and a contact's timeline.
        let seq = sequence(&app).await;
        let owned: Vec<String> = app.get("/v1/contacts", Some(&app.agent_key)).await.json["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        for contact in &owned {
            app.world.update_contact(contact, |c| c.owner_id = Some(app.world.agent.clone())).await;
            let enrolled =
                post(&app, "/v1/enrollments", &app.agent_key, json!({"contact_id": contact, "sequence_id": seq}));
            assert_eq!(enrolled.await.status, 201);
        }
        app.world.run().await;
        let timeline = format!("/v1/contacts/{}/timeline", owned[0]);
        let whole = app.get(&format!("{timeline}?limit=500"), Some(&app.admin_key)).await;
        let events: Vec<String> =
            whole.json["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
        assert!(events.len() >= 3, "{}", whole.text);
        let bad = app.get(&format!("{timeline}?after=nonsense"), Some(&app.admin_key)).await;
        assert_eq!(bad.status, 400, "{}", bad.text);

        for (path, field, total) in [
            ("/v1/users", "users", 5),
            ("/v1/contacts", "contacts", 3),
            ("/v1/engage?user=AGENT", "actions", 3),
            ("/v1/engage?user=AGENT&sort=-due", "actions", 3),
            (timeline.as_str(), "events", events.len()),
        ] {
            let path = path.replace("AGENT", &app.world.agent);
            let path = if path.contains('?') { path } else { format!("{path}?") };
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let cursor = after.as_ref().map_or(String::new(), |a| format!("&after={a}"));
                let page = app.get(&format!("{path}&limit=2{cursor}"), Some(&app.admin_key)).await;
                assert_eq!(page.status, 200, "{}", page.text);
                let items = page.json[field].as_array().unwrap();
                assert!(items.len() <= 2);
                seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
                match page.json["next_after"].as_str() {
                    Some(next) => after = Some(next.to_owned()),
                    None => break,
                }
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!((seen.len(), unique.len()), (total, total), "{path}: every item once");
            if field == "events" {
                assert_eq!(seen, events, "pages keep the timeline's order");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn an_enrollment_is_paused_resumed_cancelled_and_removed_and_an_action_hidden() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let seq = sequence(&app).await;
        let contact = app.world.contact(|c| c.owner_id = Some(app.world.agent.clone())).await;
        let enrolled =
            post(&app, "/v1/enrollments", &app.agent_key, json!({"contact_id": contact, "sequence_id": seq}));
        let enrollment = enrolled.await.json["enrollment"]["id"].as_str().unwrap().to_owned();
        app.world.run().await;
        let action = app.world.action(&enrollment, 0).await.id;

        let hidden = post(&app, &format!("/v1/actions/{action}/hide"), &app.agent_key, json!({})).await;
        assert_eq!(hidden.status, 200, "{}", hidden.text);
        assert_eq!(hidden.json["show_on_engage"], false, "{}", hidden.text);
        assert!(app.world.engage(&app.world.agent).await.is_empty(), "off the Engage view");

        let path = |verb: &str| format!("/v1/enrollments/{enrollment}/{verb}");
        let paused = post(&app, &path("pause"), &app.agent_key, json!({})).await;
        assert_eq!((paused.status, &paused.json["enrollment"]["status"]), (200, &json!("paused")), "{}", paused.text);
        let resumed = post(&app, &path("resume"), &app.agent_key, json!({})).await;
        assert_eq!(resumed.json["enrollment"]["status"], "running", "{}", resumed.text);
        let cancelled = post(&app, &path("cancel"), &app.agent_key, json!({})).await;
        assert_eq!(cancelled.json["enrollment"]["status"], "cancelled", "{}", cancelled.text);
        let again = post(&app, &path("resume"), &app.agent_key, json!({})).await;
        assert_eq!(again.status, 409, "an ended enrollment is final: {}", again.text);

        let remove = |key: &str| {
            let request = app.client.delete(format!("{}/v1/enrollments/{enrollment}", app.base)).bearer_auth(key);
            app.send(request)
        };
        assert_eq!(remove(&app.agent_key).await.status, 403, "removing needs an admin");
        assert_eq!(remove(&app.admin_key).await.status, 204);
        assert_eq!(app.get(&format!("/v1/enrollments/{enrollment}"), Some(&app.admin_key)).await.status, 404);
        let delete = app.client.delete(format!("{}/v1/contacts/{contact}", app.base)).bearer_auth(&app.admin_key);
        assert_eq!(app.send(delete).await.status, 204);
        assert_eq!(app.get(&format!("/v1/contacts/{contact}"), Some(&app.admin_key)).await.status, 404);
    })
    .await;
}
