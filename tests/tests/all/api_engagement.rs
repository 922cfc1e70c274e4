//! The rows of work lists (the Engage view, a company's work items) with
//! their names and priority, and the company engagement overview with its
//! health score, settings and weekly snapshots, over the API on both
//! backends.

use serde_json::{Value, json};
use stepwise::crm::{Company, Role, User};
use stepwise::engagement::{Activation, StepTiming};
use stepwise_tests::app::{Answer, TestApp};
use stepwise_tests::db::for_each_backend;
use stepwise_tests::scenario::{settings, step};

async fn send(app: &TestApp, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> Answer {
    app.call(method, path, Some(key), body.as_ref()).await
}

/// A company of the test account, under `parent`.
async fn company(app: &TestApp, name: &str, parent: Option<&str>) -> String {
    let company = Company { name: name.into(), parent_id: parent.map(str::to_owned), ..Company::default() };
    app.world.engine.create_company(&app.world.account, &company, &app.world.editor()).await.unwrap().id
}

/// A manual task step named `name` with a priority (none when `None`).
fn task_step(name: &str, priority: Option<&str>) -> stepwise::engagement::Step {
    let mut config = json!({ "title": format!("{name} {{{{contact.first_name}}}}") });
    if let Some(priority) = priority {
        config["priority"] = json!(priority);
    }
    let mut step = step("task", config, Activation::Manual, StepTiming::Delay { ms: 0 });
    step.name = name.into();
    step
}

/// A contact of `company` enrolled in a one-task sequence of `priority`,
/// its task active on the agent's Engage view.
async fn working(app: &TestApp, first_name: &str, company: Option<&str>, step: &str, priority: Option<&str>) -> String {
    let world = &app.world;
    let contact = world
        .contact(|c| {
            c.first_name = first_name.into();
            c.company_id = company.map(str::to_owned);
        })
        .await;
    let sequence = world
        .sequence(stepwise::engagement::TimingMode::AfterPrevious, settings(), vec![task_step(step, priority)])
        .await;
    world.enroll(&contact, &sequence).await;
    world.run().await;
    contact
}

fn titles(answer: &Answer, key: &str) -> Vec<String> {
    answer.json[key].as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_engage_view_gives_each_row_its_names_and_sorts_and_filters_by_priority() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let acme = company(&app, "Acme", None).await;
        working(&app, "Ada", Some(&acme), "Low call", Some("low")).await;
        working(&app, "Bob", None, "Urgent call", Some("high")).await;
        working(&app, "Cy", Some(&acme), "Usual call", None).await;

        let engage = app.get("/v1/engage?sort=priority", Some(&app.agent_key)).await;
        assert_eq!(engage.status, 200, "{}", engage.text);
        assert_eq!(titles(&engage, "actions"), ["Urgent call", "Usual call", "Low call"]);
        let low = &engage.json["actions"][2];
        assert_eq!(low["priority"], "low");
        assert_eq!(low["contact_name"], "Ada Lovelace");
        assert_eq!(low["company_name"], "Acme");
        assert_eq!(low["company_id"], acme.as_str());
        assert_eq!(low["sequence_name"], "Welcome");
        assert_eq!(low["status"], "active", "the action's own fields are in the row too");
        assert_eq!(engage.json["actions"][1]["priority"], "normal", "a step without a priority is normal");
        assert_eq!(engage.json["actions"][0]["company_name"], Value::Null);

        let reversed = app.get("/v1/engage?sort=-priority", Some(&app.agent_key)).await;
        assert_eq!(titles(&reversed, "actions"), ["Low call", "Usual call", "Urgent call"]);
        let high = app.get("/v1/engage?priority=high", Some(&app.agent_key)).await;
        assert_eq!(titles(&high, "actions"), ["Urgent call"]);

        // Pages by priority follow the cursor without losing or repeating a row.
        let mut seen = Vec::new();
        let mut path = "/v1/engage?sort=priority&limit=1".to_owned();
        loop {
            let page = app.get(&path, Some(&app.agent_key)).await;
            assert_eq!(page.status, 200, "{}", page.text);
            seen.extend(titles(&page, "actions"));
            match page.json["next_after"].as_str() {
                Some(next) => path = format!("/v1/engage?sort=priority&limit=1&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen, ["Urgent call", "Usual call", "Low call"]);

        // Nothing is overdue yet; an hour on, all three are.
        let overdue = app.get("/v1/engage?overdue=true", Some(&app.agent_key)).await;
        assert_eq!(titles(&overdue, "actions"), Vec::<String>::new());
        app.world.clock.advance(chrono::Duration::hours(1));
        let overdue = app.get("/v1/engage?overdue=true", Some(&app.agent_key)).await;
        assert_eq!(overdue.json["actions"].as_array().unwrap().len(), 3, "{}", overdue.text);
        assert_eq!(overdue.json["actions"][0]["overdue"], true);

        let bad = app.get("/v1/engage?sort=urgency", Some(&app.agent_key)).await;
        assert_eq!(bad.status, 422, "{}", bad.text);
        assert_eq!(bad.json["errors"][0]["field"], "/sort");
        let bad = app.get("/v1/engage?priority=urgent", Some(&app.agent_key)).await;
        assert_eq!(bad.status, 400, "{}", bad.text);
        assert!(bad.text.contains("priority"), "{}", bad.text);
        let bad = app.get("/v1/engage?after=nonsense", Some(&app.agent_key)).await;
        assert_eq!(bad.status, 422, "{}", bad.text);
        assert_eq!(bad.json["errors"][0]["field"], "/after");
    })
    .await;
}

#[tokio::test]
async fn a_company_overview_shows_its_upcoming_touchpoints_work_hierarchy_timeline_and_health() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let group = company(&app, "Group", None).await;
        let acme = company(&app, "Acme", Some(&group)).await;
        let west = company(&app, "Acme West", Some(&acme)).await;
        let east = company(&app, "Acme East", Some(&acme)).await;
        let depot = company(&app, "West Depot", Some(&west)).await;
        working(&app, "Ada", Some(&acme), "Acme call", Some("low")).await;
        working(&app, "Bea", Some(&west), "West call", Some("high")).await;
        // A contact whose next step is a day away: upcoming, not yet work.
        let later = app.world.contact(|c| c.company_id = Some(acme.clone())).await;
        let mut tomorrow = task_step("Follow-up", None);
        tomorrow.timing = StepTiming::Delay { ms: 86_400_000 };
        let sequence =
            app.world.sequence(stepwise::engagement::TimingMode::AfterPrevious, settings(), vec![tomorrow]).await;
        app.world.enroll(&later, &sequence).await;

        let overview = app.get(&format!("/v1/companies/{acme}/engagement"), Some(&app.agent_key)).await;
        assert_eq!(overview.status, 200, "{}", overview.text);
        let o = &overview.json;
        assert_eq!(o["company"]["name"], "Acme");
        let ancestors: Vec<&str> =
            o["hierarchy"]["ancestors"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(ancestors, ["Group"]);
        let below: Vec<(String, u64)> = o["hierarchy"]["descendants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["company"]["name"].as_str().unwrap().to_owned(), d["depth"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            below,
            [("Acme East".to_owned(), 1), ("Acme West".to_owned(), 1), ("West Depot".to_owned(), 2)],
            "by depth, then name"
        );
        assert_eq!(titles(&overview, "work_items"), ["Acme call"], "its own contacts only");
        assert_eq!(titles(&overview, "upcoming"), ["Follow-up"]);
        assert!(!o["timeline"].as_array().unwrap().is_empty(), "its contacts' events");
        let at: Vec<&str> = o["timeline"].as_array().unwrap().iter().map(|e| e["at"].as_str().unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] >= w[1]), "newest first: {at:?}");
        assert_eq!(o["health"]["indicators"].as_array().unwrap().len(), 6);
        let history = o["health"]["history"].as_array().unwrap();
        assert_eq!(history.len(), 12);
        assert_eq!(history[11]["score"], o["health"]["score"], "this week is the score now");
        assert!(history[..11].iter().all(|w| w["score"].is_null()), "no snapshots yet");

        // With the companies below it, by priority (the default) or due date.
        let all = app.get(&format!("/v1/companies/{acme}/work-items?children=true"), Some(&app.agent_key)).await;
        assert_eq!(all.status, 200, "{}", all.text);
        assert_eq!(titles(&all, "work_items"), ["West call", "Acme call"]);
        let low =
            app.get(&format!("/v1/companies/{acme}/work-items?children=true&priority=low"), Some(&app.agent_key)).await;
        assert_eq!(titles(&low, "work_items"), ["Acme call"]);
        let held = app.get(&format!("/v1/companies/{acme}/work-items?state=held"), Some(&app.agent_key)).await;
        assert_eq!(titles(&held, "work_items"), Vec::<String>::new());
        let east_items = app.get(&format!("/v1/companies/{east}/work-items"), Some(&app.agent_key)).await;
        assert_eq!(titles(&east_items, "work_items"), Vec::<String>::new());
        let depot_view = app.get(&format!("/v1/companies/{depot}/engagement"), Some(&app.agent_key)).await;
        let ancestors: Vec<&str> = depot_view.json["hierarchy"]["ancestors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(ancestors, ["Acme West", "Acme", "Group"], "nearest first, up to the root");

        // The health score's indicators sort by any column.
        let by_gap = app.get(&format!("/v1/companies/{acme}/health?sort=-weight"), Some(&app.agent_key)).await;
        assert_eq!(by_gap.status, 200, "{}", by_gap.text);
        let weights: Vec<f64> =
            by_gap.json["indicators"].as_array().unwrap().iter().map(|i| i["weight"].as_f64().unwrap()).collect();
        assert!(weights.windows(2).all(|w| w[0] >= w[1]), "{weights:?}");
        let bad = app.get(&format!("/v1/companies/{acme}/health?sort=colour"), Some(&app.agent_key)).await;
        assert_eq!(bad.status, 422, "{}", bad.text);
    })
    .await;
}

#[tokio::test]
async fn another_accounts_company_has_no_overview_work_or_health() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let theirs = stepwise_tests::scenario::World::new(app.world.store.clone()).await;
        let company = Company { name: "Theirs".into(), ..Company::default() };
        let id = theirs.engine.create_company(&theirs.account, &company, &theirs.editor()).await.unwrap().id;
        for path in ["engagement", "work-items", "health"] {
            let answer = app.get(&format!("/v1/companies/{id}/{path}"), Some(&app.admin_key)).await;
            assert_eq!(answer.status, 404, "{path}: {}", answer.text);
        }
        let refresh =
            send(&app, reqwest::Method::POST, &format!("/v1/companies/{id}/health/refresh"), &app.admin_key, None)
                .await;
        assert_eq!(refresh.status, 404, "{}", refresh.text);
    })
    .await;
}

#[tokio::test]
async fn health_settings_are_checked_at_their_fields_and_change_the_score() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let acme = company(&app, "Acme", None).await;
        let defaults = app.get("/v1/health-settings", Some(&app.agent_key)).await;
        assert_eq!(defaults.status, 200, "{}", defaults.text);
        assert_eq!(defaults.json["window_days"], 90);

        let bad = json!({
            "indicators": [
                {"indicator": "replies", "target": -1, "weight": 1},
                {"indicator": "replies", "target": 1, "weight": 1},
                {"indicator": "positive_outcome_share", "target": 2, "weight": 1}
            ],
            "window_days": 0
        });
        let refused = send(&app, reqwest::Method::PUT, "/v1/health-settings", &app.admin_key, Some(bad)).await;
        assert_eq!(refused.status, 422, "{}", refused.text);
        let fields: Vec<&str> =
            refused.json["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(
            fields,
            ["/indicators/0/target", "/indicators/1/indicator", "/indicators/2/target", "/window_days"],
            "{}",
            refused.text
        );
        assert_eq!(app.get("/v1/health-settings", Some(&app.agent_key)).await.json, defaults.json, "nothing saved");

        // Replies alone: a company with none scores 0; the agent may not change it.
        let replies_only =
            json!({"indicators": [{"indicator": "replies", "target": 1, "weight": 1}], "window_days": 30});
        let agent =
            send(&app, reqwest::Method::PUT, "/v1/health-settings", &app.agent_key, Some(replies_only.clone())).await;
        assert_eq!(agent.status, 403, "{}", agent.text);
        let saved = send(&app, reqwest::Method::PUT, "/v1/health-settings", &app.admin_key, Some(replies_only)).await;
        assert_eq!(saved.status, 200, "{}", saved.text);
        let health = app.get(&format!("/v1/companies/{acme}/health"), Some(&app.agent_key)).await;
        assert_eq!(health.json["score"], 0.0, "{}", health.text);
        assert_eq!(health.json["window_days"], 30);
        assert_eq!(health.json["indicators"][0]["gap"], 1.0);
        let audit = app.get("/v1/audit?target_type=health_settings", Some(&app.admin_key)).await;
        assert_eq!(audit.status, 200, "{}", audit.text);
        assert_eq!(audit.json["entries"][0]["action"], "health_settings.changed", "{}", audit.text);
    })
    .await;
}

#[tokio::test]
async fn the_weekly_sweep_and_a_refresh_keep_one_snapshot_a_week() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let acme = company(&app, "Acme", None).await;
        company(&app, "Initech", None).await;
        let engine = &app.world.engine;
        assert_eq!(engine.snapshot_health().await.unwrap(), 2, "every company once");
        assert_eq!(engine.snapshot_health().await.unwrap(), 0, "and not again this week");

        let viewer = app
            .world
            .user(User { name: "Vi".into(), email: "vi@example.com".into(), role: Role::Viewer, ..User::default() })
            .await;
        let mut tx = app.world.store().begin().await.unwrap();
        let (_, viewer_key) = tx.create_api_key(&app.world.account, &viewer, "test", app.world.now()).await.unwrap();
        tx.commit().await.unwrap();
        let path = format!("/v1/companies/{acme}/health/refresh");
        assert_eq!(send(&app, reqwest::Method::POST, &path, &viewer_key, None).await.status, 403);

        // A week on, with an overdue task, the sweep takes a second snapshot.
        working(&app, "Ada", Some(&acme), "Call", None).await;
        app.world.clock.advance(chrono::Duration::days(7));
        assert_eq!(engine.snapshot_health().await.unwrap(), 2);
        let health = app.get(&format!("/v1/companies/{acme}/health"), Some(&app.agent_key)).await;
        let history = health.json["history"].as_array().unwrap();
        let scored: Vec<&Value> = history.iter().filter(|w| !w["score"].is_null()).collect();
        assert_eq!(scored.len(), 2, "{}", health.text);
        assert!(health.json["snapshot_at"].is_string());
        let overdue = health.json["indicators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["indicator"] == "overdue_work_items")
            .unwrap()
            .clone();
        assert_eq!(overdue["value"], 1.0, "{overdue}");
        assert!(history[10]["score"].as_f64().unwrap() > history[11]["score"].as_f64().unwrap(), "{history:?}");

        // A refresh replaces this week's snapshot with the score now.
        app.world.clock.advance(chrono::Duration::hours(1));
        let refreshed = send(&app, reqwest::Method::POST, &path, &app.agent_key, None).await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.text);
        assert_ne!(refreshed.json["snapshot_at"], health.json["snapshot_at"]);
        let history = refreshed.json["history"].as_array().unwrap();
        assert_eq!(history.iter().filter(|w| !w["score"].is_null()).count(), 2, "still one a week");
    })
    .await;
}
