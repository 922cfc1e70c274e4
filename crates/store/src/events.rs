//! Events: the timeline and audit trail of every state change.

use chrono::{DateTime, Utc};

use sqlx::QueryBuilder;

use super::{MAX_BINDS, ReadTx, Result, Tx, changes_as_text, json_opt, ms, new_id, on_tx, time};
use stepwise_domain::engagement::{Event, EventKind, Level};

/// What [`Tx::record_event`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The owning account.
    pub account_id: String,
    /// The contact concerned.
    pub contact_id: Option<String>,
    /// The company concerned.
    pub company_id: Option<String>,
    /// The enrollment concerned.
    pub enrollment_id: Option<String>,
    /// The action concerned.
    pub action_id: Option<String>,
    /// What happened, such as `action.completed`.
    pub kind: EventKind,
    /// Who did it: a user id, `system`, or `plugin:<id>`.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// State before.
    pub before: Option<serde_json::Value>,
    /// State after.
    pub after: Option<serde_json::Value>,
    /// Level.
    pub level: Level,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    account_id: String,
    contact_id: Option<String>,
    company_id: Option<String>,
    enrollment_id: Option<String>,
    action_id: Option<String>,
    kind: String,
    actor: String,
    reason: Option<String>,
    before: Option<String>,
    after: Option<String>,
    level: String,
    at: i64,
}

impl EventRow {
    fn into_domain(self) -> Result<Event> {
        Ok(Event {
            id: self.id,
            account_id: self.account_id,
            contact_id: self.contact_id,
            company_id: self.company_id,
            enrollment_id: self.enrollment_id,
            action_id: self.action_id,
            kind: self.kind.parse()?,
            actor: self.actor,
            reason: self.reason,
            before: json_opt(self.before)?,
            after: json_opt(self.after)?,
            level: self.level.parse()?,
            at: time(self.at)?,
        })
    }
}

/// The timelines events are listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeline<'a> {
    /// A contact's.
    Contact(&'a str),
    /// A company's.
    Company(&'a str),
    /// An enrollment's.
    Enrollment(&'a str),
}

impl<'a> Timeline<'a> {
    /// The column that names the timeline's owner, and its id.
    fn column(self) -> (&'static str, &'a str) {
        match self {
            Timeline::Contact(id) => ("contact_id", id),
            Timeline::Company(id) => ("company_id", id),
            Timeline::Enrollment(id) => ("enrollment_id", id),
        }
    }
}

impl ReadTx {
    /// The events of a timeline, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn events(&mut self, timeline: Timeline<'_>) -> Result<Vec<Event>> {
        let (column, id) = timeline.column();
        let sql = format!(
            "SELECT id, account_id, contact_id, company_id, enrollment_id, action_id, kind, actor, reason, before,
                    after, level, at
             FROM events WHERE {column} = $1 ORDER BY at, id"
        );
        let rows: Vec<EventRow> = on_tx!(self, |c| sqlx::query_as(&sql).bind(id).fetch_all(&mut *c).await?);
        rows.into_iter().map(EventRow::into_domain).collect()
    }

    /// A page of a timeline, oldest first: at most `limit` events after the
    /// event at `after` (its time in milliseconds and its id).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn events_page(
        &mut self,
        timeline: Timeline<'_>,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        let (column, id) = timeline.column();
        let sql = format!(
            "SELECT id, account_id, contact_id, company_id, enrollment_id, action_id, kind, actor, reason, before,
                    after, level, at
             FROM events WHERE {column} = $1 AND (at > $2 OR (at = $2 AND id > $3)) ORDER BY at, id LIMIT $4"
        );
        let (at, last) = after.unwrap_or((i64::MIN, ""));
        let rows: Vec<EventRow> = on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(id)
            .bind(at)
            .bind(last)
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(EventRow::into_domain).collect()
    }

    /// The newest `limit` events of a timeline, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn recent_events(&mut self, timeline: Timeline<'_>, limit: u32) -> Result<Vec<Event>> {
        let (column, id) = timeline.column();
        let sql = format!(
            "SELECT id, account_id, contact_id, company_id, enrollment_id, action_id, kind, actor, reason, before,
                    after, level, at
             FROM events WHERE {column} = $1 ORDER BY at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<EventRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(id).bind(i64::from(limit)).fetch_all(&mut *c).await?);
        rows.into_iter().map(EventRow::into_domain).collect()
    }

    /// The newest `limit` events of an account of one kind, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn events_of_kind(&mut self, account_id: &str, kind: EventKind, limit: u32) -> Result<Vec<Event>> {
        let rows: Vec<EventRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT id, account_id, contact_id, company_id, enrollment_id, action_id, kind, actor, reason, before,
                    after, level, at
             FROM events WHERE account_id = $1 AND kind = $2 ORDER BY at DESC, id DESC LIMIT $3"
        )
        .bind(account_id)
        .bind(kind.as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter().map(EventRow::into_domain).collect()
    }
}

impl Tx {
    /// Records an event at `at`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when a referenced
    /// record does not exist.
    pub async fn record_event(&mut self, event: &NewEvent, at: DateTime<Utc>) -> Result<Event> {
        let id = new_id("evt");
        let before = event.before.as_ref().map(serde_json::to_string).transpose()?;
        let after = event.after.as_ref().map(serde_json::to_string).transpose()?;
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO events (id, account_id, contact_id, company_id, enrollment_id, action_id, kind, actor,
                                 reason, before, after, level, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )
        .bind(&id)
        .bind(&event.account_id)
        .bind(&event.contact_id)
        .bind(&event.company_id)
        .bind(&event.enrollment_id)
        .bind(&event.action_id)
        .bind(event.kind.as_str())
        .bind(&event.actor)
        .bind(&event.reason)
        .bind(&before)
        .bind(&after)
        .bind(event.level.as_str())
        .bind(ms(at))
        .execute(&mut *c)
        .await?
        .rows_affected());
        self.publish(&[(id.as_str(), event)], at).await?;
        Ok(Event {
            id,
            account_id: event.account_id.clone(),
            contact_id: event.contact_id.clone(),
            company_id: event.company_id.clone(),
            enrollment_id: event.enrollment_id.clone(),
            action_id: event.action_id.clone(),
            kind: event.kind,
            actor: event.actor.clone(),
            reason: event.reason.clone(),
            before: event.before.clone(),
            after: event.after.clone(),
            level: event.level,
            at: time(ms(at))?,
        })
    }

    /// Records a batch of events at `at` in one statement.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when a referenced
    /// record does not exist.
    pub async fn record_events(&mut self, events: &[NewEvent], at: DateTime<Utc>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let changes = changes_as_text(events.iter().map(|e| (&e.before, &e.after)))?;
        let ids: Vec<String> = events.iter().map(|_| new_id("evt")).collect();
        const COLUMNS: usize = 13;
        let chunk = MAX_BINDS / COLUMNS;
        for ((events, changes), ids) in events.chunks(chunk).zip(changes.chunks(chunk)).zip(ids.chunks(chunk)) {
            on_tx!(self, |c| {
                let mut q = QueryBuilder::new(
                    "INSERT INTO events (id, account_id, contact_id, company_id, enrollment_id, action_id, kind, actor,
                                     reason, before, after, level, at) ",
                );
                q.push_values(events.iter().zip(changes).zip(ids), |mut row, ((e, (before, after)), id)| {
                    row.push_bind(id)
                        .push_bind(&e.account_id)
                        .push_bind(&e.contact_id)
                        .push_bind(&e.company_id)
                        .push_bind(&e.enrollment_id)
                        .push_bind(&e.action_id)
                        .push_bind(e.kind.as_str())
                        .push_bind(&e.actor)
                        .push_bind(&e.reason)
                        .push_bind(before)
                        .push_bind(after)
                        .push_bind(e.level.as_str())
                        .push_bind(ms(at));
                });
                q.build().execute(&mut *c).await?.rows_affected()
            });
        }
        let published: Vec<(&str, &NewEvent)> = ids.iter().map(String::as_str).zip(events).collect();
        self.publish(&published, at).await
    }
}
