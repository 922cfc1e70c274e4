//! `/v1/companies`: companies in an acyclic hierarchy (a cycle is a 422),
//! and a company's timeline.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, FieldProblem, no_client_id, same_id};
use super::json::Body;
use super::json::Path;
use stepwise_domain::crm::Company;
use stepwise_store::Timeline;

fn check(company: &Company) -> Result<(), ApiError> {
    if company.name.trim().is_empty() {
        return Err(ApiError::field("/name", "must not be empty", "a company needs a name"));
    }
    Ok(())
}

/// `GET /v1/companies`, paged.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    super::json::Query(query): super::json::Query<super::sync::ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.sync_page()?;
    let mut tx = state.engine.read().await?;
    let companies = tx.companies_page(&caller.account_id, &page).await?;
    let next = query.next(&companies, |c| (c.created_at.unwrap_or_default(), &c.id));
    Ok(Json(json!({ "companies": companies, "next_after": next })))
}

/// `POST /v1/companies`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(company): Body<Company>,
) -> Result<(StatusCode, Json<Company>), ApiError> {
    no_client_id(&company.id)?;
    check(&company)?;
    let company = state.engine.create_company(&caller.account_id, &company, &caller.editor()).await?;
    Ok((StatusCode::CREATED, Json(company)))
}

/// `GET /v1/companies/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Company>, ApiError> {
    let mut tx = state.engine.read().await?;
    Ok(Json(tx.company(&caller.account_id, &id).await?))
}

/// `PUT /v1/companies/{id}`: name, owner and parent; a parent that would
/// make a cycle is refused.
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(company): Body<Company>,
) -> Result<Json<Company>, ApiError> {
    same_id(&company.id, &id)?;
    let company = Company { id: id.clone(), ..company };
    check(&company)?;
    let saved = state.engine.update_company(&caller.account_id, &company, &caller.editor()).await.map_err(|error| {
        match ApiError::from(error) {
            ApiError::Validation { detail, .. } => ApiError::Validation {
                fields: vec![FieldProblem { field: "/parent_id".into(), message: detail.clone() }],
                detail,
            },
            other => other,
        }
    })?;
    Ok(Json(saved))
}

/// `GET /v1/companies/{id}/timeline`: every event about the company's contacts.
pub async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    super::json::Query(page): super::json::Query<super::page::Page>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    tx.company(&caller.account_id, &id).await?;
    super::contacts::timeline_page(&mut tx, Timeline::Company(&id), &page).await
}
