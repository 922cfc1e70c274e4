//! The `stepwise plugin` commands, run as a user runs them.

use std::process::Command;

fn stepwise(args: &[&str]) -> (bool, String, String) {
    let (code, out, err) = exits(args);
    (code == 0, out, err)
}

/// Runs the binary; its exit code, stdout and stderr.
fn exits(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_stepwise"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("the binary runs");
    (
        output.status.code().expect("the binary exits"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn inspect_prints_manifest_version_capabilities_and_size() {
    let (ok, out, err) = stepwise(&["plugin", "inspect", "builtin:task"]);
    assert!(ok, "{err}");
    for expected in [
        "plugin       task 0.1.0 (Action)",
        "wit          stepwise:plugin@0.2.0",
        "activation   Manual",
        "none",
        "positive",
        "ends the enrollment (positive)",
        "capabilities render-template",
        "size         ",
        "config schema",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
}

#[test]
fn inspect_json_of_the_webhook() {
    let (ok, out, err) = stepwise(&["plugin", "inspect", "builtin:webhook", "--json"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["manifest"]["id"], "webhook");
    assert_eq!(report["wit_version"], "0.2.0");
    assert_eq!(report["manifest"]["default_activation"], "automatic");
    let caps = report["manifest"]["capabilities"].as_array().unwrap();
    assert!(caps.contains(&serde_json::json!("http-fetch")), "{caps:?}");
    assert!(report["size"].as_u64().unwrap() > 1000);
}

#[test]
fn run_prepares_the_task_from_fixtures() {
    let (ok, out, err) = stepwise(&[
        "plugin",
        "run",
        "builtin:task",
        "--config",
        "host/fixtures/task.json",
        "--contact",
        "host/fixtures/contact.json",
        "--grant",
        "render-template",
        "--mode",
        "prepare",
    ]);
    assert!(ok, "{err}\n{out}");
    assert!(out.contains("Call Ada about the pro plan"), "{out}");
    assert!(out.contains("templates.render"), "host calls are listed: {out}");
    assert!(out.contains("wall time"), "{out}");
    assert!(out.contains("peak mem"), "{out}");
}

#[test]
fn run_shows_denied_host_calls() {
    let (code, out, _) = exits(&[
        "plugin",
        "run",
        "builtin:task",
        "--config",
        "host/fixtures/task.json",
        "--contact",
        "host/fixtures/contact.json",
        "--mode",
        "prepare",
        "--json",
    ]);
    // The task cannot render without the grant: prepare answers an error,
    // and the run exits 4 for the denial.
    assert_eq!(code, 4, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"], "denied");
    let calls = report["report"]["host_calls"].as_array().unwrap();
    assert_eq!(calls[0]["result"]["status"], "denied", "{calls:?}");
    assert!(calls[0]["result"]["reason"].as_str().unwrap().contains("not granted"));
}

#[test]
fn run_completes_a_manual_step_with_a_result() {
    let (ok, out, err) = stepwise(&[
        "plugin",
        "run",
        "builtin:task",
        "--config",
        "host/fixtures/task.json",
        "--contact",
        "host/fixtures/contact.json",
        "--result",
        "positive",
        "--json",
    ]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["answer"], serde_json::json!({"status": "done", "result": "positive", "output": null}));
    let (ok, _, err) = stepwise(&["plugin", "run", "builtin:task", "--result", "maybe"]);
    assert!(!ok);
    assert!(err.contains("`maybe` is not a result of task (results: none, positive, negative)"), "{err}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let (ok, _, err) = stepwise(&["plugin", "inspect", "builtin:nope"]);
    assert!(!ok);
    assert!(err.contains("no built-in plugin `nope` (built-ins: task, webhook, "), "{err}");
    for name in ["sms", "call", "contact-reminder", "assign-user", "change-contact-type"] {
        assert!(err.contains(name), "{name} is listed: {err}");
    }
    let (ok, _, err) = stepwise(&["plugin", "inspect", "Cargo.toml"]);
    assert!(!ok);
    assert!(err.contains("not a WebAssembly component"), "{err}");
    let (ok, _, err) = stepwise(&["plugin", "run", "builtin:task", "--grant", "teleport"]);
    assert!(!ok);
    assert!(err.contains("unknown capability `teleport`"), "{err}");
    let (ok, _, err) = stepwise(&["plugin", "run", "builtin:task", "--contact", "Cargo.toml"]);
    assert!(!ok);
    assert!(err.contains("Cargo.toml is not valid JSON"), "{err}");
}

/// Runs a built-in against the fixtures with `--json` and returns its report.
fn run_json(plugin: &str, config: &str, extra: &[&str]) -> serde_json::Value {
    run_json_exiting(0, plugin, config, extra)
}

/// [`run_json`] for a run that exits with `code`.
fn run_json_exiting(code: i32, plugin: &str, config: &str, extra: &[&str]) -> serde_json::Value {
    let config = format!("host/fixtures/{config}");
    let builtin = format!("builtin:{plugin}");
    let mut args = vec!["plugin", "run", &builtin, "--config", &config, "--contact", "host/fixtures/contact.json"];
    args.extend_from_slice(extra);
    args.push("--json");
    let (exit, out, err) = exits(&args);
    assert_eq!(exit, code, "{plugin}: {err}\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{plugin}: {e}: {out}"))
}

fn functions(report: &serde_json::Value) -> Vec<String> {
    let calls = report["report"]["host_calls"].as_array().unwrap();
    calls
        .iter()
        .map(|c| format!("{} {}", c["function"].as_str().unwrap(), c["result"]["status"].as_str().unwrap()))
        .collect()
}

#[test]
fn run_sends_an_sms_from_fixtures() {
    let report = run_json("sms", "sms.json", &["--grant", "render-template", "--grant", "send-sms"]);
    assert_eq!(report["answer"]["status"], "done", "{report}");
    assert_eq!(report["answer"]["result"], "sent");
    assert_eq!(report["answer"]["output"]["segments"], 1);
    assert_eq!(report["answer"]["output"]["encoding"], "gsm-7");
    let messages = report["report"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{report}");
    assert_eq!(messages[0]["to"], "+15550100");
    assert_eq!(messages[0]["body"], "Hi Ada, it's Grace Hopper. Is 3pm tomorrow still good for you?");
    assert_eq!(functions(&report), ["templates.render ok", "messaging.send-sms ok"]);

    // Without send-sms the host refuses to queue, and the step fails.
    let report = run_json_exiting(4, "sms", "sms.json", &["--grant", "render-template"]);
    assert_eq!(report["answer"]["status"], "failed", "{report}");
    assert_eq!(report["answer"]["details"]["error"]["code"], "denied");
    assert!(report["report"]["messages"].as_array().unwrap().is_empty());
}

#[test]
fn run_prepares_a_call_with_its_script() {
    let report = run_json("call", "call.json", &["--grant", "render-template", "--mode", "prepare"]);
    let item = &report["answer"]["Ok"];
    assert_eq!(item["title"], "Call Ada Lovelace", "{report}");
    assert_eq!(
        item["body"],
        "Hi Ada, this is Grace Hopper from Stepwise. You looked at the pro plan: what would help you decide?"
    );
    let report = run_json("call", "call.json", &["--result", "not_interested"]);
    assert_eq!(report["answer"], serde_json::json!({"status": "done", "result": "not_interested", "output": null}));
}

#[test]
fn run_prepares_a_contact_reminder() {
    let report =
        run_json("contact-reminder", "contact-reminder.json", &["--grant", "render-template", "--mode", "prepare"]);
    let item = &report["answer"]["Ok"];
    assert_eq!(item["title"], "Wish Ada a good start at Analytical Engines", "{report}");
    assert_eq!(item["body"], "Ask how the pro plan is working out.");
    let report = run_json("contact-reminder", "contact-reminder.json", &["--result", "done"]);
    assert_eq!(report["answer"]["result"], "done", "{report}");
}

#[test]
fn run_assigns_a_user_found_by_email() {
    let grants = ["--users", "host/fixtures/users.json", "--grant", "lookup-user", "--grant", "update-contact=owner"];
    let report = run_json("assign-user", "assign-user.json", &grants);
    assert_eq!(report["answer"]["result"], "done", "{report}");
    assert_eq!(report["answer"]["output"]["owner_id"], "usr_alan");
    assert_eq!(report["answer"]["output"]["previous_owner_id"], "usr_grace");
    assert_eq!(report["report"]["contact_changes"][0]["owner"], "usr_alan");
    assert_eq!(functions(&report), ["users.lookup-user ok", "contacts.update-contact ok"]);

    // Granted the lookup but not the owner change: denied, nothing changed.
    let report = run_json_exiting(4, "assign-user", "assign-user.json", &grants[..4]);
    assert_eq!(report["answer"]["status"], "failed", "{report}");
    assert_eq!(report["answer"]["details"]["error"]["code"], "denied");
    assert!(report["report"]["contact_changes"].as_array().unwrap().is_empty());
    assert_eq!(functions(&report), ["users.lookup-user ok", "contacts.update-contact denied"]);
}

#[test]
fn run_changes_the_contact_type() {
    let report =
        run_json("change-contact-type", "change-contact-type.json", &["--grant", "update-contact=contact_type"]);
    assert_eq!(
        report["answer"]["output"],
        serde_json::json!({"contact_type": "Partners", "previous_contact_type": "Clients", "changed": true}),
        "{report}"
    );
    assert_eq!(report["report"]["contact_changes"][0]["contact_type"], "Partners");
    // A grant of another field is no grant of this one.
    let report =
        run_json_exiting(4, "change-contact-type", "change-contact-type.json", &["--grant", "update-contact=owner"]);
    assert_eq!(report["answer"]["details"]["error"]["code"], "denied", "{report}");
}

#[test]
fn scheduler_once_creates_the_schema_and_processes_what_is_due() {
    let dir = std::env::temp_dir().join(format!("stepwise-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("stepwise.db").display());
    let (ok, out, err) = stepwise(&["scheduler", "--once", "--database-url", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("processed 0 due actions on Sqlite"), "{out}");
    assert!(dir.join("stepwise.db").exists(), "the database file was created");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scheduler_refuses_a_database_url_it_does_not_know() {
    let (ok, _, err) = stepwise(&["scheduler", "--once", "--database-url", "mysql://root:secret@localhost/db"]);
    assert!(!ok);
    assert!(err.contains("the database url must start with sqlite: or postgres:"), "{err}");
    assert!(!err.contains("secret"), "the url's password is never printed: {err}");
}

#[tokio::test]
async fn serve_bootstraps_an_admin_serves_and_stops_on_sigterm() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stepwise"))
        .arg("serve")
        .env("STEPWISE_LISTEN", "127.0.0.1:0")
        .env("STEPWISE_DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let _created = out.next().unwrap().unwrap();
    let key_line = out.next().unwrap().unwrap();
    let key = key_line.rsplit(' ').next().unwrap().to_owned();
    assert!(key.starts_with("sw_"), "{key_line}");
    let listening = err.find_map(|l| l.ok().filter(|l| l.contains("listening on"))).expect("it says where it listens");
    let base = listening.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();

    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let me = client.get(format!("{base}/v1/me")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = serde_json::from_str(&me.text().await.unwrap()).unwrap();
    assert_eq!(me["user"]["email"], "admin@stepwise.localhost");
    // The bootstrapped admin saved back as read is accepted.
    let id = me["user"]["id"].as_str().unwrap();
    let saved = client
        .put(format!("{base}/v1/users/{id}"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(me["user"].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200, "{}", saved.text().await.unwrap());

    // The console: the printed one-time link sets the admin's password, and
    // the admin signs in with it.
    let link_line = out.next().unwrap().unwrap();
    let link = link_line.split_whitespace().find(|w| w.contains("/set-password/")).expect("a link").to_owned();
    assert!(link.starts_with(&base), "the link is under the address served: {link_line}");
    let form = client.get(&link).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let password = [("password", "the admin's new password")];
    let set = client.post(&link).form(&password).send().await.unwrap();
    assert_eq!(set.status(), 200);
    assert!(set.text().await.unwrap().contains("Your password is set"));
    assert_eq!(client.get(&link).send().await.unwrap().status(), 404, "the link works once");
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = no_redirects.get(format!("{base}/sign-in")).send().await.unwrap();
    let sign_in_cookie = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let html = page.text().await.unwrap();
    let token = html.split("name=\"_csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let signed_in = no_redirects
        .post(format!("{base}/sign-in"))
        .header("cookie", &sign_in_cookie)
        .form(&[("email", "admin@stepwise.localhost"), ("password", "the admin's new password"), ("_csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("stepwise_session="))
        .expect("a session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"), "{session}");
    assert!(!session.contains("Secure"), "plain http: {session}");
    let engage = no_redirects
        .get(format!("{base}/engage"))
        .header("cookie", session.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(engage.status(), 200);
    assert!(engage.text().await.unwrap().contains("<h1>Engage</h1>"));

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean stop on SIGTERM: {status}");
    assert!(err.any(|l| l.is_ok_and(|l| l.contains("stopping"))), "it says it is stopping");
}

#[test]
fn run_sends_the_email_from_fixtures_signed_by_the_owner() {
    let (ok, out, err) = stepwise(&[
        "plugin",
        "run",
        "builtin:email",
        "--config",
        "host/fixtures/email.json",
        "--contact",
        "host/fixtures/contact.json",
        "--grant",
        "render-template",
        "--grant",
        "send-email",
    ]);
    assert!(ok, "{err}\n{out}");
    assert!(out.contains(r#""result": "sent""#), "{out}");
    assert!(out.contains(r#""subject":"Your pro plan, Ada""#), "{out}");
    assert!(out.contains(r"-- \nGrace Hopper, Stepwise"), "signed: {out}");
    let (code, out, _) = exits(&[
        "plugin",
        "run",
        "builtin:email",
        "--config",
        "host/fixtures/email.json",
        "--contact",
        "host/fixtures/contact.json",
        "--grant",
        "render-template",
    ]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("messaging.send-email") && out.contains("denied"), "without send-email: {out}");
}

#[test]
fn run_evaluates_the_built_in_predicates_without_host_calls() {
    // Ada has 12 seats, a phone she has not opted out of texts on, and came
    // from the website (written "website" in the config).
    for (plugin, config) in
        [("field-compare", "field-compare.json"), ("has-channel", "has-channel.json"), ("is-one-of", "is-one-of.json")]
    {
        let report = run_json(plugin, config, &["--mode", "evaluate"]);
        assert_eq!(report["answer"], serde_json::json!({"Ok": true}), "{plugin}: {report}");
        assert_eq!(functions(&report), Vec::<String>::new(), "{plugin} needs no host call");
        let (ok, out, err) = stepwise(&["plugin", "inspect", &format!("builtin:{plugin}"), "--json"]);
        assert!(ok, "{err}");
        let inspected: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(inspected["manifest"]["kind"], "predicate", "{plugin}");
        assert_eq!(inspected["manifest"]["capabilities"], serde_json::json!([]), "{plugin} asks for nothing");
    }
}

#[test]
fn run_evaluates_a_time_window_at_the_steps_now_in_the_owners_timezone() {
    // Monday 14:30 UTC: inside 09:00-17:00 for a contact and an owner
    // without a timezone (UTC), 23:30 for an owner in Tokyo.
    let step = ["--step", "host/fixtures/time-window-step.json"];
    let report = run_json("time-window", "time-window.json", &step);
    assert_eq!(report["mode"], "evaluate");
    assert_eq!(report["answer"], serde_json::json!({"Ok": true}), "{report}");
    let tokyo = [step[0], step[1], "--owner", "host/fixtures/owner-tokyo.json"];
    let report = run_json("time-window", "time-window.json", &tokyo);
    assert_eq!(report["answer"], serde_json::json!({"Ok": false}), "{report}");
    assert_eq!(functions(&report), Vec::<String>::new());
}

#[test]
fn run_validates_a_predicate_config_naming_the_field() {
    let report = run_json_exiting(3, "field-compare", "field-compare-invalid.json", &["--mode", "validate"]);
    assert_eq!(report["verdict"], "failed");
    let problems = report["answer"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["field"], "/value");
    assert!(problems[0]["message"].as_str().unwrap().starts_with("not a valid regular expression"), "{report}");
    // Evaluating it anyway is an error, never a silent false.
    let report = run_json_exiting(3, "field-compare", "field-compare-invalid.json", &["--mode", "evaluate"]);
    let error = report["answer"]["Err"].as_str().unwrap_or_default();
    assert!(error.starts_with("invalid config: /value: not a valid regular expression"), "{report}");
}

#[test]
fn run_refuses_a_component_over_the_size_limit_before_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.wasm");
    std::fs::write(&big, vec![0u8; 4096]).unwrap();
    let path = big.display().to_string();
    let (ok, _, err) = stepwise(&["plugin", "run", &path, "--max-bytes", "1000"]);
    assert!(!ok);
    assert!(err.contains("4096 bytes, over the limit of 1000 bytes"), "{err}");
    assert!(err.contains("--max-bytes"), "{err}");
    let (ok, _, err) = stepwise(&["plugin", "inspect", &path, "--max-bytes", "1000"]);
    assert!(!ok);
    assert!(err.contains("over the limit"), "{err}");
}

#[test]
fn admin_bootstrap_takes_the_first_admins_email_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let bootstrap = |email: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_stepwise"))
            .args(["admin", "bootstrap", "--admin-email", email])
            .env("STEPWISE_DATABASE_URL", &url)
            .output()
            .expect("the binary runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, _, err) = bootstrap("not-an-address");
    assert!(!ok);
    assert!(err.contains("--admin-email: `not-an-address` is not an email address"), "{err}");
    let (ok, out, err) = bootstrap("ann@example.com");
    assert!(ok, "{err}");
    assert!(out.contains("<ann@example.com>"), "{out}");
    let (ok, _, err) = bootstrap("ann@example.com");
    assert!(!ok && err.contains("already has an account"), "once only: {err}");
}

#[test]
fn validation_is_granted_what_the_server_grants_it() {
    // No `--grant`: tokens are checked all the same, as when a sequence is
    // saved; and a grant of more changes nothing.
    for extra in [&[][..], &["--grant", "http-fetch=https://hooks.example.com"][..]] {
        let mut args = vec!["--mode", "validate"];
        args.extend_from_slice(extra);
        let report = run_json_exiting(3, "task", "task-invalid.json", &args);
        assert_eq!(report["answer"][0]["field"], "/title", "{report}");
        assert!(report["answer"][0]["message"].as_str().unwrap().contains("unknown token"), "{report}");
        assert_eq!(functions(&report), ["templates.check error"], "{report}");
    }
    let report = run_json("task", "task.json", &["--mode", "validate"]);
    assert_eq!(report["answer"], serde_json::json!([]));
    assert_eq!(report["verdict"], "ok");
}

#[test]
fn validation_reads_the_accounts_contact_types() {
    // A new account's types hold Partners; an account that renamed it does not.
    let report = run_json("change-contact-type", "change-contact-type.json", &["--mode", "validate"]);
    assert_eq!(report["answer"], serde_json::json!([]), "{report}");
    assert_eq!(functions(&report), ["account.contact-types ok"], "{report}");
    let renamed = ["--mode", "validate", "--contact-types", "Clients,Allies,Other"];
    let report = run_json_exiting(3, "change-contact-type", "change-contact-type.json", &renamed);
    assert_eq!(
        report["answer"],
        serde_json::json!([{"field": "/contact_type",
            "message": "no contact type `Partners` in this account (it has Clients, Allies, Other)"}]),
        "{report}"
    );
    let (code, _, err) = exits(&["plugin", "run", "builtin:change-contact-type", "--contact-types", " , "]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--contact-types names no contact type"), "{err}");
}

#[test]
fn step_overrides_name_their_fields_and_keep_the_activation_they_set() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.json");
    std::fs::write(&typo, r#"{"attempts": 2}"#).unwrap();
    let (code, _, err) = exits(&["plugin", "run", "builtin:task", "--step", typo.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("`attempts` is not a step field (fields: account_id, "), "{err}");
    let (_, help, _) = exits(&["plugin", "run", "--help"]);
    for field in stepwise::runner::step_fields() {
        assert!(help.contains(&format!("`{field}`")), "--help documents `{field}`: {help}");
    }
    assert!(help.contains("Exit codes:") && help.contains("4  a host call was denied"), "{help}");

    // The email step is automatic unless the step says otherwise.
    let manual = dir.path().join("manual.json");
    std::fs::write(&manual, r#"{"activation": "manual", "attempt": 2}"#).unwrap();
    let grants = ["--grant", "render-template", "--grant", "send-email"];
    let auto = run_json("email", "email.json", &grants);
    assert_eq!(auto["step"]["activation"], "automatic", "{auto}");
    let mut args = grants.to_vec();
    args.extend(["--step", manual.to_str().unwrap()]);
    let by_hand = run_json("email", "email.json", &args);
    assert_eq!(by_hand["step"]["activation"], "manual", "{by_hand}");
    assert_eq!(by_hand["step"]["attempt"], 2, "{by_hand}");
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_stepwise"))
            .args(["plugin", "inspect", "builtin:webhook"])
            .env("STEPWISE_CACHE_DIR", dir.path())
            .output()
            .unwrap()
    };
    assert!(run().status.success());
    let cached: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(Result::ok).collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].file_name().to_string_lossy().ends_with(".cwasm"));
    let written = cached[0].metadata().unwrap().modified().unwrap();
    assert!(run().status.success());
    let again = std::fs::read_dir(dir.path()).unwrap().filter_map(Result::ok).next().unwrap();
    assert_eq!(again.metadata().unwrap().modified().unwrap(), written, "read, not compiled again");
}
