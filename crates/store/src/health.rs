//! The company engagement overview's data: a company's family (parents
//! and children), what its health indicators measure, the account's health
//! settings and the weekly snapshots of the score.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::{ReadTx, Result, StoreError, Tx, in_list, json_opt, ms, on_tx, time, time_opt};
use stepwise_domain::crm::Company;

/// The most ancestors a family read follows up, and the most descendants
/// it lists: the hierarchy is acyclic, and a page shows no more.
pub const MAX_FAMILY: u32 = 1_000;

/// A company's place in its hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// Its parent, the parent's parent, … up to the root, nearest first.
    pub ancestors: Vec<Company>,
    /// Every company below it (children, their children, …), each with its
    /// depth (1 for a child), by depth and then name; at most
    /// [`MAX_FAMILY`].
    pub descendants: Vec<(Company, u32)>,
    /// More descendants exist than were listed.
    pub truncated: bool,
}

/// What a company's health indicators measure, over its contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Activity {
    /// The latest time any of its contacts engaged.
    pub last_engaged: Option<DateTime<Utc>>,
    /// Enrollments that completed with a positive outcome in the window.
    pub positive_outcomes: u64,
    /// Enrollments that completed with a negative outcome in the window.
    pub negative_outcomes: u64,
    /// Active actions past their due date now.
    pub overdue_work_items: u64,
    /// Replies received in the window.
    pub replies: u64,
    /// Bounces in the window.
    pub bounces: u64,
    /// Unsubscribes in the window.
    pub opt_outs: u64,
}

/// One weekly snapshot of a company's health score.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSnapshot {
    /// The week's Monday, 00:00 UTC.
    pub week_start: DateTime<Utc>,
    /// The score, 0–100.
    pub score: f64,
    /// The scored indicators as they were computed.
    pub indicators: serde_json::Value,
    /// When it was computed.
    pub computed_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    week_start: i64,
    score: f64,
    indicators: String,
    computed_at: i64,
}

impl SnapshotRow {
    fn into_domain(self) -> Result<HealthSnapshot> {
        Ok(HealthSnapshot {
            week_start: time(self.week_start)?,
            score: self.score,
            indicators: json_opt(Some(self.indicators))?.unwrap_or_default(),
            computed_at: time(self.computed_at)?,
        })
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl ReadTx {
    /// The ancestors and descendants of the company `id` of `account_id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the company is not the account's.
    pub async fn company_family(&mut self, account_id: &str, id: &str) -> Result<Family> {
        let company = self.company(account_id, id).await?;
        let mut ancestors = Vec::new();
        let mut parent = company.parent_id;
        while let Some(parent_id) = parent {
            if ancestors.len() >= MAX_FAMILY as usize {
                break;
            }
            let up = self.company(account_id, &parent_id).await?;
            parent = up.parent_id.clone();
            ancestors.push(up);
        }
        let below: Vec<(String, i64)> = on_tx!(self, |c| sqlx::query_as(
            "WITH RECURSIVE below (id, depth) AS (
                 SELECT id, CAST(1 AS BIGINT) FROM companies WHERE account_id = $1 AND parent_id = $2
                 UNION ALL
                 SELECT c.id, below.depth + 1 FROM companies c JOIN below ON c.parent_id = below.id
                 WHERE c.account_id = $1 AND below.depth < $3)
             SELECT id, depth FROM below LIMIT $4"
        )
        .bind(account_id)
        .bind(id)
        .bind(i64::from(MAX_FAMILY))
        .bind(i64::from(MAX_FAMILY) + 1)
        .fetch_all(&mut *c)
        .await?);
        let truncated = below.len() > MAX_FAMILY as usize;
        let below = &below[..below.len().min(MAX_FAMILY as usize)];
        let ids: Vec<String> = below.iter().map(|(id, _)| id.clone()).collect();
        let mut descendants: Vec<(Company, u32)> = self
            .companies_in(account_id, &ids)
            .await?
            .into_iter()
            .map(|company| {
                let depth = below.iter().find(|(id, _)| *id == company.id).map_or(1, |(_, d)| *d);
                (company, u32::try_from(depth).unwrap_or(u32::MAX))
            })
            .collect();
        descendants.sort_by(|(a, da), (b, db)| da.cmp(db).then_with(|| a.name.cmp(&b.name)).then(a.id.cmp(&b.id)));
        Ok(Family { ancestors, descendants, truncated })
    }

    /// What the health indicators of the companies `company_ids` (one, or a
    /// company and its descendants) measure at `now`, counting outcomes and
    /// signals since `window_start`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn company_activity(
        &mut self,
        account_id: &str,
        company_ids: &[String],
        now: DateTime<Utc>,
        window_start: DateTime<Utc>,
    ) -> Result<Activity> {
        let mut activity = Activity::default();
        if company_ids.is_empty() {
            return Ok(activity);
        }
        let last: Option<i64> = on_tx!(self, |c| {
            let mut q = QueryBuilder::new("SELECT MAX(last_engaged) FROM contacts WHERE account_id = ");
            q.push_bind(account_id).push(" AND company_id IN ");
            in_list(&mut q, company_ids);
            q.build_query_scalar().fetch_one(&mut *c).await?
        });
        activity.last_engaged = time_opt(last)?;
        let outcomes: Vec<(String, i64)> = on_tx!(self, |c| {
            let mut q = QueryBuilder::new(
                "SELECT e.outcome, COUNT(*) FROM enrollments e JOIN contacts c ON c.id = e.contact_id
                 WHERE e.status = 'completed' AND e.outcome IN ('positive', 'negative') AND e.account_id = ",
            );
            q.push_bind(account_id).push(" AND e.ended_at >= ").push_bind(ms(window_start));
            q.push(" AND c.company_id IN ");
            in_list(&mut q, company_ids).push(" GROUP BY e.outcome");
            q.build_query_as().fetch_all(&mut *c).await?
        });
        for (outcome, n) in outcomes {
            match outcome.as_str() {
                "positive" => activity.positive_outcomes = count(n),
                _ => activity.negative_outcomes = count(n),
            }
        }
        let overdue: i64 = on_tx!(self, |c| {
            let mut q = QueryBuilder::new(
                "SELECT COUNT(*) FROM actions a JOIN enrollments e ON e.id = a.enrollment_id
                 JOIN contacts c ON c.id = e.contact_id
                 WHERE a.status = 'active' AND a.account_id = ",
            );
            q.push_bind(account_id).push(" AND a.due_at < ").push_bind(ms(now));
            q.push(" AND c.company_id IN ");
            in_list(&mut q, company_ids);
            q.build_query_scalar().fetch_one(&mut *c).await?
        });
        activity.overdue_work_items = count(overdue);
        let signals: Vec<(String, i64)> = on_tx!(self, |c| {
            let mut q = QueryBuilder::new(
                "SELECT kind, COUNT(*) FROM events
                 WHERE kind IN ('signal.reply', 'signal.bounce', 'signal.unsubscribe') AND account_id = ",
            );
            q.push_bind(account_id).push(" AND at >= ").push_bind(ms(window_start));
            q.push(" AND company_id IN ");
            in_list(&mut q, company_ids).push(" GROUP BY kind");
            q.build_query_as().fetch_all(&mut *c).await?
        });
        for (kind, n) in signals {
            match kind.as_str() {
                "signal.reply" => activity.replies = count(n),
                "signal.bounce" => activity.bounces = count(n),
                _ => activity.opt_outs = count(n),
            }
        }
        Ok(activity)
    }

    /// The account's health settings (a `HealthConfig` as JSON), when it
    /// changed the defaults.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] when the stored JSON does not parse.
    pub async fn health_settings(&mut self, account_id: &str) -> Result<Option<serde_json::Value>> {
        let config: Option<String> =
            on_tx!(self, |c| sqlx::query_scalar("SELECT config FROM health_settings WHERE account_id = $1")
                .bind(account_id)
                .fetch_optional(&mut *c)
                .await?);
        json_opt(config)
    }

    /// The company's weekly snapshots since `since`, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn health_snapshots(
        &mut self,
        account_id: &str,
        company_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<HealthSnapshot>> {
        let rows: Vec<SnapshotRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT week_start, score, indicators, computed_at FROM company_health
             WHERE account_id = $1 AND company_id = $2 AND week_start >= $3 ORDER BY week_start"
        )
        .bind(account_id)
        .bind(company_id)
        .bind(ms(since))
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter().map(SnapshotRow::into_domain).collect()
    }

    /// Up to `limit` companies (account, company) with no snapshot for the
    /// week starting `week_start`: what the weekly sweep scores next.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn companies_without_snapshot(
        &mut self,
        week_start: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(String, String)>> {
        Ok(on_tx!(self, |c| sqlx::query_as(
            "SELECT account_id, id FROM companies co
             WHERE NOT EXISTS (SELECT 1 FROM company_health h WHERE h.week_start = $1 AND h.company_id = co.id)
             ORDER BY id LIMIT $2"
        )
        .bind(ms(week_start))
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await?))
    }
}

impl Tx {
    /// Saves the account's health settings (a `HealthConfig` as JSON).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn put_health_settings(
        &mut self,
        account_id: &str,
        config: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO health_settings (account_id, config, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (account_id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at"
        )
        .bind(account_id)
        .bind(config.to_string())
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Records the company's snapshot of its week, replacing the week's
    /// earlier one.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a score outside 0–100;
    /// [`StoreError::Database`].
    pub async fn put_health_snapshot(
        &mut self,
        account_id: &str,
        company_id: &str,
        snapshot: &HealthSnapshot,
    ) -> Result<()> {
        if !(0.0..=100.0).contains(&snapshot.score) {
            return Err(StoreError::Invalid(format!("health score {} is outside 0 to 100", snapshot.score)));
        }
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO company_health (account_id, company_id, week_start, score, indicators, computed_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (company_id, week_start) DO UPDATE
             SET score = excluded.score, indicators = excluded.indicators, computed_at = excluded.computed_at"
        )
        .bind(account_id)
        .bind(company_id)
        .bind(ms(snapshot.week_start))
        .bind(snapshot.score)
        .bind(snapshot.indicators.to_string())
        .bind(ms(snapshot.computed_at))
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(())
    }
}
