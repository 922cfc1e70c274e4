//! `/v1/contacts`: create (new leads are auto-enrolled by lead source), read,
//! replace, delete and list contacts; a contact's sequences and timeline.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, FieldProblem, is_email, no_client_id, same_id};
use super::json::Body;
use super::json::{Path, Query};
use super::page::Page;
use stepwise_domain::crm::Contact;
use stepwise_store::Timeline;

/// Checks a contact's own fields (references are checked by the store).
fn check(contact: &Contact) -> Result<(), ApiError> {
    let mut fields = Vec::new();
    if contact.first_name.trim().is_empty() && contact.last_name.trim().is_empty() && contact.email.is_none() {
        fields.push(FieldProblem { field: "/first_name".into(), message: "a contact needs a name or an email".into() });
    }
    if let Some(email) = &contact.email
        && !is_email(email)
    {
        fields.push(FieldProblem { field: "/email".into(), message: format!("`{email}` is not an email address") });
    }
    if let Some(tz) = &contact.timezone
        && tz.parse::<chrono_tz::Tz>().is_err()
    {
        fields.push(FieldProblem { field: "/timezone".into(), message: format!("unknown timezone `{tz}`") });
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation { detail: "the contact is invalid".into(), fields })
    }
}

/// `POST /v1/contacts`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(contact): Body<Contact>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    no_client_id(&contact.id)?;
    check(&contact)?;
    let (contact, enrolled) = state.engine.create_contact(&caller.account_id, &contact, &caller.editor()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "contact": contact, "enrollments": enrolled }))))
}

/// `GET /v1/contacts`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<super::sync::ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.sync_page()?;
    let mut tx = state.engine.read().await?;
    let contacts = tx.contacts(&caller.account_id, &page).await?;
    let next = query.next(&contacts, |c| (c.created_at.unwrap_or_default(), &c.id));
    Ok(Json(json!({ "contacts": contacts, "next_after": next })))
}

/// `GET /v1/contacts/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Contact>, ApiError> {
    let mut tx = state.engine.read().await?;
    Ok(Json(tx.contact(&caller.account_id, &id).await?))
}

/// `PUT /v1/contacts/{id}`: replaces every field.
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(contact): Body<Contact>,
) -> Result<Json<Contact>, ApiError> {
    same_id(&contact.id, &id)?;
    let contact = Contact { id: id.clone(), ..contact };
    check(&contact)?;
    Ok(Json(state.engine.update_contact(&caller.account_id, &contact, &caller.editor()).await?))
}

/// `DELETE /v1/contacts/{id}`: the contact, its enrollments and history.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_contact(&caller.account_id, &id, &caller.editor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/contacts/{id}/enrollments`: the contact's sequences, paged.
pub async fn enrollments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<super::sync::EnrollmentsQuery>,
) -> Result<Json<Value>, ApiError> {
    let list = query.list();
    let page = list.sync_page()?;
    let mut tx = state.engine.read().await?;
    tx.contact(&caller.account_id, &id).await?;
    let enrollments = tx.enrollments_page(&caller.account_id, &id, true, query.status, &page).await?;
    let next = list.next(&enrollments, |e| (e.created_at, &e.id));
    let items = state.engine.enrollment_items_of(&mut tx, &caller.account_id, enrollments).await?;
    Ok(Json(json!({ "enrollments": items, "next_after": next })))
}

/// `GET /v1/contacts/{id}/timeline`: every event about the contact, oldest
/// first, paged.
pub async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    tx.contact(&caller.account_id, &id).await?;
    timeline_page(&mut tx, Timeline::Contact(&id), &page).await
}

/// A page of a timeline as `{events, next_after}`.
pub(super) async fn timeline_page(
    tx: &mut stepwise_store::ReadTx,
    timeline: Timeline<'_>,
    page: &Page,
) -> Result<Json<Value>, ApiError> {
    let events = tx.events_page(timeline, page.after_at()?, page.limit()?).await?;
    let next = page.next_at(&events, |e| (e.at.timestamp_millis(), &e.id));
    Ok(Json(json!({ "events": events, "next_after": next })))
}

/// The most contacts one import takes.
pub const MAX_IMPORT: usize = 10_000;

/// A bulk import.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// The contacts, as for `POST /v1/contacts`.
    pub contacts: Vec<Value>,
}

/// `POST /v1/contacts/import`: up to 10,000 contacts, created set-wise
/// (a transaction per thousand); the answer has a result per row, in
/// order. A bad row never stops the others.
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<ImportBody>,
) -> Result<Json<Value>, ApiError> {
    if body.contacts.len() > MAX_IMPORT {
        return Err(ApiError::TooLarge(format!(
            "{} contacts in one import; at most {MAX_IMPORT}",
            body.contacts.len()
        )));
    }
    // Each row is read and checked first; those that pass are created
    // together, set-wise.
    let mut rows: Vec<Result<usize, ApiError>> = Vec::with_capacity(body.contacts.len());
    let mut valid = Vec::new();
    for value in body.contacts {
        let contact = serde_json::from_value::<Contact>(value)
            .map_err(|e| ApiError::Validation { detail: e.to_string(), fields: Vec::new() })
            .and_then(|contact| {
                no_client_id(&contact.id)?;
                check(&contact)?;
                Ok(contact)
            });
        rows.push(contact.map(|contact| {
            valid.push(contact);
            valid.len() - 1
        }));
    }
    let mut made: Vec<Option<_>> = state
        .engine
        .create_contacts(&caller.account_id, &valid, &caller.editor())
        .await?
        .into_iter()
        .map(Some)
        .collect();
    let mut results = Vec::with_capacity(rows.len());
    let (mut created, mut failed) = (0, 0);
    for (row, outcome) in rows.into_iter().enumerate() {
        let outcome = outcome.and_then(|at| Ok(made[at].take().expect("one result per valid row")?));
        match outcome {
            Ok((contact, enrolled)) => {
                created += 1;
                let enrolled: Vec<&str> = enrolled.iter().map(|e| e.id.as_str()).collect();
                results.push(json!({ "row": row, "id": contact.id, "enrollments": enrolled }));
            }
            Err(error) => {
                failed += 1;
                let fields = match &error {
                    ApiError::Validation { fields, .. } => fields.clone(),
                    _ => Vec::new(),
                };
                results.push(json!({ "row": row, "error": error.to_string(), "errors": fields }));
            }
        }
    }
    Ok(Json(json!({ "created": created, "failed": failed, "results": results })))
}
