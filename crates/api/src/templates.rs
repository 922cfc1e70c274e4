//! `/v1/templates`: an account's message templates, their tokens checked
//! when saved.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, FieldProblem};
use super::json::Body;
use super::json::{Path, Query};
use stepwise_domain::templates::{check, has_legacy_merge_syntax};
use stepwise_engine::TemplateText;

/// A template as clients write it.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// A name unique in the account.
    pub name: String,
    /// The subject line, with tokens such as `{{contact.first_name}}`.
    #[serde(default)]
    pub subject: String,
    /// The body, with tokens; email steps add the sender's signature.
    pub body: String,
}

/// Every problem of a template: an empty name or body, an unknown or
/// malformed token. Legacy merge fields are not problems but warnings: steps
/// using the template are held until they are rewritten.
/// The body's text as the engine takes it.
fn text(body: &TemplateBody) -> TemplateText<'_> {
    TemplateText { name: &body.name, subject: &body.subject, body: &body.body }
}

fn checked(body: &TemplateBody) -> Result<Vec<String>, ApiError> {
    let mut fields = Vec::new();
    if body.name.trim().is_empty() {
        fields.push(FieldProblem { field: "/name".into(), message: "must not be empty".into() });
    }
    if body.body.trim().is_empty() {
        fields.push(FieldProblem { field: "/body".into(), message: "must not be empty".into() });
    }
    let mut warnings = Vec::new();
    for (field, text) in [("/subject", &body.subject), ("/body", &body.body)] {
        if let Err(error) = check(text) {
            fields.push(FieldProblem { field: field.into(), message: error.to_string() });
        }
        if has_legacy_merge_syntax(text) {
            warnings.push(format!(
                "{field} has a legacy merge field such as `{{!Contact.FirstName}}`: steps using this template are \
                 held with `legacy_merge_syntax` until it is rewritten with tokens such as `{{{{contact.first_name}}}}`"
            ));
        }
    }
    if fields.is_empty() {
        Ok(warnings)
    } else {
        Err(ApiError::Validation { detail: "the template is invalid".into(), fields })
    }
}

/// `GET /v1/templates`, paged.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<super::sync::ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.sync_page()?;
    let mut tx = state.engine.read().await?;
    let templates = tx.templates(&caller.account_id, &page).await?;
    let next = query.next(&templates, |t| (t.created_at, &t.id));
    Ok(Json(json!({ "templates": templates, "next_after": next })))
}

/// `POST /v1/templates`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<TemplateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let warnings = checked(&body)?;
    let template = state.engine.create_template(&caller.account_id, text(&body), &caller.editor()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "template": template, "warnings": warnings }))))
}

/// `GET /v1/templates/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    Ok(Json(json!({ "template": tx.template(&caller.account_id, &id).await? })))
}

/// `PUT /v1/templates/{id}`: every step using it sends the new text from
/// then on.
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<TemplateBody>,
) -> Result<Json<Value>, ApiError> {
    let warnings = checked(&body)?;
    let template = state.engine.update_template(&caller.account_id, &id, text(&body), &caller.editor()).await?;
    Ok(Json(json!({ "template": template, "warnings": warnings })))
}

/// `DELETE /v1/templates/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_template(&caller.account_id, &id, &caller.editor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
