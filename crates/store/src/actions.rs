//! Actions: the steps of an enrollment, the lease-based claim of due ones,
//! and the lease-checked transitions that complete or reschedule them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use sqlx::QueryBuilder;

use super::{
    MAX_BINDS, ReadTx, Result, Store, StoreError, Tx, found, in_list, json_opt, ms, ms_opt, new_id, on_pool, on_tx,
    parse_opt, time, time_opt,
};
use stepwise_domain::engagement::{
    Action, ActionLogLine, ActionStatus, Activation, ClaimedAction, DeferralReason, Priority,
};

/// Which held actions a change may have fixed ([`Tx::release_holds`]).
#[derive(Debug, Clone, Copy)]
pub enum HoldScope<'a> {
    /// Those of the account's enrollments of these contacts.
    Contacts(&'a [String]),
    /// All of the account's.
    Account,
}

/// Which held actions [`ReadTx::held_page`] lists.
#[derive(Debug, Clone, Copy)]
pub struct HeldFilter<'a> {
    /// The account whose actions these are: nothing of another account is
    /// ever listed, whichever owner or sequence is named.
    pub account_id: &'a str,
    /// Held for this reason; `None`: for any.
    pub reason: Option<DeferralReason>,
    /// Only actions of this owner.
    pub owner_id: Option<&'a str>,
    /// Only actions of this sequence.
    pub sequence_id: Option<&'a str>,
}

/// What [`Tx::insert_action`] needs. Actions are created `future`, projected
/// from enrollment on; only one per enrollment may be current. An action's
/// account is its enrollment's, read by the insert itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAction {
    /// The enrollment.
    pub enrollment_id: String,
    /// The step's position.
    pub step: i64,
    /// The step's plugin id.
    pub plugin_id: String,
    /// Manual or automatic.
    pub activation: Activation,
    /// The owner chosen by the step's owner rule.
    pub owner_id: Option<String>,
    /// The projected due date.
    pub due_at: Option<DateTime<Utc>>,
    /// Whether it is the enrollment's current action.
    pub current: bool,
    /// How urgent it is ([`Priority::of_config`] of its step).
    pub priority: Priority,
}

/// One action of a batch ended by [`Tx::complete_actions`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchCompletion {
    /// The action.
    pub id: String,
    /// The lease token the claim gave; `None` for a person's change, which
    /// waits for no lease but a live one (see [`Tx::complete_action`]).
    pub lease_token: Option<String>,
    /// How it ends: `completed` or `skipped`.
    pub completion: ActionCompletion,
}

/// One action of a batch rescheduled by [`Tx::schedule_actions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule<'a> {
    /// The action.
    pub id: &'a str,
    /// Its due date.
    pub due_at: Option<DateTime<Utc>>,
    /// Whether it is now its enrollment's current action.
    pub current: bool,
}

/// How an action ends, for [`Tx::complete_action`].
#[derive(Debug, Clone, PartialEq)]
pub struct ActionCompletion {
    /// `completed`, `skipped` or `failed`.
    pub status: ActionStatus,
    /// Result or disposition, such as `left_voicemail`.
    pub result: Option<String>,
    /// The plugin's output.
    pub output: Option<serde_json::Value>,
    /// The user who completed it; `None` for the system.
    pub completed_by: Option<String>,
    /// Skipped because the contact opted out.
    pub opt_out: bool,
    /// Why the system skipped it, when it did.
    pub deferral_reason: Option<DeferralReason>,
    /// The plugin ran for it and its attempt is not counted yet (it was
    /// not recorded before a request left): count it.
    pub counts_attempt: bool,
    /// The version of the plugin whose answer this is; `None` when no
    /// plugin answered (a rule, a person).
    pub plugin_version: Option<String>,
}

impl ActionCompletion {
    /// A skip with `result`, by a user or (`None`) the system, for a
    /// deferral reason when a rule skipped it; `opted_out` sets the
    /// action's opt-out flag.
    pub fn skipped(result: &str, by: Option<&str>, reason: Option<DeferralReason>) -> Self {
        Self {
            status: ActionStatus::Skipped,
            result: Some(result.to_owned()),
            output: None,
            completed_by: by.map(str::to_owned),
            opt_out: reason == Some(DeferralReason::OptedOut),
            deferral_reason: reason,
            counts_attempt: false,
            plugin_version: None,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ActionRow {
    id: String,
    enrollment_id: String,
    step: i64,
    plugin_id: String,
    plugin_version: Option<String>,
    activation: String,
    owner_id: Option<String>,
    status: String,
    due_at: Option<i64>,
    show_on_engage: bool,
    deferral_reason: Option<String>,
    opt_out: bool,
    result: Option<String>,
    output: Option<String>,
    attempts: i64,
    skip_criteria_evaluated: bool,
    completed_at: Option<i64>,
    completed_by: Option<String>,
    is_current: bool,
    lease_token: Option<String>,
    lease_expires_at: Option<i64>,
    send_attempted_at: Option<i64>,
    recheck_at: Option<i64>,
    priority: i64,
}

impl ActionRow {
    pub(crate) fn into_domain(self) -> Result<Action> {
        Ok(Action {
            id: self.id,
            enrollment_id: self.enrollment_id,
            step: self.step,
            plugin_id: self.plugin_id,
            plugin_version: self.plugin_version,
            activation: self.activation.parse()?,
            owner_id: self.owner_id,
            status: self.status.parse()?,
            due_at: time_opt(self.due_at)?,
            show_on_engage: self.show_on_engage,
            deferral_reason: parse_opt(self.deferral_reason)?,
            opt_out: self.opt_out,
            result: self.result,
            output: json_opt(self.output)?,
            attempts: self.attempts,
            skip_criteria_evaluated: self.skip_criteria_evaluated,
            completed_at: time_opt(self.completed_at)?,
            completed_by: self.completed_by,
            current: self.is_current,
            lease_token: self.lease_token,
            lease_expires_at: time_opt(self.lease_expires_at)?,
            send_attempted_at: time_opt(self.send_attempted_at)?,
            recheck_at: time_opt(self.recheck_at)?,
            priority: Priority::from_rank(self.priority)
                .ok_or_else(|| StoreError::Corrupt(format!("priority rank {} is not 1, 2 or 3", self.priority)))?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: String,
    account_id: String,
    enrollment_id: String,
    step: i64,
    plugin_id: String,
    activation: String,
    due_at: i64,
    attempts: i64,
    lease_token: String,
    lease_expires_at: i64,
}

impl ClaimedRow {
    fn into_domain(self) -> Result<ClaimedAction> {
        Ok(ClaimedAction {
            id: self.id,
            account_id: self.account_id,
            enrollment_id: self.enrollment_id,
            step: self.step,
            plugin_id: self.plugin_id,
            activation: self.activation.parse()?,
            due_at: time(self.due_at)?,
            attempts: self.attempts,
            lease_token: self.lease_token,
            lease_expires_at: time(self.lease_expires_at)?,
        })
    }
}

const ACTION_COLUMNS: &str = "id, enrollment_id, step, plugin_id, plugin_version, activation, owner_id, status, due_at,
    show_on_engage,
    deferral_reason, opt_out, result, output, attempts, skip_criteria_evaluated, completed_at, completed_by,
    is_current, lease_token, lease_expires_at, send_attempted_at, recheck_at, priority";

/// [`ACTION_COLUMNS`], each of the table named `alias`.
pub(crate) fn action_columns(alias: &str) -> String {
    ACTION_COLUMNS.split(',').map(|c| format!("{alias}.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

const CLAIMED_COLUMNS: &str =
    "id, account_id, enrollment_id, step, plugin_id, activation, due_at, attempts, lease_token, lease_expires_at";

/// When the scheduler looks at an action next: its due date, or the later
/// re-check of a hold. Word for word the expression of the index
/// `actions_due`, so that both planners use it.
pub(crate) const NEXT_LOOK: &str = "(CASE WHEN recheck_at > due_at THEN recheck_at ELSE due_at END)";

/// Claimable: the enrollment's current action, `future`, due (and past its
/// re-check), and not under a live lease. The text matches the partial
/// index `actions_due` so both planners use it.
fn claimable() -> String {
    format!(
        "is_current AND status = 'future' AND {NEXT_LOOK} <= $1 AND (lease_expires_at IS NULL OR lease_expires_at <= $1)"
    )
}

/// A fresh lease token and when a lease taken at `now` for `lease_for`
/// expires.
fn lease(now: DateTime<Utc>, lease_for: Duration) -> (String, i64) {
    let lease_ms = i64::try_from(lease_for.as_millis()).unwrap_or(i64::MAX / 2);
    (new_id("lse"), ms(now).saturating_add(lease_ms))
}

/// The lease check of every transition: `$2` is the caller's token. With a
/// token, it must be the one stored (an expired lease nobody re-claimed still
/// matches: no other host did the work). Without one (a user acting from the
/// Engage view), no live lease may exist.
const LEASE_HELD: &str = "(lease_token = $2 OR ($2 IS NULL AND (lease_token IS NULL OR lease_expires_at <= $3)))";

impl Store {
    /// Leases up to `limit` due actions to the caller for `lease_for`:
    /// current, `future`, `due_at <= now`, and not leased or with an expired
    /// lease. Each gets the same fresh token, which
    /// [`Tx::complete_action`] and [`Tx::reschedule_action`] check; when the
    /// lease expires first, the action is claimable again, so a crashed host
    /// loses nothing.
    ///
    /// On PostgreSQL, concurrent claimers skip each other's rows (`FOR UPDATE
    /// SKIP LOCKED`) instead of waiting; on SQLite the single `UPDATE …
    /// RETURNING` runs under the database's one write lock.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn claim_due_actions(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_for: Duration,
    ) -> Result<Vec<ClaimedAction>> {
        let (token, expires) = lease(now, lease_for);
        let claimable = claimable();
        let rows: Vec<ClaimedRow> = match self.backend() {
            super::Backend::Postgres => {
                let sql = format!(
                    "WITH due AS (
                         SELECT id FROM actions WHERE {claimable}
                         ORDER BY {NEXT_LOOK}, id LIMIT $2 FOR UPDATE SKIP LOCKED)
                     UPDATE actions SET lease_token = $3, lease_expires_at = $4
                     WHERE id IN (SELECT id FROM due) RETURNING {CLAIMED_COLUMNS}"
                );
                on_pool!(self, |p| sqlx::query_as(&sql)
                    .bind(ms(now))
                    .bind(i64::from(limit))
                    .bind(&token)
                    .bind(expires)
                    .fetch_all(p)
                    .await?)
            }
            super::Backend::Sqlite => {
                let sql = format!(
                    "UPDATE actions SET lease_token = $3, lease_expires_at = $4
                     WHERE id IN (SELECT id FROM actions WHERE {claimable} ORDER BY {NEXT_LOOK}, id LIMIT $2)
                     RETURNING {CLAIMED_COLUMNS}"
                );
                // Under the writer lock, so that a claim waits for this
                // host's own writes asynchronously and begins the moment
                // they end, not in SQLite's busy handler (which sleeps up to
                // 100 ms between tries) while the next batch's answers are
                // written.
                let mut tx = self.begin().await?;
                let rows = on_tx!(tx, |c| sqlx::query_as(&sql)
                    .bind(ms(now))
                    .bind(i64::from(limit))
                    .bind(&token)
                    .bind(expires)
                    .fetch_all(&mut *c)
                    .await?);
                tx.commit().await?;
                rows
            }
        };
        let mut claimed = rows.into_iter().map(ClaimedRow::into_domain).collect::<Result<Vec<_>>>()?;
        // RETURNING gives no order; the engine processes oldest first.
        claimed.sort_by(|a, b| (a.due_at, &a.id).cmp(&(b.due_at, &b.id)));
        Ok(claimed)
    }

    /// The accounts with due actions, at most `max`, the one whose oldest
    /// due action has waited longest first: what [`Store::claim_shares`]
    /// is given. Two index probes per account with future actions (the next
    /// account, then its oldest due action), however many actions each has.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn accounts_with_due_actions(&self, now: DateTime<Utc>, max: u32) -> Result<Vec<String>> {
        // A skip scan of `actions_due_by_account`, written out because
        // neither planner does one by itself.
        let sql = format!(
            "WITH RECURSIVE accounts (account_id) AS (
                 SELECT (SELECT account_id FROM actions WHERE is_current AND status = 'future'
                         ORDER BY account_id LIMIT 1)
                 UNION ALL
                 SELECT (SELECT a.account_id FROM actions a
                         WHERE a.is_current AND a.status = 'future' AND a.account_id > accounts.account_id
                         ORDER BY a.account_id LIMIT 1)
                 FROM accounts WHERE accounts.account_id IS NOT NULL
             )
             SELECT account_id FROM (
                 SELECT account_id,
                        (SELECT {NEXT_LOOK} FROM actions
                         WHERE actions.account_id = accounts.account_id AND is_current AND status = 'future'
                           AND {NEXT_LOOK} <= $1
                         ORDER BY {NEXT_LOOK} LIMIT 1) AS oldest
                 FROM accounts WHERE account_id IS NOT NULL
             ) AS heads
             WHERE oldest IS NOT NULL ORDER BY oldest, account_id LIMIT $2"
        );
        Ok(on_pool!(self, |p| sqlx::query_scalar(&sql).bind(ms(now)).bind(i64::from(max)).fetch_all(p).await?))
    }

    /// Leases to the caller, for `lease_for`, up to `limit` due actions of
    /// `accounts` (as [`Store::claim_due_actions`] leases them), each
    /// account's oldest first and at least its even share (`limit` over the
    /// number of accounts, one at least) when it has that many due, so
    /// that every account with due work is served by every claim, however
    /// many actions another account has waiting. Returned in turns: each
    /// account's oldest, then each one's second oldest, and so on, so that
    /// a batch begins with every account's work.
    ///
    /// On PostgreSQL one statement takes each account's even share. On
    /// SQLite (one statement per account, in one write transaction) what an
    /// account leaves of its share goes to the accounts after it, the
    /// earliest waiting last, so one account's burst fills what the others
    /// leave without a second claim.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn claim_shares(
        &self,
        now: DateTime<Utc>,
        accounts: &[String],
        limit: u32,
        lease_for: Duration,
    ) -> Result<Vec<ClaimedAction>> {
        let Some(count) = u32::try_from(accounts.len()).ok().filter(|n| *n > 0 && limit > 0) else {
            return Ok(Vec::new());
        };
        let share = (limit / count).max(1);
        let (token, expires) = lease(now, lease_for);
        let claimable = claimable();
        let rows: Vec<ClaimedRow> = match &self.pool {
            super::Pool::Postgres(p) => {
                let sql = format!(
                    "WITH due AS (
                         SELECT share.id FROM unnest($5::text[]) AS of (account_id)
                         CROSS JOIN LATERAL (
                             SELECT id FROM actions WHERE account_id = of.account_id AND {claimable}
                             ORDER BY {NEXT_LOOK}, id LIMIT $2 FOR UPDATE SKIP LOCKED) AS share)
                     UPDATE actions SET lease_token = $3, lease_expires_at = $4
                     WHERE id IN (SELECT id FROM due) RETURNING {CLAIMED_COLUMNS}"
                );
                sqlx::query_as(&sql)
                    .bind(ms(now))
                    .bind(i64::from(share))
                    .bind(&token)
                    .bind(expires)
                    .bind(accounts)
                    .fetch_all(p)
                    .await?
            }
            super::Pool::Sqlite(_) => {
                // No LATERAL: one statement per account, in one write
                // transaction (SQLite has one writer at a time anyway).
                let sql = format!(
                    "UPDATE actions SET lease_token = $3, lease_expires_at = $4
                     WHERE id IN (SELECT id FROM actions WHERE account_id = $5 AND {claimable}
                                  ORDER BY {NEXT_LOOK}, id LIMIT $2)
                     RETURNING {CLAIMED_COLUMNS}"
                );
                let mut tx = self.begin().await?;
                let mut rows: Vec<ClaimedRow> = Vec::new();
                for (left, account) in accounts.iter().rev().enumerate().map(|(i, a)| (accounts.len() - i, a)) {
                    let room = (limit as usize).saturating_sub(rows.len());
                    if room == 0 {
                        break;
                    }
                    let take = (room / left).max(1);
                    let mut some: Vec<ClaimedRow> = on_tx!(tx, |c| sqlx::query_as(&sql)
                        .bind(ms(now))
                        .bind(i64::try_from(take).unwrap_or(i64::MAX))
                        .bind(&token)
                        .bind(expires)
                        .bind(account)
                        .fetch_all(&mut *c)
                        .await?);
                    rows.append(&mut some);
                }
                tx.commit().await?;
                rows
            }
        };
        let mut claimed = rows.into_iter().map(ClaimedRow::into_domain).collect::<Result<Vec<_>>>()?;
        // Oldest first, then (a stable sort) by each action's turn within
        // its account.
        claimed.sort_by(|a, b| (a.due_at, &a.id).cmp(&(b.due_at, &b.id)));
        let mut taken: HashMap<String, usize> = HashMap::new();
        let mut ordered: Vec<(usize, ClaimedAction)> = claimed
            .into_iter()
            .map(|action| {
                let turn = taken.entry(action.account_id.clone()).or_default();
                *turn += 1;
                (*turn, action)
            })
            .collect();
        ordered.sort_by_key(|(turn, _)| *turn);
        Ok(ordered.into_iter().map(|(_, action)| action).collect())
    }

    /// When the next claimable work falls due: the earliest due date of a
    /// current `future` action, or its lease expiry when that is later. The
    /// scheduler sleeps until then (or until woken by new work).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>> {
        // Two index walks, not a scan of the due queue: the earliest
        // unleased action, and the leased ones (a few batches at most).
        let sql = format!(
            "SELECT MIN(at) FROM (
                 SELECT (SELECT {NEXT_LOOK} FROM actions
                         WHERE is_current AND status = 'future' AND {NEXT_LOOK} IS NOT NULL AND lease_token IS NULL
                         ORDER BY {NEXT_LOOK} LIMIT 1) AS at
                 UNION ALL
                 SELECT MIN(CASE WHEN lease_expires_at > {NEXT_LOOK} THEN lease_expires_at ELSE {NEXT_LOOK} END)
                 FROM actions WHERE lease_token IS NOT NULL AND is_current AND status = 'future'
             ) AS next"
        );
        let next: Option<i64> = on_pool!(self, |p| sqlx::query_scalar(&sql).fetch_one(p).await?);
        time_opt(next)
    }
}

impl ReadTx {
    /// The action `id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn action(&mut self, id: &str) -> Result<Action> {
        let sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE id = $1");
        let row: Option<ActionRow> = on_tx!(self, |c| sqlx::query_as(&sql).bind(id).fetch_optional(&mut *c).await?);
        found(row, "action", id)?.into_domain()
    }

    /// The actions of an enrollment, by step.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn actions_of_enrollment(&mut self, enrollment_id: &str) -> Result<Vec<Action>> {
        let sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE enrollment_id = $1 ORDER BY step");
        let rows: Vec<ActionRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(enrollment_id).fetch_all(&mut *c).await?);
        rows.into_iter().map(ActionRow::into_domain).collect()
    }
    /// A page of the account's actions held for `filter.reason` (current,
    /// `future`, with that deferral reason, or any), by id, after the id
    /// `after`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn held_page(&mut self, filter: &HeldFilter<'_>, after: Option<&str>, limit: u32) -> Result<Vec<Action>> {
        let sql = format!(
            "SELECT {ACTION_COLUMNS} FROM actions
             WHERE is_current AND status = 'future' AND deferral_reason IS NOT NULL
               AND ($1 = '' OR deferral_reason = $1)
               AND ($2 = '' OR owner_id = $2)
               AND EXISTS (SELECT 1 FROM enrollments e WHERE e.id = actions.enrollment_id
                                  AND e.account_id = $3 AND ($4 = '' OR e.sequence_id = $4))
               AND id > $5
             ORDER BY id LIMIT $6"
        );
        let rows: Vec<ActionRow> = on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(filter.reason.map_or("", DeferralReason::as_str))
            .bind(filter.owner_id.unwrap_or(""))
            .bind(filter.account_id)
            .bind(filter.sequence_id.unwrap_or(""))
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(ActionRow::into_domain).collect()
    }

    /// A user's Engage view: their active actions shown on Engage, by due date.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn engage_actions(&mut self, owner_id: &str) -> Result<Vec<Action>> {
        let sql = format!(
            "SELECT {ACTION_COLUMNS} FROM actions
             WHERE owner_id = $1 AND status = 'active' AND show_on_engage ORDER BY due_at, id"
        );
        let rows: Vec<ActionRow> = on_tx!(self, |c| sqlx::query_as(&sql).bind(owner_id).fetch_all(&mut *c).await?);
        rows.into_iter().map(ActionRow::into_domain).collect()
    }

    /// The actions of these enrollments still to be performed (`future`,
    /// or `disabled` by a pause), by enrollment and step: what moving an
    /// enrollment on looks at, without the rows of steps already done.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn unperformed_actions_of(&mut self, ids: &[String]) -> Result<Vec<Action>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<ActionRow> = on_tx!(self, |c| {
            let mut q = QueryBuilder::new(format!(
                "SELECT {ACTION_COLUMNS} FROM actions WHERE status IN ('future', 'disabled') AND enrollment_id IN "
            ));
            in_list(&mut q, ids).push(" ORDER BY enrollment_id, step");
            q.build_query_as().fetch_all(&mut *c).await?
        });
        rows.into_iter().map(ActionRow::into_domain).collect()
    }
}

impl Tx {
    /// Adds an action to an enrollment.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] with constraint
    /// `actions_one_current_per_enrollment` when it is current and the
    /// enrollment already has a current action, or
    /// `actions_enrollment_id_step_key` when the step has an action.
    pub async fn insert_action(&mut self, new: &NewAction, now: DateTime<Utc>) -> Result<Action> {
        let id = new_id("act");
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO actions (id, account_id, enrollment_id, step, plugin_id, activation, owner_id, status,
                                  due_at, show_on_engage, opt_out, attempts, skip_criteria_evaluated, is_current,
                                  created_at, updated_at, priority)
             VALUES ($1, (SELECT account_id FROM enrollments WHERE id = $2), $2, $3, $4, $5, $6, 'future', $7,
                     FALSE, FALSE, 0, FALSE, $8, $9, $9, $10)"
        )
        .bind(&id)
        .bind(&new.enrollment_id)
        .bind(new.step)
        .bind(&new.plugin_id)
        .bind(new.activation.as_str())
        .bind(&new.owner_id)
        .bind(ms_opt(new.due_at))
        .bind(new.current)
        .bind(ms(now))
        .bind(new.priority.rank())
        .execute(&mut *c)
        .await?
        .rows_affected());
        self.action(&id).await
    }

    /// Adds a batch of actions in one statement and returns their ids, in
    /// order.
    ///
    /// # Errors
    ///
    /// As [`Tx::insert_action`].
    pub async fn insert_actions(&mut self, batch: &[NewAction], now: DateTime<Utc>) -> Result<Vec<String>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        const COLUMNS: usize = 10;
        let ids: Vec<String> = batch.iter().map(|_| new_id("act")).collect();
        for (ids, batch) in ids.chunks(MAX_BINDS / COLUMNS).zip(batch.chunks(MAX_BINDS / COLUMNS)) {
            on_tx!(self, |c| {
                let mut q = QueryBuilder::new(
                    "INSERT INTO actions (id, account_id, enrollment_id, step, plugin_id, activation, owner_id, due_at,
                                      is_current, created_at, updated_at, status, show_on_engage, opt_out, attempts,
                                      skip_criteria_evaluated, priority)
                 SELECT v.column1, (SELECT account_id FROM enrollments WHERE id = v.column2), v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8,
                        v.column9, v.column9, 'future', FALSE, FALSE, 0, FALSE, v.column10
                 FROM (",
                );
                q.push_values(ids.iter().zip(batch), |mut row, (id, new)| {
                    row.push_bind(id)
                        .push_bind(&new.enrollment_id)
                        .push_bind(new.step)
                        .push_bind(&new.plugin_id)
                        .push_bind(new.activation.as_str())
                        .push_bind(&new.owner_id)
                        .push_bind(ms_opt(new.due_at))
                        .push_bind(new.current)
                        .push_bind(ms(now))
                        .push_bind(new.priority.rank());
                });
                q.push(") AS v");
                q.build().execute(&mut *c).await?.rows_affected()
            });
        }
        Ok(ids)
    }

    /// Makes `action_id` the enrollment's one current action (`None`: none).
    /// The previous current action is cleared first, so the partial unique
    /// index never sees two.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when `action_id` is not an action of the enrollment.
    pub async fn set_current_action(
        &mut self,
        enrollment_id: &str,
        action_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_tx!(self, |c| sqlx::query(
            "UPDATE actions SET is_current = FALSE, updated_at = $2 WHERE enrollment_id = $1 AND is_current"
        )
        .bind(enrollment_id)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        if let Some(action_id) = action_id {
            let done = on_tx!(self, |c| sqlx::query(
                "UPDATE actions SET is_current = TRUE, updated_at = $3 WHERE enrollment_id = $1 AND id = $2"
            )
            .bind(enrollment_id)
            .bind(action_id)
            .bind(ms(now))
            .execute(&mut *c)
            .await?
            .rows_affected());
            found((done > 0).then_some(()), "action", action_id)?;
        }
        Ok(())
    }

    /// Sets a projected due date (of an action not yet current, or when
    /// due dates are recomputed after a completion).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn set_action_due_at(
        &mut self,
        id: &str,
        due_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let done = on_tx!(self, |c| sqlx::query("UPDATE actions SET due_at = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(ms_opt(due_at))
            .bind(ms(now))
            .execute(&mut *c)
            .await?
            .rows_affected());
        found((done > 0).then_some(()), "action", id)
    }

    /// Counts an execution attempt of an action whose attempt was not
    /// recorded beforehand ([`Tx::record_send_attempt`] counts its own).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn count_attempt(&mut self, id: &str, now: DateTime<Utc>) -> Result<()> {
        let done =
            on_tx!(self, |c| sqlx::query("UPDATE actions SET attempts = attempts + 1, updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(ms(now))
                .execute(&mut *c)
                .await?
                .rows_affected());
        found((done > 0).then_some(()), "action", id)
    }

    /// Sets the owner of an action (the step's owner rule is applied again
    /// when the action is processed, since the contact's owner may change).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn set_action_owner(&mut self, id: &str, owner_id: Option<&str>, now: DateTime<Utc>) -> Result<()> {
        let done = on_tx!(self, |c| sqlx::query("UPDATE actions SET owner_id = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(owner_id)
            .bind(ms(now))
            .execute(&mut *c)
            .await?
            .rows_affected());
        found((done > 0).then_some(()), "action", id)
    }

    /// Ends an action as `completion.status`, releases its lease and clears
    /// its current flag (the engine then makes the next one current).
    /// `lease_token` is the claim's token, or `None` for a user acting from
    /// the Engage view, which succeeds only while no live lease exists.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] when the lease does not match (or the action
    /// is gone); [`StoreError::Invalid`] when the status is not a final one.
    pub async fn complete_action(
        &mut self,
        id: &str,
        lease_token: Option<&str>,
        completion: &ActionCompletion,
        now: DateTime<Utc>,
    ) -> Result<Action> {
        if !matches!(completion.status, ActionStatus::Completed | ActionStatus::Skipped | ActionStatus::Failed) {
            return Err(StoreError::Invalid(format!("{} is not a final action status", completion.status)));
        }
        let output = completion.output.as_ref().map(serde_json::to_string).transpose()?;
        let sql = format!(
            "UPDATE actions SET status = $4, result = $5, output = $6, completed_by = $7, opt_out = $8,
                                deferral_reason = $9, completed_at = $3, updated_at = $3, show_on_engage = FALSE,
                                is_current = FALSE, lease_token = NULL, lease_expires_at = NULL,
                                attempts = attempts + $10, plugin_version = COALESCE($11, plugin_version)
             WHERE id = $1 AND {LEASE_HELD}"
        );
        let done = on_tx!(self, |c| sqlx::query(&sql)
            .bind(id)
            .bind(lease_token)
            .bind(ms(now))
            .bind(completion.status.as_str())
            .bind(&completion.result)
            .bind(&output)
            .bind(&completion.completed_by)
            .bind(completion.opt_out)
            .bind(completion.deferral_reason.map(|d| d.as_str()))
            .bind(i64::from(completion.counts_attempt))
            .bind(&completion.plugin_version)
            .execute(&mut *c)
            .await?
            .rows_affected());
        self.after_leased_update(id, done).await
    }

    /// Puts an action back to `future` with a new due date and, when the
    /// system holds it back, the reason; it leaves the Engage view and its
    /// lease is released. A `None` due date parks it until something (a
    /// drip slot, a person) makes it due again. `recheck_at` is when a held
    /// action is looked at again, its due date kept; `None` clears it.
    ///
    /// With `confirm_send`, an earlier send attempt is forgotten: the caller
    /// knows its outcome (the plugin answered "retry", or a user chose to
    /// try again), so the duplicate-attempt failsafe must not hold it.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] when the lease does not match.
    #[allow(clippy::too_many_arguments)]
    pub async fn reschedule_action(
        &mut self,
        id: &str,
        lease_token: Option<&str>,
        due_at: Option<DateTime<Utc>>,
        recheck_at: Option<DateTime<Utc>>,
        deferral: Option<DeferralReason>,
        confirm_send: bool,
        now: DateTime<Utc>,
    ) -> Result<Action> {
        let sql = format!(
            "UPDATE actions SET status = 'future', due_at = $4, deferral_reason = $5, show_on_engage = FALSE,
                                updated_at = $3, lease_token = NULL, lease_expires_at = NULL, recheck_at = $7,
                                send_attempted_at = CASE WHEN $6 THEN NULL ELSE send_attempted_at END
             WHERE id = $1 AND {LEASE_HELD}"
        );
        let done = on_tx!(self, |c| sqlx::query(&sql)
            .bind(id)
            .bind(lease_token)
            .bind(ms(now))
            .bind(ms_opt(due_at))
            .bind(deferral.map(|d| d.as_str()))
            .bind(confirm_send)
            .bind(ms_opt(recheck_at))
            .execute(&mut *c)
            .await?
            .rows_affected());
        self.after_leased_update(id, done).await
    }

    /// Makes a manual action `active` on its owner's Engage view, releasing
    /// the lease; `skip_criteria_evaluated` records that skip criteria were
    /// run (they are evaluated once).
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] when the lease does not match.
    pub async fn activate_action(
        &mut self,
        id: &str,
        lease_token: Option<&str>,
        skip_criteria_evaluated: bool,
        now: DateTime<Utc>,
    ) -> Result<Action> {
        let sql = format!(
            "UPDATE actions SET status = 'active', show_on_engage = TRUE, deferral_reason = NULL,
                                skip_criteria_evaluated = $4, updated_at = $3, lease_token = NULL,
                                lease_expires_at = NULL
             WHERE id = $1 AND {LEASE_HELD}"
        );
        let done = on_tx!(self, |c| sqlx::query(&sql)
            .bind(id)
            .bind(lease_token)
            .bind(ms(now))
            .bind(skip_criteria_evaluated)
            .execute(&mut *c)
            .await?
            .rows_affected());
        self.after_leased_update(id, done).await
    }

    /// Records that an automatic send is being attempted now, before the
    /// plugin runs, and counts the attempt. A later claim that finds
    /// `send_attempted_at` set without a completion defers with
    /// `duplicate_attempt` instead of sending twice. Keeps the lease.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] when the lease does not match.
    pub async fn record_send_attempt(&mut self, id: &str, lease_token: &str, now: DateTime<Utc>) -> Result<Action> {
        let held = self.record_send_attempts(&[(id, lease_token)], now).await?;
        self.after_leased_update(id, held.len() as u64).await
    }

    /// [`Tx::record_send_attempt`] for a batch of leased actions, `(id,
    /// lease token)`, a few thousand a statement. Returns the ids whose
    /// lease held.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn record_send_attempts(
        &mut self,
        batch: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Result<HashSet<String>> {
        let set = "send_attempted_at = v.column3, attempts = attempts + 1, updated_at = v.column3";
        self.update_leased(batch, set, now).await
    }

    /// Gives up the leases of actions `(id, lease token)` that were claimed
    /// but not started, so that the next claim, of this host or another,
    /// takes them at once instead of when the lease expires. Returns the
    /// ids whose lease held.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn release_leases(&mut self, batch: &[(&str, &str)], now: DateTime<Utc>) -> Result<HashSet<String>> {
        self.update_leased(batch, "lease_token = NULL, lease_expires_at = NULL, updated_at = v.column3", now).await
    }

    /// Runs `UPDATE actions SET {set}` on the actions of `batch` whose lease
    /// still holds, a few thousand a statement; `set` reads `now` as
    /// `v.column3`. Returns the ids updated.
    async fn update_leased(
        &mut self,
        batch: &[(&str, &str)],
        set: &str,
        now: DateTime<Utc>,
    ) -> Result<HashSet<String>> {
        let mut held = HashSet::with_capacity(batch.len());
        for chunk in batch.chunks(MAX_BINDS / 3) {
            let ids: Vec<String> = on_tx!(self, |c| {
                let mut q = QueryBuilder::new("UPDATE actions SET ");
                q.push(set).push(" FROM (");
                q.push_values(chunk, |mut row, (id, lease)| {
                    row.push_bind(*id).push_bind(*lease).push_bind(ms(now));
                });
                q.push(") AS v WHERE actions.id = v.column1 AND actions.lease_token = v.column2 RETURNING actions.id");
                q.build_query_scalar().fetch_all(&mut *c).await?
            });
            held.extend(ids);
        }
        Ok(held)
    }

    /// Marks an automatic action `failed` with the failure's details as its
    /// output. Unlike [`Tx::complete_action`] it stays the enrollment's
    /// current action: the engine pauses the enrollment, and resuming it
    /// tries the step again ([`Tx::enable_actions`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] when the lease does not match.
    pub async fn fail_action(
        &mut self,
        id: &str,
        lease_token: Option<&str>,
        output: &serde_json::Value,
        plugin_version: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Action> {
        let output = serde_json::to_string(output)?;
        let sql = format!(
            "UPDATE actions SET status = 'failed', output = $4, show_on_engage = FALSE, updated_at = $3,
                                send_attempted_at = NULL, lease_token = NULL, lease_expires_at = NULL,
                                plugin_version = COALESCE($5, plugin_version)
             WHERE id = $1 AND {LEASE_HELD}"
        );
        let done = on_tx!(self, |c| sqlx::query(&sql)
            .bind(id)
            .bind(lease_token)
            .bind(ms(now))
            .bind(&output)
            .bind(plugin_version)
            .execute(&mut *c)
            .await?
            .rows_affected());
        self.after_leased_update(id, done).await
    }

    /// Takes a user's "show on Engage = false": the action goes back to
    /// `future`, due now, with its skip criteria to be evaluated again
    /// (SPEC §4.4).
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] when a host holds a live lease on it.
    pub async fn reset_show_on_engage(&mut self, id: &str, now: DateTime<Utc>) -> Result<Action> {
        let sql = format!(
            "UPDATE actions SET status = 'future', show_on_engage = FALSE, skip_criteria_evaluated = FALSE,
                                deferral_reason = NULL, due_at = $3, updated_at = $3
             WHERE id = $1 AND {LEASE_HELD}"
        );
        let done = on_tx!(self, |c| sqlx::query(&sql)
            .bind(id)
            .bind(None::<&str>)
            .bind(ms(now))
            .execute(&mut *c)
            .await?
            .rows_affected());
        self.after_leased_update(id, done).await
    }

    /// Ends the wait for the periodic re-check of the account's actions
    /// held for one of `reasons` that a change may have fixed: the current
    /// `future` actions of `scope`, deferred for one of them and to be
    /// looked at again later. Waiting for the re-check would hold them for
    /// up to its whole interval; released, they are claimable again at
    /// their due date (which a hold never changes, so at once unless it was
    /// moved later), go through the checks again and are held again if the
    /// change did not fix them. Actions held for other reasons keep their
    /// re-check, and so does one a host is processing (it was due when
    /// claimed). The deferral reason stays until the action is processed
    /// again. Returns how many were released.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn release_holds(
        &mut self,
        account_id: &str,
        reasons: &[DeferralReason],
        scope: HoldScope<'_>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        if reasons.is_empty() {
            return Ok(0);
        }
        // The reasons are the enum's own names, never input.
        let reasons = reasons.iter().map(|r| format!("'{}'", r.as_str())).collect::<Vec<_>>().join(", ");
        let contacts: Vec<&[String]> = match scope {
            HoldScope::Contacts(ids) => ids.chunks(MAX_BINDS).collect(),
            HoldScope::Account => vec![&[]],
        };
        let mut released = 0;
        for chunk in contacts {
            released += on_tx!(self, |c| {
                let mut q = QueryBuilder::new("UPDATE actions SET recheck_at = NULL, updated_at = ");
                q.push_bind(ms(now));
                q.push(format!(
                    " WHERE is_current AND status = 'future' AND deferral_reason IN ({reasons}) AND recheck_at > "
                ));
                q.push_bind(ms(now)).push(" AND enrollment_id IN (SELECT id FROM enrollments WHERE account_id = ");
                q.push_bind(account_id);
                if let HoldScope::Contacts(_) = scope {
                    q.push(" AND contact_id IN ");
                    in_list(&mut q, chunk);
                }
                q.push(")");
                q.build().execute(&mut *c).await?.rows_affected()
            });
        }
        Ok(released)
    }

    /// Disables the unperformed actions of an enrollment (`future`,
    /// `active`, `failed`): its enrollment or sequence is paused. They leave
    /// the Engage view and cannot be claimed; leases are dropped.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn disable_actions(&mut self, enrollment_id: &str, now: DateTime<Utc>) -> Result<u64> {
        Ok(on_tx!(self, |c| sqlx::query(
            "UPDATE actions SET status = 'disabled', show_on_engage = FALSE, lease_token = NULL,
                                lease_expires_at = NULL, updated_at = $2
             WHERE enrollment_id = $1 AND status IN ('future', 'active', 'failed')"
        )
        .bind(enrollment_id)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected()))
    }

    /// Makes the disabled (and failed) actions of an enrollment `future`
    /// again: they are processed anew when due, so a manual action returns
    /// to the Engage view and a failed automatic one is tried again.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn enable_actions(&mut self, enrollment_id: &str, now: DateTime<Utc>) -> Result<u64> {
        Ok(on_tx!(self, |c| sqlx::query(
            "UPDATE actions SET status = 'future', deferral_reason = NULL, send_attempted_at = NULL,
                                updated_at = $2
             WHERE enrollment_id = $1 AND status IN ('disabled', 'failed')"
        )
        .bind(enrollment_id)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected()))
    }

    /// Disables or enables the unperformed actions of every unfinished
    /// enrollment of a sequence (the sequence is paused or resumed). Enabling
    /// leaves the actions of enrollments that are themselves paused alone.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn set_sequence_actions_disabled(
        &mut self,
        sequence_id: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let sql = if disabled {
            "UPDATE actions SET status = 'disabled', show_on_engage = FALSE, lease_token = NULL,
                                lease_expires_at = NULL, updated_at = $2
             WHERE status IN ('future', 'active') AND enrollment_id IN (
                 SELECT id FROM enrollments WHERE sequence_id = $1 AND status IN ('pending', 'queued', 'running'))"
        } else {
            "UPDATE actions SET status = 'future', updated_at = $2
             WHERE status = 'disabled' AND enrollment_id IN (
                 SELECT id FROM enrollments WHERE sequence_id = $1 AND status IN ('pending', 'queued', 'running'))"
        };
        Ok(on_tx!(self, |c| sqlx::query(sql).bind(sequence_id).bind(ms(now)).execute(&mut *c).await?.rows_affected()))
    }

    /// Closes every unperformed action of an enrollment that ended: they
    /// become `skipped` with `result`, leave the Engage view and stop being
    /// current, so no unperformed action outlives its enrollment.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn close_open_actions(&mut self, enrollment_id: &str, result: &str, now: DateTime<Utc>) -> Result<u64> {
        self.close_open_actions_of(&[enrollment_id.to_owned()], result, now).await
    }

    /// [`Tx::close_open_actions`] for many enrollments in one statement.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn close_open_actions_of(
        &mut self,
        enrollment_ids: &[String],
        result: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        if enrollment_ids.is_empty() {
            return Ok(0);
        }
        Ok(on_tx!(self, |c| {
            let mut q = QueryBuilder::new("UPDATE actions SET status = 'skipped', result = ");
            q.push_bind(result).push(", completed_at = ").push_bind(ms(now)).push(", updated_at = ").push_bind(ms(now));
            q.push(
                ", show_on_engage = FALSE, is_current = FALSE, lease_token = NULL, lease_expires_at = NULL
                 WHERE status IN ('future', 'active', 'disabled', 'failed') AND enrollment_id IN ",
            );
            in_list(&mut q, enrollment_ids);
            q.build().execute(&mut *c).await?.rows_affected()
        }))
    }

    /// Deletes the unperformed actions of an enrollment from step `from` on,
    /// before they are projected anew from another version.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn delete_unperformed_actions(&mut self, enrollment_id: &str, from: i64) -> Result<u64> {
        Ok(on_tx!(self, |c| sqlx::query(
            "DELETE FROM actions
             WHERE enrollment_id = $1 AND step >= $2 AND status IN ('future', 'active', 'disabled', 'failed')"
        )
        .bind(enrollment_id)
        .bind(from)
        .execute(&mut *c)
        .await?
        .rows_affected()))
    }

    /// Completes or skips a batch of actions in one statement, each only
    /// while its lease holds (as [`Tx::complete_action`] does one). Returns
    /// the ids it ended; an action whose lease was lost is left out.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a status other than `completed` or
    /// `skipped`.
    pub async fn complete_actions(&mut self, batch: &[BatchCompletion], now: DateTime<Utc>) -> Result<Vec<String>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(b) =
            batch.iter().find(|b| !matches!(b.completion.status, ActionStatus::Completed | ActionStatus::Skipped))
        {
            return Err(StoreError::Invalid(format!("{} is not a status a batch completes with", b.completion.status)));
        }
        let outputs = batch
            .iter()
            .map(|b| b.completion.output.as_ref().map(serde_json::to_string).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        // The lease test of `LEASE_HELD`, per row: the row's token, or none
        // given and none held (or an expired one).
        Ok(on_tx!(self, |c| {
            let mut q = QueryBuilder::new("UPDATE actions SET completed_at = ");
            q.push_bind(ms(now)).push(", updated_at = ").push_bind(ms(now));
            q.push(
                ", status = v.column3, result = v.column4, output = v.column5, completed_by = v.column6,
                   opt_out = v.column7, deferral_reason = v.column8, show_on_engage = FALSE, is_current = FALSE,
                   lease_token = NULL, lease_expires_at = NULL, attempts = actions.attempts + v.column9,
                   plugin_version = COALESCE(v.column10, actions.plugin_version)
                 FROM (",
            );
            q.push_values(batch.iter().zip(&outputs), |mut row, (b, output)| {
                let done = &b.completion;
                row.push_bind(&b.id)
                    .push_bind(&b.lease_token)
                    .push_bind(done.status.as_str())
                    .push_bind(&done.result)
                    .push_bind(output)
                    .push_bind(&done.completed_by)
                    .push_bind(done.opt_out)
                    .push_bind(done.deferral_reason.map(|d| d.as_str()))
                    .push_bind(i64::from(done.counts_attempt))
                    .push_bind(&done.plugin_version);
            });
            q.push(
                ") AS v
                 WHERE actions.id = v.column1
                   AND (actions.lease_token = v.column2
                        OR (v.column2 IS NULL AND (actions.lease_token IS NULL OR actions.lease_expires_at <= ",
            );
            q.push_bind(ms(now)).push("))) RETURNING actions.id");
            q.build_query_scalar().fetch_all(&mut *c).await?
        }))
    }

    /// Sets the due date and current flag of a batch of actions in one
    /// statement. Clear the old current action of an enrollment before
    /// making another current.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when two actions of an enrollment would be
    /// current.
    pub async fn schedule_actions(&mut self, batch: &[Schedule<'_>], now: DateTime<Utc>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        on_tx!(self, |c| {
            let mut q = QueryBuilder::new("UPDATE actions SET updated_at = ");
            q.push_bind(ms(now)).push(", due_at = v.column2, is_current = v.column3 FROM (");
            q.push_values(batch, |mut row, b| {
                row.push_bind(b.id).push_bind(ms_opt(b.due_at)).push_bind(b.current);
            });
            q.push(") AS v WHERE actions.id = v.column1");
            q.build().execute(&mut *c).await?.rows_affected()
        });
        Ok(())
    }

    async fn after_leased_update(&mut self, id: &str, rows: u64) -> Result<Action> {
        if rows == 0 {
            return Err(StoreError::LeaseLost(id.to_owned()));
        }
        self.action(id).await
    }
}

/// A line of a plugin's log to keep with an action's attempt, for
/// [`Tx::record_action_logs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewActionLog<'a> {
    /// The owning account.
    pub account_id: &'a str,
    /// The action.
    pub action_id: &'a str,
    /// The attempt the plugin saw, from 1.
    pub attempt: i64,
    /// The line's place in the attempt, from 0.
    pub line: i64,
    /// The plugin's version.
    pub plugin_version: &'a str,
    /// `plugin`, `stdout`, `stderr` or `host`.
    pub source: &'a str,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'a str,
    /// The text.
    pub message: &'a str,
}

impl Tx {
    /// Keeps log lines with their actions' attempts. An attempt's lines
    /// already kept stay as they are.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn record_action_logs(&mut self, lines: &[NewActionLog<'_>], now: DateTime<Utc>) -> Result<()> {
        for chunk in lines.chunks(MAX_BINDS / 9) {
            on_tx!(self, |c| {
                let mut q = QueryBuilder::new(
                    "INSERT INTO action_logs (action_id, account_id, attempt, line, plugin_version, at, source, level,
                                              message) ",
                );
                q.push_values(chunk, |mut row, l| {
                    row.push_bind(l.action_id)
                        .push_bind(l.account_id)
                        .push_bind(l.attempt)
                        .push_bind(l.line)
                        .push_bind(l.plugin_version)
                        .push_bind(ms(now))
                        .push_bind(l.source)
                        .push_bind(l.level)
                        .push_bind(l.message);
                });
                q.push(" ON CONFLICT (action_id, attempt, line) DO NOTHING");
                q.build().execute(&mut *c).await?.rows_affected()
            });
        }
        Ok(())
    }
}

impl ReadTx {
    /// The log lines kept of an action of `account_id`, by attempt.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn action_logs(&mut self, account_id: &str, action_id: &str) -> Result<Vec<ActionLogLine>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            attempt: i64,
            plugin_version: String,
            at: i64,
            source: String,
            level: String,
            message: String,
        }
        let rows: Vec<Row> = on_tx!(self, |c| sqlx::query_as(
            "SELECT attempt, plugin_version, at, source, level, message FROM action_logs
             WHERE action_id = $1 AND account_id = $2 ORDER BY attempt, line"
        )
        .bind(action_id)
        .bind(account_id)
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter()
            .map(|r| {
                Ok(ActionLogLine {
                    attempt: r.attempt,
                    plugin_version: r.plugin_version,
                    at: time(r.at)?,
                    source: r.source,
                    level: r.level,
                    message: r.message,
                })
            })
            .collect()
    }
}
