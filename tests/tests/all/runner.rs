//! The plugin runner's verdicts, which `stepwise plugin run` exits with: a
//! failure the plugin answers, a denied host call, and a call that gives no
//! answer each end differently from a clean run.

use std::path::Path;

use stepwise::plugins::{Limits, Runtime, RuntimeConfig};
use stepwise::runner::{self, Mode, RunOptions, Source, Verdict};
use stepwise_tests::guests;

fn runtime() -> Runtime {
    let limits = Limits { call_timeout: std::time::Duration::from_millis(300), ..Limits::default() };
    Runtime::new(RuntimeConfig { limits, threads: Some(1), ..RuntimeConfig::default() }).unwrap()
}

async fn run(dir: &Path, name: &str, bytes: &[u8], config: &str, grants: &[&str]) -> runner::RunReport {
    let file = dir.join(format!("{name}.wasm"));
    std::fs::write(&file, bytes).unwrap();
    let options = RunOptions {
        config: config.to_owned(),
        grants: grants.iter().map(|g| (*g).to_owned()).collect(),
        subject: stepwise_tests::ada(),
        ..RunOptions::default()
    };
    runner::run(&runtime(), &Source::File(file), Mode::Auto, 1 << 26, options).await.unwrap()
}

#[tokio::test]
async fn each_ending_has_its_own_verdict_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    let ok = run(dir, "scripted", guests::SCRIPTED, "{}", &[]).await;
    assert_eq!(ok.verdict, Verdict::Ok, "{}", ok.to_text());
    assert_eq!(ok.verdict.code(), 0);

    let failed = run(dir, "scripted", guests::SCRIPTED, r#"{"outcome": "fail"}"#, &[]).await;
    assert_eq!(failed.verdict, Verdict::Failed, "{}", failed.to_text());
    assert_eq!(failed.verdict.code(), 3);
    assert!(failed.to_text().contains("verdict    failed: the plugin answered with a failure (exit 3)"));

    // Sending without the grant: the call is denied, whatever the outcome.
    let denied = run(dir, "scripted", guests::SCRIPTED, r#"{"send": true}"#, &[]).await;
    assert_eq!(denied.verdict, Verdict::Denied, "{}", denied.to_text());
    assert_eq!(denied.verdict.code(), 4);
    let granted = run(dir, "scripted", guests::SCRIPTED, r#"{"send": true}"#, &["send-email"]).await;
    assert_eq!(granted.verdict, Verdict::Ok, "{}", granted.to_text());

    let trapped = run(dir, "trap", guests::TRAP, "{}", &[]).await;
    assert_eq!(trapped.verdict, Verdict::Broken, "{}", trapped.to_text());
    assert_eq!(trapped.verdict.code(), 5);
    let looping = run(dir, "infinite-loop", guests::INFINITE_LOOP, "{}", &[]).await;
    assert_eq!(looping.verdict, Verdict::Broken, "{}", looping.to_text());
    assert!(looping.error.as_deref().unwrap().contains("timed out"), "{:?}", looping.error);
}
