//! `/v1/enrollments`: enroll, read with actions, pause, stop, resume,
//! cancel, remove, migrate to another version, change the event date.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::json::Body;
use super::json::{Path, Query};
use super::page::Page;
use stepwise_domain::engagement::EnrollmentStatus;
use stepwise_engine::{Disposition, EnrollMany, EnrollRequest};
use stepwise_store::EnrollmentFilter;

/// An enrollment request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    /// The contact.
    pub contact_id: String,
    /// The sequence.
    pub sequence_id: String,
    /// The event date of a `from_event` sequence.
    #[serde(default)]
    pub event_date: Option<DateTime<Utc>>,
}

/// What to do with the open action when stopping.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopBody {
    /// `complete`, `skip` or `keep` (the default).
    #[serde(default = "keep")]
    pub disposition: Disposition,
}

fn keep() -> Disposition {
    Disposition::Keep
}

/// A version to move to.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateBody {
    /// The version.
    pub version: i64,
}

/// A new event date; `null` clears it and cancels the remaining steps.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventDateBody {
    /// The date.
    pub event_date: Option<DateTime<Utc>>,
}

/// `POST /v1/enrollments`: the caller is the initiating user.
pub async fn enroll(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<EnrollBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request = EnrollRequest {
        contact_id: body.contact_id,
        sequence_id: body.sequence_id,
        initiated_by: Some(caller.user.id.clone()),
        event_date: body.event_date,
    };
    let enrollment = state.engine.enroll(&caller.account_id, &request).await?;
    Ok((StatusCode::CREATED, Json(json!({ "enrollment": enrollment }))))
}

/// `GET /v1/enrollments/{id}`: the enrollment with its actions.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    let enrollment = tx.enrollment(&id).await?;
    if enrollment.account_id != caller.account_id {
        return Err(ApiError::NotFound(format!("enrollment {id} not found")));
    }
    let actions = tx.actions_of_enrollment(&id).await?;
    Ok(Json(json!({ "enrollment": enrollment, "actions": actions })))
}

/// `POST /v1/enrollments/{id}/stop` with a disposition for the open action.
pub async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<StopBody>,
) -> Result<Json<Value>, ApiError> {
    let enrollment = state.engine.stop(&caller.account_id, &id, &caller.user.id, body.disposition).await?;
    Ok(Json(json!({ "enrollment": enrollment })))
}

/// `POST /v1/enrollments/{id}/pause`: a stop that keeps the open action.
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let enrollment = state.engine.stop(&caller.account_id, &id, &caller.user.id, Disposition::Keep).await?;
    Ok(Json(json!({ "enrollment": enrollment })))
}

/// `POST /v1/enrollments/{id}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let enrollment = state.engine.resume(&caller.account_id, &id, &caller.user.id).await?;
    Ok(Json(json!({ "enrollment": enrollment })))
}

/// `POST /v1/enrollments/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let enrollment = state.engine.cancel(&caller.account_id, &id, &caller.user.id).await?;
    Ok(Json(json!({ "enrollment": enrollment })))
}

/// `DELETE /v1/enrollments/{id}`: removes it with all its history.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.remove(&caller.account_id, &id, &caller.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/enrollments/{id}/migrate`.
pub async fn migrate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<MigrateBody>,
) -> Result<Json<Value>, ApiError> {
    let enrollment = state.engine.migrate(&caller.account_id, &id, body.version, &caller.user.id).await?;
    Ok(Json(json!({ "enrollment": enrollment })))
}

/// `PUT /v1/enrollments/{id}/event-date`.
pub async fn event_date(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<EventDateBody>,
) -> Result<Json<Value>, ApiError> {
    let enrollment = state.engine.set_event_date(&caller.account_id, &id, body.event_date, &caller.user.id).await?;
    Ok(Json(json!({ "enrollment": enrollment })))
}

/// Many contacts into one sequence.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollManyBody {
    /// The sequence.
    pub sequence_id: String,
    /// The contacts (at most 10,000).
    pub contact_ids: Vec<String>,
    /// The event date of a `from_event` sequence, for all of them.
    #[serde(default)]
    pub event_date: Option<DateTime<Utc>>,
}

/// `POST /v1/enrollments/bulk`: a result per contact, in order; a contact
/// that cannot be enrolled (already enrolled, queued elsewhere, unknown)
/// never stops the others.
pub async fn enroll_many(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<EnrollManyBody>,
) -> Result<Json<Value>, ApiError> {
    if body.contact_ids.len() > super::contacts::MAX_IMPORT {
        return Err(ApiError::TooLarge(format!("at most {} contacts at once", super::contacts::MAX_IMPORT)));
    }
    let request = EnrollMany {
        sequence_id: body.sequence_id,
        contact_ids: body.contact_ids,
        initiated_by: Some(caller.user.id.clone()),
        event_date: body.event_date,
    };
    let answers = state.engine.enroll_many(&caller.account_id, &request).await?;
    let (mut enrolled, mut failed) = (0, 0);
    let mut results = Vec::with_capacity(answers.len());
    for (contact_id, answer) in request.contact_ids.iter().zip(answers) {
        match answer {
            Ok(enrollment) => {
                enrolled += 1;
                results.push(
                    json!({ "contact_id": contact_id, "enrollment_id": enrollment.id, "status": enrollment.status }),
                );
            }
            Err(error) => {
                failed += 1;
                results.push(json!({ "contact_id": contact_id, "error": error.to_string() }));
            }
        }
    }
    Ok(Json(json!({ "enrolled": enrolled, "failed": failed, "results": results })))
}

/// Filters of the account's enrollment list.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only enrollments with this status.
    pub status: Option<EnrollmentStatus>,
    /// Only enrollments in this sequence.
    pub sequence: Option<String>,
    /// Only enrollments of this contact.
    pub contact: Option<String>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
}

/// `GET /v1/enrollments`: the account's enrollments, newest first, each
/// with its contact's and sequence's names, current step and the contact's
/// last engaged and contacted times.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = Page { after: q.after.clone(), limit: q.limit };
    let filter = EnrollmentFilter {
        account_id: &caller.account_id,
        status: q.status,
        sequence_id: q.sequence.as_deref(),
        contact_id: q.contact.as_deref(),
    };
    let mut tx = state.engine.read().await?;
    let items = state.engine.enrollment_items(&mut tx, &filter, page.after_at()?, page.limit()?).await?;
    let next = page.next_at(&items, |i| (i.enrollment.created_at.timestamp_millis(), &i.enrollment.id));
    Ok(Json(json!({ "enrollments": items, "next_after": next })))
}
