//! The sequence builder and an admin's whole journey through the console,
//! in a real headless browser: upload an add-on predicate and enable it;
//! start a sequence and build its steps (a config form made from each
//! plugin's JSON Schema, problems shown at their fields, steps added,
//! moved and removed, a criterion with the add-on); publish and activate;
//! enroll a contact; the held step is released when the contact pays; the
//! rep completes it; the report shows it; the steps open again for a new
//! version. An agent may do none of the building. On both backends.

use serde_json::json;
use stepwise_tests::app::TestApp;
use stepwise_tests::browser::{
    Browser, Page, every_field_is_labelled, fits_a_phone, screenshot, sign_in, upload_add_on,
};
use stepwise_tests::db::for_each_backend;

const PASSWORD: &str = "a long enough password";

/// What the sequence page's facts say for `term`.
async fn fact(client: &fantoccini::Client, term: &str) -> String {
    let found = client
        .eval(&format!(
            "const dt = [...document.querySelectorAll('dl.facts dt')].find(d => d.textContent === '{term}');
             return dt ? dt.nextElementSibling.textContent : null;"
        ))
        .await;
    found.as_str().unwrap_or_else(|| panic!("no fact `{term}`")).to_owned()
}

#[tokio::test]
async fn an_admin_uploads_an_add_on_builds_a_sequence_with_it_enrolls_and_reads_the_report() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let world = &app.world;
        world.console_people(PASSWORD).await;
        let contact = world
            .contact(|c| {
                c.first_name = "Ada".into();
                c.last_name = "Lovelace".into();
                c.email = Some("ada@example.com".into());
            })
            .await;
        let browser = Browser::start();
        let base = app.base.clone();
        let key = app.admin_key.clone();
        let engine = world.engine.clone();
        browser
            .run(move |client| async move {
                sign_in(&client, &base, "ann@example.com", PASSWORD).await;
                upload_add_on(&client, &base, stepwise_tests::add_ons::PROPOSAL_PAID, "proposal-paid").await;

                // A new sequence opens its builder, empty.
                client.open(&format!("{base}/sequences")).await;
                client.fill("#new-name", "Proposal follow-up").await;
                client.choose("#new-timing", "after_previous").await;
                client.follow("form[action='/sequences/new'] button").await;
                let builder = client.path().await;
                assert!(builder.ends_with("/builder"), "{builder}");
                let sequence = builder.trim_start_matches("/sequences/").trim_end_matches("/builder").to_owned();
                assert!(client.has("#no-steps").await);

                // A task, whose config form comes from its schema: a blank
                // title is the plugin's problem, a wait that is no number
                // the form's, each at its field, and what was typed stays.
                client.choose("#new_type", "task").await;
                client.follow("button[value=add]").await;
                assert!(client.text_of(".flash").await.contains("Step 1 added"));
                client.follow("button[value=check]").await;
                assert!(client.text_of("#s0-config-title-error").await.contains("must not be empty"));
                client.fill("#s0-name", "Proposal call").await;
                client.fill("#s0-config-title", "Call {{contact.first_name}} about the proposal").await;
                client.choose("#s0-config-priority", "high").await;
                client.fill("#s0-amount", "soon").await;
                client.follow("button[value=check]").await;
                assert!(client.text_of("#s0-amount-error").await.contains("`soon` is not a number"));
                assert_eq!(client.value_of("#s0-amount").await, "soon");
                assert_eq!(client.value_of("#s0-config-title").await, "Call {{contact.first_name}} about the proposal");
                assert!(!client.has("#s0-config-title-error").await, "the title is fine now");
                client.fill("#s0-amount", "0").await;

                // The uploaded predicate as a criterion; its own check finds
                // the spaces, at the criterion's field.
                client.choose("#s0-new-predicate", "proposal-paid").await;
                client.follow("button[value='criterion:0']").await;
                client.fill("#s0-c0-config-attribute", " paid ").await;
                client.follow("#publish").await;
                assert!(client.path().await.ends_with("/builder"), "nothing is published");
                assert!(client.text_of("#s0-c0-config-attribute-error").await.contains("leading or trailing spaces"));
                assert!(client.text_of("#problems").await.contains("1 problem(s)"));
                client.fill("#s0-c0-config-attribute", "proposal_paid").await;

                // Two more steps: one moved above the first and back, one
                // removed.
                client.choose("#new_type", "task").await;
                client.follow("button[value=add]").await;
                client.fill("#s1-name", "Send the contract").await;
                client.fill("#s1-config-title", "Send the contract to {{contact.first_name}}").await;
                client.follow("button[value='up:1']").await;
                assert_eq!(client.value_of("#s0-name").await, "Send the contract");
                assert_eq!(
                    client.value_of("#s1-c0-config-attribute").await,
                    "proposal_paid",
                    "the criterion moved along"
                );
                client.follow("button[value='down:0']").await;
                assert_eq!(client.value_of("#s0-name").await, "Proposal call");
                client.choose("#new_type", "sms").await;
                client.follow("button[value=add]").await;
                assert!(client.has("#step-2").await);
                screenshot(&client, "console-builder.png").await;
                every_field_is_labelled(&client).await;
                fits_a_phone(&client).await;
                client.follow("button[value='remove:2']").await;
                assert!(!client.has("#step-2").await);

                client.follow("#publish").await;
                assert_eq!(client.path().await, format!("/sequences/{sequence}?done=published"));
                let page = client.body_text().await;
                assert_eq!(fact(&client, "Version").await, "1");
                for shown in ["Proposal call", "Send the contract"] {
                    assert!(page.contains(shown), "`{shown}` not on the sequence: {page}");
                }
                client.follow("form[action$='/state'] input[value=active] + button").await;
                assert!(client.text_of(".flash").await.contains("active"));

                // Ada is enrolled; her call waits for the payment.
                client.open(&format!("{base}/contacts/{contact}")).await;
                client.choose("#sequence_id", &sequence).await;
                client.follow("form[action$='/enroll'] button").await;
                assert!(client.text_of(".flash").await.contains("enrolled"));
                engine.run_until_idle().await.unwrap();
                client.open(&format!("{base}/engage")).await;
                assert!(!client.body_text().await.contains("Proposal call"), "held until paid");

                let http = reqwest::Client::new();
                let url = format!("{base}/v1/contacts/{contact}");
                let read = |url: String| {
                    let (http, key) = (http.clone(), key.clone());
                    async move {
                        let text = http.get(url).bearer_auth(key).send().await.unwrap().text().await.unwrap();
                        serde_json::from_str::<serde_json::Value>(&text).unwrap()
                    }
                };
                let mut changed = read(url.clone()).await;
                changed["attributes"]["proposal_paid"] = json!(true);
                let put = http
                    .put(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(changed.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(put.status(), 200);
                engine.run_until_idle().await.unwrap();

                // Ann enrolled her, so the call is Ann's: high, on her list.
                client.open(&format!("{base}/engage")).await;
                let row = client.text_of("table.rows tbody tr").await;
                assert!(row.contains("Proposal call") && row.contains("Ada Lovelace") && row.contains("high"), "{row}");
                client.follow("table.rows tbody tr a[href^='/actions/']").await;
                assert!(client.text_of("main").await.contains("Call Ada about the proposal"), "the task as rendered");
                client.choose("#result", "positive").await;
                client.follow("form[aria-label=Complete] button[type=submit]").await;
                assert!(client.text_of(".flash").await.contains("completed"));
                engine.run_until_idle().await.unwrap();

                // The report counts it, in its charts and tables.
                client.open(&format!("{base}/sequences/{sequence}")).await;
                assert!(client.has("svg.chart[aria-label='Actions completed by step'] rect").await);
                assert!(client.has("svg.chart[aria-label='Completed enrollments by outcome'] rect").await);
                assert!(client.has("svg.chart[aria-label^='Enrollments ended by week'] rect title").await);
                let page = client.body_text().await;
                assert!(page.contains("completed: 1") && page.contains("positive"), "{page}");
                client.eval("document.querySelector('#report-title').scrollIntoView(); return null;").await;
                screenshot(&client, "console-report.png").await;

                // The steps open again as they were published, for version 2.
                client.follow("#edit-steps").await;
                assert_eq!(client.value_of("#s0-config-title").await, "Call {{contact.first_name}} about the proposal");
                assert_eq!(client.value_of("#s0-config-priority").await, "high");
                assert_eq!(client.value_of("#s0-c0-config-attribute").await, "proposal_paid");
                assert!(client.body_text().await.contains("Version 1 is published"));
                client.fill("#s1-amount", "3").await;
                client.choose("#s1-unit", "days").await;
                client.follow("#publish").await;
                assert_eq!(fact(&client, "Version").await, "2");
                let got = read(format!("{base}/v1/sequences/{sequence}")).await;
                let steps = &got["version"]["steps"];
                assert_eq!(steps[1]["timing"], json!({"kind": "delay", "ms": 3 * 86_400_000}));
                assert_eq!(steps[0]["criteria"][0]["plugin"]["id"], "proposal-paid");
                assert_eq!(
                    steps[0]["config"],
                    json!({"title": "Call {{contact.first_name}} about the proposal", "priority": "high"})
                );
                client.follow("header form[action='/sign-out'] button").await;

                // An agent is offered no building, and is refused it.
                sign_in(&client, &base, "grace@example.com", PASSWORD).await;
                client.open(&format!("{base}/sequences")).await;
                assert!(!client.has("#new-name").await);
                client.open(&format!("{base}/sequences/{sequence}")).await;
                assert!(!client.has("#edit-steps").await);
                client.open(&format!("{base}/sequences/{sequence}/builder")).await;
                assert_eq!(client.text_of("h1").await, "Forbidden");
                client.open(&format!("{base}/engage")).await;
                let status = client
                    .eval(&format!(
                        "const token = document.querySelector('input[name=_csrf]').value;
                         return (await fetch('/sequences/{sequence}/builder', {{method: 'POST',
                             body: new URLSearchParams({{_csrf: token, steps: '0', op: 'publish'}})}})).status;"
                    ))
                    .await;
                assert_eq!(status, json!(403));
            })
            .await;
    })
    .await;
}
