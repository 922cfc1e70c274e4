//! The HTTP API (axum): the only module that knows HTTP. Handlers turn
//! requests into engine and store calls and their answers into JSON; errors
//! are RFC 9457 problem documents ([`error::ApiError`]).

mod accounts;
mod actions;
pub mod auth;
mod companies;
mod contacts;
mod enrollments;
pub mod error;
mod health;
mod idempotency;
pub mod json;
pub mod limit;
mod me;
mod plugins;
mod sequences;
mod signals;
mod unsubscribe;
mod users;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post, put};

use crate::engine::Engine;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine (and through it the store and the plugins).
    pub engine: Engine,
    /// The rate limit of `/v1` routes.
    pub limiter: std::sync::Arc<limit::RateLimiter>,
}

/// Requests per second each API key may make by default, and its burst.
pub const DEFAULT_RATE: (u32, u32) = (100, 200);

/// The API bound to its listener, ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
}

impl Application {
    /// Binds `addr` (port 0 picks a free port) and builds the routes.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn build(engine: Engine, addr: SocketAddr) -> std::io::Result<Application> {
        Self::build_with_rate(engine, addr, DEFAULT_RATE).await
    }

    /// [`Application::build`] with a rate limit of `(per second, burst)`
    /// requests per API key.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn build_with_rate(engine: Engine, addr: SocketAddr, rate: (u32, u32)) -> std::io::Result<Application> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let limiter = std::sync::Arc::new(limit::RateLimiter::new(rate.0, rate.1));
        Ok(Application { listener, router: router(AppState { engine, limiter }) })
    }

    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// When the socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    ///
    /// # Errors
    ///
    /// When accepting connections fails.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service).with_graceful_shutdown(shutdown).await
    }
}

/// The body limit of bulk routes (10,000 rows); other bodies keep axum's
/// 2 MiB.
const BULK_BODY_BYTES: usize = 16 << 20;

/// Every route.
pub fn router(state: AppState) -> Router {
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics));
    let limited = Router::new()
        .route("/u/{token}", get(unsubscribe::unsubscribe).post(unsubscribe::unsubscribe))
        .route("/v1/me", get(me::me))
        .route("/v1/accounts", get(accounts::get).post(accounts::create))
        .route("/v1/notifications", get(me::notifications))
        .route("/v1/users", get(users::list).post(users::create))
        .route("/v1/users/{id}", get(users::get).put(users::replace))
        .route("/v1/keys", get(users::keys).post(users::create_key))
        .route("/v1/keys/{id}", axum::routing::delete(users::revoke))
        .route("/v1/contacts", get(contacts::list).post(contacts::create))
        .route(
            "/v1/contacts/import",
            post(contacts::import).layer(axum::extract::DefaultBodyLimit::max(BULK_BODY_BYTES)),
        )
        .route("/v1/contacts/{id}", get(contacts::get).put(contacts::replace).delete(contacts::delete))
        .route("/v1/contacts/{id}/enrollments", get(contacts::enrollments))
        .route("/v1/contacts/{id}/timeline", get(contacts::timeline))
        .route("/v1/companies", get(companies::list).post(companies::create))
        .route("/v1/companies/{id}", get(companies::get).put(companies::replace))
        .route("/v1/companies/{id}/timeline", get(companies::timeline))
        .route("/v1/sequences", get(sequences::list).post(sequences::create))
        .route("/v1/sequences/{id}/report", get(sequences::report))
        .route("/v1/sequences/import", post(sequences::import))
        .route("/v1/sequences/{id}", get(sequences::get).patch(sequences::edit))
        .route("/v1/sequences/{id}/export", get(sequences::export))
        .route("/v1/sequences/{id}/versions", post(sequences::publish))
        .route("/v1/sequences/{id}/versions/{n}", get(sequences::version))
        .route("/v1/sequences/{id}/state", post(sequences::set_state))
        .route("/v1/sequences/{id}/enrollments", get(sequences::enrollments))
        .route("/v1/enrollments", post(enrollments::enroll))
        .route(
            "/v1/enrollments/bulk",
            post(enrollments::enroll_many).layer(axum::extract::DefaultBodyLimit::max(BULK_BODY_BYTES)),
        )
        .route("/v1/enrollments/{id}", get(enrollments::get).delete(enrollments::remove))
        .route("/v1/enrollments/{id}/stop", post(enrollments::stop))
        .route("/v1/enrollments/{id}/pause", post(enrollments::pause))
        .route("/v1/enrollments/{id}/resume", post(enrollments::resume))
        .route("/v1/enrollments/{id}/cancel", post(enrollments::cancel))
        .route("/v1/enrollments/{id}/migrate", post(enrollments::migrate))
        .route("/v1/enrollments/{id}/event-date", put(enrollments::event_date))
        .route("/v1/engage", get(actions::engage))
        .route("/v1/actions/{id}", get(actions::get))
        .route("/v1/actions/{id}/complete", post(actions::complete))
        .route("/v1/actions/{id}/skip", post(actions::skip))
        .route("/v1/actions/{id}/reschedule", post(actions::reschedule))
        .route("/v1/actions/{id}/hide", post(actions::hide))
        .route("/v1/actions/{id}/explain", get(actions::explain))
        .route("/v1/signals", post(signals::signal))
        .route(
            "/v1/plugins",
            get(plugins::list)
                .post(plugins::upload)
                .layer(axum::extract::DefaultBodyLimit::max(plugins::MAX_COMPONENT_BYTES)),
        )
        .route("/v1/plugins/{id}/account", put(plugins::set_account))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::idempotency))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), limit::limit));
    open.merge(limited).fallback(error::not_found).with_state(state)
}

/// What a fresh install's bootstrap made.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    /// The account.
    pub account_id: String,
    /// Its admin.
    pub admin: crate::model::User,
    /// The admin's API key; shown once, kept only as a hash.
    pub secret: String,
}

/// Registers every add-on stored in the database, so a host that starts
/// serves the add-ons uploaded through any host. Returns how many loaded; one
/// that no longer loads is logged and skipped.
///
/// # Errors
///
/// A store error.
pub async fn load_add_ons(engine: &Engine) -> crate::store::Result<usize> {
    let mut tx = engine.store().begin_read().await?;
    let records = tx.plugins().await?;
    drop(tx);
    let mut loaded = 0;
    for record in records.into_iter().filter(|r| !r.builtin) {
        let Some(bytes) = &record.wasm else { continue };
        match engine.registry().add(bytes).await {
            Ok(_) => loaded += 1,
            Err(error) => {
                tracing::error!(plugin = %record.id, version = %record.version, %error, "a stored add-on does not load")
            }
        }
    }
    Ok(loaded)
}

/// On a database with no account: creates one, with an admin user and an
/// API key for them. Does nothing (`None`) when an account exists.
///
/// # Errors
///
/// A store error.
pub async fn bootstrap(
    store: &crate::store::Store,
    now: chrono::DateTime<chrono::Utc>,
) -> crate::store::Result<Option<Bootstrapped>> {
    let mut tx = store.begin().await?;
    if tx.account_count().await? > 0 {
        return Ok(None);
    }
    let account = tx.create_account("Default", None, now).await?;
    let admin = crate::model::User {
        name: "Administrator".into(),
        email: "admin@localhost".into(),
        role: crate::model::Role::Admin,
        ..crate::model::User::default()
    };
    let admin = tx.create_user(&account.id, &admin, now).await?;
    let (_, secret) = tx.create_api_key(&account.id, &admin.id, "bootstrap", now).await?;
    tx.commit().await?;
    Ok(Some(Bootstrapped { account_id: account.id, admin, secret }))
}
