//! Real counterparts of the outbox's transports, on loopback: an SMTP server
//! (Debian's `python3-aiosmtpd`, run from `smtp_server.py`) that keeps every
//! message it accepts, and an HTTP server in the shape of an SMS provider's
//! API that answers a script of statuses and records each request.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

/// The server script, written to a temporary file at start.
const SCRIPT: &str = include_str!("smtp_server.py");

/// Interpreters tried, in order, for one that imports aiosmtpd
/// (`STEPWISE_TEST_PYTHON` first when set). Debian's package installs into
/// the system Python, which a `python3` earlier on the PATH may not be.
fn interpreters() -> Vec<String> {
    let mut candidates: Vec<String> = std::env::var("STEPWISE_TEST_PYTHON").into_iter().collect();
    candidates.extend(["/usr/bin/python3".to_owned(), "python3".to_owned()]);
    candidates
}

fn python_with_aiosmtpd() -> String {
    let candidates = interpreters();
    for python in &candidates {
        let imports = std::process::Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if imports {
            return python.clone();
        }
    }
    panic!(
        "the delivery tests need a real SMTP server, Python's aiosmtpd, and none of {candidates:?} imports it: \
         install it with `apt-get install -y python3-aiosmtpd` (Debian), or name an interpreter that has it in \
         STEPWISE_TEST_PYTHON"
    );
}

/// A message the SMTP server accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The envelope sender.
    pub mail_from: String,
    /// The envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// The user that authenticated, if any.
    pub login: Option<String>,
    /// The headers, in order, decoded.
    pub headers: Vec<(String, String)>,
    /// The text/plain part, decoded.
    pub text: Option<String>,
    /// The text/html part, decoded.
    pub html: Option<String>,
    /// The message as received.
    pub raw: String,
}

impl Mail {
    /// The first header named `name`, decoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn read(path: &Path) -> Mail {
        let text = std::fs::read_to_string(path).expect("a received message");
        let json: serde_json::Value = serde_json::from_str(&text).expect("the server writes JSON");
        let string = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        Mail {
            mail_from: string(&json["mail_from"]).unwrap_or_default(),
            rcpt_tos: json["rcpt_tos"].as_array().into_iter().flatten().filter_map(string).collect(),
            login: string(&json["login"]),
            headers: json["headers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| (string(&h[0]).unwrap_or_default(), string(&h[1]).unwrap_or_default()))
                .collect(),
            text: string(&json["text"]),
            html: string(&json["html"]),
            raw: string(&json["raw"]).unwrap_or_default(),
        }
    }
}

/// An SMTP server on 127.0.0.1, stopped when dropped. Recipients steer it
/// (see `smtp_server.py`): `bounce*@` gets a 550, `busy*@` a 451 the first
/// time, `slow*@` a reply that never comes in time.
#[derive(Debug)]
pub struct SmtpServer {
    /// Its port.
    pub port: u16,
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SmtpServer {
    /// Starts a server that takes mail from anyone.
    pub async fn start() -> SmtpServer {
        Self::spawn(None).await
    }

    /// Starts a server that requires `AUTH` as `username` with `password`.
    pub async fn with_login(username: &str, password: &str) -> SmtpServer {
        Self::spawn(Some((username, password))).await
    }

    async fn spawn(login: Option<(&str, &str)>) -> SmtpServer {
        let python = python_with_aiosmtpd();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let script = dir.path().join("smtp_server.py");
        std::fs::write(&script, SCRIPT).expect("the script is written");
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).expect("the mail directory");
        let mut command = tokio::process::Command::new(&python);
        command.arg(&script).arg(&mail);
        if let Some((username, password)) = login {
            command.args([username, password]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{python} does not start: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        let mut lines = tokio::io::BufReader::new(stdout);
        tokio::time::timeout(Duration::from_secs(30), lines.read_line(&mut first))
            .await
            .expect("the SMTP server starts within 30 s")
            .expect("the SMTP server prints its port");
        let port = first.trim().parse().unwrap_or_else(|_| panic!("the SMTP server printed `{first}`, not a port"));
        SmtpServer { port, dir, _child: child }
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Every message accepted so far, in order. A message is written before
    /// the server's 250, so a delivery that succeeded is always here.
    pub fn received(&self) -> Vec<Mail> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.mail_dir())
            .expect("the mail directory")
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths.iter().map(|path| Mail::read(path)).collect()
    }

    /// Waits until the server has accepted `count` messages (for a client
    /// that is cut off before it sees the reply), at most 30 s.
    pub async fn wait_for(&self, count: usize) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(tokio::time::Instant::now() < deadline, "the SMTP server received {} of {count}", received.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A request the provider received.
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    /// The path.
    pub path: String,
    /// Headers, lowercase names.
    pub headers: Vec<(String, String)>,
    /// The form fields, in order.
    pub form: Vec<(String, String)>,
}

impl ProviderRequest {
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The form field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// An SMS provider's API on 127.0.0.1: answers each request with the next
/// `(status, JSON body)` of its script (the last one over and over) and
/// records it.
#[derive(Debug, Clone)]
pub struct Provider {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    received: Arc<Mutex<Vec<ProviderRequest>>>,
}

impl Provider {
    /// Starts a provider answering `script`.
    pub async fn start(script: &[(u16, &str)]) -> Provider {
        assert!(!script.is_empty(), "a script of at least one answer");
        let script: Arc<Vec<(u16, String)>> = Arc::new(script.iter().map(|(s, b)| (*s, (*b).to_owned())).collect());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  axum::extract::Form(form): axum::extract::Form<Vec<(String, String)>>| {
                let sink = sink.clone();
                let script = script.clone();
                async move {
                    let mut sink = sink.lock().unwrap();
                    let (status, body) = script[sink.len().min(script.len() - 1)].clone();
                    sink.push(ProviderRequest {
                        path: uri.path().to_owned(),
                        headers: headers
                            .iter()
                            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                            .collect(),
                        form,
                    });
                    let status = axum::http::StatusCode::from_u16(status).expect("a status");
                    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body)
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Provider { base, received }
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<ProviderRequest> {
        self.received.lock().unwrap().clone()
    }
}
