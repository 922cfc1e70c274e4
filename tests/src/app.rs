//! The API on a real server on port 0, over a [`World`], with an HTTP
//! client and keys for an admin and an agent.

use std::net::SocketAddr;

use stepwise::api::Application;
use stepwise::api::server::HttpConfig;
use stepwise::crm::{Role, User};
use stepwise::store::Store;

use crate::scenario::World;

/// A served API.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The world behind it.
    pub world: World,
    /// An admin's API key.
    pub admin_key: String,
    /// The world's agent's API key.
    pub agent_key: String,
    /// The client.
    pub client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON, or `Null` when it is not JSON.
    pub json: serde_json::Value,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// The string at the JSON `pointer` (such as `/contact/id`).
    ///
    /// # Panics
    ///
    /// When there is none, showing the body.
    pub fn string(&self, pointer: &str) -> String {
        let found = self.json.pointer(pointer).and_then(serde_json::Value::as_str);
        found.unwrap_or_else(|| panic!("no string at {pointer}: {}", self.text)).to_owned()
    }
}

impl TestApp {
    /// Serves the API over a new world on `store`.
    pub async fn spawn(store: Store) -> TestApp {
        Self::spawn_with_rate(store, stepwise::api::DEFAULT_RATE).await
    }

    /// [`TestApp::spawn`] with a rate limit of `(per second, burst)` requests
    /// per key: tests that send hundreds of requests raise it.
    pub async fn spawn_with_rate(store: Store, rate: (u32, u32)) -> TestApp {
        Self::spawn_with(store, HttpConfig { rate, ..HttpConfig::default() }).await
    }

    /// [`TestApp::spawn`] with the server's limits set by `http`: tests of
    /// slow clients shorten its timeouts.
    pub async fn spawn_with(store: Store, http: HttpConfig) -> TestApp {
        Self::spawn_world(World::new(store).await, http).await
    }

    /// Serves the API over `world` (made with an engine configuration of
    /// the test's own).
    pub async fn spawn_world(world: World, http: HttpConfig) -> TestApp {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let app = Application::build_with(world.engine.clone(), addr, http).await.expect("binds");
        let base = format!("http://{}", app.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        let admin =
            User { name: "Ada Admin".into(), email: "admin@example.com".into(), role: Role::Admin, ..User::default() };
        let admin = world.user(admin).await;
        let mut tx = world.store().begin().await.unwrap();
        let (_, admin_key) = tx.create_api_key(&world.account, &admin, "test", world.now()).await.unwrap();
        let (_, agent_key) = tx.create_api_key(&world.account, &world.agent, "test", world.now()).await.unwrap();
        tx.commit().await.unwrap();
        TestApp { base, world, admin_key, agent_key, client: reqwest::Client::new(), _stop: stop }
    }

    /// Sends `request` and reads the answer.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Answer { status, content_type, headers, json, text }
    }

    /// `method path` with `key` (none when `None`) and a JSON `body`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        self.send(request).await
    }

    /// `GET path` with `key` (none when `None`).
    pub async fn get(&self, path: &str, key: Option<&str>) -> Answer {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        self.send(request).await
    }
}
