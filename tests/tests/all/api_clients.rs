//! What integrators' clients do to a server, over real sockets: heads and
//! bodies sent slowly or never, bodies declared larger than any route
//! takes, more connections than the server keeps, a keyed import whose
//! client gives up, request ids and the rate-limit header fields on every
//! answer.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stepwise::api::server::HttpConfig;
use stepwise_tests::app::TestApp;
use stepwise_tests::db::for_each_backend;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Short limits, so that the tests wait seconds, not minutes.
fn impatient() -> HttpConfig {
    HttpConfig {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        max_connections: 8,
        ..HttpConfig::default()
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the server closes the connection (or `limit` passes):
/// what it sent, and whether it closed.
async fn read_to_close(socket: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
        }
    }
}

fn status_of(answer: &str) -> Option<u16> {
    answer.lines().next()?.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_head_sent_a_byte_a_second_is_cut_off_at_the_header_timeout() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn_with(store, impatient()).await;
        let mut socket = connect(&app).await;
        let started = Instant::now();
        let head = format!("GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", app.admin_key);
        let mut closed = false;
        for byte in head.as_bytes() {
            if socket.write_all(&[*byte]).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            if started.elapsed() > Duration::from_secs(6) {
                break;
            }
        }
        let (answer, closed_after) = read_to_close(&mut socket, Duration::from_secs(3)).await;
        assert!(closed || closed_after, "the connection is closed, not held: {answer}");
        assert_ne!(status_of(&answer), Some(200), "the slow head is never answered as a request: {answer}");
        assert!(started.elapsed() < Duration::from_secs(6), "held {:?}", started.elapsed());
    })
    .await;
}

/// A client that connects and sends nothing was held for good: telling
/// HTTP/1 from HTTP/2 waited for a first byte with no deadline.
#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn_with(store, impatient()).await;
        let mut silent = connect(&app).await;
        let started = Instant::now();
        let (answer, closed) = read_to_close(&mut silent, Duration::from_secs(4)).await;
        assert!(closed && answer.is_empty(), "closed unanswered: {answer}");
        assert!(started.elapsed() < Duration::from_secs(4), "held {:?}", started.elapsed());
        assert_eq!(app.get("/healthz", None).await.status, 200);
    })
    .await;
}

#[tokio::test]
async fn a_declared_body_that_never_comes_is_a_408_at_the_body_timeout() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn_with(store, impatient()).await;
        let mut sockets = Vec::new();
        for _ in 0..5 {
            let mut socket = connect(&app).await;
            let head = format!(
                "POST /v1/contacts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"first",
                app.admin_key
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            sockets.push(socket);
        }
        let started = Instant::now();
        for mut socket in sockets {
            let (answer, closed) = read_to_close(&mut socket, Duration::from_secs(5)).await;
            assert_eq!(status_of(&answer), Some(408), "{answer}");
            assert!(answer.contains("urn:stepwise:problem:request-timeout"), "{answer}");
            assert!(closed, "the connection is closed after the 408");
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        let listed = app.get("/v1/contacts", Some(&app.admin_key)).await;
        assert_eq!(listed.json["contacts"], json!([]), "nothing was created");
    })
    .await;
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_a_413_before_the_body() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn_with(store, impatient()).await;
        let mut socket = connect(&app).await;
        let head = format!(
            "POST /v1/contacts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n",
            app.admin_key
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        let mut buffer = [0u8; 2048];
        let read = tokio::time::timeout(Duration::from_millis(900), socket.read(&mut buffer))
            .await
            .expect("refused before the body timeout")
            .unwrap();
        let answer = String::from_utf8_lossy(&buffer[..read]);
        assert_eq!(status_of(&answer), Some(413), "{answer}");
    })
    .await;
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once_and_room_comes_back() {
    for_each_backend(|store| async move {
        let http = HttpConfig { header_timeout: Duration::from_secs(30), ..impatient() };
        let app = TestApp::spawn_with(store, http).await;
        // Eight connections, each answered once (so surely accepted) and
        // then kept open.
        let mut held = Vec::new();
        for _ in 0..8 {
            let mut socket = connect(&app).await;
            socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            let mut buffer = [0u8; 1024];
            let read = socket.read(&mut buffer).await.unwrap();
            assert_eq!(status_of(&String::from_utf8_lossy(&buffer[..read])), Some(200));
            held.push(socket);
        }
        let mut over = connect(&app).await;
        let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let (answer, closed) = read_to_close(&mut over, Duration::from_secs(2)).await;
        assert!(closed && answer.is_empty(), "the ninth is closed unanswered: {answer}");

        // Room comes back as soon as the server sees some close.
        held.truncate(4);
        let answered = async {
            loop {
                let mut socket = connect(&app).await;
                let _ = socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
                let (answer, _) = read_to_close(&mut socket, Duration::from_secs(1)).await;
                if status_of(&answer) == Some(200) {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), answered).await.expect("room again once some closed");
    })
    .await;
}

#[tokio::test]
async fn a_keyed_import_whose_client_gives_up_completes_and_its_retry_replays_it() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let rows: Vec<Value> = (0..3000)
            .map(|i| json!({"first_name": format!("Lead {i}"), "email": format!("lead{i}@example.com")}))
            .collect();
        let body = json!({ "contacts": rows }).to_string();
        // The client sends the whole import and hangs up without waiting
        // for the answer.
        let mut socket = connect(&app).await;
        let head = format!(
            "POST /v1/contacts/import HTTP/1.1\r\nhost: stepwise\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\nidempotency-key: import-1\r\ncontent-length: {}\r\n\r\n",
            app.admin_key,
            body.len()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(body.as_bytes()).await.unwrap();
        socket.flush().await.unwrap();
        drop(socket);
        // The import is under way once its first rows are there.
        let started = Instant::now();
        while app.get("/v1/contacts?limit=1", Some(&app.admin_key)).await.json["contacts"] == json!([]) {
            assert!(started.elapsed() < Duration::from_secs(60), "the import never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let send = |timeout: Duration| {
            app.client
                .post(format!("{}/v1/contacts/import", app.base))
                .bearer_auth(&app.admin_key)
                .header("content-type", "application/json")
                .header("idempotency-key", "import-1")
                .timeout(timeout)
                .body(body.clone())
                .send()
        };

        // Retrying is safe: "still being answered" until the first request
        // is done, then its whole answer.
        let started = Instant::now();
        let replay = loop {
            let answer = send(Duration::from_secs(60)).await.unwrap();
            if answer.status() != 409 {
                break answer;
            }
            assert_eq!(answer.headers()["retry-after"], "1");
            assert!(started.elapsed() < Duration::from_secs(120), "the import never finished");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(replay.status(), 200);
        assert_eq!(replay.headers()["idempotent-replayed"], "true");
        let replay: Value = serde_json::from_str(&replay.text().await.unwrap()).unwrap();
        assert_eq!(replay["created"], 3000, "{}", replay["failed"]);

        let mut count = 0;
        let mut after = String::new();
        loop {
            let page = app.get(&format!("/v1/contacts?limit=500{after}"), Some(&app.admin_key)).await;
            count += page.json["contacts"].as_array().unwrap().len();
            match page.json["next_after"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => break,
            }
        }
        assert_eq!(count, 3000, "every row, once");
    })
    .await;
}

#[tokio::test]
async fn every_answer_carries_its_request_id_and_where_the_caller_stands_with_the_rate_limit() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn_with_rate(store, (10, 20)).await;
        let me = app.get("/v1/me", Some(&app.admin_key)).await;
        let id = me.headers["request-id"].to_str().unwrap().to_owned();
        assert!(id.starts_with("req_"), "{id}");
        assert_eq!(me.headers["ratelimit-limit"], "20");
        assert_eq!(me.headers["ratelimit-remaining"], "19");
        assert!(me.headers["ratelimit-reset"].to_str().unwrap().parse::<u64>().unwrap() <= 2);

        // A client's well-formed id is honoured, and a problem repeats it.
        let request = app.client.get(format!("{}/v1/contacts/nobody", app.base)).bearer_auth(&app.admin_key);
        let missing = app.send(request.header("x-request-id", "sync-42:retry.1")).await;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.headers["request-id"], "sync-42:retry.1");
        assert_eq!(missing.json["request_id"], "sync-42:retry.1", "{}", missing.text);
        let request = app.client.get(format!("{}/v1/me", app.base)).bearer_auth(&app.admin_key);
        let odd = app.send(request.header("x-request-id", "has spaces and \"quotes\"")).await;
        assert!(odd.headers["request-id"].to_str().unwrap().starts_with("req_"), "an ill-formed id is replaced");

        // Spent: a 429 with Retry-After, and nothing remaining.
        let mut last = me;
        for _ in 0..40 {
            last = app.get("/v1/me", Some(&app.admin_key)).await;
            if last.status == 429 {
                break;
            }
        }
        assert_eq!(last.status, 429);
        assert_eq!(last.headers["ratelimit-remaining"], "0");
        assert!(last.headers.get("retry-after").is_some());
        assert!(last.headers.get("request-id").is_some());
    })
    .await;
}

/// Regression: every invented key got a fresh bucket and cost a database
/// lookup, so inventing keys bypassed the rate limit. Failed
/// authentications are counted per client address: once an address has
/// spent them, it is refused before its requests reach the database.
#[tokio::test]
async fn an_address_that_invents_keys_is_refused_once_its_failures_are_spent() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let mut statuses = Vec::new();
        for i in 0..260 {
            let answer = app.get("/v1/me", Some(&format!("sw_invented_{i}"))).await;
            statuses.push(answer.status);
            if answer.status == 429 {
                assert!(answer.headers.get("retry-after").is_some());
                break;
            }
        }
        let failures = statuses.iter().filter(|s| **s == 401).count();
        assert_eq!(statuses.last(), Some(&429), "refused at last: {failures} failures answered");
        assert!((200..=210).contains(&failures), "{failures} invented keys were looked up");
        // Requests without a key are not failures: the probes and the
        // document stay open.
        assert_eq!(app.get("/healthz", None).await.status, 200);
    })
    .await;
}
