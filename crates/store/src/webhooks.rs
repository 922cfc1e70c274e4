//! Events out: webhook subscriptions, the events written for them in the
//! transaction of the change that made them, and their deliveries.
//!
//! Every timeline event ([`Tx::record_event`], [`Tx::record_events`]) that
//! is a webhook event type ([`WebhookEventType::of`]) is published: when an
//! active subscription of its account asks for its type, the event's body
//! and one delivery per such subscription are written in the same
//! transaction. Deliveries keep the order of their ordering key (the
//! enrollment, else the contact): one goes only when no earlier one of its
//! subscription and key is pending.
//!
//! Each subscription and key is a *lane* (`webhook_lanes`, counting its
//! pending deliveries), and only a lane's *head* can be claimed: its first
//! pending delivery while the subscription is active, flagged `head`. A
//! claim reads heads from their own index, whatever the backlog behind
//! them. The flag moves under the lane row's lock: a transaction that wrote
//! deliveries settles their lanes as it commits (the lane's first one
//! becomes head when the lane had nothing pending), and the attempt that
//! ends a head hands the flag to the next pending delivery of its lane.
//! Disabling a subscription lowers its heads; enabling it raises the first
//! of each lane again.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::QueryBuilder;

use super::{Backend, MAX_BINDS, ReadTx, Result, Store, StoreError, Tx, in_list, ms, new_id, on_tx, time};
use crate::events::NewEvent;
use stepwise_domain::engagement::{DeliveryStatus, SubscriptionStatus, WebhookEventType};

/// The most bytes of a receiver's answer kept in the delivery log.
pub const MAX_LOGGED_BODY: usize = 4 * 1024;

/// The deliveries a transaction wrote, by lane (account, subscription,
/// ordering key): the first one's id and how many.
#[derive(Debug, Default)]
pub(crate) struct Lanes(BTreeMap<(String, String, String), (String, i64)>);

impl Lanes {
    fn add(&mut self, account_id: &str, subscription_id: &str, ordering_key: &str, id: &str) {
        self.0
            .entry((account_id.to_owned(), subscription_id.to_owned(), ordering_key.to_owned()))
            .or_insert_with(|| (id.to_owned(), 0))
            .1 += 1;
    }
}

/// The condition that a delivery `d`'s subscription is active: a scalar
/// subquery, which PostgreSQL keeps as a lookup per head read instead of
/// turning it into a join that reads the subscription's whole backlog.
const ACTIVE: &str = "(SELECT s.status FROM webhook_subscriptions s
                    WHERE s.account_id = d.account_id AND s.id = d.subscription_id) = 'active'";

impl ReadTx {
    /// Makes this transaction's reads of lane heads walk the heads' index in
    /// its order and stop at their limit, whatever the planner's statistics
    /// say (unanalyzed after a burst, it would read every head and sort
    /// them). Nothing on SQLite, whose plans already do.
    async fn read_heads_in_order(&mut self) -> Result<()> {
        if let super::TxInner::Postgres(c) = &mut self.inner {
            sqlx::query(
                "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true),
                        set_config('enable_sort', 'off', true)",
            )
            .execute(&mut **c)
            .await?;
        }
        Ok(())
    }
}

/// A webhook subscription as clients see it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookSubscription {
    /// Identifier (`whs_…`).
    pub id: String,
    /// The owning account.
    pub account_id: String,
    /// Where events are posted.
    pub url: String,
    /// What it is for, in the admin's words.
    pub description: Option<String>,
    /// The event types it is told of.
    pub event_types: Vec<WebhookEventType>,
    /// Active, or disabled (by an admin or after a run of failures).
    pub status: SubscriptionStatus,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Failed attempts in a row since the last success.
    pub consecutive_failures: i64,
    /// When the current run of failures began.
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a new subscription is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription<'a> {
    /// Where events are posted.
    pub url: &'a str,
    /// What it is for.
    pub description: Option<&'a str>,
    /// The event types it is told of.
    pub event_types: &'a [WebhookEventType],
    /// The signing secret (`whsec_…`).
    pub secret: &'a str,
}

#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    id: String,
    account_id: String,
    url: String,
    description: Option<String>,
    event_types: String,
    status: String,
    disabled_reason: Option<String>,
    consecutive_failures: i64,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

const SUBSCRIPTION_COLUMNS: &str = "id, account_id, url, description, event_types, status, disabled_reason, \
                                    consecutive_failures, failing_since, created_at, updated_at";

impl SubscriptionRow {
    fn into_domain(self) -> Result<WebhookSubscription> {
        Ok(WebhookSubscription {
            id: self.id,
            account_id: self.account_id,
            url: self.url,
            description: self.description,
            event_types: serde_json::from_str(&self.event_types)?,
            status: self.status.parse()?,
            disabled_reason: self.disabled_reason,
            consecutive_failures: self.consecutive_failures,
            failing_since: self.failing_since.map(time).transpose()?,
            created_at: time(self.created_at)?,
            updated_at: time(self.updated_at)?,
        })
    }
}

/// One delivery of an event to a subscription: the delivery log's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookDelivery {
    /// Identifier (`whd_…`).
    pub id: String,
    /// The subscription.
    pub subscription_id: String,
    /// The event, sent as `webhook-id`: the same on every attempt and replay.
    pub event_id: String,
    /// The event's type.
    pub event_type: WebhookEventType,
    /// Deliveries of one key go in the order their events were committed:
    /// the enrollment, else the contact, else the event itself.
    pub ordering_key: String,
    /// Pending, succeeded or failed.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt may go, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The status code of the last answer.
    pub response_status: Option<i64>,
    /// The start of the last answer's body.
    pub response_body: Option<String>,
    /// What went wrong when no answer came, or why the answer failed.
    pub error: Option<String>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the receiver took it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// The delivery this one replays.
    pub replay_of: Option<String>,
    /// The body sent.
    pub payload: Value,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    subscription_id: String,
    event_id: String,
    event_type: String,
    ordering_key: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    response_status: Option<i64>,
    response_body: Option<String>,
    error: Option<String>,
    last_attempt_at: Option<i64>,
    delivered_at: Option<i64>,
    replay_of: Option<String>,
    payload: String,
    created_at: i64,
}

const DELIVERY_COLUMNS: &str = "d.id, d.subscription_id, d.event_id, e.type AS event_type, d.ordering_key, d.status, \
     d.attempts, d.next_attempt_at, d.response_status, d.response_body, d.error, d.last_attempt_at, d.delivered_at, \
     d.replay_of, e.payload, d.created_at";

impl DeliveryRow {
    fn into_domain(self) -> Result<WebhookDelivery> {
        let status: DeliveryStatus = self.status.parse()?;
        Ok(WebhookDelivery {
            id: self.id,
            subscription_id: self.subscription_id,
            event_id: self.event_id,
            event_type: self.event_type.parse()?,
            ordering_key: self.ordering_key,
            status,
            attempts: self.attempts,
            next_attempt_at: (status == DeliveryStatus::Pending).then(|| time(self.next_attempt_at)).transpose()?,
            response_status: self.response_status,
            response_body: self.response_body,
            error: self.error,
            last_attempt_at: self.last_attempt_at.map(time).transpose()?,
            delivered_at: self.delivered_at.map(time).transpose()?,
            replay_of: self.replay_of,
            payload: serde_json::from_str(&self.payload)?,
            created_at: time(self.created_at)?,
        })
    }
}

/// Which deliveries of a subscription to list, newest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryFilter<'a> {
    /// Only deliveries in this state.
    pub status: Option<DeliveryStatus>,
    /// Only deliveries of this event.
    pub event_id: Option<&'a str>,
}

/// A delivery claimed by a dispatcher, with what it needs to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub id: String,
    /// The owning account.
    pub account_id: String,
    /// The subscription.
    pub subscription_id: String,
    /// The event id, sent as `webhook-id`.
    pub event_id: String,
    /// Its lane's key within the subscription.
    pub ordering_key: String,
    /// When the event happened: `webhook-timestamp` is the attempt's time.
    pub event_at: DateTime<Utc>,
    /// Where to post.
    pub url: String,
    /// The subscription's signing secret.
    pub secret: String,
    /// The body.
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// The claim's lease.
    pub lease_token: String,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: String,
    account_id: String,
    subscription_id: String,
    event_id: String,
    ordering_key: String,
    at: i64,
    url: String,
    secret: String,
    payload: String,
    attempts: i64,
}

/// The body of a webhook event, as sent: its id, type and time, and the
/// timeline event's content as `data`.
pub fn webhook_body(id: &str, kind: WebhookEventType, account_id: &str, at: DateTime<Utc>, data: Value) -> Value {
    json!({
        "id": id,
        "type": kind,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "account_id": account_id,
        "data": data,
    })
}

/// What a timeline event says, as a webhook event's `data`.
fn event_data(event: &NewEvent) -> Value {
    json!({
        "contact_id": event.contact_id,
        "company_id": event.company_id,
        "enrollment_id": event.enrollment_id,
        "action_id": event.action_id,
        "actor": event.actor,
        "reason": event.reason,
        "before": event.before,
        "after": event.after,
    })
}

/// An event ready to be written for the subscriptions that want it.
struct Outgoing<'a> {
    account_id: &'a str,
    id: &'a str,
    kind: WebhookEventType,
    ordering_key: &'a str,
    body: String,
}

impl ReadTx {
    /// The account's webhook subscriptions, oldest first, after the one at
    /// `after` (its creation time in milliseconds and its id).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn webhook_subscriptions(
        &mut self,
        account_id: &str,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<WebhookSubscription>> {
        let (at, last) = after.unwrap_or((i64::MIN, ""));
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions
             WHERE account_id = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3))
             ORDER BY created_at, id LIMIT $4"
        );
        let rows: Vec<SubscriptionRow> = on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(account_id)
            .bind(at)
            .bind(last)
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(SubscriptionRow::into_domain).collect()
    }

    /// One of the account's webhook subscriptions.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the account has no such subscription.
    pub async fn webhook_subscription(&mut self, account_id: &str, id: &str) -> Result<WebhookSubscription> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE account_id = $1 AND id = $2");
        let row: Option<SubscriptionRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(account_id).bind(id).fetch_optional(&mut *c).await?);
        row.ok_or_else(|| StoreError::NotFound { what: "webhook subscription", id: id.to_owned() })?.into_domain()
    }

    /// A subscription's deliveries, newest first, after the one at `after`
    /// (its creation time in milliseconds and its id).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn webhook_deliveries(
        &mut self,
        account_id: &str,
        subscription_id: &str,
        filter: &DeliveryFilter<'_>,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        let (at, last) = after.unwrap_or((i64::MAX, "\u{10ffff}"));
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
             JOIN webhook_events e ON e.account_id = d.account_id AND e.id = d.event_id
             WHERE d.account_id = $1 AND d.subscription_id = $2
               AND ($3 IS NULL OR d.status = $3) AND ($4 IS NULL OR d.event_id = $4)
               AND (d.created_at < $5 OR (d.created_at = $5 AND d.id < $6))
             ORDER BY d.created_at DESC, d.id DESC LIMIT $7"
        );
        let rows: Vec<DeliveryRow> = on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(account_id)
            .bind(subscription_id)
            .bind(filter.status.map(DeliveryStatus::as_str))
            .bind(filter.event_id)
            .bind(at)
            .bind(last)
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(DeliveryRow::into_domain).collect()
    }

    /// One delivery of a subscription.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the subscription has no such delivery.
    pub async fn webhook_delivery(
        &mut self,
        account_id: &str,
        subscription_id: &str,
        id: &str,
    ) -> Result<WebhookDelivery> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
             JOIN webhook_events e ON e.account_id = d.account_id AND e.id = d.event_id
             WHERE d.account_id = $1 AND d.subscription_id = $2 AND d.id = $3"
        );
        let row: Option<DeliveryRow> = on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(account_id)
            .bind(subscription_id)
            .bind(id)
            .fetch_optional(&mut *c)
            .await?);
        row.ok_or_else(|| StoreError::NotFound { what: "webhook delivery", id: id.to_owned() })?.into_domain()
    }
}

impl Tx {
    /// Makes a subscription, active.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn create_webhook_subscription(
        &mut self,
        account_id: &str,
        new: &NewSubscription<'_>,
        now: DateTime<Utc>,
    ) -> Result<WebhookSubscription> {
        let id = new_id("whs");
        let types = serde_json::to_string(new.event_types)?;
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO webhook_subscriptions (account_id, id, url, description, event_types, secret, status,
                                                created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7)"
        )
        .bind(account_id)
        .bind(&id)
        .bind(new.url)
        .bind(new.description)
        .bind(&types)
        .bind(new.secret)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        self.webhook_subscription(account_id, &id).await
    }

    /// Saves a subscription's URL, description, types, status and reason,
    /// and its run of failures.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when it is gone.
    pub async fn save_webhook_subscription(&mut self, sub: &WebhookSubscription, now: DateTime<Utc>) -> Result<()> {
        let types = serde_json::to_string(&sub.event_types)?;
        let changed = on_tx!(self, |c| sqlx::query(
            "UPDATE webhook_subscriptions SET url = $3, description = $4, event_types = $5,
                    disabled_reason = $6, consecutive_failures = $7, failing_since = $8, updated_at = $9
             WHERE account_id = $1 AND id = $2"
        )
        .bind(&sub.account_id)
        .bind(&sub.id)
        .bind(&sub.url)
        .bind(&sub.description)
        .bind(&types)
        .bind(&sub.disabled_reason)
        .bind(sub.consecutive_failures)
        .bind(sub.failing_since.map(ms))
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        if changed == 0 {
            return Err(StoreError::NotFound { what: "webhook subscription", id: sub.id.clone() });
        }
        let turned = on_tx!(self, |c| sqlx::query(
            "UPDATE webhook_subscriptions SET status = $3 WHERE account_id = $1 AND id = $2 AND status <> $3"
        )
        .bind(&sub.account_id)
        .bind(&sub.id)
        .bind(sub.status.as_str())
        .execute(&mut *c)
        .await?
        .rows_affected());
        if turned == 1 {
            self.turn_heads(&sub.account_id, &sub.id, sub.status).await?;
        }
        Ok(())
    }

    /// Lowers a subscription's lane heads when it is disabled, so claims
    /// never read them, and raises the first pending delivery of each of
    /// its lanes when it is active again.
    async fn turn_heads(&mut self, account_id: &str, id: &str, status: SubscriptionStatus) -> Result<()> {
        let sql = match status {
            SubscriptionStatus::Disabled => {
                "UPDATE webhook_deliveries SET head = FALSE
                 WHERE account_id = $1 AND subscription_id = $2 AND status = 'pending' AND head"
            }
            SubscriptionStatus::Active => {
                "UPDATE webhook_deliveries SET head = TRUE
                 WHERE seq IN (SELECT MIN(p.seq) FROM webhook_deliveries p
                               WHERE p.account_id = $1 AND p.subscription_id = $2 AND p.status = 'pending'
                               GROUP BY p.ordering_key)"
            }
        };
        on_tx!(self, |c| sqlx::query(sql).bind(account_id).bind(id).execute(&mut *c).await?.rows_affected());
        Ok(())
    }

    /// Replaces a subscription's signing secret.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when it is gone.
    pub async fn set_webhook_secret(
        &mut self,
        account_id: &str,
        id: &str,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let changed = on_tx!(self, |c| sqlx::query(
            "UPDATE webhook_subscriptions SET secret = $3, updated_at = $4 WHERE account_id = $1 AND id = $2"
        )
        .bind(account_id)
        .bind(id)
        .bind(secret)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        if changed == 0 {
            return Err(StoreError::NotFound { what: "webhook subscription", id: id.to_owned() });
        }
        Ok(())
    }

    /// Deletes a subscription and its deliveries.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the account has no such subscription.
    pub async fn delete_webhook_subscription(&mut self, account_id: &str, id: &str) -> Result<()> {
        let deleted = on_tx!(self, |c| {
            sqlx::query("DELETE FROM webhook_deliveries WHERE account_id = $1 AND subscription_id = $2")
                .bind(account_id)
                .bind(id)
                .execute(&mut *c)
                .await?;
            sqlx::query("DELETE FROM webhook_subscriptions WHERE account_id = $1 AND id = $2")
                .bind(account_id)
                .bind(id)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        if deleted == 0 {
            return Err(StoreError::NotFound { what: "webhook subscription", id: id.to_owned() });
        }
        Ok(())
    }

    /// Publishes timeline events just written under `ids`: those that are
    /// webhook events and that an active subscription of their account asks
    /// for are written, with a delivery for each such subscription.
    pub(crate) async fn publish(&mut self, events: &[(&str, &NewEvent)], at: DateTime<Utc>) -> Result<()> {
        let candidates: Vec<_> = events
            .iter()
            .filter_map(|(id, e)| WebhookEventType::of(e.kind, e.after.as_ref()).map(|kind| (*id, *e, kind)))
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let mut accounts: Vec<String> = candidates.iter().map(|(_, e, _)| e.account_id.clone()).collect();
        accounts.sort_unstable();
        accounts.dedup();
        let wanted = self.subscribers(&accounts).await?;
        if wanted.is_empty() {
            return Ok(());
        }
        let mut outgoing = Vec::new();
        let mut deliveries = Vec::new();
        for (id, event, kind) in candidates {
            let subscribers: Vec<&str> = wanted
                .get(event.account_id.as_str())
                .into_iter()
                .flatten()
                .filter(|(_, types)| types.contains(&kind))
                .map(|(sub, _)| sub.as_str())
                .collect();
            if subscribers.is_empty() {
                continue;
            }
            let key = event.enrollment_id.as_deref().or(event.contact_id.as_deref()).unwrap_or(id);
            let body = webhook_body(id, kind, &event.account_id, at, event_data(event)).to_string();
            deliveries.extend(subscribers.into_iter().map(|sub| (outgoing.len(), sub)));
            outgoing.push(Outgoing { account_id: &event.account_id, id, kind, ordering_key: key, body });
        }
        self.write_outgoing(&outgoing, &deliveries, at).await
    }

    /// Publishes one event that no timeline event records (a step's request
    /// that failed for good, a plugin that needs approval), keyed by
    /// `ordering_key`. Returns its id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn publish_event(
        &mut self,
        account_id: &str,
        kind: WebhookEventType,
        ordering_key: Option<&str>,
        data: Value,
        at: DateTime<Utc>,
    ) -> Result<String> {
        let id = new_id("evt");
        let wanted = self.subscribers(&[account_id.to_owned()]).await?;
        let subscribers: Vec<(usize, &str)> = wanted
            .get(account_id)
            .into_iter()
            .flatten()
            .filter(|(_, types)| types.contains(&kind))
            .map(|(sub, _)| (0, sub.as_str()))
            .collect();
        if !subscribers.is_empty() {
            let body = webhook_body(&id, kind, account_id, at, data).to_string();
            let key = ordering_key.unwrap_or(&id);
            let outgoing = [Outgoing { account_id, id: &id, kind, ordering_key: key, body }];
            self.write_outgoing(&outgoing, &subscribers, at).await?;
        }
        Ok(id)
    }

    /// The active subscriptions of `accounts` and the types each asks for.
    async fn subscribers(
        &mut self,
        accounts: &[String],
    ) -> Result<HashMap<String, Vec<(String, Vec<WebhookEventType>)>>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            account_id: String,
            id: String,
            event_types: String,
        }
        let mut wanted: HashMap<String, Vec<(String, Vec<WebhookEventType>)>> = HashMap::new();
        for accounts in accounts.chunks(MAX_BINDS) {
            let rows: Vec<Row> = on_tx!(self, |c| {
                let mut q = QueryBuilder::new(
                    "SELECT account_id, id, event_types FROM webhook_subscriptions
                     WHERE status = 'active' AND account_id IN ",
                );
                in_list(&mut q, accounts);
                q.push(" ORDER BY created_at, id");
                q.build_query_as().fetch_all(&mut *c).await?
            });
            for row in rows {
                let types = serde_json::from_str(&row.event_types)?;
                wanted.entry(row.account_id).or_default().push((row.id, types));
            }
        }
        Ok(wanted)
    }

    /// Writes `events` and `deliveries` (an index into `events` and a
    /// subscription), in order.
    async fn write_outgoing(
        &mut self,
        events: &[Outgoing<'_>],
        deliveries: &[(usize, &str)],
        at: DateTime<Utc>,
    ) -> Result<()> {
        for events in events.chunks(MAX_BINDS / 5) {
            on_tx!(self, |c| {
                let mut q = QueryBuilder::new("INSERT INTO webhook_events (account_id, id, type, payload, at) ");
                q.push_values(events, |mut row, e| {
                    row.push_bind(e.account_id)
                        .push_bind(e.id)
                        .push_bind(e.kind.as_str())
                        .push_bind(&e.body)
                        .push_bind(ms(at));
                });
                q.build().execute(&mut *c).await?.rows_affected()
            });
        }
        let deliveries: Vec<(String, &Outgoing<'_>, &str)> =
            deliveries.iter().map(|(event, sub)| (new_id("whd"), &events[*event], *sub)).collect();
        for deliveries in deliveries.chunks(MAX_BINDS / 8) {
            on_tx!(self, |c| {
                let mut q = QueryBuilder::new(
                    "INSERT INTO webhook_deliveries (id, account_id, subscription_id, event_id, ordering_key, status,
                                                     next_attempt_at, created_at, updated_at) ",
                );
                q.push_values(deliveries, |mut row, (id, e, sub)| {
                    row.push_bind(id)
                        .push_bind(e.account_id)
                        .push_bind(*sub)
                        .push_bind(e.id)
                        .push_bind(e.ordering_key)
                        .push_bind("pending")
                        .push_bind(ms(at))
                        .push_bind(ms(at));
                    row.push_bind(ms(at));
                });
                q.build().execute(&mut *c).await?.rows_affected()
            });
        }
        for (id, e, sub) in &deliveries {
            self.lanes.add(e.account_id, sub, e.ordering_key, id);
        }
        Ok(())
    }

    /// A new delivery of the event of delivery `id`, due now, after every
    /// delivery of its key written before. Returns it.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the subscription has no such delivery.
    pub async fn replay_webhook_delivery(
        &mut self,
        account_id: &str,
        subscription_id: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<WebhookDelivery> {
        let original = self.webhook_delivery(account_id, subscription_id, id).await?;
        let replay = new_id("whd");
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO webhook_deliveries (id, account_id, subscription_id, event_id, ordering_key, status,
                                             next_attempt_at, replay_of, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $6, $6)"
        )
        .bind(&replay)
        .bind(account_id)
        .bind(subscription_id)
        .bind(&original.event_id)
        .bind(&original.ordering_key)
        .bind(ms(now))
        .bind(id)
        .execute(&mut *c)
        .await?
        .rows_affected());
        self.lanes.add(account_id, subscription_id, &original.ordering_key, &replay);
        self.webhook_delivery(account_id, subscription_id, &replay).await
    }

    /// Records an attempt of a claimed delivery: `status` and, while still
    /// pending, when it is tried again; the answer's status and the start
    /// of its body, or the error. Returns whether the lease was still the
    /// caller's (if not, nothing is written).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    #[allow(clippy::too_many_arguments)]
    pub async fn record_delivery_attempt(
        &mut self,
        delivery: &ClaimedDelivery,
        status: DeliveryStatus,
        next_attempt_at: Option<DateTime<Utc>>,
        response_status: Option<u16>,
        response_body: Option<&str>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let body = response_body.map(|b| stepwise_domain::clip(b, MAX_LOGGED_BODY));
        let changed = on_tx!(self, |c| sqlx::query(
            "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, next_attempt_at = $4,
                    response_status = $5, response_body = $6, error = $7, last_attempt_at = $8,
                    delivered_at = CASE WHEN $3 = 'succeeded' THEN $8 ELSE NULL END,
                    head = CASE WHEN $3 = 'pending' THEN head ELSE FALSE END,
                    lease_token = NULL, lease_expires_at = NULL, updated_at = $8
             WHERE id = $1 AND lease_token = $2 AND status = 'pending'"
        )
        .bind(&delivery.id)
        .bind(&delivery.lease_token)
        .bind(status.as_str())
        .bind(ms(next_attempt_at.unwrap_or(now)))
        .bind(response_status.map(i64::from))
        .bind(body)
        .bind(error)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        if changed == 1 && status != DeliveryStatus::Pending {
            self.leave_lane(delivery).await?;
        }
        Ok(changed == 1)
    }

    /// Counts a delivery that is no longer pending out of its lane, and
    /// hands the lane's head to the next pending one (if its subscription
    /// is active), or drops the lane when nothing is left in it.
    async fn leave_lane(&mut self, delivery: &ClaimedDelivery) -> Result<()> {
        let (account, sub, key) = (&delivery.account_id, &delivery.subscription_id, &delivery.ordering_key);
        let left: Option<i64> = on_tx!(self, |c| sqlx::query_scalar(
            "UPDATE webhook_lanes SET pending = pending - 1
             WHERE account_id = $1 AND subscription_id = $2 AND ordering_key = $3 AND pending > 0
             RETURNING pending"
        )
        .bind(account)
        .bind(sub)
        .bind(key)
        .fetch_optional(&mut *c)
        .await?);
        match left {
            Some(0) => {
                on_tx!(self, |c| sqlx::query(
                    "DELETE FROM webhook_lanes
                     WHERE account_id = $1 AND subscription_id = $2 AND ordering_key = $3 AND pending = 0"
                )
                .bind(account)
                .bind(sub)
                .bind(key)
                .execute(&mut *c)
                .await?
                .rows_affected());
            }
            Some(_) => {
                on_tx!(self, |c| sqlx::query(
                    "UPDATE webhook_deliveries SET head = TRUE
                     WHERE seq = (SELECT MIN(p.seq) FROM webhook_deliveries p
                                  WHERE p.subscription_id = $2 AND p.ordering_key = $3 AND p.status = 'pending')
                       AND account_id = $1
                       AND EXISTS (SELECT 1 FROM webhook_subscriptions s
                                   WHERE s.account_id = $1 AND s.id = $2 AND s.status = 'active')"
                )
                .bind(account)
                .bind(sub)
                .bind(key)
                .execute(&mut *c)
                .await?
                .rows_affected());
            }
            // A lane is written with its deliveries, so one is always
            // there; were it not, nothing waits in it.
            None => {}
        }
        Ok(())
    }

    /// Settles the lanes of the deliveries this transaction wrote, in one
    /// order so that writers never wait on each other in a cycle: each
    /// lane's count grows, and where it had nothing pending, the first
    /// delivery written to it becomes its head. Returns whether any were
    /// written.
    pub(crate) async fn settle_lanes(&mut self) -> Result<bool> {
        #[derive(sqlx::FromRow)]
        struct Row {
            account_id: String,
            subscription_id: String,
            ordering_key: String,
            pending: i64,
        }
        let lanes = std::mem::take(&mut self.lanes.0);
        if lanes.is_empty() {
            return Ok(false);
        }
        let lanes: Vec<_> = lanes.into_iter().collect();
        let mut heads = Vec::new();
        for chunk in lanes.chunks(MAX_BINDS / 4) {
            let rows: Vec<Row> = on_tx!(self, |c| {
                let mut q = QueryBuilder::new(
                    "INSERT INTO webhook_lanes (account_id, subscription_id, ordering_key, pending) ",
                );
                q.push_values(chunk, |mut row, ((account, sub, key), (_, count))| {
                    row.push_bind(account).push_bind(sub).push_bind(key).push_bind(*count);
                });
                q.push(
                    " ON CONFLICT (account_id, subscription_id, ordering_key)
                      DO UPDATE SET pending = webhook_lanes.pending + excluded.pending
                      RETURNING account_id, subscription_id, ordering_key, pending",
                );
                q.build_query_as().fetch_all(&mut *c).await?
            });
            let written: HashMap<_, _> = chunk.iter().map(|((a, s, k), v)| ((a, s, k), v)).collect();
            for row in rows {
                if let Some((first, count)) = written.get(&(&row.account_id, &row.subscription_id, &row.ordering_key))
                    && row.pending == *count
                {
                    heads.push(first.clone());
                }
            }
        }
        for heads in heads.chunks(MAX_BINDS) {
            on_tx!(self, |c| {
                let mut q = QueryBuilder::new(format!(
                    "UPDATE webhook_deliveries AS d SET head = TRUE WHERE {ACTIVE} AND d.id IN "
                ));
                in_list(&mut q, heads);
                q.build().execute(&mut *c).await?.rows_affected()
            });
        }
        Ok(true)
    }
}

impl Store {
    /// Claims up to `limit` deliveries due at `now` under a lease of
    /// `lease_for`: lanes' heads only (see the module's documentation), so
    /// a lane's deliveries go one at a time in order, read from the heads'
    /// index however long the backlog behind them. A claimed delivery is
    /// not due again before its lease ends. Hosts sharing PostgreSQL skip
    /// each other's claims.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_for: Duration,
    ) -> Result<Vec<ClaimedDelivery>> {
        let token = new_id("lse");
        let expires = ms(now).saturating_add(i64::try_from(lease_for.as_millis()).unwrap_or(i64::MAX / 2));
        let due = format!("d.status = 'pending' AND d.head AND d.next_attempt_at <= $1 AND {ACTIVE}");
        let sql = match self.backend() {
            Backend::Postgres => format!(
                "WITH due AS (SELECT d.seq FROM webhook_deliveries d WHERE {due}
                              ORDER BY d.next_attempt_at, d.seq LIMIT $2 FOR UPDATE OF d SKIP LOCKED)
                 UPDATE webhook_deliveries SET lease_token = $3, lease_expires_at = $4, next_attempt_at = $4
                 WHERE seq IN (SELECT seq FROM due) RETURNING seq"
            ),
            Backend::Sqlite => format!(
                "UPDATE webhook_deliveries SET lease_token = $3, lease_expires_at = $4, next_attempt_at = $4
                 WHERE seq IN (SELECT d.seq FROM webhook_deliveries d WHERE {due}
                               ORDER BY d.next_attempt_at, d.seq LIMIT $2)
                 RETURNING seq"
            ),
        };
        let mut tx = self.begin().await?;
        tx.read_heads_in_order().await?;
        let claimed: Vec<i64> = on_tx!(tx, |c| sqlx::query_scalar(&sql)
            .bind(ms(now))
            .bind(i64::from(limit))
            .bind(&token)
            .bind(expires)
            .fetch_all(&mut *c)
            .await?);
        let rows: Vec<ClaimedRow> = if claimed.is_empty() {
            Vec::new()
        } else {
            on_tx!(tx, |c| {
                let mut q = QueryBuilder::new(
                    "SELECT d.id, d.account_id, d.subscription_id, d.event_id, d.ordering_key, e.at, s.url, s.secret,
                            e.payload, d.attempts
                     FROM webhook_deliveries d
                     JOIN webhook_events e ON e.account_id = d.account_id AND e.id = d.event_id
                     JOIN webhook_subscriptions s ON s.account_id = d.account_id AND s.id = d.subscription_id
                     WHERE d.seq IN ",
                );
                in_list(&mut q, &claimed);
                q.push(" ORDER BY d.seq");
                q.build_query_as().fetch_all(&mut *c).await?
            })
        };
        tx.commit().await?;
        rows.into_iter()
            .map(|row| {
                Ok(ClaimedDelivery {
                    id: row.id,
                    account_id: row.account_id,
                    subscription_id: row.subscription_id,
                    event_id: row.event_id,
                    ordering_key: row.ordering_key,
                    event_at: time(row.at)?,
                    url: row.url,
                    secret: row.secret,
                    payload: row.payload,
                    attempts: row.attempts,
                    lease_token: token.clone(),
                })
            })
            .collect()
    }

    /// When the next lane's head of an active subscription is due, if any
    /// (a claimed one when its lease ends).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn next_webhook_delivery_at(&self) -> Result<Option<DateTime<Utc>>> {
        let sql = format!(
            "SELECT d.next_attempt_at FROM webhook_deliveries d
             WHERE d.status = 'pending' AND d.head AND {ACTIVE}
             ORDER BY d.next_attempt_at LIMIT 1"
        );
        let mut tx = self.begin_read().await?;
        tx.read_heads_in_order().await?;
        let next: Option<i64> = on_tx!(tx, |c| sqlx::query_scalar(&sql).fetch_optional(&mut *c).await?);
        tx.rollback().await?;
        next.map(time).transpose()
    }
}
