//! A minimal SMTP server on loopback for the mail benchmark and the crash
//! tests: it speaks enough of RFC 5321 for a client (EHLO, MAIL, RCPT,
//! DATA, NOOP, RSET, QUIT), accepts every message and only counts them
//! (and their Message-IDs, to find one sent twice), so that it can take far
//! more than a sender needs. [`blast`] is a bare client that measures what
//! the sink takes without any sender's overhead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A counting SMTP server on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct SmtpSink {
    /// Its port.
    pub port: u16,
    accepted: Arc<AtomicU64>,
    ids: Arc<Mutex<HashMap<String, u32>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// Starts a sink on a free port.
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let accepted = Arc::new(AtomicU64::new(0));
        let ids = Arc::new(Mutex::new(HashMap::new()));
        let (counter, seen) = (accepted.clone(), ids.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let (counter, seen) = (counter.clone(), seen.clone());
                tokio::spawn(async move {
                    let _ = session(stream, &counter, &seen).await;
                });
            }
        });
        SmtpSink { port, accepted, ids, task }
    }

    /// Messages with a Message-ID accepted so far, and how many of those
    /// repeat an id accepted before.
    pub fn message_ids(&self) -> (usize, usize) {
        let ids = self.ids.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (ids.len(), ids.values().map(|n| (*n as usize).saturating_sub(1)).sum())
    }

    /// Messages accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client's session.
async fn session(stream: TcpStream, accepted: &AtomicU64, ids: &Mutex<HashMap<String, u32>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.test\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RCPT" | "NOOP" | "RSET" => b"250 2.0.0 OK\r\n",
            "DATA" => {
                write.write_all(b"354 end with .\r\n").await?;
                let mut id = None;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    if id.is_none() && line.get(..11).is_some_and(|h| h.eq_ignore_ascii_case("message-id:")) {
                        id = Some(line[11..].trim().to_owned());
                    }
                }
                accepted.fetch_add(1, Ordering::Relaxed);
                if let Some(id) = id {
                    *ids.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(id).or_default() += 1;
                }
                b"250 2.0.0 queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// Sends `messages` messages of `body` to the sink over `connections`
/// connections at once, one SMTP transaction after another on each (no
/// pipelining, as a sender would): what the sink takes by itself.
pub async fn blast(port: u16, connections: usize, messages: usize, body: &str) {
    let per = messages.div_ceil(connections.max(1));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let body = body.to_owned();
        clients.spawn(async move {
            let body = body.as_str();
            let stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let content = format!("{body}\r\n.\r\n");
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read);
            let mut reply = String::new();
            let mut expect = async |lines: &mut BufReader<_>, code: &str| {
                loop {
                    reply.clear();
                    lines.read_line(&mut reply).await.expect("a reply");
                    assert!(reply.starts_with(code), "expected {code}, got {reply}");
                    if reply.as_bytes().get(3) != Some(&b'-') {
                        break;
                    }
                }
            };
            expect(&mut lines, "220").await;
            write.write_all(b"EHLO client.test\r\n").await.expect("write");
            expect(&mut lines, "250").await;
            for _ in 0..per {
                write.write_all(b"MAIL FROM:<sales@stepwise.test>\r\n").await.expect("write");
                expect(&mut lines, "250").await;
                write.write_all(b"RCPT TO:<ada@example.com>\r\n").await.expect("write");
                expect(&mut lines, "250").await;
                write.write_all(b"DATA\r\n").await.expect("write");
                expect(&mut lines, "354").await;
                write.write_all(content.as_bytes()).await.expect("write");
                expect(&mut lines, "250").await;
            }
            write.write_all(b"QUIT\r\n").await.expect("write");
        });
    }
    while let Some(done) = clients.join_next().await {
        done.expect("a client finished");
    }
}
