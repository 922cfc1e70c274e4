//! The README's quickstart, run exactly as written (with `bash`, `curl` and
//! `jq`) against `stepwise serve` on a fresh SQLite database, with a local
//! server receiving the webhook.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const MARKER: &str = "<!-- quickstart: host/tests/quickstart.rs runs the next block as written -->";

/// The fenced block after the quickstart marker.
fn quickstart() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let after = readme.split_once(MARKER).expect("the README marks its quickstart").1;
    let block = after.trim_start().strip_prefix("```bash\n").expect("a bash block follows the marker");
    block.split_once("\n```").expect("the block ends").0.to_owned()
}

/// Receives webhook POSTs and keeps their bodies.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hooks/crm",
        axum::routing::post(move |body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/crm", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn the_readme_quickstart_runs_as_written() {
    for tool in ["bash", "curl", "jq"] {
        let found = std::process::Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
        assert!(found, "the quickstart needs `{tool}` (`.ci/run` installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_stepwise"))
        .arg("serve")
        .current_dir(dir.path())
        .env("STEPWISE_LISTEN", "127.0.0.1:0")
        .env("STEPWISE_ALLOW_PRIVATE_NETWORK", "true")
        .env_remove("STEPWISE_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");

    // The first start prints the admin key, then where it listens.
    let mut out = BufReader::new(serve.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(serve.stderr.take().unwrap()).lines();
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        let mut key = None;
        while let Some(line) = out.next_line().await.unwrap() {
            if let Some((_, secret)) = line.split_once("admin API key (shown once; keep it safe): ") {
                key = Some(secret.trim().to_owned());
                break;
            }
        }
        let mut base = None;
        while let Some(line) = err.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("stepwise listening on ") {
                base = rest.split_whitespace().next().map(str::to_owned);
                break;
            }
        }
        (key.expect("serve printed an admin key"), base.expect("serve printed its address"))
    })
    .await
    .expect("serve starts within a minute");
    let (key, api) = started;
    // Keep draining the server's logs so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });

    let (hook, received) = receiver().await;
    let script = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &quickstart()])
        .env("KEY", &key)
        .env("API", &api)
        .env("HOOK", &hook)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), script)
        .await
        .expect("the quickstart finishes within two minutes")
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the quickstart failed:\n{stdout}\n{stderr}");

    assert_eq!(*received.lock().unwrap(), [r#"{"name":"Ada"}"#], "the webhook was delivered once");
    for expected in [
        r#""enabled":true"#,
        r#""state":"active""#,
        r#"{"step":0,"status":"completed","result":"none"}"#,
        "enrollment.ended",
        r#"{"enrolled":1,"by_status":{"completed":1},"outcomes":{"neutral":1}}"#,
    ] {
        assert!(stdout.contains(expected), "the quickstart printed no {expected}:\n{stdout}");
    }
    serve.start_kill().unwrap();
}
