//! `http-fetch` refuses private, loopback, link-local, metadata and
//! IPv4-mapped destinations unless the operator allows them, and re-checks
//! every redirect.

use stepwise::plugins::Runtime;
use stepwise_tests::{Recorder, ada, guests, invocation, runtime};

/// Fetches `url` through `host-caller` with a grant that allows any
/// destination, so that only the address rules can refuse it.
async fn fetch(runtime: &Runtime, url: &str) -> serde_json::Value {
    let plugin = runtime.load(guests::HOST_CALLER).await.unwrap();
    let config = serde_json::json!({"call": "fetch", "url": url}).to_string();
    let grants = ["http-fetch=http://*:*,https://*:*"];
    let call = runtime.execute(&plugin, invocation(ada(), &grants), &config).await.unwrap();
    serde_json::to_value(&call.value).unwrap()
}

fn assert_blocked(outcome: &serde_json::Value, url: &str) {
    assert_eq!(outcome["status"], "failed", "{url} was not refused: {outcome}");
    assert_eq!(outcome["details"]["code"], "blocked", "{url}: {outcome}");
}

#[tokio::test]
async fn private_destinations_are_refused() {
    let server = Recorder::start(200, "secret").await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let runtime = runtime(false);
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://10.0.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://localhost:{port}/"),
    ] {
        assert_blocked(&fetch(&runtime, &url).await, &url);
    }
    assert!(server.received().is_empty(), "a refused request reached the server");
}

#[tokio::test]
async fn a_redirect_to_loopback_is_refused() {
    let target = Recorder::start(200, "secret").await;
    let redirector = Recorder::redirecting(&format!("{}/inside", target.base)).await;
    let runtime = runtime(true);
    let plugin = runtime.load(guests::HOST_CALLER).await.unwrap();
    // The grant allows the redirector's origin only, so the hop to the
    // other loopback port is refused even with private addresses allowed.
    let grant = format!("http-fetch={}", redirector.base);
    let config = serde_json::json!({"call": "fetch", "url": format!("{}/start", redirector.base)}).to_string();
    let call = runtime.execute(&plugin, invocation(ada(), &[&grant]), &config).await.unwrap();
    let outcome = serde_json::to_value(&call.value).unwrap();
    assert_eq!(outcome["status"], "failed", "{outcome}");
    assert_eq!(outcome["details"]["code"], "denied", "{outcome}");
    assert_eq!(redirector.received().len(), 1);
    assert!(target.received().is_empty(), "the redirect was followed");

    // Without the operator setting, the redirector itself is refused.
    let runtime = stepwise_tests::runtime(false);
    assert_blocked(&fetch(&runtime, &format!("{}/start", redirector.base)).await, "redirector");
}

#[tokio::test]
async fn allowed_destination_is_reached_when_the_operator_allows_private_networks() {
    let server = Recorder::start(200, "hello").await;
    let runtime = runtime(true);
    let outcome = fetch(&runtime, &format!("{}/ping", server.base)).await;
    assert_eq!(outcome["status"], "done", "{outcome}");
    assert_eq!(outcome["output"]["status"], 200, "{outcome}");
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn destination_outside_the_allowlist_is_denied() {
    let server = Recorder::start(200, "hello").await;
    let runtime = runtime(true);
    let plugin = runtime.load(guests::HOST_CALLER).await.unwrap();
    let config = serde_json::json!({"call": "fetch", "url": format!("{}/", server.base)}).to_string();
    let grants = ["http-fetch=https://hooks.example.com"];
    let call = runtime.execute(&plugin, invocation(ada(), &grants), &config).await.unwrap();
    let outcome = serde_json::to_value(&call.value).unwrap();
    assert_eq!(outcome["details"]["code"], "denied", "{outcome}");
    assert!(server.received().is_empty());
}

/// Regression: with private networks allowed (as the quickstart asks, to
/// reach a local receiver), a redirect to the cloud metadata address was
/// followed. That setting opens loopback and the private ranges only.
#[tokio::test]
async fn metadata_and_link_local_stay_refused_when_private_networks_are_allowed() {
    let redirector = Recorder::redirecting("http://169.254.169.254/latest/meta-data/").await;
    let runtime = runtime(true);
    let outcome = fetch(&runtime, &format!("{}/start", redirector.base)).await;
    assert_blocked(&outcome, "a redirect to the metadata address");
    assert!(outcome.to_string().contains("cloud metadata"), "{outcome}");
    assert_eq!(redirector.received().len(), 1, "the redirector itself, on loopback, was reached");
    for url in
        ["http://169.254.169.254/latest/meta-data/", "http://169.254.1.1/", "http://[fe80::1]/", "http://100.64.0.1/"]
    {
        assert_blocked(&fetch(&runtime, url).await, url);
    }
}
