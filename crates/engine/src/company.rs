//! The company engagement overview: a company's health score from the
//! account's weighted indicators, its weekly snapshots (taken by the
//! scheduler's sweep, or now on refresh), and the account's health
//! settings.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};

use super::{Engine, EngineError, Result};
use stepwise_domain::engagement::{AuditAction, Editor};
use stepwise_domain::health::{self, HealthConfig, HealthScore, Measures, WeekPoint};
use stepwise_store::{Family, HealthSnapshot, NewAudit, ReadTx};

/// How many companies one pass of the weekly sweep scores.
const SWEEP_BATCH: u32 = 200;

/// How often the sweep looks for companies without this week's snapshot.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// A company's health now, with its history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct CompanyHealth {
    /// The score now and each indicator's value, target, weight and gap.
    #[serde(flatten)]
    pub score: HealthScore,
    /// The last twelve weeks, oldest first: each week's snapshot, and this
    /// week's score as it is now.
    pub history: Vec<WeekPoint>,
    /// When this week's snapshot was taken, if it was.
    pub snapshot_at: Option<DateTime<Utc>>,
    /// The window of the counted measures, in days.
    pub window_days: u32,
}

/// Midnight UTC of a date.
fn midnight(date: chrono::NaiveDate) -> DateTime<Utc> {
    date.and_time(NaiveTime::MIN).and_utc()
}

impl Engine {
    /// The account's health settings: its own, or the defaults.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`]; stored settings that no longer read are the
    /// defaults, with a warning.
    pub async fn health_config(&self, tx: &mut ReadTx, account_id: &str) -> Result<HealthConfig> {
        Ok(match tx.health_settings(account_id).await? {
            None => HealthConfig::default(),
            Some(json) => serde_json::from_value(json).unwrap_or_else(|error| {
                tracing::warn!(account = account_id, %error, "stored health settings do not read; using the defaults");
                HealthConfig::default()
            }),
        })
    }

    /// Replaces the account's health settings, audited.
    ///
    /// # Errors
    ///
    /// [`EngineError::Invalid`] naming every problem of the settings.
    pub async fn set_health_config(
        &self,
        account_id: &str,
        config: &HealthConfig,
        editor: &Editor,
    ) -> Result<HealthConfig> {
        if let Err(problems) = config.validate() {
            let problems: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect();
            return Err(EngineError::Invalid(problems.join("; ")));
        }
        let mut tx = self.store().begin().await?;
        let before = self.health_config(&mut tx, account_id).await?;
        let json = serde_json::to_value(config).map_err(|e| EngineError::Invalid(e.to_string()))?;
        tx.put_health_settings(account_id, &json, self.now()).await?;
        let entry = NewAudit::changed(AuditAction::HealthSettingsChanged, account_id, &before, config);
        tx.audit(account_id, editor, entry, self.now()).await?;
        tx.commit().await?;
        Ok(config.clone())
    }

    /// The companies a health score or an overview covers: the company, and
    /// with `children` every company below it.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] when the company is not the account's.
    pub async fn company_scope(
        &self,
        tx: &mut ReadTx,
        account_id: &str,
        company_id: &str,
        children: bool,
    ) -> Result<(Family, Vec<String>)> {
        let family = tx.company_family(account_id, company_id).await?;
        let mut ids = vec![company_id.to_owned()];
        if children {
            ids.extend(family.descendants.iter().map(|(c, _)| c.id.clone()));
        }
        Ok((family, ids))
    }

    /// Scores the companies `ids` at `now` with `config`.
    async fn score(
        &self,
        tx: &mut ReadTx,
        account_id: &str,
        ids: &[String],
        config: &HealthConfig,
        now: DateTime<Utc>,
    ) -> Result<HealthScore> {
        let window = chrono::Duration::days(i64::from(config.window_days));
        let activity = tx.company_activity(account_id, ids, now, now - window).await?;
        #[expect(clippy::cast_precision_loss, reason = "milliseconds of days fit an f64 exactly enough")]
        let measures = Measures {
            days_since_engaged: activity.last_engaged.map(|at| (now - at).num_milliseconds() as f64 / 86_400_000.0),
            positive_outcomes: activity.positive_outcomes,
            negative_outcomes: activity.negative_outcomes,
            overdue_work_items: activity.overdue_work_items,
            replies: activity.replies,
            bounces: activity.bounces,
            opt_outs: activity.opt_outs,
        };
        Ok(health::compute(config, &measures))
    }

    /// The company's health now (its own contacts), with the weekly
    /// history; this week's point is the score now.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] when the company is not the account's.
    pub async fn company_health(&self, tx: &mut ReadTx, account_id: &str, company_id: &str) -> Result<CompanyHealth> {
        tx.company(account_id, company_id).await?;
        let now = self.now();
        let config = self.health_config(tx, account_id).await?;
        let score = self.score(tx, account_id, &[company_id.to_owned()], &config, now).await?;
        let weeks = i64::try_from(health::HISTORY_WEEKS).unwrap_or(12);
        let since = midnight(health::week_start(now)) - chrono::Duration::weeks(weeks - 1);
        let snapshots = tx.health_snapshots(account_id, company_id, since).await?;
        let this_week = midnight(health::week_start(now));
        let snapshot_at = snapshots.iter().find(|s| s.week_start == this_week).map(|s| s.computed_at);
        let mut points: Vec<(chrono::NaiveDate, f64)> =
            snapshots.iter().map(|s| (s.week_start.date_naive(), s.score)).collect();
        points.push((this_week.date_naive(), score.score));
        let history = health::history(&points, now, health::HISTORY_WEEKS);
        Ok(CompanyHealth { score, history, snapshot_at, window_days: config.window_days })
    }

    /// Recomputes the company's score now and keeps it as this week's
    /// snapshot.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] when the company is not the account's.
    pub async fn refresh_company_health(&self, account_id: &str, company_id: &str) -> Result<CompanyHealth> {
        self.snapshot_company(account_id, company_id, self.now()).await?;
        let mut tx = self.read().await?;
        self.company_health(&mut tx, account_id, company_id).await
    }

    /// Scores one company at `now` and writes its week's snapshot.
    async fn snapshot_company(&self, account_id: &str, company_id: &str, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.store().begin().await?;
        tx.company(account_id, company_id).await?;
        let config = self.health_config(&mut tx, account_id).await?;
        let score = self.score(&mut tx, account_id, &[company_id.to_owned()], &config, now).await?;
        let snapshot = HealthSnapshot {
            week_start: midnight(health::week_start(now)),
            score: score.score,
            indicators: serde_json::to_value(&score.indicators).unwrap_or_default(),
            computed_at: now,
        };
        tx.put_health_snapshot(account_id, company_id, &snapshot).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One pass of the weekly sweep: snapshots up to a batch of companies
    /// that have none for this week. Returns how many it took; a full batch
    /// means more may be waiting.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] when the companies cannot be read; a company
    /// that cannot be scored is logged and tried again on the next pass.
    pub async fn snapshot_health(&self) -> Result<usize> {
        let now = self.now();
        let week = midnight(health::week_start(now));
        let due = self.read().await?.companies_without_snapshot(week, SWEEP_BATCH).await?;
        let mut taken = 0;
        for (account_id, company_id) in &due {
            match self.snapshot_company(account_id, company_id, now).await {
                Ok(()) => taken += 1,
                Err(error) => {
                    tracing::warn!(account = %account_id, company = %company_id, %error, "cannot snapshot a company's health");
                }
            }
        }
        Ok(taken)
    }

    /// Takes the week's health snapshots while the scheduler runs: a batch
    /// at a time until none is missing, then again every ten minutes (a new
    /// week begins at Monday midnight, UTC).
    pub(crate) async fn snapshot_health_forever(&self) {
        loop {
            let pause = match self.snapshot_health().await {
                Ok(n) if n == SWEEP_BATCH as usize => Duration::from_millis(50),
                Ok(_) => super::wake::jittered(SWEEP_EVERY),
                Err(error) => {
                    tracing::warn!(%error, "the health sweep could not read the companies");
                    super::wake::jittered(SWEEP_EVERY)
                }
            };
            tokio::time::sleep(pause).await;
        }
    }
}
