//! `/v1/accounts`: the caller's account, its parent and its sub-accounts;
//! admins create sub-accounts, each with its own admin.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, FieldProblem, is_email};
use super::json::Body;
use stepwise_domain::crm::{Role, User};

/// `GET /v1/accounts`.
pub async fn get(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    let account = tx.account(&caller.account_id).await?;
    let parent = match &account.parent_id {
        Some(parent) => Some(tx.account(parent).await?),
        None => None,
    };
    let subs = tx.sub_accounts(&caller.account_id).await?;
    Ok(Json(json!({ "account": account, "parent": parent, "sub_accounts": subs })))
}

/// A new sub-account and its first admin.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubAccount {
    /// The sub-account's name.
    pub name: String,
    /// Its admin's name.
    pub admin_name: String,
    /// Its admin's email.
    pub admin_email: String,
}

/// `POST /v1/accounts`: a sub-account of the caller's account, with an admin
/// whose API key is in this answer only.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<NewSubAccount>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut fields = Vec::new();
    if body.name.trim().is_empty() {
        fields.push(FieldProblem { field: "/name".into(), message: "must not be empty".into() });
    }
    if !is_email(&body.admin_email) {
        fields.push(FieldProblem { field: "/admin_email".into(), message: "is not an email address".into() });
    }
    if !fields.is_empty() {
        return Err(ApiError::Validation { detail: "the sub-account is invalid".into(), fields });
    }
    let admin = User { name: body.admin_name, email: body.admin_email, role: Role::Admin, ..User::default() };
    let made = state.engine.create_sub_account(&caller.account_id, &body.name, &admin, &caller.editor()).await?;
    Ok((StatusCode::CREATED, Json(json!(made))))
}
