//! The console in a real headless browser: a rep signs in, works the
//! Engage view and sees the next step appear; what a viewer, another
//! account, a bad form value, a forged form and an expired session get;
//! the company overview; an action's plugin version and log (over plain
//! HTTP); on both backends.

use serde_json::json;
use stepwise::crm::{Company, Role, User};
use stepwise::engagement::{Activation, StepTiming, TimingMode};
use stepwise_tests::app::TestApp;
use stepwise_tests::browser::{Browser, Page, every_field_is_labelled, fits_a_phone, screenshot, sign_in};
use stepwise_tests::db::for_each_backend;
use stepwise_tests::scenario::{World, settings, step};

const PASSWORD: &str = "a long enough password";

/// A manual task step named `name`, due `delay_ms` after the previous one.
fn task(name: &str, priority: &str, delay_ms: i64) -> stepwise::engagement::Step {
    let config = json!({ "title": format!("{name} with {{{{contact.first_name}}}}"), "priority": priority,
                         "instructions": "Ask about their plans." });
    let mut step = step("task", config, Activation::Manual, StepTiming::Delay { ms: delay_ms });
    step.name = name.into();
    step
}

/// The app with the agent's password set, a company and a contact of it
/// enrolled in a two-task sequence, its first task on the agent's list.
async fn scene(store: stepwise::store::Store) -> (TestApp, String) {
    let app = TestApp::spawn(store).await;
    let world = &app.world;
    world.engine.set_password(&world.account, &world.agent, PASSWORD, &world.editor()).await.unwrap();
    let acme = Company { name: "Acme Corp".into(), ..Company::default() };
    let acme = world.engine.create_company(&world.account, &acme, &world.editor()).await.unwrap().id;
    let contact = world
        .contact(|c| {
            c.first_name = "Ada".into();
            c.company_id = Some(acme.clone());
        })
        .await;
    let steps = vec![task("Discovery call", "high", 0), task("Follow-up call", "normal", 0)];
    let sequence = world.sequence(TimingMode::AfterPrevious, settings(), steps).await;
    world.enroll(&contact, &sequence).await;
    world.run().await;
    (app, acme)
}

#[tokio::test]
async fn a_rep_signs_in_completes_a_task_and_sees_the_next_step_appear() {
    for_each_backend(|store| async move {
        let (app, _) = scene(store).await;
        let browser = Browser::start();
        let base = app.base.clone();
        let world_engine = app.world.engine.clone();
        browser
            .run(move |client| async move {
                // A wrong password is refused, and says so.
                sign_in(&client, &base, "grace@example.com", "not the password").await;
                assert!(client.text_of("#problem").await.contains("do not match"));
                // The right one opens the Engage view.
                sign_in(&client, &base, "grace@example.com", PASSWORD).await;
                assert_eq!(client.path().await, "/engage");
                let row = client.text_of("table.rows tbody tr").await;
                for shown in ["Discovery call", "Ada Lovelace", "Acme Corp", "Welcome", "task", "high"] {
                    assert!(row.contains(shown), "`{shown}` not in the row: {row}");
                }
                every_field_is_labelled(&client).await;
                fits_a_phone(&client).await;
                screenshot(&client, "console-engage.png").await;
                // Sorting by priority goes through the form.
                client.choose("#sort", "priority").await;
                client.follow("form.filters button[type=submit]").await;
                assert!(client.path().await.contains("sort=priority"));

                client.follow("table.rows tbody tr a[href^='/actions/']").await;
                assert!(client.text_of("main").await.contains("Ask about their plans."));
                every_field_is_labelled(&client).await;
                fits_a_phone(&client).await;
                client.choose("#result", "none").await;
                client.follow("form[aria-label=Complete] button[type=submit]").await;
                assert!(client.text_of(".flash").await.contains("completed"));

                // The scheduler makes the next step due; the list shows it.
                world_engine.run_until_idle().await.unwrap();
                client.refresh().await.unwrap();
                let list = client.text_of("table.rows tbody").await;
                assert!(list.contains("Follow-up call"), "{list}");
                assert!(!list.contains("Discovery call"), "{list}");

                // Signing out ends the session: the list asks for a sign-in again.
                client.follow("header form[action='/sign-out'] button").await;
                client.open(&format!("{base}/engage")).await;
                assert!(client.path().await.starts_with("/sign-in"), "{}", client.path().await);
            })
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_viewer_sees_but_cannot_act_and_a_forged_form_is_refused() {
    for_each_backend(|store| async move {
        let (app, _) = scene(store).await;
        let world = &app.world;
        let viewer =
            User { name: "Vic".into(), email: "vic@example.com".into(), role: Role::Viewer, ..User::default() };
        let viewer = world.user(viewer).await;
        world.engine.set_password(&world.account, &viewer, PASSWORD, &world.editor()).await.unwrap();
        let action = world.engage(&world.agent).await[0].id.clone();
        let browser = Browser::start();
        let base = app.base.clone();
        let engine = world.engine.clone();
        let account = world.account.clone();
        browser
            .run(move |client| async move {
                sign_in(&client, &base, "vic@example.com", PASSWORD).await;
                // "Why is this not on my list?" for any action by its id.
                client.fill("#action", &action).await;
                client.follow("form[action='/why'] button").await;
                assert_eq!(client.path().await, format!("/actions/{action}"));
                assert!(client.text_of("#why").await.contains("Why is this (not) on the Engage view?"));
                assert!(client.text_of("ol.checks").await.contains("yes"), "the checklist, answered");
                client.open(&format!("{base}/actions/{action}")).await;
                let page = client.body_text().await;
                assert!(page.contains("Discovery call"), "{page}");
                assert!(!client.has("form[aria-label=Complete]").await, "no completion for a viewer");
                assert!(!client.has("form[action$='/skip']").await, "no skip for a viewer");
                // A forged skip with the viewer's own token is refused as the API refuses it.
                let status = client
                    .eval(&format!(
                        "const token = document.querySelector('input[name=_csrf]').value;
                         const answer = await fetch('/actions/{action}/skip', {{method: 'POST',
                             body: new URLSearchParams({{_csrf: token}})}});
                         return answer.status;"
                    ))
                    .await;
                assert_eq!(status, json!(403));
                assert_eq!(engine.action_of(&account, &action).await.unwrap().status.to_string(), "active");
            })
            .await;
    })
    .await;
}

#[tokio::test]
async fn forms_without_the_sessions_token_change_nothing_and_sessions_expire() {
    for_each_backend(|store| async move {
        let (app, _) = scene(store).await;
        let world = &app.world;
        let action = world.engage(&world.agent).await[0].id.clone();
        let browser = Browser::start();
        let base = app.base.clone();
        let engine = world.engine.clone();
        let clock = world.clock.clone();
        let account = world.account.clone();
        browser
            .run(move |client| async move {
                sign_in(&client, &base, "grace@example.com", PASSWORD).await;
                client.open(&format!("{base}/actions/{action}")).await;
                let status = client
                    .eval(&format!(
                        "const answer = await fetch('/actions/{action}/skip', {{method: 'POST',
                             body: new URLSearchParams({{_csrf: 'forged'}})}});
                         return answer.status;"
                    ))
                    .await;
                assert_eq!(status, json!(403));
                let status = client
                    .eval(&format!("return (await fetch('/actions/{action}/skip', {{method: 'POST'}})).status;"))
                    .await;
                assert_eq!(status, json!(415), "not a form at all");
                assert_eq!(engine.action_of(&account, &action).await.unwrap().status.to_string(), "active");
                // The page's own form does it.
                client.follow("form[action$='/skip'] button").await;
                assert!(client.text_of(".flash").await.contains("skipped"));
                assert_eq!(engine.action_of(&account, &action).await.unwrap().status.to_string(), "skipped");

                // Twelve idle hours later the session is over.
                clock.advance(chrono::Duration::hours(13));
                client.open(&format!("{base}/engage")).await;
                assert!(client.path().await.starts_with("/sign-in?next="), "{}", client.path().await);
            })
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_bad_due_date_is_shown_at_its_field_and_changes_nothing() {
    for_each_backend(|store| async move {
        let (app, _) = scene(store).await;
        let world = &app.world;
        let action = world.engage(&world.agent).await[0].id.clone();
        let due = world.engine.action_of(&world.account, &action).await.unwrap().due_at;
        let browser = Browser::start();
        let base = app.base.clone();
        let engine = world.engine.clone();
        let account = world.account.clone();
        browser
            .run(move |client| async move {
                sign_in(&client, &base, "grace@example.com", PASSWORD).await;
                client.open(&format!("{base}/actions/{action}")).await;
                // The browser's own date picker cannot send a bad value; a
                // client that skips it can.
                client.eval("const f = document.querySelector('#due_at'); f.type = 'text'; f.required = false;").await;
                client.fill("#due_at", "31/02/2025 9am").await;
                client.follow("form[aria-label=Reschedule] button[type=submit]").await;
                assert!(client.text_of("#due_at-error").await.contains("31/02/2025 9am"));
                assert_eq!(
                    client.eval("return document.querySelector('#due_at').getAttribute('aria-invalid');").await,
                    json!("true")
                );
                assert_eq!(engine.action_of(&account, &action).await.unwrap().due_at, due, "nothing changed");
                // Hidden from the list, it is processed again.
                client.follow("form[action$='/hide'] button").await;
                assert!(client.text_of(".flash").await.contains("hidden"));
                assert!(!engine.action_of(&account, &action).await.unwrap().show_on_engage);
            })
            .await;
    })
    .await;
}

#[tokio::test]
async fn another_accounts_records_are_not_found_pages() {
    for_each_backend(|store| async move {
        let (app, _) = scene(store).await;
        let theirs = World::new(app.world.store.clone()).await;
        let company = Company { name: "Theirs".into(), ..Company::default() };
        let their_company = theirs.engine.create_company(&theirs.account, &company, &theirs.editor()).await.unwrap().id;
        let contact = theirs.contact(|_| {}).await;
        let sequence =
            theirs.sequence(TimingMode::AfterPrevious, settings(), vec![task("Their call", "normal", 0)]).await;
        theirs.enroll(&contact, &sequence).await;
        theirs.run().await;
        let their_action = theirs.engage(&theirs.agent).await[0].id.clone();
        let browser = Browser::start();
        let base = app.base.clone();
        browser
            .run(move |client| async move {
                sign_in(&client, &base, "grace@example.com", PASSWORD).await;
                for path in
                    [format!("/actions/{their_action}"), format!("/companies/{their_company}"), "/no-such-page".into()]
                {
                    client.open(&format!("{base}{path}")).await;
                    assert_eq!(client.text_of("h1").await, "Not found", "{path}");
                    assert!(!client.body_text().await.contains("Their call"));
                }
            })
            .await;
    })
    .await;
}

#[tokio::test]
async fn the_company_page_shows_its_overview_and_refreshes_its_health() {
    for_each_backend(|store| async move {
        let (app, acme) = scene(store).await;
        let world = &app.world;
        let child = Company { name: "Acme Labs".into(), parent_id: Some(acme.clone()), ..Company::default() };
        world.engine.create_company(&world.account, &child, &world.editor()).await.unwrap();
        let browser = Browser::start();
        let base = app.base.clone();
        browser
            .run(move |client| async move {
                sign_in(&client, &base, "grace@example.com", PASSWORD).await;
                client.open(&format!("{base}/companies/{acme}")).await;
                assert_eq!(client.text_of("h1").await, "Acme Corp");
                let page = client.body_text().await;
                for shown in ["Acme Labs", "Health", "Days since last engaged", "Discovery call", "Timeline"] {
                    assert!(page.contains(shown), "`{shown}` not on the page");
                }
                assert!(client.has("svg.chart[role=img] title").await, "the history chart");
                every_field_is_labelled(&client).await;
                fits_a_phone(&client).await;
                // Indicators sort by a column's link.
                client.follow("a[href*='hsort=weight']").await;
                let first = client.text_of("#indicators-title ~ div table tbody tr td").await;
                assert_eq!(
                    first, "Bounces",
                    "the lightest first (bounces and opt-outs weigh 10, in the settings' order)"
                );
                client.follow("form[action$='/health/refresh'] button").await;
                assert!(client.text_of(".flash").await.contains("refreshed"));
                assert!(client.body_text().await.contains("This week's snapshot"));
            })
            .await;
    })
    .await;
}

/// An action's page says which version of its plugin answered and shows the
/// lines its calls logged, as `GET /v1/actions/{id}` does.
#[tokio::test]
async fn an_action_page_shows_its_plugins_version_and_log() {
    for_each_backend(|store| async move {
        let (app, _) = scene(store).await;
        let world = &app.world;
        let logging = step("host-caller", json!({"call": "log"}), Activation::Automatic, StepTiming::Delay { ms: 0 });
        let sequence = world.sequence(TimingMode::AfterPrevious, settings(), vec![logging]).await;
        let contact = world.contact(|c| c.first_name = "Bea".into()).await;
        let enrollment = world.enroll(&contact, &sequence).await;
        world.run().await;
        let action = world.action(&enrollment.id, 0).await;

        let mut grace = stepwise_tests::console::Person::new(&app.base);
        grace.sign_in("grace@example.com", PASSWORD).await;
        let page = grace.get(&format!("/actions/{}", action.id)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(page.text.contains(&format!("host-caller {}", env!("CARGO_PKG_VERSION"))), "{}", page.text);
        assert!(page.text.contains("Plugin log") && page.text.contains("hello from host-caller"), "{}", page.text);

        // A step whose plugin logged nothing has no log section.
        let quiet = world.engage(&world.agent).await[0].id.clone();
        let page = grace.get(&format!("/actions/{quiet}")).await;
        assert_eq!(page.status, 200);
        assert!(!page.text.contains("Plugin log"), "{}", page.text);
    })
    .await;
}
