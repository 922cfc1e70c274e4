//! `/v1/users` and `/v1/keys`: the account's users (admins manage them) and
//! API keys (each user their own; admins anyone's), shown once, revocable.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{ADMINS, Caller};
use super::error::{ApiError, FieldProblem, is_email, no_client_id, same_id};
use super::json::Body;
use super::json::Path;
use stepwise_domain::crm::{Role, User};

fn check(user: &User) -> Result<(), ApiError> {
    let mut fields = Vec::new();
    if user.name.trim().is_empty() {
        fields.push(FieldProblem { field: "/name".into(), message: "must not be empty".into() });
    }
    if !is_email(&user.email) {
        fields.push(FieldProblem {
            field: "/email".into(),
            message: format!("`{}` is not an email address", user.email),
        });
    }
    if user.timezone.parse::<chrono_tz::Tz>().is_err() {
        fields
            .push(FieldProblem { field: "/timezone".into(), message: format!("unknown timezone `{}`", user.timezone) });
    }
    if user.signature.len() > super::me::MAX_SIGNATURE {
        let message = format!("{} bytes; a signature has at most {}", user.signature.len(), super::me::MAX_SIGNATURE);
        fields.push(FieldProblem { field: "/signature".into(), message });
    }
    if fields.is_empty() { Ok(()) } else { Err(ApiError::Validation { detail: "the user is invalid".into(), fields }) }
}

/// `GET /v1/users`, paged.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    super::json::Query(query): super::json::Query<super::sync::ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.sync_page()?;
    let mut tx = state.engine.read().await?;
    let users = tx.users_page(&caller.account_id, &page).await?;
    let next = query.next(&users, |u| (u.created_at.unwrap_or_default(), &u.id));
    Ok(Json(json!({ "users": users, "next_after": next })))
}

/// `POST /v1/users`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(user): Body<User>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    no_client_id(&user.id)?;
    check(&user)?;
    let user = state.engine.create_user(&caller.account_id, &user, &caller.editor()).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// `GET /v1/users/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    let mut tx = state.engine.read().await?;
    Ok(Json(tx.user(&caller.account_id, &id).await?))
}

/// `PUT /v1/users/{id}`: replaces every field (deactivate with `active: false`).
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(user): Body<User>,
) -> Result<Json<User>, ApiError> {
    same_id(&user.id, &id)?;
    let user = User { id: id.clone(), ..user };
    check(&user)?;
    if id == caller.user.id && (user.role != Role::Admin || !user.active) {
        return Err(ApiError::Conflict("admins cannot demote or deactivate themselves".into()));
    }
    Ok(Json(state.engine.update_user(&caller.account_id, &user, &caller.editor()).await?))
}

/// A new key.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// What the key is for.
    pub name: String,
    /// Whose key (admins only; the caller's own otherwise).
    #[serde(default)]
    pub user_id: Option<String>,
}

fn key_owner(caller: &Caller, user_id: Option<&str>) -> Result<String, ApiError> {
    match user_id {
        Some(user) if user != caller.user.id => {
            caller.require(ADMINS, "managing another user's keys")?;
            Ok(user.to_owned())
        }
        _ => Ok(caller.user.id.clone()),
    }
}

/// `GET /v1/keys`: the caller's keys, never their secrets.
pub async fn keys(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    Ok(Json(json!({ "keys": tx.api_keys(&caller.account_id, &caller.user.id).await? })))
}

/// `POST /v1/keys`: the secret is in this answer and nowhere else, ever.
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<NewKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let owner = key_owner(&caller, body.user_id.as_deref())?;
    if body.name.trim().is_empty() {
        return Err(ApiError::Validation {
            detail: "a key needs a name".into(),
            fields: vec![FieldProblem { field: "/name".into(), message: "must not be empty".into() }],
        });
    }
    let (key, secret) = state.engine.create_api_key(&caller.account_id, &owner, &body.name, &caller.editor()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "key": key, "secret": secret }))))
}

/// `DELETE /v1/keys/{id}`: revokes a key of the caller (or, for admins, of
/// anyone in the account).
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // A key's owner never changes, so the check holds for the revocation.
    let owner = state.engine.read().await?.api_key_owner(&caller.account_id, &id).await?;
    key_owner(&caller, Some(&owner))?;
    state.engine.revoke_api_key(&caller.account_id, &id, &caller.editor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A password an admin sets for a user.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// 10 to 256 characters. Never stored: only its argon2id hash is.
    pub password: String,
}

/// `PUT /v1/users/{id}/password`: an admin sets a user's console password;
/// the user's sessions end.
pub async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let user = state.engine.read().await?.user(&caller.account_id, &id).await?;
    if let Err(problem) = stepwise_engine::check_password(&body.password) {
        return Err(ApiError::field("/password", problem.to_string(), problem.to_string()));
    }
    state.engine.set_password(&caller.account_id, &user.id, &body.password, &caller.editor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/users/{id}/password-link`: a one-time link for the user to set
/// their console password, shown in this answer only; earlier unused links
/// stop working.
pub async fn password_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = state.engine.read().await?.user(&caller.account_id, &id).await?;
    let token = state.engine.password_link(&caller.account_id, &user.id, &caller.editor()).await?;
    let path = format!("/set-password/{token}");
    let url = state.engine.config().public_url.as_deref().map(|base| format!("{}{path}", base.trim_end_matches('/')));
    let valid = state.engine.config().sessions.link_valid;
    let expires_at = state.engine.now() + chrono::Duration::from_std(valid).unwrap_or(chrono::Duration::MAX);
    Ok((StatusCode::CREATED, Json(json!({ "user_id": user.id, "path": path, "url": url, "expires_at": expires_at }))))
}
