//! Sequences in the console, in a real headless browser: an admin pauses
//! and activates a sequence, reads its report with charts, exports it and
//! imports it again; a bad import is shown at its field and makes nothing;
//! an agent has no admin forms; on both backends.

use serde_json::json;
use stepwise::engagement::{Activation, StepTiming, TimingMode};
use stepwise_tests::app::TestApp;
use stepwise_tests::browser::{Browser, Page, every_field_is_labelled, fits_a_phone, sign_in};
use stepwise_tests::db::for_each_backend;
use stepwise_tests::scenario::{settings, step};

const PASSWORD: &str = "a long enough password";

#[tokio::test]
async fn an_admin_pauses_activates_reads_the_report_and_exports_and_imports_a_sequence() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let world = &app.world;
        world.console_people(PASSWORD).await;
        let mut call = step("task", json!({"title": "Call"}), Activation::Manual, StepTiming::Delay { ms: 0 });
        call.name = "Intro call".into();
        let sequence = world.sequence(TimingMode::AfterPrevious, settings(), vec![call]).await;
        for name in ["Ada", "Bob", "Cy"] {
            let contact = world.contact(|c| c.first_name = name.into()).await;
            world.enroll(&contact, &sequence).await;
        }
        world.run().await;
        let first = world.engage(&world.agent).await[0].id.clone();
        world.engine.complete_action(&world.account, &first, &world.agent, "positive").await.unwrap();
        let browser = Browser::start();
        let base = app.base.clone();
        browser
            .run(move |client| async move {
                sign_in(&client, &base, "ann@example.com", PASSWORD).await;
                client.open(&format!("{base}/sequences")).await;
                client.follow(&format!("a[href='/sequences/{sequence}']")).await;
                assert_eq!(client.text_of("h1").await, "Welcome");
                let page = client.body_text().await;
                for shown in ["Intro call", "Enrolled", "Completed by step", "Outcomes", "positive", "completed: 1"] {
                    assert!(page.contains(shown), "`{shown}` not on the report");
                }
                assert!(client.has("svg.chart[aria-label^='Enrollments started by week']").await);
                assert!(client.has("svg.chart[aria-label='Actions completed by step'] rect").await);
                every_field_is_labelled(&client).await;
                fits_a_phone(&client).await;

                // Settings: what does not read is shown at its field as typed,
                // and nothing is saved; then they are.
                client.fill("#settings-drip-limit", "many").await;
                client.follow("#save-settings").await;
                assert!(client.text_of("#settings-drip_limit-error").await.contains("`many` is not a whole number"));
                assert_eq!(client.value_of("#settings-drip-limit").await, "many");
                client.fill("#settings-drip-limit", "2").await;
                client.choose("#settings-on-reply", "continue").await;
                client.click_on("#settings-hours").await;
                client.fill("#settings-timezone", "Mars/Olympus").await;
                client
                    .eval(
                        "document.querySelector('#settings-start').value = '09:00';
                             document.querySelector('#settings-end').value = '17:30'; return null;",
                    )
                    .await;
                client.click_on("#settings-day-Mon").await;
                client.follow("#save-settings").await;
                assert!(client.text_of("#settings-business_hours-error").await.contains("Mars/Olympus"));
                assert_eq!(client.value_of("#settings-drip-limit").await, "2", "what was typed stays");
                client.fill("#settings-timezone", "Europe/Paris").await;
                client.follow("#save-settings").await;
                assert!(client.text_of(".flash").await.contains("saved"));
                let got = client
                    .eval(&format!("return await (await fetch('/sequences/{sequence}/export?format=json')).json();"))
                    .await;
                assert_eq!(got["settings"]["drip_limit"], 2);
                assert_eq!(got["settings"]["on_reply"], "continue");
                assert_eq!(got["settings"]["business_hours"]["timezone"], "Europe/Paris");
                assert_eq!(got["settings"]["business_hours"]["weekdays"], json!(["Mon"]));

                client.follow("form[action$='/state'] input[value=paused] + button").await;
                assert!(client.text_of(".flash").await.contains("paused"));
                client.follow("form[action$='/state'] input[value=active] + button").await;
                assert!(client.text_of(".flash").await.contains("active"));

                let exported = client
                    .eval(&format!("return await (await fetch('/sequences/{sequence}/export?format=json')).json();"))
                    .await;
                assert_eq!(exported["format"], "stepwise.sequence/1");
                assert_eq!(exported["steps"][0]["name"], "Intro call");

                // A bad export is shown at its field; nothing is made.
                client.open(&format!("{base}/sequences")).await;
                client.fill("#exported", "{\"format\": \"something else\"}").await;
                client.follow("form[action='/sequences/import'] button").await;
                assert!(client.text_of("#import-error").await.contains("does not read"));
                assert_eq!(
                    client.eval("return document.querySelectorAll('table.rows tbody tr').length;").await,
                    json!(1)
                );

                let mut renamed = exported.clone();
                renamed["name"] = json!("Welcome again");
                client.fill("#exported", &renamed.to_string()).await;
                client.follow("form[action='/sequences/import'] button").await;
                assert!(client.text_of(".flash").await.contains("imported"));
                assert_eq!(client.text_of("h1").await, "Welcome again");
                assert!(client.body_text().await.contains("draft"));
                client.follow("header form[action='/sign-out'] button").await;

                // An agent reads the sequence but has no admin forms.
                sign_in(&client, &base, "grace@example.com", PASSWORD).await;
                client.open(&format!("{base}/sequences/{sequence}")).await;
                assert!(!client.has("form[action$='/state']").await);
                assert!(!client.has("#save-settings").await);
                client.open(&format!("{base}/sequences")).await;
                assert!(!client.has("#exported").await);
                let status = client
                    .eval(&format!(
                        "const token = document.querySelector('input[name=_csrf]').value;
                         return (await fetch('/sequences/{sequence}/state', {{method: 'POST',
                             body: new URLSearchParams({{_csrf: token, state: 'archived'}})}})).status;"
                    ))
                    .await;
                assert_eq!(status, json!(403));
            })
            .await;
    })
    .await;
}
