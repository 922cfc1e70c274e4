//! `/v1/webhook-subscriptions`: events out to other systems. An admin
//! names a URL and event types; the signing secret is in the creating
//! answer only; each subscription's deliveries are listed with the
//! receiver's answer and may be replayed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::json::{Body, Path, Query};
use super::page::Page;
use stepwise_domain::engagement::{DeliveryStatus, WebhookEventType};
use stepwise_engine::{SubscriptionEdit, SubscriptionRequest};
use stepwise_store::{DeliveryFilter, WebhookDelivery, WebhookSubscription};

/// The longest description.
const MAX_DESCRIPTION: usize = 500;

/// A new subscription.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionBody {
    /// Where events are posted: `https://…` (or `http://…`); private,
    /// loopback and metadata addresses only when the operator allows them.
    pub url: String,
    /// The event types to be told of, at least one.
    pub event_types: Vec<WebhookEventType>,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// A change to a subscription: what is left out stays.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPatch {
    /// A new URL.
    pub url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<WebhookEventType>>,
    /// A new description; an empty one clears it.
    pub description: Option<String>,
    /// `true` enables a disabled subscription (its run of failures
    /// forgotten, its pending deliveries sent at once); `false` disables it.
    pub enabled: Option<bool>,
}

/// A subscription made, with its signing secret: shown only here.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Created {
    /// The subscription.
    pub subscription: WebhookSubscription,
    /// `whsec_…`: the key receivers verify `webhook-signature` with.
    pub secret: String,
}

/// A new signing secret, shown only here.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Rotated {
    /// `whsec_…`.
    pub secret: String,
}

/// Filters of a subscription's delivery log.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// Only deliveries in this state.
    pub status: Option<DeliveryStatus>,
    /// Only deliveries of this event.
    pub event_id: Option<String>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
}

fn description_checked(description: Option<String>) -> Result<Option<String>, ApiError> {
    match description {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => {
            Err(ApiError::field("/description", "too long", format!("at most {MAX_DESCRIPTION} characters")))
        }
        Some(d) if d.trim().is_empty() => Ok(None),
        other => Ok(other.map(|d| d.trim().to_owned())),
    }
}

/// `GET /v1/webhook-subscriptions`, oldest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    let subs = tx.webhook_subscriptions(&caller.account_id, page.after_at()?, page.limit()?).await?;
    let next = page.next_at(&subs, |s| (s.created_at.timestamp_millis(), &s.id));
    Ok(Json(json!({ "subscriptions": subs, "next_after": next })))
}

/// `POST /v1/webhook-subscriptions`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<SubscriptionBody>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let request = SubscriptionRequest {
        url: body.url,
        description: description_checked(body.description)?,
        event_types: body.event_types,
    };
    let (subscription, secret) =
        state.engine.create_webhook_subscription(&caller.account_id, &request, &caller.editor()).await?;
    Ok((StatusCode::CREATED, Json(Created { subscription, secret })))
}

/// `GET /v1/webhook-subscriptions/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookSubscription>, ApiError> {
    let mut tx = state.engine.read().await?;
    Ok(Json(tx.webhook_subscription(&caller.account_id, &id).await?))
}

/// `PATCH /v1/webhook-subscriptions/{id}`.
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<SubscriptionPatch>,
) -> Result<Json<WebhookSubscription>, ApiError> {
    let edit = SubscriptionEdit {
        url: body.url,
        description: body.description.map(|d| description_checked(Some(d))).transpose()?,
        event_types: body.event_types,
        enabled: body.enabled,
    };
    Ok(Json(state.engine.update_webhook_subscription(&caller.account_id, &id, &edit, &caller.editor()).await?))
}

/// `DELETE /v1/webhook-subscriptions/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_webhook_subscription(&caller.account_id, &id, &caller.editor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/webhook-subscriptions/{id}/secret`: a new signing secret.
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Rotated>, ApiError> {
    let secret = state.engine.rotate_webhook_secret(&caller.account_id, &id, &caller.editor()).await?;
    Ok(Json(Rotated { secret }))
}

/// `GET /v1/webhook-subscriptions/{id}/deliveries`, newest first.
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = Page { after: q.after, limit: q.limit };
    let filter = DeliveryFilter { status: q.status, event_id: q.event_id.as_deref() };
    let mut tx = state.engine.read().await?;
    // A subscription of another account is not found, not an empty log.
    tx.webhook_subscription(&caller.account_id, &id).await?;
    let deliveries = tx.webhook_deliveries(&caller.account_id, &id, &filter, page.after_at()?, page.limit()?).await?;
    let next = page.next_at(&deliveries, |d| (d.created_at.timestamp_millis(), &d.id));
    Ok(Json(json!({ "deliveries": deliveries, "next_after": next })))
}

/// `GET /v1/webhook-subscriptions/{id}/deliveries/{delivery_id}`.
pub async fn delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Json<WebhookDelivery>, ApiError> {
    let mut tx = state.engine.read().await?;
    Ok(Json(tx.webhook_delivery(&caller.account_id, &id, &delivery_id).await?))
}

/// `POST /v1/webhook-subscriptions/{id}/deliveries/{delivery_id}/replay`.
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<WebhookDelivery>), ApiError> {
    let delivery = state.engine.replay_webhook_delivery(&caller.account_id, &id, &delivery_id).await?;
    Ok((StatusCode::CREATED, Json(delivery)))
}
