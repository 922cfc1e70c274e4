//! Real counterparts of the outbox's transports, on loopback: an SMTP server
//! (Debian's `python3-aiosmtpd`, run from `smtp_server.py`) that keeps every
//! message it accepts, in plain text or over STARTTLS or TLS with a
//! certificate of a private CA made at test time ([`TestPki`]), and an HTTP
//! server in the shape of an SMS provider's API that answers a script of
//! statuses and records each request.

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
    /// The TLS version the message came over (`TLSv1.3`), `None` for plain
    /// text.
    pub tls: Option<String>,
    /// The client's port: which connection it came over.
    pub peer: u16,
    /// How many connections were open when it came.
    pub open: usize,
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
            tls: string(&json["tls"]),
            peer: json["peer"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or_default(),
            open: json["open"].as_u64().and_then(|n| usize::try_from(n).ok()).unwrap_or_default(),
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

/// A private CA made at test time and a server certificate it issued, all
/// PEM: what a company's own mail relay presents.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA's self-signed certificate: what the client must trust.
    pub ca_pem: String,
    /// The server's certificate.
    pub cert_pem: String,
    /// The server's private key.
    pub key_pem: String,
}

impl TestPki {
    /// A new CA (its own key, never seen before) and a server certificate
    /// for `names` (DNS names or IP addresses) that it signed.
    pub fn new(names: &[&str]) -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own too: another test CA is another issuer.
        ca.distinguished_name.push(DnType::CommonName, format!("Stepwise test CA {}", uuid::Uuid::new_v4()));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("a CA key")).expect("the CA certificate");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut server = CertificateParams::new(names).expect("names a certificate can carry");
        server.distinguished_name.push(DnType::CommonName, "smtp.test");
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("a server key");
        let cert = server.signed_by(&key, &ca).expect("the server certificate");
        TestPki { ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }
}

/// How a test SMTP server secures its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerTls {
    /// Plain text only.
    #[default]
    None,
    /// `STARTTLS` offered, and required before anything else.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// How a test SMTP server is started.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// `AUTH` required as `(username, password)` (only after `STARTTLS`
    /// when it is offered).
    pub login: Option<(String, String)>,
    /// How connections are secured.
    pub tls: ServerTls,
    /// The names the server's certificate carries (`localhost` and
    /// `127.0.0.1` when empty); its CA is made anew for each server.
    pub certificate_names: Vec<String>,
}

/// An SMTP server on 127.0.0.1, stopped when dropped. Recipients steer it
/// (see `smtp_server.py`): `bounce*@` gets a 550, `busy*@` a 451 the first
/// time, `slow*@` a reply that never comes in time.
#[derive(Debug)]
pub struct SmtpServer {
    /// Its port.
    pub port: u16,
    /// The private CA and certificate of a server over STARTTLS or TLS.
    pub pki: Option<TestPki>,
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SmtpServer {
    /// Starts a server that takes mail from anyone.
    pub async fn start() -> SmtpServer {
        Self::with(ServerOptions::default()).await
    }

    /// Starts a server that requires `AUTH` as `username` with `password`.
    pub async fn with_login(username: &str, password: &str) -> SmtpServer {
        Self::with(ServerOptions { login: Some((username.into(), password.into())), ..ServerOptions::default() }).await
    }

    /// Starts a server as `options` say.
    pub async fn with(options: ServerOptions) -> SmtpServer {
        let python = python_with_aiosmtpd();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let script = dir.path().join("smtp_server.py");
        std::fs::write(&script, SCRIPT).expect("the script is written");
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).expect("the mail directory");
        let mut command = tokio::process::Command::new(&python);
        command.arg(&script).arg(&mail);
        if let Some((username, password)) = &options.login {
            command.arg("--login").args([username, password]);
        }
        let pki = match options.tls {
            ServerTls::None => None,
            ServerTls::Starttls | ServerTls::Implicit => {
                let names: Vec<&str> = options.certificate_names.iter().map(String::as_str).collect();
                let pki = TestPki::new(if names.is_empty() { &["localhost", "127.0.0.1"] } else { &names });
                let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
                std::fs::write(&cert, &pki.cert_pem).expect("the server certificate is written");
                std::fs::write(&key, &pki.key_pem).expect("the server key is written");
                std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).expect("the CA certificate is written");
                let flag = if options.tls == ServerTls::Starttls { "--starttls" } else { "--tls" };
                command.arg(flag).arg(cert).arg(key);
                Some(pki)
            }
        };
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
        SmtpServer { port, pki, dir, _child: child }
    }

    /// The PEM file of the CA that issued the server's certificate (what
    /// `STEPWISE_SMTP_CA_FILE` names); only for a server over STARTTLS or
    /// TLS.
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.pki.is_some(), "a plain-text server has no certificate");
        self.dir.path().join("ca.pem")
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
