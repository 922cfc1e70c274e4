//! The console: Stepwise in a browser, server-rendered HTML from this
//! binary (maud templates compiled with the crate, one stylesheet, no
//! script needed). It is another client of the engine's rules: each page
//! reads through [`Engine::read`](stepwise_engine::Engine::read) and each
//! form calls the engine method the matching API route calls, after the
//! same role and ownership checks, so a forged request is refused exactly as
//! the API refuses it.
//!
//! People sign in with email and password ([`sign_in`]); a session is a
//! server-side row named by an `HttpOnly`, `SameSite=Strict` cookie (also
//! `Secure` when the public URL is https), and every form carries the
//! session's CSRF token.

mod admin;
mod builder;
mod chart;
mod companies;
mod engage;
mod layout;
mod records;
mod schema_form;
mod sequences;
mod settings;
mod sign_in;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use stepwise_domain::crm::Role;
use stepwise_engine::EngineError;
use stepwise_store::{Session, StoreError};

/// The cookie that names a console session.
pub const SESSION_COOKIE: &str = "stepwise_session";
/// The cookie that carries the sign-in form's CSRF token (before there is a
/// session to hold one).
const SIGN_IN_COOKIE: &str = "stepwise_sign_in";
/// The form field every console form carries its CSRF token in.
pub const CSRF_FIELD: &str = "_csrf";

/// The console's routes, served at `/` beside the API's `/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/engage") }))
        .route("/assets/console.css", get(layout::stylesheet))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/set-password/{token}", get(sign_in::link_form).post(sign_in::link_submit))
        .route("/account", get(sign_in::account))
        .route("/account/password", post(sign_in::change_password))
        .route("/account/profile", post(sign_in::save_profile))
        .route("/account/keys", get(admin::keys).post(admin::create_key))
        .route("/account/keys/{id}/revoke", post(admin::revoke_key))
        .route("/notifications", get(admin::notifications))
        .route("/admin/plugins", get(admin::plugins))
        .route(
            "/admin/plugins/upload",
            post(admin::upload)
                .layer(axum::extract::DefaultBodyLimit::max(crate::plugins::MAX_COMPONENT_BYTES + 64 * 1024)),
        )
        .route("/admin/plugins/{id}", post(admin::plugin_settings))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/{id}", post(admin::update_user))
        .route("/admin/users/{id}/password-link", post(admin::password_link))
        .route("/admin/webhooks", get(admin::webhooks))
        .route("/admin/outbox", get(admin::outbox))
        .route("/engage", get(engage::list))
        .route("/why", get(engage::why))
        .route("/actions/{id}", get(engage::action))
        .route("/actions/{id}/complete", post(engage::complete))
        .route("/actions/{id}/reschedule", post(engage::reschedule))
        .route("/actions/{id}/{verb}", post(engage::act))
        .route("/contacts", get(records::contacts))
        .route("/contacts/{id}", get(records::contact))
        .route("/contacts/{id}/enroll", post(records::enroll))
        .route("/companies", get(records::companies))
        .route("/enrollments", get(records::enrollments))
        .route("/enrollments/{id}", get(records::enrollment))
        .route("/enrollments/{id}/{verb}", post(records::change))
        .route("/sequences", get(sequences::list))
        .route("/sequences/import", post(sequences::import))
        .route("/sequences/new", post(builder::create))
        .route("/sequences/{id}/builder", get(builder::builder).post(builder::change))
        .route("/sequences/{id}", get(sequences::sequence))
        .route("/sequences/{id}/state", post(sequences::set_state))
        .route("/sequences/{id}/settings", post(settings::save))
        .route("/sequences/{id}/export", get(sequences::export))
        .route("/companies/{id}", get(companies::overview))
        .route("/companies/{id}/health/refresh", post(companies::refresh))
}

/// Whether a request's path is the console's (not the API's, the probes'
/// or the unsubscribe link's): its unknown paths get an HTML page.
pub fn is_console_path(path: &str) -> bool {
    !(path.starts_with("/v1/")
        || path == "/v1"
        || path.starts_with("/u/")
        || matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json"))
}

/// A signed-in person: their session and the caller it makes them, with the
/// same account scope and role as an API key of theirs.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// The session.
    pub session: Session,
    /// The caller the engine and the shared checks see.
    pub caller: Caller,
}

impl Visitor {
    /// Checks a form's CSRF token against the session's.
    ///
    /// # Errors
    ///
    /// A 403 page when it is missing or wrong.
    pub fn check_csrf(&self, token: Option<&str>) -> Result<(), Shown> {
        if token.is_some_and(|t| same(t, &self.session.csrf)) {
            return Ok(());
        }
        Err(Shown(ApiError::Forbidden(
            "this form is out of date or did not come from Stepwise (its CSRF token does not match); \
             reload the page and try again"
                .into(),
        )))
    }

    /// Whether the visitor's role is one of `roles`.
    pub fn may(&self, roles: &[Role]) -> bool {
        roles.contains(&self.caller.user.role)
    }
}

/// Compares two secrets in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a request's headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A form's fields, read as `axum::Form` reads them; a request that is not
/// a form (another content type, fields that do not read) is refused with a
/// page, before anything is looked at.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Form<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Shown;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Form(value)),
            Err(rejection) => {
                let status = rejection.status();
                let detail = format!("the form cannot be read: {}", rejection.body_text());
                Err(Shown(if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                    ApiError::UnsupportedMediaType(detail)
                } else {
                    ApiError::BadRequest(detail)
                }))
            }
        }
    }
}

/// A form with only its CSRF token (the buttons that act on a record).
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    /// The session's token.
    #[serde(rename = "_csrf")]
    pub csrf: Option<String>,
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, the whole site,
/// `Secure` when people reach the console over https.
fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = state.engine.config().public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// Where a request came from and asked for, to send it back after sign-in.
fn here(parts: &Parts) -> String {
    parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned()
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Back to the page after signing in; a form's target is no page to
        // return to, so a form posted after the session ended leads to
        // the Engage view.
        let back = || {
            if parts.method != http::Method::GET {
                return see_other("/sign-in");
            }
            let next: String = form_urlencoded::byte_serialize(here(parts).as_bytes()).collect();
            Redirect::to(&format!("/sign-in?next={next}")).into_response()
        };
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE).filter(|s| !s.is_empty()) else {
            return Err(back());
        };
        match state.engine.session(secret).await {
            Ok(Some(session)) => {
                let caller = Caller {
                    account_id: session.account_id.clone(),
                    user: session.user.clone(),
                    key_id: String::new(),
                };
                Ok(Visitor { session, caller })
            }
            Ok(None) => Err(back()),
            Err(error) => Err(Shown::from(error).into_response()),
        }
    }
}

/// What the console shows when it cannot do what was asked: an HTML page
/// with the API's status and words (a 404 for another account's record,
/// a 403 for a role that may not, …); internal errors are logged, never
/// shown.
#[derive(Debug)]
pub struct Shown(pub ApiError);

impl From<ApiError> for Shown {
    fn from(error: ApiError) -> Self {
        Shown(error)
    }
}

impl From<EngineError> for Shown {
    fn from(error: EngineError) -> Self {
        Shown(error.into())
    }
}

impl From<StoreError> for Shown {
    fn from(error: StoreError) -> Self {
        Shown(error.into())
    }
}

impl IntoResponse for Shown {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let (title, detail) = match &self.0 {
            ApiError::Internal(message) => {
                tracing::error!(error = %message, "console request failed");
                ("Something went wrong", "Stepwise could not do this; try again in a moment.".to_owned())
            }
            ApiError::NotFound(_) => ("Not found", "There is nothing here, or it is not yours to see.".to_owned()),
            other => (status.canonical_reason().unwrap_or("Error"), other.to_string()),
        };
        (status, layout::bare(title, &detail)).into_response()
    }
}

/// Sign-in attempts: a bucket per address signed in to and one per client
/// address, counted before the password is checked, so neither guessing
/// one person's password nor trying many people's from one place goes
/// fast. Counted in real time; buckets full again are forgotten as the maps
/// grow.
#[derive(Debug)]
pub struct SignInLimiter {
    emails: RateLimiter<[u8; 32], DefaultKeyedStateStore<[u8; 32]>, DefaultClock>,
    clients: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
    checks: AtomicU64,
}

/// Sign-in attempts per address: five at once, then one every twelve
/// seconds.
const PER_EMAIL: (u32, u32) = (5, 5);
/// Sign-in attempts per client address: thirty at once, then one every two
/// seconds (people behind one proxy share it).
const PER_CLIENT: (u32, u32) = (30, 30);

impl Default for SignInLimiter {
    fn default() -> Self {
        let quota = |(burst, per_minute): (u32, u32)| {
            Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        Self {
            emails: RateLimiter::keyed(quota(PER_EMAIL)),
            clients: RateLimiter::keyed(quota(PER_CLIENT)),
            checks: AtomicU64::new(0),
        }
    }
}

impl SignInLimiter {
    /// Counts an attempt for `email` from `client`; `Err` with the seconds
    /// to wait when either is over its limit.
    pub fn attempt(&self, email: &str, client: Option<IpAddr>) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % 1_000 == 999 {
            self.emails.retain_recent();
            self.clients.retain_recent();
        }
        let key: [u8; 32] = Sha256::digest(email.trim().to_lowercase().as_bytes()).into();
        let wait = |until: governor::NotUntil<governor::clock::QuantaInstant>| {
            until.wait_time_from(governor::clock::Clock::now(&DefaultClock::default())).as_secs().max(1)
        };
        if let Some(client) = client {
            self.clients.check_key(&client).map_err(wait)?;
        }
        self.emails.check_key(&key).map_err(wait)
    }
}

/// The client's address, when the server recorded it.
fn client_address(parts: &Parts) -> Option<IpAddr> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// A form or query value, unless it is empty or blank (no filter).
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// The text at `key` of a JSON answer of the API ("" when there is none).
fn text<'a>(value: &'a serde_json::Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

/// The words of an API refusal, with each field's problem.
fn describe(error: &ApiError) -> String {
    match error {
        ApiError::Validation { detail, fields } => {
            let fields: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
            if fields.is_empty() { detail.clone() } else { format!("{detail} ({})", fields.join("; ")) }
        }
        other => other.to_string(),
    }
}

/// A 303 to `to` (after a form).
fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}
