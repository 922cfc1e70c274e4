//! Events out: webhook subscriptions and their dispatcher.
//!
//! The events themselves are written by the store in the transaction of
//! the change that made them (`stepwise_store::Tx::publish`); this module
//! keeps the subscriptions (each edit audited) and delivers the events:
//! signed per the Standard Webhooks convention (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature`: `v1,` and the base64 of an
//! HMAC-SHA-256 of `{id}.{timestamp}.{body}` under the subscription's
//! secret), through the same outbound-address rules as plugins'
//! `http-fetch`, retried on a growing schedule, a key's deliveries in the
//! order their events committed. A subscription whose attempts keep
//! failing (at least `disable_after_failures` in a row over at least
//! `disable_after`) is disabled and the account's admins are told.
//!
//! Delivery is at least once: a host that stops after the receiver took a
//! delivery and before recording it sends it again once its lease ends,
//! under the same `webhook-id`, which receivers deduplicate by.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use http::Method;
use serde_json::json;

use super::unsubscribe::hmac;
use super::{Engine, EngineError, Result};
use stepwise_domain::crm::Role;
use stepwise_domain::engagement::{
    AuditAction, DeliveryStatus, Editor, EventKind, Level, SubscriptionStatus, WebhookEventType,
};
use stepwise_plugin_host::net::{Allowlist, HttpClient, NetError, NetPolicy, OutboundRequest, blocked_under};
use stepwise_store::{ClaimedDelivery, NewAudit, NewEvent, NewSubscription, WebhookDelivery, WebhookSubscription};

/// The most event types one subscription names.
pub const MAX_EVENT_TYPES: usize = 64;

/// The longest subscription URL.
pub const MAX_URL_CHARS: usize = 2_048;

/// How webhook subscriptions are delivered; every field has a sane default.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Deliveries claimed per round.
    pub batch: u32,
    /// Deliveries sent at once.
    pub concurrency: usize,
    /// How long a claimed delivery stays this host's: longer than a
    /// request may take.
    pub lease: Duration,
    /// The longest a receiver may take to answer.
    pub timeout: Duration,
    /// The pause before each retry: a delivery is attempted once and then
    /// once after each of these, then given up.
    pub retry_after: Vec<Duration>,
    /// Failed attempts in a row before a subscription may be disabled.
    pub disable_after_failures: u32,
    /// How long a run of failures lasts before the subscription is
    /// disabled (together with `disable_after_failures`).
    pub disable_after: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Self {
            batch: 256,
            concurrency: 32,
            lease: Duration::from_secs(60),
            timeout: Duration::from_secs(15),
            // As receivers of Standard Webhooks expect: about a day and a
            // quarter in all.
            retry_after: vec![
                Duration::from_secs(5),
                minutes(5),
                minutes(30),
                minutes(120),
                minutes(300),
                minutes(600),
                minutes(600),
            ],
            disable_after_failures: 20,
            disable_after: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

/// A subscription's secret: `whsec_` and the base64 of 32 random bytes.
fn new_secret() -> String {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!("whsec_{}", BASE64.encode(key))
}

/// The `webhook-signature` of a delivery: `v1,` and the base64 of the
/// HMAC-SHA-256 of `{id}.{timestamp}.{body}` under the secret's key.
///
/// # Errors
///
/// When the secret is not `whsec_` and base64.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> std::result::Result<String, String> {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|key| BASE64.decode(key).ok())
        .ok_or_else(|| "the subscription's secret is not `whsec_` and base64".to_owned())?;
    let mac = hmac(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!("v1,{}", BASE64.encode(mac)))
}

/// What is wrong with a subscription's URL, if anything: it must be an
/// absolute `http` or `https` URL without credentials, and an address
/// written in it must be one plugins could reach too.
pub fn url_problem(url: &str, allow_private: bool) -> Option<String> {
    if url.chars().count() > MAX_URL_CHARS {
        return Some(format!("longer than {MAX_URL_CHARS} characters"));
    }
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(error) => return Some(format!("`{url}` is not a URL: {error}")),
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Some(format!("must be http or https, not `{}`", parsed.scheme()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some("must not carry credentials; receivers check the signature instead".into());
    }
    let ip = match parsed.host() {
        None => return Some("has no host".into()),
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !allow_private && (name == "localhost" || name.ends_with(".localhost")) {
                return Some(format!("`{name}` is this host: loopback addresses are not reachable"));
            }
            None
        }
    };
    ip.and_then(|ip| blocked_under(ip, allow_private))
        .map(|reason| format!("{reason} addresses are not reachable (the operator's outbound-address rules)"))
}

/// What an admin asks of a new subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRequest {
    /// Where events are posted.
    pub url: String,
    /// What it is for.
    pub description: Option<String>,
    /// The event types it is told of.
    pub event_types: Vec<WebhookEventType>,
}

/// A change to a subscription; what is `None` stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionEdit {
    /// A new URL.
    pub url: Option<String>,
    /// A new description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New event types.
    pub event_types: Option<Vec<WebhookEventType>>,
    /// Enable (its run of failures forgotten) or disable it.
    pub enabled: Option<bool>,
}

/// How one attempt went.
struct Attempt {
    succeeded: bool,
    status: Option<u16>,
    body: Option<String>,
    error: Option<String>,
}

impl Engine {
    /// The dispatcher's HTTP client: the plugins' policy (the operator's
    /// outbound-address rules), no redirects followed, the configured
    /// timeout.
    pub(crate) fn webhook_client(policy: &NetPolicy, config: &WebhookConfig) -> Option<Arc<HttpClient>> {
        let policy =
            NetPolicy { max_redirects: 0, timeout: config.timeout, max_response_bytes: 256 * 1024, ..policy.clone() };
        match HttpClient::new(policy) {
            Ok(client) => Some(Arc::new(client)),
            Err(error) => {
                tracing::error!(%error, "webhook subscriptions cannot be delivered: no HTTP client");
                None
            }
        }
    }

    fn allow_private(&self) -> bool {
        self.registry().runtime().net_policy().allow_private
    }

    /// The problems of a subscription's fields, each at its JSON pointer.
    fn subscription_problems(
        &self,
        url: Option<&str>,
        types: Option<&[WebhookEventType]>,
    ) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Some(problem) = url.and_then(|url| url_problem(url, self.allow_private())) {
            problems.push(("/url", problem));
        }
        if let Some(types) = types {
            if types.is_empty() {
                problems.push(("/event_types", "name at least one event type".to_owned()));
            } else if types.len() > MAX_EVENT_TYPES {
                problems.push(("/event_types", format!("at most {MAX_EVENT_TYPES} event types")));
            }
        }
        problems
    }

    fn refuse(problems: Vec<(&'static str, String)>) -> Result<()> {
        match problems.into_iter().next() {
            None => Ok(()),
            Some((field, message)) => Err(EngineError::InvalidField { field: field.to_owned(), message }),
        }
    }

    /// Makes a subscription, active at once. Returns it and its signing
    /// secret, which is shown only now.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidField`] naming the URL or the event types.
    pub async fn create_webhook_subscription(
        &self,
        account_id: &str,
        request: &SubscriptionRequest,
        editor: &Editor,
    ) -> Result<(WebhookSubscription, String)> {
        Self::refuse(self.subscription_problems(Some(&request.url), Some(&request.event_types)))?;
        let mut types = request.event_types.clone();
        types.sort_by_key(|t| t.as_str());
        types.dedup();
        let secret = new_secret();
        let mut tx = self.store().begin().await?;
        let new = NewSubscription {
            url: &request.url,
            description: request.description.as_deref(),
            event_types: &types,
            secret: &secret,
        };
        let sub = tx.create_webhook_subscription(account_id, &new, self.now()).await?;
        let entry = NewAudit::created(AuditAction::WebhookSubscriptionCreated, &sub.id, &sub);
        self.commit_audited(tx, account_id, editor, entry).await?;
        Ok((sub, secret))
    }

    /// Changes a subscription. Enabling a disabled one forgets its run of
    /// failures; its pending deliveries go on at once.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::InvalidField`].
    pub async fn update_webhook_subscription(
        &self,
        account_id: &str,
        id: &str,
        edit: &SubscriptionEdit,
        editor: &Editor,
    ) -> Result<WebhookSubscription> {
        Self::refuse(self.subscription_problems(edit.url.as_deref(), edit.event_types.as_deref()))?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let before = tx.webhook_subscription(account_id, id).await?;
        let mut sub = before.clone();
        if let Some(url) = &edit.url {
            sub.url.clone_from(url);
        }
        if let Some(description) = &edit.description {
            sub.description.clone_from(description);
        }
        if let Some(types) = &edit.event_types {
            let mut types = types.clone();
            types.sort_by_key(|t| t.as_str());
            types.dedup();
            sub.event_types = types;
        }
        match edit.enabled {
            Some(true) if sub.status == SubscriptionStatus::Disabled => {
                sub.status = SubscriptionStatus::Active;
                sub.disabled_reason = None;
                sub.consecutive_failures = 0;
                sub.failing_since = None;
            }
            Some(false) if sub.status == SubscriptionStatus::Active => {
                sub.status = SubscriptionStatus::Disabled;
                sub.disabled_reason = Some(format!("disabled by {}", editor.user_id));
            }
            _ => {}
        }
        sub.updated_at = now;
        tx.save_webhook_subscription(&sub, now).await?;
        let entry = NewAudit::changed(AuditAction::WebhookSubscriptionUpdated, id, &before, &sub);
        tx.audit(account_id, editor, entry, now).await?;
        tx.commit().await?;
        if sub.status == SubscriptionStatus::Active {
            self.store().deliveries_written().notify_one();
        }
        Ok(sub)
    }

    /// Gives a subscription a new signing secret, returned and shown only
    /// now; deliveries from then on are signed with it.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`].
    pub async fn rotate_webhook_secret(&self, account_id: &str, id: &str, editor: &Editor) -> Result<String> {
        let now = self.now();
        let secret = new_secret();
        let mut tx = self.store().begin().await?;
        let sub = tx.webhook_subscription(account_id, id).await?;
        tx.set_webhook_secret(account_id, id, &secret, now).await?;
        let after = json!({ "secret": "(rotated)" });
        let entry = NewAudit::changed(AuditAction::WebhookSubscriptionUpdated, id, &sub, &after);
        tx.audit(account_id, editor, entry, now).await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// Deletes a subscription and its delivery log.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`].
    pub async fn delete_webhook_subscription(&self, account_id: &str, id: &str, editor: &Editor) -> Result<()> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let sub = tx.webhook_subscription(account_id, id).await?;
        tx.delete_webhook_subscription(account_id, id).await?;
        tx.audit(account_id, editor, NewAudit::deleted(AuditAction::WebhookSubscriptionDeleted, id, &sub), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sends the event of a delivery again, as a new delivery under the
    /// same `webhook-id`, after the deliveries of its key written before.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`].
    pub async fn replay_webhook_delivery(
        &self,
        account_id: &str,
        subscription_id: &str,
        delivery_id: &str,
    ) -> Result<WebhookDelivery> {
        let mut tx = self.store().begin().await?;
        let delivery = tx.replay_webhook_delivery(account_id, subscription_id, delivery_id, self.now()).await?;
        tx.commit().await?;
        Ok(delivery)
    }

    /// Delivers what is due now, round after round, until nothing is.
    /// Returns how many attempts were made.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn deliver_webhooks(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let made = self.deliver_webhook_round().await?;
            if made == 0 {
                return Ok(total);
            }
            total += made;
        }
    }

    /// One claim of due deliveries, sent at most `concurrency` at once.
    async fn deliver_webhook_round(&self) -> Result<usize> {
        let config = &self.inner.config.webhooks;
        let claimed = self.store().claim_webhook_deliveries(self.now(), config.batch, config.lease).await?;
        let count = claimed.len();
        let permits = Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for delivery in claimed {
            let engine = self.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                if let Err(error) = engine.deliver_one(&delivery).await {
                    tracing::error!(%error, delivery = %delivery.id, "a webhook delivery could not be recorded");
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(error) = done {
                tracing::error!(%error, "a webhook delivery task panicked");
            }
        }
        Ok(count)
    }

    /// Sends one delivery and records how it went.
    async fn deliver_one(&self, delivery: &ClaimedDelivery) -> Result<()> {
        let attempt = self.attempt(delivery).await;
        let now = self.now();
        let config = &self.inner.config.webhooks;
        let made = delivery.attempts + 1;
        let (status, next) = if attempt.succeeded {
            (DeliveryStatus::Succeeded, None)
        } else {
            match usize::try_from(made - 1).ok().and_then(|i| config.retry_after.get(i)) {
                Some(pause) => (DeliveryStatus::Pending, Some(now + jittered(*pause))),
                None => (DeliveryStatus::Failed, None),
            }
        };
        let mut tx = self.store().begin().await?;
        let recorded = tx
            .record_delivery_attempt(
                delivery,
                status,
                next,
                attempt.status,
                attempt.body.as_deref(),
                attempt.error.as_deref(),
                now,
            )
            .await?;
        if !recorded {
            // The lease ended and another host has it; its record stands.
            return Ok(());
        }
        let mut sub = match tx.webhook_subscription(&delivery.account_id, &delivery.subscription_id).await {
            Ok(sub) => sub,
            Err(stepwise_store::StoreError::NotFound { .. }) => return Ok(tx.commit().await?),
            Err(error) => return Err(error.into()),
        };
        if attempt.succeeded {
            if sub.consecutive_failures > 0 {
                sub.consecutive_failures = 0;
                sub.failing_since = None;
                tx.save_webhook_subscription(&sub, now).await?;
            }
        } else {
            sub.consecutive_failures += 1;
            let since = *sub.failing_since.get_or_insert(now);
            let long = chrono::Duration::from_std(config.disable_after).unwrap_or(chrono::Duration::MAX);
            let disable = sub.status == SubscriptionStatus::Active
                && sub.consecutive_failures >= i64::from(config.disable_after_failures)
                && now - since >= long;
            if disable {
                self.disable_failing(&mut tx, &mut sub, attempt.error.as_deref(), now).await?;
            }
            tx.save_webhook_subscription(&sub, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Disables a subscription after a run of failures and tells the
    /// account's admins.
    async fn disable_failing(
        &self,
        tx: &mut stepwise_store::Tx,
        sub: &mut WebhookSubscription,
        last_error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let since = sub.failing_since.unwrap_or(now).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let why = format!(
            "disabled after {} failed attempts in a row since {since}{}",
            sub.consecutive_failures,
            last_error.map(|e| format!(" (last: {e})")).unwrap_or_default()
        );
        sub.status = SubscriptionStatus::Disabled;
        sub.disabled_reason = Some(why.clone());
        let notice = NewEvent {
            account_id: sub.account_id.clone(),
            contact_id: None,
            company_id: None,
            enrollment_id: None,
            action_id: None,
            kind: EventKind::Notification,
            actor: "system".into(),
            reason: Some(format!(
                "webhook subscription {} to {} was {why}; enable it again when it is fixed",
                sub.id, sub.url
            )),
            before: None,
            after: Some(json!({ "roles": [Role::Admin], "webhook_subscription_id": sub.id })),
            level: Level::Warning,
        };
        tx.record_event(&notice, now).await?;
        Ok(())
    }

    /// Posts a delivery, signed, and reads the answer.
    async fn attempt(&self, delivery: &ClaimedDelivery) -> Attempt {
        let failed = |error: String| Attempt { succeeded: false, status: None, body: None, error: Some(error) };
        let Some(client) = self.inner.webhook_client.as_ref() else {
            return failed("this host has no HTTP client".into());
        };
        let timestamp = self.now().timestamp();
        let signature = match signature(&delivery.secret, &delivery.event_id, timestamp, &delivery.payload) {
            Ok(signature) => signature,
            Err(error) => return failed(error),
        };
        let allow = match origin(&delivery.url).and_then(|origin| Allowlist::parse(&[origin]).ok()) {
            Some(allow) => allow,
            None => return failed(format!("`{}` is not a URL a delivery can go to", delivery.url)),
        };
        let request = OutboundRequest {
            method: Method::POST,
            url: delivery.url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("webhook-id".into(), delivery.event_id.clone()),
                ("webhook-timestamp".into(), timestamp.to_string()),
                ("webhook-signature".into(), signature),
            ],
            body: delivery.payload.as_bytes().to_vec(),
            timeout: None,
        };
        match client.fetch(&allow, request).await {
            Ok(response) => {
                let body = String::from_utf8_lossy(&response.body).into_owned();
                let succeeded = (200..300).contains(&response.status);
                let error = (!succeeded).then(|| format!("the receiver answered {}", response.status));
                Attempt { succeeded, status: Some(response.status), body: Some(body), error }
            }
            Err(NetError::TooManyRedirects(_)) => {
                failed("the receiver redirected; deliveries follow no redirects".into())
            }
            Err(error) => failed(error.to_string()),
        }
    }

    /// Delivers until `stop` turns true: at once when a transaction wrote
    /// deliveries, else when the next retry is due, at most `max_idle`
    /// apart (deliveries other hosts wrote).
    pub(crate) async fn deliver_webhooks_forever(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        while !*stop.borrow() {
            if let Err(error) = self.deliver_webhooks().await {
                tracing::error!(%error, "the webhook dispatcher failed");
            }
            let max = self.inner.config.max_idle;
            let sleep = match self.store().next_webhook_delivery_at().await {
                Ok(Some(next)) => (next - self.now()).to_std().unwrap_or(Duration::ZERO).min(max),
                Ok(None) => max,
                Err(error) => {
                    tracing::error!(%error, "the webhook dispatcher could not read the next due time");
                    max
                }
            };
            tokio::select! {
                changed = stop.changed() => if changed.is_err() { break },
                () = tokio::time::sleep(sleep.max(Duration::from_millis(10))) => {}
                () = self.store().deliveries_written().notified() => {}
            }
        }
    }
}

/// `scheme://host[:port]` of a URL, for the allowlist a delivery is sent
/// under: its own origin and nothing else.
fn origin(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let host = match url.host()? {
        url::Host::Ipv6(ip) => format!("[{ip}]"),
        host => host.to_string(),
    };
    Some(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// `pause` and up to a tenth more, so that deliveries failing together
/// are not all tried again in the same instant.
fn jittered(pause: Duration) -> chrono::Duration {
    let tenth = pause.as_millis() / 10;
    let extra = if tenth == 0 { 0 } else { u128::from(uuid::Uuid::new_v4().as_u128() as u64) % tenth };
    let total = pause.as_millis().saturating_add(extra);
    chrono::Duration::milliseconds(i64::try_from(total).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let sig = signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_fresh_and_sign() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert!(signature(&a, "evt_1", 1, "{}").unwrap().starts_with("v1,"));
        assert!(signature("nope", "evt_1", 1, "{}").is_err());
    }

    #[test]
    fn urls_follow_the_outbound_address_rules() {
        assert_eq!(url_problem("https://hooks.example.com/in", false), None);
        assert!(url_problem("ftp://hooks.example.com/", false).unwrap().contains("http or https"));
        assert!(url_problem("https://u:p@hooks.example.com/", false).unwrap().contains("credentials"));
        assert!(url_problem("http://127.0.0.1:9000/", false).unwrap().contains("not reachable"));
        assert!(url_problem("http://169.254.169.254/latest", false).is_some());
        assert!(url_problem("http://10.0.0.7/", false).is_some());
        assert!(url_problem("http://localhost:8080/", false).is_some());
        assert_eq!(url_problem("http://127.0.0.1:9000/", true), None);
        assert!(url_problem("not a url", false).unwrap().contains("not a URL"));
    }

    #[test]
    fn a_delivery_may_reach_its_own_origin_only() {
        assert_eq!(origin("https://hooks.example.com/in?x=1").as_deref(), Some("https://hooks.example.com"));
        assert_eq!(origin("http://127.0.0.1:9000/in").as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(origin("http://[::1]:9000/in").as_deref(), Some("http://[::1]:9000"));
    }

    #[test]
    fn retries_wait_at_least_their_pause_and_at_most_a_tenth_more() {
        for _ in 0..100 {
            let waited = jittered(Duration::from_secs(300)).num_milliseconds();
            assert!((300_000..=330_000).contains(&waited), "{waited}");
        }
        assert_eq!(jittered(Duration::ZERO).num_milliseconds(), 0);
    }
}
