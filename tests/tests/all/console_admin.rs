//! What admins manage in the console, in a real headless browser: an add-on
//! uploaded from a file, enabled and granted; a user added, given a
//! set-password link they use to sign in; API keys made and revoked; the
//! webhook monitor and the outbox; and none of it for an agent; on both
//! backends.

use serde_json::json;
use stepwise_tests::app::TestApp;
use stepwise_tests::browser::{Browser, Page, every_field_is_labelled, fits_a_phone, sign_in, upload_add_on};
use stepwise_tests::db::for_each_backend;

const PASSWORD: &str = "a long enough password";

#[tokio::test]
async fn an_admin_uploads_enables_and_grants_an_add_on_and_manages_users_and_keys() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let world = &app.world;
        world.console_people(PASSWORD).await;
        let browser = Browser::start();
        let base = app.base.clone();
        let api = (app.base.clone(), app.admin_key.clone());
        browser
            .run(move |client| async move {
                sign_in(&client, &base, "ann@example.com", PASSWORD).await;
                client.open(&format!("{base}/admin/plugins")).await;
                every_field_is_labelled(&client).await;
                fits_a_phone(&client).await;
                // Upload from a file input, as a person would.
                upload_add_on(&client, &base, stepwise_tests::add_ons::PROPOSAL_PAID, "proposal-paid").await;
                // An add-on built for contract 0.1.0 is served beside the
                // built-ins on 0.2.0, and each card says which it was built for.
                let old = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/wit-0.1.0/chat-notify-1.0.0.wasm");
                upload_add_on(&client, &base, old, "chat-notify").await;
                let card = client.text_of("section:has(form[action='/admin/plugins/chat-notify'])").await;
                assert!(card.contains("contract stepwise:plugin@0.1.0"), "{card}");
                let card = client.text_of("section:has(form[action='/admin/plugins/webhook'])").await;
                assert!(card.contains("contract stepwise:plugin@0.2.0"), "{card}");
                // The webhook step may reach one origin: a bad entry is refused
                // with what is wrong, a good one saved.
                let webhook = "form[action='/admin/plugins/webhook']";
                client.click_on(&format!("{webhook} input[value='\"http-fetch\"']")).await;
                client.fill(&format!("{webhook} textarea[name=http_allow]"), "not an origin").await;
                client.follow(&format!("{webhook} button")).await;
                assert!(client.text_of("#problem").await.contains("webhook"), "{}", client.body_text().await);
                client.click_on(&format!("{webhook} input[value='\"http-fetch\"']")).await;
                client.fill(&format!("{webhook} textarea[name=http_allow]"), "https://hooks.example.com").await;
                client.follow(&format!("{webhook} button")).await;
                assert!(client.text_of(".flash").await.contains("Settings of webhook saved"));
                let plugins = reqwest::Client::new()
                    .get(format!("{}/v1/plugins", api.0))
                    .bearer_auth(&api.1)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let plugins: serde_json::Value = serde_json::from_str(&plugins).unwrap();
                let account = |id: &str| {
                    plugins["plugins"].as_array().unwrap().iter().find(|p| p["id"] == id).unwrap()["account"].clone()
                };
                assert_eq!(account("proposal-paid")["enabled"], true);
                let webhook = account("webhook")["grants"].to_string();
                assert!(webhook.contains("http-fetch") && webhook.contains("https://hooks.example.com"), "{webhook}");
                assert_eq!(account("webhook")["enabled"], false, "granted, not enabled");

                // A new user, and the link they set their password with.
                client.open(&format!("{base}/admin/users")).await;
                client.fill("#name", "Vic").await;
                client.fill("#email", "vic@example.com").await;
                client.choose("#role", "viewer").await;
                client.follow("form[action='/admin/users'] button").await;
                assert!(client.text_of(".flash").await.contains("User added"));
                let row = client
                    .eval("return [...document.querySelectorAll('table.rows tbody tr')].findIndex(r => r.textContent.includes('vic@example.com'));")
                    .await;
                let row = row.as_i64().unwrap() + 1;
                client.follow(&format!("table.rows tbody tr:nth-child({row}) form[action$='/password-link'] button")).await;
                let link = client.text_of("#link").await;
                assert!(link.starts_with("/set-password/"), "{link}");

                // API keys: made, its secret shown once, revoked.
                client.open(&format!("{base}/account/keys")).await;
                client.fill("#key-name", "reports").await;
                client.follow("form[action='/account/keys'] button").await;
                assert!(client.text_of("#secret").await.starts_with("sw_"));
                client.open(&format!("{base}/account/keys")).await;
                client.follow("form[action$='/revoke'] button").await;
                assert!(client.text_of(".flash").await.contains("revoked"));

                for (path, heading) in [("/admin/webhooks", "Webhook monitor"), ("/admin/outbox", "Outbox"), ("/notifications", "Notifications")] {
                    client.open(&format!("{base}{path}")).await;
                    assert_eq!(client.text_of("h1").await, heading);
                }
                client.follow("header form[action='/sign-out'] button").await;

                client.open(&format!("{base}{link}")).await;
                client.fill("#password", "vic's own password").await;
                client.follow("form button").await;
                assert!(client.body_text().await.contains("Your password is set"));
                sign_in(&client, &base, "vic@example.com", "vic's own password").await;
                assert_eq!(client.path().await, "/engage");
                client.follow("header form[action='/sign-out'] button").await;

                // An agent is offered none of it, and is refused it.
                sign_in(&client, &base, "grace@example.com", PASSWORD).await;
                assert!(!client.has("header a[href='/admin/plugins']").await);
                client.open(&format!("{base}/admin/plugins")).await;
                assert_eq!(client.text_of("h1").await, "Forbidden");
                let status = client
                    .eval(
                        "const token = document.querySelector('input[name=_csrf]');
                         return token ? (await fetch('/admin/users', {method: 'POST',
                             body: new URLSearchParams({_csrf: token.value, name: 'X', email: 'x@example.com', role: 'admin'})})).status : 'no form';",
                    )
                    .await;
                assert!(status == json!(403) || status == json!("no form"), "{status}");
            })
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_version_asking_for_more_than_was_approved_says_what_until_an_admin_grants_again() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let world = &app.world;
        world.console_people(PASSWORD).await;
        let upload = app.client.post(format!("{}/v1/plugins", app.base)).bearer_auth(&app.admin_key);
        let upload = upload.header("content-type", "application/wasm").body(stepwise_tests::guests::SCRIPTED);
        assert_eq!(app.send(upload).await.status, 201);
        // What an upgrade leaves: the account approved what the old version
        // asked for (`send-email`); the new one also asks for
        // `update-contact`.
        let settings = stepwise::engagement::PluginAccount {
            account_id: world.account.clone(),
            plugin_id: "scripted".into(),
            enabled: true,
            grants: json!({"capabilities": ["send-email"]}),
            approved_capabilities: vec!["send-email".into()],
        };
        world.engine.set_plugin_account(&settings, &world.editor()).await.unwrap();
        let browser = Browser::start();
        let base = app.base.clone();
        browser
            .run(move |client| async move {
                sign_in(&client, &base, "ann@example.com", PASSWORD).await;
                client.open(&format!("{base}/admin/plugins")).await;
                let card = "section:has(form[action='/admin/plugins/scripted'])";
                let warning = client.text_of(&format!("{card} p.error")).await;
                assert!(warning.contains("asks for more than was approved: update-contact"), "{warning}");
                // Granting again approves what this version asks for.
                let boxes = format!("{card} input[type=checkbox][name^=cap_]:not(:checked)");
                while client.has(&boxes).await {
                    client.click_on(&boxes).await;
                }
                client.follow(&format!("{card} button")).await;
                assert!(client.text_of(".flash").await.contains("Settings of scripted saved"));
                assert!(!client.has(&format!("{card} p.error")).await);
            })
            .await;
    })
    .await;
}
