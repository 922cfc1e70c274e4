//! `/v1/contact-types`: the account's contact types (Clients, Employees,
//! Partners, Vendors, Other to begin with), which admins rename. Contacts
//! reference their type, so a rename carries them along.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, FieldProblem};
use super::json::Body;
use super::json::Path;
use stepwise_domain::engagement::ContactType;

/// The longest name a contact type may have.
const MAX_NAME_CHARS: usize = 100;

/// A contact type's new name.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameBody {
    /// The new name: not empty, no surrounding spaces, at most 100
    /// characters, unique in the account whatever its case.
    pub name: String,
}

/// `GET /v1/contact-types`: every contact type of the account, in display
/// order. An account has a handful, so the list is never paged.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    Ok(Json(json!({ "contact_types": tx.contact_types(&caller.account_id).await? })))
}

/// `PUT /v1/contact-types/{id}`: renames a contact type.
pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<RenameBody>,
) -> Result<Json<ContactType>, ApiError> {
    let types = state.engine.read().await?.contact_types(&caller.account_id).await?;
    if !types.iter().any(|t| t.id == id) {
        return Err(ApiError::NotFound(format!("contact type {id} not found")));
    }
    check(&body.name)?;
    Ok(Json(state.engine.rename_contact_type(&caller.account_id, &id, &body.name, &caller.editor()).await?))
}

fn check(name: &str) -> Result<(), ApiError> {
    let message = if name.trim().is_empty() {
        "must not be empty"
    } else if name.trim() != name {
        "must not start or end with spaces"
    } else if name.chars().count() > MAX_NAME_CHARS {
        "must be at most 100 characters"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(ApiError::Validation {
        detail: "the contact type's name is invalid".into(),
        fields: vec![FieldProblem { field: "/name".into(), message: message.into() }],
    })
}
