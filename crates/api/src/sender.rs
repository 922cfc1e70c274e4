//! Sending identities: `GET/PUT /v1/me/sender` (the address and name a
//! rep's emails come from), `PUT/DELETE /v1/me/sender/smtp` (their own
//! server, optional), `POST /v1/me/sender/confirmation` (a new link to
//! confirm it), `GET /sender/{token}` (the link, for people: an HTML
//! answer), and `PATCH /v1/accounts/{id}` (where the account's emails come
//! from).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::json::{Body, Path};
use stepwise_domain::Secret;
use stepwise_domain::crm::User;
use stepwise_domain::engagement::SenderMode;
use stepwise_domain::transport::{SmtpAccount, SmtpSecurity};
use stepwise_engine::{EngineError, SenderIdentity};
use stepwise_store::SenderSmtp;

/// The address and name your emails come from.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SenderBody {
    /// The address; your email when left out or empty.
    #[serde(default)]
    pub email: Option<String>,
    /// The name; your name when left out or empty.
    #[serde(default)]
    pub name: Option<String>,
}

/// A rep's own SMTP server and login.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpBody {
    /// The server's host name.
    pub host: String,
    /// Its port; by `security` when left out (25, 587, 465).
    #[serde(default)]
    pub port: Option<u16>,
    /// `none`, `starttls` (the default) or `tls`.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// The login.
    pub username: String,
    /// The password: kept for sending alone, never shown again.
    pub password: String,
}

/// A rep's sending identity.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SenderView {
    /// The address emails come from.
    pub email: String,
    /// The name emails come from.
    pub name: String,
    /// Whether the address is verified.
    pub verified: bool,
    /// Their own SMTP server, when they gave one (never the password).
    pub smtp: Option<SenderSmtp>,
}

/// A rep's sending identity after a change.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SenderAnswer {
    /// The user, with `sender_email`, `sender_name` and whether the address
    /// is verified (`sender_connected`).
    pub user: User,
    /// Where a confirmation link was just sent, if one was.
    pub confirmation_sent_to: Option<String>,
    /// Why none was, when the address is not verified.
    pub note: Option<String>,
}

/// Where a confirmation link went.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Sent {
    /// The address.
    pub sent_to: String,
}

/// A change to the caller's account.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// `relay`: emails come from the host's relay address with `Reply-To`
    /// the rep; `own_address`: from each rep's own verified address.
    pub sender_mode: Option<SenderMode>,
}

/// `PUT /v1/me/sender`: a new address is sent a confirmation link.
pub async fn set_identity(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<SenderBody>,
) -> Result<Json<SenderAnswer>, ApiError> {
    let identity = SenderIdentity { email: body.email, name: body.name };
    let engine = &state.engine;
    let user = engine.set_sender_identity(&caller.account_id, &caller.user.id, &identity, &caller.editor()).await?;
    if user.sender_connected {
        return Ok(Json(SenderAnswer { user, confirmation_sent_to: None, note: None }));
    }
    match engine.request_sender_confirmation(&caller.account_id, &user.id).await {
        Ok(sent_to) => Ok(Json(SenderAnswer { user, confirmation_sent_to: Some(sent_to), note: None })),
        Err(EngineError::InvalidState(note)) => {
            Ok(Json(SenderAnswer { user, confirmation_sent_to: None, note: Some(note) }))
        }
        Err(other) => Err(other.into()),
    }
}

/// `GET /v1/me/sender`.
pub async fn get_identity(State(state): State<AppState>, caller: Caller) -> Result<Json<SenderView>, ApiError> {
    let mut tx = state.engine.read().await?;
    let user = tx.user(&caller.account_id, &caller.user.id).await?;
    let smtp = tx.sender_smtp(&caller.account_id, &user.id).await?.as_ref().map(SenderSmtp::from);
    Ok(Json(SenderView {
        email: user.sending_address().to_owned(),
        name: user.sending_name().to_owned(),
        verified: user.sender_connected,
        smtp,
    }))
}

/// `PUT /v1/me/sender/smtp`: your own server, for your emails from your
/// own address.
pub async fn set_smtp(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<SmtpBody>,
) -> Result<Json<SenderSmtp>, ApiError> {
    let account = SmtpAccount {
        host: body.host.trim().to_owned(),
        port: body.port.unwrap_or_else(|| body.security.default_port()),
        security: body.security,
        username: body.username,
        password: Secret::new(body.password),
    };
    state.engine.set_sender_smtp(&caller.account_id, &caller.user.id, Some(&account), &caller.editor()).await?;
    Ok(Json(SenderSmtp::from(&account)))
}

/// `DELETE /v1/me/sender/smtp`: your emails go through the relay again.
pub async fn delete_smtp(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    state.engine.set_sender_smtp(&caller.account_id, &caller.user.id, None, &caller.editor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/me/sender/confirmation`: a new link (the earlier stop working).
pub async fn request_confirmation(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<Sent>), ApiError> {
    let sent_to = state.engine.request_sender_confirmation(&caller.account_id, &caller.user.id).await?;
    Ok((StatusCode::ACCEPTED, Json(Sent { sent_to })))
}

const PAGE: &str = "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
                    <title>Sending address</title><p>";

/// `GET /sender/{token}`: the confirmation link.
pub async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> (StatusCode, Html<String>) {
    match state.engine.confirm_sender(&token).await {
        Ok(user) => (
            StatusCode::OK,
            Html(format!(
                "{PAGE}Confirmed: the emails of {} may now come from {}.",
                maud::html! { (user.name) }.into_string(),
                maud::html! { (user.sending_address()) }.into_string()
            )),
        ),
        Err(EngineError::Invalid(message)) => {
            (StatusCode::NOT_FOUND, Html(format!("{PAGE}{}", maud::html! { (message) }.into_string())))
        }
        Err(error) => {
            tracing::error!(%error, "a sender confirmation failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(format!("{PAGE}Something went wrong; please try the link again later.")),
            )
        }
    }
}

/// `PATCH /v1/accounts/{id}`: the caller's own account only.
pub async fn edit_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<AccountPatch>,
) -> Result<Json<stepwise_domain::engagement::Account>, ApiError> {
    if id != caller.account_id {
        return Err(ApiError::NotFound(format!("account {id} not found")));
    }
    if let Some(mode) = body.sender_mode {
        state.engine.set_sender_mode(&caller.account_id, mode, &caller.editor()).await?;
    }
    let mut tx = state.engine.read().await?;
    Ok(Json(tx.account(&caller.account_id).await?))
}
