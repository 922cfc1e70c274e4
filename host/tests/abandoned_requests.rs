//! Regression: clients that hang up right after sending a request once left
//! the database pool without connections, so every later request hung and
//! the server did not stop on SIGTERM. Against the real `stepwise serve`
//! over real sockets: 32 clients abandon thousands of requests, then every
//! ordinary request is answered, then SIGTERM stops the process within the
//! shutdown grace.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;

/// `stepwise serve` on a fresh SQLite file: the child, its base URL and the
/// admin key. Its standard error (a line per request) is read and dropped.
fn serve(dir: &std::path::Path) -> (std::process::Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stepwise"))
        .arg("serve")
        .env("STEPWISE_LISTEN", "127.0.0.1:0")
        .env("STEPWISE_DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.join("s.db").display()))
        .env("STEPWISE_RATE_LIMIT_PER_SECOND", "1000000")
        .env("STEPWISE_RATE_LIMIT_BURST", "1000000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let key = out.find_map(|l| l.ok()?.split_whitespace().find(|w| w.starts_with("sw_")).map(str::to_owned));
    let listening = err.find_map(|l| l.ok().filter(|l| l.contains("listening on"))).expect("it says where it listens");
    let base = listening.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();
    std::thread::spawn(move || err.for_each(drop));
    (child, base, key.expect("the admin key is printed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_that_hang_up_never_poison_the_pool_and_serve_still_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, key) = serve(dir.path());
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    // Some contacts, so that listing them reads the database for a while.
    for i in 0..50 {
        let body = format!(r#"{{"first_name": "Lead {i}", "email": "lead{i}@example.com"}}"#);
        let made = client
            .post(format!("{base}/v1/contacts"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), 201);
    }

    // 32 clients, each sending `GET /v1/contacts` and hanging up 0–20 ms
    // later, for three seconds.
    let request = format!("GET /v1/contacts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\r\n");
    let until = Instant::now() + Duration::from_secs(3);
    let abandoners: Vec<_> = (0..32u64)
        .map(|client| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut sent = 0u32;
                let mut seed = client.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                while Instant::now() < until {
                    let Ok(mut socket) = tokio::net::TcpStream::connect(addr).await else { continue };
                    if socket.write_all(request.as_bytes()).await.is_ok() {
                        sent += 1;
                    }
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    tokio::time::sleep(Duration::from_millis((seed >> 33) % 21)).await;
                    drop(socket);
                }
                sent
            })
        })
        .collect();
    let mut abandoned = 0;
    for task in abandoners {
        abandoned += task.await.unwrap();
    }
    assert!(abandoned > 1_000, "only {abandoned} requests were abandoned");

    // Every ordinary request is answered, and promptly.
    for _ in 0..100 {
        let answer = client.get(format!("{base}/v1/contacts?limit=5")).bearer_auth(&key).send().await;
        let answer = answer.expect("an ordinary request is answered after the abandoned ones");
        assert_eq!(answer.status(), 200);
    }

    // And SIGTERM stops it within the shutdown grace.
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let asked = Instant::now();
    let grace = stepwise::api::SHUTDOWN_GRACE + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if asked.elapsed() > grace {
            let _ = child.kill();
            panic!("serve did not stop within {grace:?} of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "a clean stop: {status}");
}
