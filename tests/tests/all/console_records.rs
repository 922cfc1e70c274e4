//! Contacts, companies and enrollments in the console, in a real headless
//! browser: a rep finds a contact, enrolls them, pauses, resumes and stops
//! the enrollment; the enrollment list filters by status with the [I]
//! columns; a viewer sees the same pages without their forms; on both
//! backends. And the enrollment list of the API.

use serde_json::json;
use stepwise::crm::{Company, Role, User};
use stepwise::engagement::{Activation, StepTiming, TimingMode};
use stepwise_tests::app::TestApp;
use stepwise_tests::browser::{Browser, Page, every_field_is_labelled, fits_a_phone, sign_in};
use stepwise_tests::db::for_each_backend;
use stepwise_tests::scenario::{World, settings, step};

const PASSWORD: &str = "a long enough password";

/// A sequence of two manual tasks a day apart, named `name`.
async fn sequence(world: &World, name: &str) -> String {
    let task = |title: &str, ms: i64| {
        let mut s = step("task", json!({ "title": title }), Activation::Manual, StepTiming::Delay { ms });
        s.name = title.into();
        s
    };
    let id = world
        .sequence(TimingMode::AfterPrevious, settings(), vec![task("Intro call", 0), task("Check-in", 86_400_000)])
        .await;
    let edit =
        stepwise::engine::SequenceEdit { name: Some(name.into()), description: None, plan_type: None, settings: None };
    world.engine.edit_sequence(&world.account, &id, edit, &world.editor()).await.unwrap();
    id
}

#[tokio::test]
async fn a_rep_finds_a_contact_enrolls_them_and_pauses_resumes_and_stops_the_enrollment() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let world = &app.world;
        world.engine.set_password(&world.account, &world.agent, PASSWORD, &world.editor()).await.unwrap();
        let acme = Company { name: "Acme Corp".into(), ..Company::default() };
        let acme = world.engine.create_company(&world.account, &acme, &world.editor()).await.unwrap().id;
        world
            .contact(|c| {
                c.first_name = "Ada".into();
                c.company_id = Some(acme.clone());
            })
            .await;
        world
            .contact(|c| {
                c.first_name = "Bob".into();
                c.email = Some("bob@example.com".into());
            })
            .await;
        sequence(world, "Onboarding").await;
        let browser = Browser::start();
        let base = app.base.clone();
        browser
            .run(move |client| async move {
                sign_in(&client, &base, "grace@example.com", PASSWORD).await;
                client.open(&format!("{base}/contacts")).await;
                client.fill("#q", "ada").await;
                client.follow("form[role=search] button").await;
                let list = client.text_of("table.rows tbody").await;
                assert!(list.contains("Ada Lovelace") && !list.contains("Bob"), "{list}");
                client.follow("table.rows tbody a[href^='/contacts/']").await;
                assert_eq!(client.text_of("h1").await, "Ada Lovelace");
                assert!(client.body_text().await.contains("Acme Corp"));
                every_field_is_labelled(&client).await;
                fits_a_phone(&client).await;

                let onboarding = client.eval("return document.querySelector('#sequence_id option').value;").await;
                client.choose("#sequence_id", onboarding.as_str().unwrap()).await;
                client.follow("form[action$='/enroll'] button").await;
                assert!(client.path().await.starts_with("/enrollments/"), "{}", client.path().await);
                assert!(client.text_of(".flash").await.contains("enrolled"));
                let enrollment = client.path().await.split('?').next().unwrap().to_owned();
                assert!(client.text_of("main").await.contains("Intro call"), "the actions and the current step");
                every_field_is_labelled(&client).await;
                fits_a_phone(&client).await;

                client.follow("form[action$='/pause'] button").await;
                assert!(client.text_of(".flash").await.contains("paused"));
                assert!(client.text_of("dl.facts").await.contains("paused"));
                // The enrollment list filtered by status shows it with the [I] columns.
                client.open(&format!("{base}/enrollments?status=paused")).await;
                let header = client.text_of("table.rows thead").await;
                for column in
                    ["Contact", "Step", "Started", "Last completed", "Next action on", "Last engaged", "Last contacted"]
                {
                    assert!(header.contains(column), "{column} in {header}");
                }
                assert!(client.text_of("table.rows tbody").await.contains("Ada Lovelace"));
                client.open(&format!("{base}/enrollments?status=running")).await;
                assert!(!client.text_of("table.rows tbody").await.contains("Ada Lovelace"));

                client.open(&format!("{base}{enrollment}")).await;
                client.follow("form[action$='/resume'] button").await;
                assert!(client.text_of(".flash").await.contains("resumed"));
                client.choose("#disposition", "skip").await;
                client.follow("form[aria-label=Stop] button").await;
                assert!(client.text_of(".flash").await.contains("stopped"));
                assert!(!client.has("form[action$='/pause']").await, "nothing left to pause");
            })
            .await;
    })
    .await;
}

#[tokio::test]
async fn enrolling_twice_is_shown_at_the_form_and_a_viewer_has_no_forms() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let world = &app.world;
        world.engine.set_password(&world.account, &world.agent, PASSWORD, &world.editor()).await.unwrap();
        let viewer =
            User { name: "Vic".into(), email: "vic@example.com".into(), role: Role::Viewer, ..User::default() };
        let viewer = world.user(viewer).await;
        world.engine.set_password(&world.account, &viewer, PASSWORD, &world.editor()).await.unwrap();
        let contact = world.contact(|c| c.first_name = "Ada".into()).await;
        let sequence = sequence(world, "Onboarding").await;
        let enrollment = world.enroll(&contact, &sequence).await.id;
        let browser = Browser::start();
        let base = app.base.clone();
        let engine = world.engine.clone();
        browser
            .run(move |client| async move {
                sign_in(&client, &base, "grace@example.com", PASSWORD).await;
                client.open(&format!("{base}/contacts/{contact}")).await;
                client.follow("form[action$='/enroll'] button").await;
                assert!(client.text_of("#enroll-error").await.contains("already enrolled"));
                assert_eq!(
                    client.eval("return document.querySelector('#sequence_id').getAttribute('aria-invalid');").await,
                    json!("true")
                );
                client.follow("header form[action='/sign-out'] button").await;

                sign_in(&client, &base, "vic@example.com", PASSWORD).await;
                client.open(&format!("{base}/contacts/{contact}")).await;
                assert!(client.body_text().await.contains("Onboarding"), "a viewer sees the contact's sequences");
                assert!(!client.has("form[action$='/enroll']").await);
                client.open(&format!("{base}/enrollments/{enrollment}")).await;
                assert!(!client.has("form[action$='/pause']").await && !client.has("form[action$='/remove']").await);
                let status = client
                    .eval(&format!(
                        "const token = document.querySelector('input[name=_csrf]').value;
                         return (await fetch('/enrollments/{enrollment}/cancel', {{method: 'POST',
                             body: new URLSearchParams({{_csrf: token}})}})).status;"
                    ))
                    .await;
                assert_eq!(status, json!(403));
                let mut tx = engine.read().await.unwrap();
                assert_eq!(tx.enrollment(&enrollment).await.unwrap().status.to_string(), "pending");
            })
            .await;
    })
    .await;
}

#[tokio::test]
async fn the_enrollment_list_filters_by_status_and_carries_names_and_contact_times() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let world = &app.world;
        let ada = world.contact(|c| c.first_name = "Ada".into()).await;
        let bob = world.contact(|c| c.first_name = "Bob".into()).await;
        let sequence = sequence(world, "Onboarding").await;
        let first = world.enroll(&ada, &sequence).await.id;
        world.clock.advance(chrono::Duration::seconds(1));
        world.enroll(&bob, &sequence).await;
        world.run().await;
        world.engine.stop(&world.account, &first, &world.agent, stepwise::engine::Disposition::Keep).await.unwrap();

        let all = app.get("/v1/enrollments", Some(&app.agent_key)).await;
        assert_eq!(all.status, 200, "{}", all.text);
        let rows = all.json["enrollments"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["contact_name"], "Bob Lovelace", "newest first");
        assert_eq!(rows[0]["sequence_name"], "Onboarding");
        assert_eq!(rows[0]["step_name"], "Intro call");
        assert!(rows[0].get("last_engaged").is_some() && rows[0].get("last_contacted").is_some());
        let paused = app.get("/v1/enrollments?status=paused", Some(&app.agent_key)).await;
        let ids: Vec<&str> =
            paused.json["enrollments"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [first.as_str()]);
        let of_ada = app.get(&format!("/v1/enrollments?contact={ada}"), Some(&app.agent_key)).await;
        assert_eq!(of_ada.json["enrollments"].as_array().unwrap().len(), 1);
        let paged = app.get("/v1/enrollments?limit=1", Some(&app.agent_key)).await;
        let next = paged.json["next_after"].as_str().unwrap();
        let second = app.get(&format!("/v1/enrollments?limit=1&after={next}"), Some(&app.agent_key)).await;
        assert_eq!(second.json["enrollments"][0]["id"], first.as_str());
        let bad = app.get("/v1/enrollments?status=sleeping", Some(&app.agent_key)).await;
        assert_eq!(bad.status, 400, "{}", bad.text);
        assert!(bad.text.contains("status"), "{}", bad.text);

        // A contact's and a sequence's enrollments read the same way, and
        // filter by status too.
        let hers = app.get(&format!("/v1/contacts/{ada}/enrollments"), Some(&app.agent_key)).await;
        assert_eq!(hers.status, 200, "{}", hers.text);
        let row = &hers.json["enrollments"][0];
        assert_eq!((&row["id"], &row["status"]), (&json!(first), &json!("paused")));
        assert_eq!((&row["sequence_name"], &row["step_name"]), (&json!("Onboarding"), &json!("Intro call")));
        assert_eq!((&row["contact_name"], &row["version"]), (&json!("Ada Lovelace"), &json!(1)));
        assert!(row.get("last_engaged").is_some() && row.get("last_contacted").is_some());
        let path = format!("/v1/sequences/{sequence}/enrollments");
        let running = app.get(&format!("{path}?status=running"), Some(&app.agent_key)).await;
        let names: Vec<&str> = running.json["enrollments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["contact_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Bob Lovelace"], "{}", running.text);
        let everyone = app.get(&path, Some(&app.agent_key)).await;
        assert_eq!(everyone.json["enrollments"].as_array().unwrap().len(), 2);
        let none = app.get(&format!("/v1/contacts/{ada}/enrollments?status=completed"), Some(&app.agent_key)).await;
        assert_eq!(none.json["enrollments"], json!([]));
        let bad = app.get(&format!("{path}?status=sleeping"), Some(&app.agent_key)).await;
        assert_eq!(bad.status, 400, "{}", bad.text);
    })
    .await;
}

/// The contact ids a console page links to, in order.
fn linked_contacts(page: &str) -> Vec<String> {
    page.split("href=\"/contacts/").skip(1).filter_map(|rest| rest.split('"').next()).map(str::to_owned).collect()
}

/// The link of a page's "Next page", unescaped.
fn next_page(page: &str) -> Option<String> {
    let link = page.split("id=\"next-page\" href=\"").nth(1)?.split('"').next()?;
    Some(link.replace("&amp;", "&"))
}

#[tokio::test]
async fn contact_lists_and_searches_page_through_every_match_once() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let world = &app.world;
        world.engine.set_password(&world.account, &world.agent, PASSWORD, &world.editor()).await.unwrap();
        for n in 0..57 {
            world.contact(|c| c.last_name = format!("Zed{n:02}")).await;
        }
        world.contact(|c| c.last_name = "Other".into()).await;
        let mut person = stepwise_tests::console::Person::new(&app.base);
        person.sign_in("grace@example.com", PASSWORD).await;
        for (start, expected) in [("/contacts", 58), ("/contacts?q=zed", 57)] {
            let mut seen = Vec::new();
            let mut path = Some(start.to_owned());
            let mut pages = 0;
            while let Some(at) = path {
                let page = person.get(&at).await;
                assert_eq!(page.status, 200, "{at}: {}", page.text);
                let ids = linked_contacts(&page.text);
                assert!(ids.len() <= 50, "a page holds 50 at most");
                seen.extend(ids);
                path = next_page(&page.text);
                pages += 1;
            }
            let unique: std::collections::BTreeSet<&String> = seen.iter().collect();
            assert_eq!((seen.len(), unique.len(), pages), (expected, expected, 2), "{start}");
        }
        let page = person.get("/contacts?after=not-a-cursor").await;
        assert_eq!(page.status, 400, "{}", page.text);
        assert!(page.text.contains("is not a cursor this list gave"), "{}", page.text);
    })
    .await;
}
