//! Signing in to the console, as the server answers it: cookies and their
//! flags, the sign-in form's token, attempts over the limit, one-time
//! password links, passwords set by admins and changed by their users, and
//! sessions that end when they should; on both backends.

use serde_json::json;
use stepwise::api::server::HttpConfig;
use stepwise::crm::{Role, User};
use stepwise::engine::EngineConfig;
use stepwise_tests::app::TestApp;
use stepwise_tests::console::{Person, csrf};
use stepwise_tests::db::for_each_backend;
use stepwise_tests::scenario::World;

const PASSWORD: &str = "a long enough password";

async fn with_password(app: &TestApp) {
    let world = &app.world;
    world.engine.set_password(&world.account, &world.agent, PASSWORD, &world.editor()).await.unwrap();
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_session_cookie_and_attempts_are_limited() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        with_password(&app).await;
        let mut grace = Person::new(&app.base);
        assert_eq!(grace.get("/engage").await.location(), Some("/sign-in?next=%2Fengage"));

        // A form posted without the token its page set is refused.
        let mut stranger = Person::new(&app.base);
        let forged = stranger
            .post("/sign-in", &[("email", "grace@example.com"), ("password", PASSWORD), ("_csrf", "guess")])
            .await;
        assert_eq!(forged.status, 403);
        assert!(forged.set_cookie("stepwise_session").is_none());

        let signed_in = grace.sign_in("grace@example.com", PASSWORD).await;
        assert_eq!(signed_in.status, 303);
        assert_eq!(signed_in.location(), Some("/engage"));
        let cookie = signed_in.set_cookie("stepwise_session").expect("a session cookie");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"));
        assert!(!cookie.contains("Secure"), "served over plain http: {cookie}");
        assert_eq!(grace.get("/engage").await.status, 200);

        // Five attempts for one address (Grace's own counted), then a pause,
        // whoever asks.
        let mut guesser = Person::new(&app.base);
        for _ in 0..4 {
            assert_eq!(guesser.sign_in("grace@example.com", "wrong password").await.status, 401);
        }
        let refused = guesser.sign_in("grace@example.com", PASSWORD).await;
        assert_eq!(refused.status, 429, "{}", refused.text);
        assert!(refused.headers.contains_key("retry-after"));
        assert!(refused.text.contains("too many sign-in attempts"));
        assert!(refused.set_cookie("stepwise_session").is_none(), "not even with the right password");
        // Unknown addresses are refused like wrong passwords.
        assert_eq!(Person::new(&app.base).sign_in("nobody@example.com", PASSWORD).await.status, 401);
    })
    .await;
}

#[tokio::test]
async fn over_https_the_session_cookie_is_secure() {
    for_each_backend(|store| async move {
        let config =
            EngineConfig { public_url: Some("https://stepwise.example.com".into()), ..EngineConfig::default() };
        let app = TestApp::spawn_world(World::with_config(store, config).await, HttpConfig::default()).await;
        with_password(&app).await;
        let signed_in = Person::new(&app.base).sign_in("grace@example.com", PASSWORD).await;
        let cookie = signed_in.set_cookie("stepwise_session").expect("a session cookie");
        assert!(cookie.contains("; Secure"), "{cookie}");
    })
    .await;
}

#[tokio::test]
async fn an_admins_password_link_works_once_and_a_short_password_is_shown_at_its_field() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let path = format!("/v1/users/{}/password-link", app.world.agent);
        let refused = app.call(reqwest::Method::POST, &path, Some(&app.agent_key), None).await;
        assert_eq!(refused.status, 403, "only admins make links");
        let made = app.call(reqwest::Method::POST, &path, Some(&app.admin_key), None).await;
        assert_eq!(made.status, 201, "{}", made.text);
        assert_eq!(made.json["url"], json!(null), "no public URL is set");
        let link = made.json["path"].as_str().unwrap().to_owned();

        let mut grace = Person::new(&app.base);
        let page = grace.get(&link).await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("grace@example.com"));
        let short = grace.post(&link, &[("password", "short")]).await;
        assert_eq!(short.status, 422);
        assert!(short.text.contains("at least 10") && short.text.contains("aria-invalid=\"true\""), "{}", short.text);
        assert_eq!(grace.sign_in("grace@example.com", "short").await.status, 401, "nothing was set");
        assert_eq!(grace.post(&link, &[("password", PASSWORD)]).await.status, 200);
        assert_eq!(grace.get(&link).await.status, 404, "used up");
        assert_eq!(grace.post(&link, &[("password", "another long password")]).await.status, 404);
        assert_eq!(grace.sign_in("grace@example.com", PASSWORD).await.status, 303);

        // Another account's user is not found; the audit names the change, never the password.
        let theirs = World::new(app.world.store.clone()).await;
        let other = format!("/v1/users/{}/password-link", theirs.agent);
        assert_eq!(app.call(reqwest::Method::POST, &other, Some(&app.admin_key), None).await.status, 404);
        let audit = app.get("/v1/audit?target_type=user", Some(&app.admin_key)).await;
        assert!(audit.text.contains("user.password_set"), "{}", audit.text);
        assert!(!audit.text.contains(PASSWORD) && !audit.text.contains(link.trim_start_matches("/set-password/")));
    })
    .await;
}

#[tokio::test]
async fn sessions_end_at_a_new_password_at_deactivation_and_at_sign_out() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        with_password(&app).await;
        let mut grace = Person::new(&app.base);
        grace.sign_in("grace@example.com", PASSWORD).await;
        assert_eq!(grace.get("/engage").await.status, 200);

        // An admin sets a new password: the session is over.
        let path = format!("/v1/users/{}/password", app.world.agent);
        let body = json!({"password": "the admin's choice"});
        let short = app.call(reqwest::Method::PUT, &path, Some(&app.admin_key), Some(&json!({"password": "x"}))).await;
        assert_eq!(short.status, 422);
        assert_eq!(short.json["errors"][0]["field"], "/password");
        assert_eq!(app.call(reqwest::Method::PUT, &path, Some(&app.agent_key), Some(&body)).await.status, 403);
        assert_eq!(app.call(reqwest::Method::PUT, &path, Some(&app.admin_key), Some(&body)).await.status, 204);
        assert_eq!(grace.get("/engage").await.status, 303);

        // Deactivated: the session stops working at once.
        grace.sign_in("grace@example.com", "the admin's choice").await;
        assert_eq!(grace.get("/engage").await.status, 200);
        app.world.update_user(&app.world.agent, |u| u.active = false).await;
        assert_eq!(grace.get("/engage").await.status, 303);
        app.world.update_user(&app.world.agent, |u| u.active = true).await;

        // Signing out needs the form's token, and then the cookie is gone.
        grace.sign_in("grace@example.com", "the admin's choice").await;
        let page = grace.get("/engage").await;
        let copied = grace.cookie("stepwise_session").unwrap().to_owned();
        assert_eq!(grace.post("/sign-out", &[("_csrf", "wrong")]).await.status, 403);
        let out = grace.post("/sign-out", &[("_csrf", &csrf(&page.text))]).await;
        assert_eq!(out.status, 303);
        assert!(grace.cookie("stepwise_session").is_none(), "cleared");
        grace.set("stepwise_session", &copied);
        assert_eq!(grace.get("/engage").await.status, 303, "a copy of the cookie is worth nothing after sign-out");
    })
    .await;
}

#[tokio::test]
async fn people_change_their_own_password_with_the_current_one() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        with_password(&app).await;
        let viewer =
            User { name: "Vic".into(), email: "vic@example.com".into(), role: Role::Viewer, ..User::default() };
        let viewer = app.world.user(viewer).await;
        app.world.engine.set_password(&app.world.account, &viewer, PASSWORD, &app.world.editor()).await.unwrap();
        let mut vic = Person::new(&app.base);
        vic.sign_in("vic@example.com", PASSWORD).await;
        let page = vic.get("/account").await;
        assert_eq!(page.status, 200);
        let token = csrf(&page.text);
        let wrong = vic
            .post(
                "/account/password",
                &[("current", "not it at all"), ("password", "a brand new password"), ("_csrf", &token)],
            )
            .await;
        assert_eq!(wrong.status, 422);
        assert!(wrong.text.contains("the current password is not right"));
        let changed = vic
            .post(
                "/account/password",
                &[("current", PASSWORD), ("password", "a brand new password"), ("_csrf", &token)],
            )
            .await;
        assert_eq!(changed.status, 200, "{}", changed.text);
        assert_eq!(vic.get("/engage").await.status, 303, "signed out everywhere");
        assert_eq!(vic.sign_in("vic@example.com", PASSWORD).await.status, 401);
        assert_eq!(vic.sign_in("vic@example.com", "a brand new password").await.status, 303);
    })
    .await;
}

#[tokio::test]
async fn people_save_their_own_profile_and_a_refused_one_keeps_what_they_typed() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        with_password(&app).await;
        let mut grace = Person::new(&app.base);
        grace.sign_in("grace@example.com", PASSWORD).await;
        let page = grace.get("/account").await;
        let token = csrf(&page.text);
        let form = |timezone: &'static str| {
            [
                ("_csrf", token.clone()),
                ("name", "Grace Hopper".to_owned()),
                ("timezone", timezone.to_owned()),
                ("signature", "-- Grace".to_owned()),
            ]
        };
        let refused =
            grace.post("/account/profile", &form("Mars/Olympus").each_ref().map(|(k, v)| (*k, v.as_str()))).await;
        assert_eq!(refused.status, 422);
        assert!(refused.text.contains("unknown timezone `Mars/Olympus`"), "{}", refused.text);
        assert!(
            refused.text.contains("value=\"Mars/Olympus\"") && refused.text.contains("Grace Hopper"),
            "kept as typed"
        );
        let saved =
            grace.post("/account/profile", &form("America/New_York").each_ref().map(|(k, v)| (*k, v.as_str()))).await;
        assert_eq!((saved.status, saved.location()), (303, Some("/account?saved=1")));
        let page = grace.get("/account?saved=1").await;
        assert!(page.text.contains("Your profile is saved") && page.text.contains("America/New_York"), "{}", page.text);
        let mut tx = app.world.store().begin_read().await.unwrap();
        let user = tx.user(&app.world.account, &app.world.agent).await.unwrap();
        assert_eq!((user.name.as_str(), user.signature.as_str()), ("Grace Hopper", "-- Grace"));
    })
    .await;
}
