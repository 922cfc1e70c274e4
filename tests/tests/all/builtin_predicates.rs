//! The built-in criteria predicates end to end, over the API on both
//! backends: `field-compare`, `has-channel`, `is-one-of` and `time-window`
//! each hold a step (`on_unmet: hold`) until the contact changes — a
//! `PUT /v1/contacts/{id}` makes the held action due at once — skip it
//! (`on_unmet: skip`), and refuse a bad config when the step is saved, at
//! the config's own field. The time window also opens by the clock, in the
//! contact's timezone or else the owner's.

use serde_json::{Value, json};
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;

async fn send(app: &TestApp, method: reqwest::Method, path: &str, body: &Value) -> Answer {
    let request = app.client.request(method, format!("{}{path}", app.base)).bearer_auth(&app.admin_key);
    app.send(request.header("content-type", "application/json").body(body.to_string())).await
}

async fn post(app: &TestApp, path: &str, body: &Value) -> Answer {
    send(app, reqwest::Method::POST, path, body).await
}

async fn get(app: &TestApp, path: &str) -> Value {
    let answer = app.get(path, Some(&app.admin_key)).await;
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.text);
    answer.json
}

/// A criterion of the built-in `plugin`.
fn criterion(plugin: &str, config: &Value, on_unmet: &str) -> Value {
    json!({"plugin": {"id": plugin, "version": "*"}, "config": config, "on_unmet": on_unmet})
}

/// A one-step sequence: a manual task for the contact's owner, under `criterion`.
fn held_task(criterion: &Value) -> Value {
    json!({
        "name": "Criteria",
        "steps": [{"position": 0, "name": "Follow up", "plugin": {"id": "task", "version": "*"},
                   "config": {"title": "Follow up with {{contact.first_name}}"},
                   "timing": {"kind": "delay", "ms": 0}, "activation": "manual",
                   "owner": {"rule": "contact_owner"}, "criteria": [criterion]}]
    })
}

/// An active sequence of one task under `criterion`.
async fn sequence(app: &TestApp, criterion: &Value) -> String {
    let made = post(app, "/v1/sequences", &held_task(criterion)).await;
    assert_eq!(made.status, 201, "{}", made.text);
    let id = made.json["sequence"]["id"].as_str().unwrap().to_owned();
    let active = post(app, &format!("/v1/sequences/{id}/state"), &json!({"state": "active"})).await;
    assert_eq!(active.status, 200, "{}", active.text);
    id
}

/// A contact owned by the world's agent: Ada, with `fields` on top.
async fn contact(app: &TestApp, fields: &Value) -> String {
    let mut body = json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
                          "owner_id": app.world.agent});
    for (name, value) in fields.as_object().unwrap() {
        body[name] = value.clone();
    }
    let made = post(app, "/v1/contacts", &body).await;
    assert_eq!(made.status, 201, "{}", made.text);
    made.json["contact"]["id"].as_str().unwrap().to_owned()
}

/// Changes a contact as a client does: `GET`, edit, `PUT` it whole.
async fn update_contact(app: &TestApp, id: &str, change: impl FnOnce(&mut Value)) {
    let mut contact = get(app, &format!("/v1/contacts/{id}")).await;
    change(&mut contact);
    let put = send(app, reqwest::Method::PUT, &format!("/v1/contacts/{id}"), &contact).await;
    assert_eq!(put.status, 200, "{}", put.text);
}

/// Enrolls `contact` in `sequence`, runs what is due and returns the
/// enrollment's one action.
async fn enroll_and_run(app: &TestApp, contact: &str, sequence: &str) -> String {
    let enrolled = post(app, "/v1/enrollments", &json!({"contact_id": contact, "sequence_id": sequence})).await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.text);
    let enrollment = enrolled.json["enrollment"]["id"].as_str().unwrap().to_owned();
    app.world.run().await;
    let read = get(app, &format!("/v1/enrollments/{enrollment}")).await;
    read["actions"][0]["id"].as_str().unwrap().to_owned()
}

/// An action's status and deferral reason.
async fn state(app: &TestApp, action: &str) -> (String, Option<String>) {
    let action = get(app, &format!("/v1/actions/{action}")).await;
    (action["status"].as_str().unwrap().to_owned(), action["deferral_reason"].as_str().map(str::to_owned))
}

fn held() -> (String, Option<String>) {
    ("future".to_owned(), Some("criteria_unmet".to_owned()))
}

fn active() -> (String, Option<String>) {
    ("active".to_owned(), None)
}

/// The whole life of a criterion of `plugin` with `config`: for a contact
/// made with `unmet` it holds the step and says so in the explanation;
/// `release` (applied to the contact's JSON) lets it go at once, without
/// the clock moving; as a skip criterion it skips the step of another such
/// contact, and lets a contact that already meets it through.
async fn holds_until_the_contact_changes_and_skips(
    app: &TestApp,
    plugin: &str,
    config: &Value,
    unmet: &Value,
    release: impl Fn(&mut Value),
) {
    let hold = sequence(app, &criterion(plugin, config, "hold")).await;
    let skip = sequence(app, &criterion(plugin, config, "skip")).await;

    let waiting = contact(app, unmet).await;
    let action = enroll_and_run(app, &waiting, &hold).await;
    assert_eq!(state(app, &action).await, held(), "{plugin}: held");
    let explained = get(app, &format!("/v1/actions/{action}/explain")).await;
    let checks = explained["checks"].as_array().unwrap();
    let check = checks.iter().find(|c| c["name"] == format!("criterion:{plugin}"));
    assert_eq!(check.map(|c| &c["ok"]), Some(&json!(false)), "{plugin}: {explained}");

    let before = app.world.now();
    update_contact(app, &waiting, &release).await;
    app.world.run().await;
    assert_eq!(app.world.now(), before, "no time passed");
    assert_eq!(state(app, &action).await, active(), "{plugin}: released by the contact's change");
    let engage = app.get("/v1/engage", Some(&app.agent_key)).await;
    assert!(engage.text.contains(&action), "{plugin}: on the owner's Engage view: {}", engage.text);

    let skipped = contact(app, unmet).await;
    let action = enroll_and_run(app, &skipped, &skip).await;
    let read = get(app, &format!("/v1/actions/{action}")).await;
    assert_eq!(read["status"], "skipped", "{plugin}: {read}");
    assert_eq!(read["result"], "criteria_unmet", "{plugin}: {read}");

    let mut meets = unmet.clone();
    release(&mut meets);
    let ready = contact(app, &meets).await;
    let action = enroll_and_run(app, &ready, &skip).await;
    assert_eq!(state(app, &action).await, active(), "{plugin}: a contact that meets it goes through");
}

/// Saving a step whose criterion has `config` is a 422 naming `field`
/// (under `/steps/0/criteria/0/config`) with a message holding `words`.
async fn refused(app: &TestApp, plugin: &str, config: Value, field: &str, words: &str) {
    let made = post(app, "/v1/sequences", &held_task(&criterion(plugin, &config, "hold"))).await;
    assert_eq!(made.status, 422, "{plugin} {config}: {}", made.text);
    let field = format!("/steps/0/criteria/0/config{field}");
    let errors = made.json["errors"].as_array().unwrap();
    let found = errors.iter().any(|e| e["field"] == field && e["message"].as_str().is_some_and(|m| m.contains(words)));
    assert!(found, "{plugin} {config}: expected {words:?} at {field}: {}", made.text);
}

#[tokio::test]
async fn field_compare_holds_until_the_contact_changes_and_skips() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let pro = json!({"field": "attributes.plan", "op": "eq", "value": "pro"});
        let free = json!({"attributes": {"plan": "free", "seats": 3}});
        let upgrade = |c: &mut Value| c["attributes"]["plan"] = json!("Pro");
        holds_until_the_contact_changes_and_skips(&app, "field-compare", &pro, &free, upgrade).await;

        // Numbers compare as numbers (3 < 10 < 12, though "12" < "3" as text).
        let seats = json!({"field": "attributes.seats", "op": "gte", "value": 10});
        let more = |c: &mut Value| c["attributes"]["seats"] = json!(12);
        holds_until_the_contact_changes_and_skips(&app, "field-compare", &seats, &free, more).await;
    })
    .await;
}

#[tokio::test]
async fn field_compare_reads_times_against_the_engines_clock() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        // Hold the follow-up until a week has passed since the contact was
        // last contacted: now-7d is the engine's clock, not the wall's.
        let quiet = json!({"field": "last_contacted", "op": "lte", "value": "now-7d"});
        let seq = sequence(&app, &criterion("field-compare", &quiet, "hold")).await;
        let almost_a_week = (app.world.now() - chrono::Duration::days(7) + chrono::Duration::hours(1)).to_rfc3339();
        let ada = contact(&app, &json!({"last_contacted": almost_a_week})).await;
        let action = enroll_and_run(&app, &ada, &seq).await;
        assert_eq!(state(&app, &action).await, held());
        // The week is up an hour later: the re-check at 45 minutes still
        // holds, the one at an hour lets it go.
        app.world.run_to(45).await;
        assert_eq!(state(&app, &action).await, held());
        app.world.run_to(60).await;
        assert_eq!(state(&app, &action).await, active());
    })
    .await;
}

#[tokio::test]
async fn has_channel_holds_until_the_contact_is_reachable_and_skips() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let phone = json!({"channel": "sms"});
        let add_phone = |c: &mut Value| c["phone"] = json!("+15550100");
        holds_until_the_contact_changes_and_skips(&app, "has-channel", &phone, &json!({}), add_phone).await;

        // With not_opted_out, an email address is not enough once the
        // contact opted out of email.
        let email = json!({"channel": "email", "not_opted_out": true});
        let opted_out = json!({"opt_outs": {"email": true}});
        let opt_in = |c: &mut Value| c["opt_outs"]["email"] = json!(false);
        holds_until_the_contact_changes_and_skips(&app, "has-channel", &email, &opted_out, opt_in).await;
    })
    .await;
}

#[tokio::test]
async fn is_one_of_holds_until_the_lead_source_is_listed_and_skips() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let sources = json!({"field": "lead_source", "values": ["Website", "Referral"]});
        let event = json!({"lead_source": "Trade show"});
        let referred = |c: &mut Value| c["lead_source"] = json!("referral");
        holds_until_the_contact_changes_and_skips(&app, "is-one-of", &sources, &event, referred).await;

        let cycles = json!({"field": "sales_cycle", "values": ["Negotiation"]});
        let negotiating = |c: &mut Value| c["sales_cycle"] = json!(" NEGOTIATION ");
        holds_until_the_contact_changes_and_skips(&app, "is-one-of", &cycles, &json!({}), negotiating).await;
    })
    .await;
}

/// Office hours, Monday to Friday.
fn office_hours() -> Value {
    json!({"weekdays": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"})
}

#[tokio::test]
async fn time_window_holds_until_the_contacts_timezone_is_in_office_hours_and_skips() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        // The world's clock stands at Monday 09:00 UTC: 04:00 in New York,
        // 10:00 in Paris.
        let new_york = json!({"timezone": "America/New_York"});
        let paris = |c: &mut Value| c["timezone"] = json!("Europe/Paris");
        holds_until_the_contact_changes_and_skips(&app, "time-window", &office_hours(), &new_york, paris).await;
    })
    .await;
}

#[tokio::test]
async fn time_window_opens_by_the_clock_in_the_contacts_or_the_owners_timezone() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let seq = sequence(&app, &criterion("time-window", &office_hours(), "hold")).await;

        // No timezone anywhere: UTC, and 09:00 UTC is open.
        let utc = contact(&app, &json!({})).await;
        let open = enroll_and_run(&app, &utc, &seq).await;
        assert_eq!(state(&app, &open).await, active());

        // New York opens at 14:00 UTC. Re-checked every 15 minutes, the
        // step is still held at 13:45 and goes on at 14:00.
        let ada = contact(&app, &json!({"timezone": "America/New_York"})).await;
        let new_york = enroll_and_run(&app, &ada, &seq).await;
        assert_eq!(state(&app, &new_york).await, held());

        // A contact without a timezone takes its owner's: 18:00 in Tokyo
        // is closed, until the next morning there (00:00 UTC).
        app.world.update_user(&app.world.agent, |u| u.timezone = "Asia/Tokyo".into()).await;
        let grace = contact(&app, &json!({"first_name": "Grace"})).await;
        let tokyo = enroll_and_run(&app, &grace, &seq).await;
        assert_eq!(state(&app, &tokyo).await, held());

        app.world.run_to(5 * 60 - 15).await;
        assert_eq!(state(&app, &new_york).await, held());
        app.world.run_to(5 * 60).await;
        assert_eq!(state(&app, &new_york).await, active(), "09:00 in New York");
        assert_eq!(state(&app, &tokyo).await, held(), "still night in Tokyo");
        app.world.run_to(15 * 60 - 15).await;
        assert_eq!(state(&app, &tokyo).await, held(), "Tuesday 08:45 in Tokyo");
        app.world.run_to(15 * 60).await;
        assert_eq!(state(&app, &tokyo).await, active(), "Tuesday 09:00 in Tokyo");
    })
    .await;
}

#[tokio::test]
async fn bad_predicate_configs_are_refused_at_their_field() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        for (plugin, config, field, words) in [
            ("field-compare", json!({"field": "plan", "op": "eq", "value": "pro"}), "/field", "unknown field `plan`"),
            ("field-compare", json!({"field": "email", "op": "like", "value": "x"}), "/op", "unknown variant `like`"),
            (
                "field-compare",
                json!({"field": "email", "op": "matches", "value": "(a"}),
                "/value",
                "regular expression",
            ),
            ("field-compare", json!({"field": "first_name", "op": "gt", "value": 3}), "/value", "first_name is text"),
            ("field-compare", json!({"field": "last_engaged", "op": "lt", "value": "soon"}), "/value", "is a time"),
            ("field-compare", json!({"field": "email", "op": "exists", "value": "x"}), "/value", "takes no value"),
            ("field-compare", json!({"field": "email", "op": "in", "value": ["a", 1]}), "/value/1", "email is text"),
            ("field-compare", json!({"field": "email", "op": "eq", "value": "x", "not": 1}), "/not", "unknown field"),
            ("has-channel", json!({"channel": "fax"}), "/channel", "unknown variant `fax`"),
            ("has-channel", json!({"channel": "sms", "not_opted_out": "yes"}), "/not_opted_out", "invalid type"),
            ("is-one-of", json!({"field": "lead_source", "values": []}), "/values", "at least one value"),
            ("is-one-of", json!({"field": "lead_source", "values": ["Web", " "]}), "/values/1", "must not be blank"),
            ("is-one-of", json!({"field": "lead_source", "values": ["Web", "WEB"]}), "/values/1", "repeats /values/0"),
            ("is-one-of", json!({"field": "owner_id", "values": ["x"]}), "/field", "unknown variant `owner_id`"),
            ("time-window", json!({"start": "9am", "end": "17:00"}), "/start", "HH:MM"),
            ("time-window", json!({"start": "09:00", "end": "09:00"}), "/end", "must differ from start"),
            (
                "time-window",
                json!({"weekdays": ["mon", "funday"], "start": "09:00", "end": "17:00"}),
                "/weekdays/1",
                "funday",
            ),
            (
                "time-window",
                json!({"weekdays": ["mon", "mon"], "start": "09:00", "end": "17:00"}),
                "/weekdays/1",
                "repeats",
            ),
        ] {
            refused(&app, plugin, config, field, words).await;
        }
        // The same predicates with good configs save.
        for (plugin, config) in [
            ("field-compare", json!({"field": "company.owner_id", "op": "exists"})),
            ("has-channel", json!({"channel": "phone"})),
            ("is-one-of", json!({"field": "contact_type", "values": ["Clients"]})),
            ("time-window", json!({"weekdays": ["fri"], "start": "22:00", "end": "02:00"})),
        ] {
            let made = post(&app, "/v1/sequences", &held_task(&criterion(plugin, &config, "skip"))).await;
            assert_eq!(made.status, 201, "{plugin}: {}", made.text);
        }
    })
    .await;
}
