//! The API of the built-in contact steps, against a real server on both
//! backends: the account's contact types (listed by anyone, renamed by
//! admins), an action's to-do item as its plugin prepares it, and a manual
//! text completed with the rep's edited draft.

use reqwest::Method;
use serde_json::{Value, json};
use stepwise::crm::{Role, User};
use stepwise::engagement::{Activation, StepTiming, TimingMode};
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;
use stepwise_tests::scenario::{settings, step};

async fn send(app: &TestApp, method: Method, path: &str, key: &str, body: Option<Value>) -> Answer {
    let mut request = app.client.request(method, format!("{}{path}", app.base)).bearer_auth(key);
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    app.send(request).await
}

fn names(answer: &Answer) -> Vec<&str> {
    answer.json["contact_types"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn contact_types_are_listed_by_anyone_and_renamed_by_admins() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let viewer = User { name: "Vi".into(), email: "vi@example.com".into(), role: Role::Viewer, ..User::default() };
        let viewer = app.world.user(viewer).await;
        let mut tx = app.world.store().begin().await.unwrap();
        let (_, viewer_key) = tx.create_api_key(&app.world.account, &viewer, "t", app.world.now()).await.unwrap();
        tx.commit().await.unwrap();

        let listed = app.get("/v1/contact-types", Some(&viewer_key)).await;
        assert_eq!(listed.status, 200, "{}", listed.text);
        assert_eq!(names(&listed), ["Clients", "Employees", "Partners", "Vendors", "Other"]);
        let clients = listed.json["contact_types"][0]["id"].as_str().unwrap().to_owned();
        let contact = app.world.contact(|_| {}).await;

        let path = format!("/v1/contact-types/{clients}");
        let renamed = send(&app, Method::PUT, &path, &app.admin_key, Some(json!({"name": "Customers"}))).await;
        assert_eq!(renamed.status, 200, "{}", renamed.text);
        assert_eq!(
            renamed.json,
            json!({"id": clients, "account_id": app.world.account, "name": "Customers", "position": 0, "default": false})
        );
        assert_eq!(names(&app.get("/v1/contact-types", Some(&app.agent_key)).await)[0], "Customers");
        let read = app.get(&format!("/v1/contacts/{contact}"), Some(&app.admin_key)).await;
        assert_eq!(read.json["contact_type"], "Customers", "contacts follow a rename: {}", read.text);

        // Names are unique in the account whatever their case, and well formed.
        let taken = send(&app, Method::PUT, &path, &app.admin_key, Some(json!({"name": "partners"}))).await;
        assert_eq!(taken.status, 409, "{}", taken.text);
        assert_eq!(taken.json["detail"], "the account has a contact type named `Partners` already");
        for (name, message) in [
            ("  ", "must not be empty"),
            (" Customers", "must not start or end with spaces"),
            ("a\nb", "must not contain control characters"),
        ] {
            let bad = send(&app, Method::PUT, &path, &app.admin_key, Some(json!({"name": name}))).await;
            assert_eq!(bad.status, 422, "{name:?}: {}", bad.text);
            assert_eq!(bad.json["errors"], json!([{"field": "/name", "message": message}]), "{name:?}");
        }
        let long = send(&app, Method::PUT, &path, &app.admin_key, Some(json!({"name": "x".repeat(101)}))).await;
        assert_eq!(long.status, 422, "{}", long.text);
        // The same name in another case is a rename, not a clash with itself.
        let recased = send(&app, Method::PUT, &path, &app.admin_key, Some(json!({"name": "CUSTOMERS"}))).await;
        assert_eq!(recased.status, 200, "{}", recased.text);

        let agent = send(&app, Method::PUT, &path, &app.agent_key, Some(json!({"name": "Mine"}))).await;
        assert_eq!(agent.status, 403, "{}", agent.text);
        let missing = send(&app, Method::PUT, "/v1/contact-types/cty_nope", &app.admin_key, Some(json!({"name": "X"})));
        assert_eq!(missing.await.status, 404);
        assert_eq!(names(&app.get("/v1/contact-types", Some(&viewer_key)).await)[0], "CUSTOMERS");
    })
    .await;
}

#[tokio::test]
async fn a_manual_text_is_sent_from_its_item_as_the_rep_edited_it() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let w = &app.world;
        let text = step(
            "sms",
            json!({"text": "Hi {{contact.first_name}}, still on for 3pm?", "max_segments": 1}),
            Activation::Manual,
            StepTiming::Delay { ms: 0 },
        );
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![text]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        w.run().await;
        let action = w.action(&e.id, 0).await.id;

        let item = app.get(&format!("/v1/actions/{action}/item"), Some(&app.agent_key)).await;
        assert_eq!(item.status, 200, "{}", item.text);
        assert_eq!(item.json["title"], "Text Ada Lovelace");
        let draft = &item.json["draft"];
        assert_eq!(*draft, json!({"channel": "sms", "to": "+15550100", "body": "Hi Ada, still on for 3pm?"}));

        let complete = format!("/v1/actions/{action}/complete");
        let mut edited = draft.clone();
        edited["body"] = json!("x".repeat(161));
        let refused =
            send(&app, Method::POST, &complete, &app.agent_key, Some(json!({"result": "sent", "draft": edited}))).await;
        assert_eq!(refused.status, 409, "{}", refused.text);
        assert!(refused.json["detail"].as_str().unwrap().contains("over max_segments 1"), "{}", refused.text);
        assert_eq!(w.action(&e.id, 0).await.status, stepwise::engagement::ActionStatus::Active);

        edited["body"] = json!("Hi Ada, can we make it 4pm?");
        let done =
            send(&app, Method::POST, &complete, &app.agent_key, Some(json!({"result": "sent", "draft": edited}))).await;
        assert_eq!(done.status, 200, "{}", done.text);
        assert_eq!((done.json["status"].clone(), done.json["result"].clone()), (json!("completed"), json!("sent")));
        w.run().await;
        let sent: Vec<_> = w.transport.delivered().into_iter().map(|m| m.payload["body"].clone()).collect();
        assert_eq!(sent, [json!("Hi Ada, can we make it 4pm?")]);

        let wrong = send(
            &app,
            Method::POST,
            &complete,
            &app.agent_key,
            Some(json!({"result": "sent", "draft": {"channel": "fax"}})),
        );
        assert_eq!(wrong.await.status, 422, "an unknown draft is a bad body");
    })
    .await;
}

#[tokio::test]
async fn a_calls_item_holds_its_rendered_script() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let w = &app.world;
        let call = step(
            "call",
            json!({"script": "Hi {{contact.first_name}}, this is {{owner.name}}."}),
            Activation::Manual,
            StepTiming::Delay { ms: 0 },
        );
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![call]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        w.run().await;
        let action = w.action(&e.id, 0).await.id;
        let item = app.get(&format!("/v1/actions/{action}/item"), Some(&app.agent_key)).await;
        assert_eq!(item.status, 200, "{}", item.text);
        assert_eq!(item.json, json!({"title": "Call Ada Lovelace", "body": "Hi Ada, this is Grace.", "draft": null}));
        let done = send(
            &app,
            Method::POST,
            &format!("/v1/actions/{action}/complete"),
            &app.agent_key,
            Some(json!({"result": "interested"})),
        )
        .await;
        assert_eq!(done.status, 200, "{}", done.text);
        let enrollment = app.get(&format!("/v1/enrollments/{}", e.id), Some(&app.agent_key)).await;
        assert_eq!(enrollment.json["enrollment"]["outcome"], "positive", "{}", enrollment.text);
    })
    .await;
}

#[tokio::test]
async fn a_next_sequence_must_be_one_of_the_account() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let other = app.world.sequence(TimingMode::AfterPrevious, settings(), vec![]).await;
        let next = |id: &str| json!({"name": "Welcome", "settings": {"next_sequence_id": id}});
        let refused = send(&app, Method::POST, "/v1/sequences", &app.admin_key, Some(next("seq_nope"))).await;
        assert_eq!(refused.status, 422, "{}", refused.text);
        assert_eq!(refused.json["errors"][0]["field"], "/settings/next_sequence_id", "{}", refused.text);
        assert_eq!(refused.json["errors"][0]["message"], "no sequence seq_nope in the account");
        let made = send(&app, Method::POST, "/v1/sequences", &app.admin_key, Some(next(&other))).await;
        assert_eq!(made.status, 201, "{}", made.text);
        let path = format!("/v1/sequences/{}", made.json["sequence"]["id"].as_str().unwrap());
        let edited = send(
            &app,
            Method::PATCH,
            &path,
            &app.admin_key,
            Some(json!({"settings": {"next_sequence_id": "seq_gone"}})),
        )
        .await;
        assert_eq!(edited.status, 422, "{}", edited.text);
        let kept = app.get(&path, Some(&app.admin_key)).await;
        assert_eq!(kept.json["sequence"]["settings"]["next_sequence_id"], json!(other), "nothing changed");
    })
    .await;
}

/// A plugin's log lines are kept with the attempt that wrote them, and an
/// action says which version of its plugin answered: after a step that
/// logs a line, and after one whose flood of lines ends at the log limit.
#[tokio::test]
async fn an_action_shows_its_plugins_version_and_the_lines_each_attempt_logged() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let w = &app.world;
        let caller = |config: Value| step("host-caller", config, Activation::Automatic, StepTiming::Delay { ms: 0 });
        let seq = w
            .sequence(
                TimingMode::AfterPrevious,
                settings(),
                vec![caller(json!({"call": "log"})), caller(json!({"call": "log-flood", "count": 40}))],
            )
            .await;
        let contact = w.contact(|_| {}).await;
        let enrollment = w.enroll(&contact, &seq).await;
        w.run().await;

        let logged = w.action(&enrollment.id, 0).await;
        let read = app.get(&format!("/v1/actions/{}", logged.id), Some(&app.admin_key)).await;
        assert_eq!(read.status, 200, "{}", read.text);
        assert_eq!(read.json["status"], "completed", "{}", read.text);
        assert_eq!(read.json["plugin_id"], "host-caller");
        assert_eq!(read.json["plugin_version"], env!("CARGO_PKG_VERSION"), "{}", read.text);
        let logs = read.json["logs"].as_array().unwrap();
        assert_eq!(logs.len(), 1, "{}", read.text);
        assert_eq!(logs[0]["attempt"], 1);
        assert_eq!(logs[0]["source"], "plugin");
        assert_eq!(logs[0]["level"], "info");
        assert_eq!(logs[0]["message"], "hello from host-caller");
        assert_eq!(logs[0]["plugin_version"], env!("CARGO_PKG_VERSION"));

        // The flood ends at the 16 KiB log limit: the step fails, and the
        // lines written before the limit are kept, each whole (1 KiB).
        let flooded = w.action(&enrollment.id, 1).await;
        let read = app.get(&format!("/v1/actions/{}", flooded.id), Some(&app.agent_key)).await;
        assert_eq!(read.json["status"], "failed", "{}", read.text);
        assert_eq!(read.json["plugin_version"], env!("CARGO_PKG_VERSION"));
        let logs = read.json["logs"].as_array().unwrap();
        assert!((10..=16).contains(&logs.len()), "{} lines", logs.len());
        assert!(logs.iter().all(|l| l["message"].as_str().unwrap().len() == 1024 && l["attempt"] == 1));

        // Another account's key finds no such action, nor its log.
        let mut tx = w.store().begin().await.unwrap();
        let other = tx.create_account("Globex", None, w.now()).await.unwrap().id;
        let admin = User { name: "Gus".into(), email: "gus@example.com".into(), role: Role::Admin, ..User::default() };
        let admin = tx.create_user(&other, &admin, w.now()).await.unwrap();
        let (_, key) = tx.create_api_key(&other, &admin.id, "t", w.now()).await.unwrap();
        tx.commit().await.unwrap();
        let theirs = app.get(&format!("/v1/actions/{}", logged.id), Some(&key)).await;
        assert_eq!(theirs.status, 404, "{}", theirs.text);
        assert!(!theirs.text.contains("hello from host-caller"));
    })
    .await;
}

/// The sequence `steps` would make, as the API is sent it.
fn saving(steps: Vec<stepwise::engagement::Step>) -> Value {
    json!({"name": "Routing", "steps": steps})
}

/// Problems of a refused save, as `field: message` lines.
fn problem_lines(answer: &Answer) -> Vec<String> {
    let errors = answer.json["errors"].as_array().unwrap_or_else(|| panic!("no errors: {}", answer.text));
    errors.iter().map(|e| format!("{}: {}", e["field"].as_str().unwrap(), e["message"].as_str().unwrap())).collect()
}

#[tokio::test]
async fn a_step_naming_a_type_or_user_the_account_lacks_is_refused_when_saved() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let w = &app.world;
        let gone =
            w.user(User { name: "Kurt".into(), email: "kurt@example.com".into(), active: false, ..User::default() });
        let gone = gone.await;
        // A user of another account is no user of this one.
        let mut tx = w.store().begin().await.unwrap();
        let other = tx.create_account("Globex", None, w.now()).await.unwrap().id;
        let stranger = User { name: "Hank".into(), email: "hank@example.com".into(), ..User::default() };
        let stranger = tx.create_user(&other, &stranger, w.now()).await.unwrap().id;
        tx.commit().await.unwrap();

        let steps = |contact_type: &str, user_id: &str| {
            let delay = StepTiming::Delay { ms: 0 };
            let mut assign = step("assign-user", json!({"user_id": user_id}), Activation::Automatic, delay);
            assign.position = 1;
            let retype =
                step("change-contact-type", json!({"contact_type": contact_type}), Activation::Automatic, delay);
            saving(vec![retype, assign])
        };
        let refused = send(&app, Method::POST, "/v1/sequences", &app.admin_key, Some(steps("Allies", &stranger))).await;
        assert_eq!(refused.status, 422, "{}", refused.text);
        assert_eq!(
            problem_lines(&refused),
            [
                "/steps/0/config/contact_type: no contact type `Allies` in this account (it has Clients, Employees, \
                 Partners, Vendors, Other)"
                    .to_owned(),
                format!("/steps/1/config/user_id: no user `{stranger}` in this account"),
            ]
        );
        let refused = send(&app, Method::POST, "/v1/sequences", &app.admin_key, Some(steps("Partners", &gone))).await;
        assert_eq!(refused.status, 422, "{}", refused.text);
        assert_eq!(
            problem_lines(&refused),
            [format!(
                "/steps/1/config/user_id: user Kurt <kurt@example.com> ({gone}) is inactive and cannot own contacts"
            )]
        );

        // Once Partners is renamed Allies, a step naming Allies is saved.
        let types = app.get("/v1/contact-types", Some(&app.admin_key)).await;
        let partners = types.json["contact_types"][2]["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/contact-types/{partners}");
        let renamed = send(&app, Method::PUT, &path, &app.admin_key, Some(json!({"name": "Allies"}))).await;
        assert_eq!(renamed.status, 200, "{}", renamed.text);
        let saved = send(&app, Method::POST, "/v1/sequences", &app.admin_key, Some(steps("Allies", &w.agent))).await;
        assert_eq!(saved.status, 201, "{}", saved.text);
    })
    .await;
}

/// A step on contract 0.2.0 reads the account it runs in from the store:
/// its contact types, as renamed, and its users page by page, by id, never
/// another account's.
#[tokio::test]
async fn a_step_reads_its_accounts_contact_types_and_users_from_the_store() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let w = &app.world;
        for name in ["Alan", "Barbara", "Claude"] {
            let email = format!("{}@example.com", name.to_lowercase());
            w.user(User { name: name.into(), email, ..User::default() }).await;
        }
        let mut tx = w.store().begin().await.unwrap();
        let other = tx.create_account("Globex", None, w.now()).await.unwrap().id;
        let stranger = User { name: "Hank".into(), email: "hank@example.com".into(), ..User::default() };
        let stranger = tx.create_user(&other, &stranger, w.now()).await.unwrap().id;
        tx.commit().await.unwrap();
        let types = app.get("/v1/contact-types", Some(&app.admin_key)).await;
        let partners = types.json["contact_types"][2]["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/contact-types/{partners}");
        let renamed = send(&app, Method::PUT, &path, &app.admin_key, Some(json!({"name": "Allies"}))).await;
        assert_eq!(renamed.status, 200, "{}", renamed.text);

        let caller = |config: Value| step("host-caller", config, Activation::Automatic, StepTiming::Delay { ms: 0 });
        let steps = vec![caller(json!({"call": "contact-types"})), caller(json!({"call": "list-users", "limit": 2}))];
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), steps).await;
        let contact = w.contact(|_| {}).await;
        let enrollment = w.enroll(&contact, &seq).await;
        w.run().await;

        let typed = w.action(&enrollment.id, 0).await;
        let names: Vec<&str> = typed.output.as_ref().unwrap()["contact_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Clients", "Employees", "Allies", "Vendors", "Other"]);

        let listed = w.action(&enrollment.id, 1).await;
        let output = listed.output.as_ref().unwrap_or_else(|| panic!("{listed:?}"));
        let mut tx = w.store().begin_read().await.unwrap();
        let mut ids: Vec<String> = tx.users(&w.account).await.unwrap().into_iter().map(|u| u.id).collect();
        ids.sort();
        assert_eq!(ids.len(), 5, "the admin, Grace and three more");
        assert_eq!(output["users"], json!(ids), "every user once, by id");
        assert_eq!(output["pages"], 3);
        assert!(!output["users"].as_array().unwrap().contains(&json!(stranger)));
    })
    .await;
}
