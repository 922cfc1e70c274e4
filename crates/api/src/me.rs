//! `GET /v1/me`: who the key belongs to; `PATCH /v1/me`: people change
//! their own name, timezone and signature (never their role or active
//! flag); `PUT /v1/me/password`: their own console password; `GET /v1/notifications`: what the caller was told (steps with
//! notify on, failures to look at, sends held for a person), addressed to
//! them or to their role.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, FieldProblem};
use super::json::Body;
use stepwise_domain::crm::User;
use stepwise_domain::engagement::EventKind;

/// The longest signature a user may keep.
pub const MAX_SIGNATURE: usize = 10_000;

/// What people may change of themselves; what is left out stays.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    /// The name shown to colleagues and signed into emails.
    pub name: Option<String>,
    /// IANA timezone their times are shown in, such as `Europe/Paris`.
    pub timezone: Option<String>,
    /// The signature their emails carry.
    pub signature: Option<String>,
}

/// `PATCH /v1/me`: the caller's own name, timezone and signature. Role,
/// active flag and email address are an admin's to change
/// (`PUT /v1/users/{id}`); naming them here is a 422.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<ProfileBody>,
) -> Result<Json<User>, ApiError> {
    let mut fields = Vec::new();
    let mut problem = |field: &str, message: String| fields.push(FieldProblem { field: field.into(), message });
    if body.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        problem("/name", "must not be empty".into());
    }
    if let Some(zone) = body.timezone.as_deref().filter(|z| z.parse::<chrono_tz::Tz>().is_err()) {
        problem("/timezone", format!("unknown timezone `{zone}`"));
    }
    if let Some(signature) = body.signature.as_deref().filter(|s| s.len() > MAX_SIGNATURE) {
        problem("/signature", format!("{} bytes; a signature has at most {MAX_SIGNATURE}", signature.len()));
    }
    if !fields.is_empty() {
        return Err(ApiError::Validation { detail: "the profile is invalid".into(), fields });
    }
    let mut tx = state.engine.read().await?;
    let mut user = tx.user(&caller.account_id, &caller.user.id).await?;
    drop(tx);
    if let Some(name) = body.name {
        user.name = name.trim().to_owned();
    }
    if let Some(timezone) = body.timezone {
        user.timezone = timezone;
    }
    if let Some(signature) = body.signature {
        user.signature = signature;
    }
    Ok(Json(state.engine.update_user(&caller.account_id, &user, &caller.editor()).await?))
}

/// A change of your own console password.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password you sign in with now.
    pub current_password: String,
    /// The new one: 10 to 256 characters.
    pub new_password: String,
}

/// `PUT /v1/me/password`: the current password must match; your console
/// sessions end.
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    if let Err(problem) = stepwise_engine::check_password(&body.new_password) {
        return Err(ApiError::Validation {
            detail: "the new password is refused".into(),
            fields: vec![FieldProblem { field: "/new_password".into(), message: problem.to_string() }],
        });
    }
    let user = &caller.user.id;
    let editor = caller.editor();
    match state
        .engine
        .change_password(&caller.account_id, user, &body.current_password, &body.new_password, &editor)
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(stepwise_engine::EngineError::Invalid(problem)) => Err(ApiError::Validation {
            detail: "the password is not changed".into(),
            fields: vec![FieldProblem { field: "/current_password".into(), message: problem }],
        }),
        Err(other) => Err(other.into()),
    }
}

/// The caller, their account and their key.
pub async fn me(caller: Caller) -> Json<Value> {
    Json(json!({ "account_id": caller.account_id, "user": caller.user, "key_id": caller.key_id }))
}

/// `GET /v1/notifications`: the caller's newest notifications.
pub async fn notifications(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    let events = tx.events_of_kind(&caller.account_id, EventKind::Notification, 1_000).await?;
    let role = json!(caller.role());
    let mine: Vec<_> = events
        .into_iter()
        .filter(|e| {
            let Some(to) = e.after.as_ref() else { return false };
            to.get("user_id").and_then(Value::as_str) == Some(caller.user.id.as_str())
                || to.get("roles").and_then(Value::as_array).is_some_and(|roles| roles.contains(&role))
        })
        .take(100)
        .collect();
    Ok(Json(json!({ "notifications": mine })))
}
