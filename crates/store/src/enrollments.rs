//! Enrollments: a contact in a pinned version of a sequence.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::sync::{Collection, SyncPage, bind_page};
use sqlx::QueryBuilder;

use super::{MAX_BINDS, ReadTx, Result, Tx, found, in_list, ms, ms_opt, new_id, on_tx, parse_opt, time, time_opt};
use stepwise_domain::engagement::{Enrollment, EnrollmentOutcome, EnrollmentStatus};

/// What [`ReadTx::sequence_report`] counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SequenceReport {
    /// Enrollments by status.
    pub by_status: Vec<(String, i64)>,
    /// Completed enrollments by outcome.
    pub by_outcome: Vec<(String, i64)>,
    /// Finished actions by step, status and result (the reason of a skip).
    pub steps: Vec<(i64, String, String, i64)>,
}

/// A sequence's enrollments by week ([`ReadTx::sequence_weeks`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SequenceWeeks {
    /// Each week's Monday and the enrollments that started that week.
    pub started: Vec<(DateTime<Utc>, i64)>,
    /// Each week's Monday, a final status and the enrollments that ended
    /// with it that week.
    pub ended: Vec<(DateTime<Utc>, String, i64)>,
}

/// What [`Tx::create_enrollment`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnrollment {
    /// The contact.
    pub contact_id: String,
    /// The sequence.
    pub sequence_id: String,
    /// The pinned version.
    pub version: i64,
    /// Who enrolled the contact.
    pub initiated_by: Option<String>,
    /// `pending`, or `queued` when the drip limit is reached.
    pub status: EnrollmentStatus,
    /// The event date of `from_event` sequences.
    pub event_date: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct EnrollmentRow {
    id: String,
    account_id: String,
    contact_id: String,
    sequence_id: String,
    version: i64,
    initiated_by: Option<String>,
    status: String,
    pause_reason: Option<String>,
    outcome: Option<String>,
    current_step: i64,
    started_at: i64,
    last_action_completed_at: Option<i64>,
    next_action_at: Option<i64>,
    event_date: Option<i64>,
    resume_at: Option<i64>,
    queued_at: Option<i64>,
    ended_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl EnrollmentRow {
    pub(crate) fn into_domain(self) -> Result<Enrollment> {
        Ok(Enrollment {
            id: self.id,
            account_id: self.account_id,
            contact_id: self.contact_id,
            sequence_id: self.sequence_id,
            version: self.version,
            initiated_by: self.initiated_by,
            status: self.status.parse()?,
            pause_reason: parse_opt(self.pause_reason)?,
            outcome: parse_opt(self.outcome)?,
            current_step: self.current_step,
            started_at: time(self.started_at)?,
            last_action_completed_at: time_opt(self.last_action_completed_at)?,
            next_action_at: time_opt(self.next_action_at)?,
            event_date: time_opt(self.event_date)?,
            resume_at: time_opt(self.resume_at)?,
            queued_at: time_opt(self.queued_at)?,
            ended_at: time_opt(self.ended_at)?,
            created_at: time(self.created_at)?,
            updated_at: time(self.updated_at)?,
        })
    }
}

const SELECT_ENROLLMENT: &str = "
    SELECT id, account_id, contact_id, sequence_id, version, initiated_by, status, pause_reason, outcome,
           current_step, started_at, last_action_completed_at, next_action_at, event_date, resume_at, queued_at,
           ended_at, created_at, updated_at
    FROM enrollments";

impl ReadTx {
    /// The enrollment `id` (ids are unique across accounts; callers serving
    /// an account check [`Enrollment::account_id`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn enrollment(&mut self, id: &str) -> Result<Enrollment> {
        let sql = format!("{SELECT_ENROLLMENT} WHERE id = $1");
        let row: Option<EnrollmentRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(id).fetch_optional(&mut *c).await?);
        found(row, "enrollment", id)?.into_domain()
    }

    /// The enrollments of a contact, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn enrollments_of_contact(&mut self, contact_id: &str) -> Result<Vec<Enrollment>> {
        let sql = format!("{SELECT_ENROLLMENT} WHERE contact_id = $1 ORDER BY started_at DESC, id");
        let rows: Vec<EnrollmentRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(contact_id).fetch_all(&mut *c).await?);
        rows.into_iter().map(EnrollmentRow::into_domain).collect()
    }

    /// The unfinished enrollments (`pending`, `queued`, `running`,
    /// `paused`) of these contacts, in any sequence, in no particular order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn unfinished_enrollments_of(&mut self, contact_ids: &[String]) -> Result<Vec<Enrollment>> {
        let mut found = Vec::new();
        for chunk in contact_ids.chunks(MAX_BINDS) {
            // By contact alone, and the status checked here: with the
            // status in the query, PostgreSQL's generic plan walks the
            // whole partial index of unfinished enrollments and compares
            // each row's contact with every id of the list.
            let rows: Vec<EnrollmentRow> = on_tx!(self, |c| {
                let mut q = QueryBuilder::new(format!("{SELECT_ENROLLMENT} WHERE contact_id IN "));
                in_list(&mut q, chunk);
                q.build_query_as().fetch_all(&mut *c).await?
            });
            for row in rows {
                let enrollment = row.into_domain()?;
                if enrollment.status.is_open() {
                    found.push(enrollment);
                }
            }
        }
        Ok(found)
    }

    /// The enrollment of a sequence queued the longest (FIFO dequeue).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn oldest_queued(&mut self, sequence_id: &str) -> Result<Option<Enrollment>> {
        let sql =
            format!("{SELECT_ENROLLMENT} WHERE sequence_id = $1 AND status = 'queued' ORDER BY queued_at, id LIMIT 1");
        let row: Option<EnrollmentRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(sequence_id).fetch_optional(&mut *c).await?);
        row.map(EnrollmentRow::into_domain).transpose()
    }

    /// The enrollments with these ids, in no particular order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn enrollments_by_ids(&mut self, ids: &[String]) -> Result<Vec<Enrollment>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<EnrollmentRow> = on_tx!(self, |c| {
            let mut q = QueryBuilder::new(format!("{SELECT_ENROLLMENT} WHERE id IN "));
            in_list(&mut q, ids);
            q.build_query_as().fetch_all(&mut *c).await?
        });
        rows.into_iter().map(EnrollmentRow::into_domain).collect()
    }

    /// Out-of-office enrollments whose return date has come, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn enrollments_to_resume(&mut self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Enrollment>> {
        let sql = format!(
            "{SELECT_ENROLLMENT} WHERE resume_at IS NOT NULL AND resume_at <= $1 AND status = 'paused'
             ORDER BY resume_at, id LIMIT $2"
        );
        // On PostgreSQL the rows stay locked until the transaction resumes
        // them, and another host's sweep skips them: each returning
        // enrollment is resumed by one host. SQLite has one writer.
        let rows: Vec<EnrollmentRow> = match &mut self.inner {
            super::TxInner::Sqlite(c) => {
                sqlx::query_as(&sql).bind(ms(now)).bind(i64::from(limit)).fetch_all(&mut **c).await?
            }
            super::TxInner::Postgres(c) => {
                let locked = format!("{sql} FOR UPDATE SKIP LOCKED");
                sqlx::query_as(&locked).bind(ms(now)).bind(i64::from(limit)).fetch_all(&mut **c).await?
            }
        };
        rows.into_iter().map(EnrollmentRow::into_domain).collect()
    }

    /// Whether a sequence has an unfinished enrollment.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn has_open_enrollments(&mut self, sequence_id: &str) -> Result<bool> {
        Ok(on_tx!(self, |c| sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM enrollments
                            WHERE sequence_id = $1 AND status IN ('pending', 'queued', 'running', 'paused'))"
        )
        .bind(sequence_id)
        .fetch_one(&mut *c)
        .await?))
    }

    /// A sequence's enrollments by week since `since` (a Monday, 00:00
    /// UTC): how many started each week, and how many ended each week by
    /// their final status. Weeks are Monday to Sunday, UTC; each is named by
    /// its Monday's time in milliseconds.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn sequence_weeks(
        &mut self,
        sequence_id: &str,
        account_id: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<SequenceWeeks> {
        // 1970-01-01 was a Thursday: weeks counted from Monday 1969-12-29.
        const MONDAY: i64 = 3 * 86_400_000;
        const WEEK: i64 = 7 * 86_400_000;
        let (started, ended) = on_tx!(self, |c| {
            let started: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT (created_at + $3) / $4 AS week, COUNT(*) FROM enrollments
                 WHERE sequence_id = $1 AND created_at >= $2 AND ($5 IS NULL OR account_id = $5)
                 GROUP BY week ORDER BY week",
            )
            .bind(sequence_id)
            .bind(ms(since))
            .bind(MONDAY)
            .bind(WEEK)
            .bind(account_id)
            .fetch_all(&mut *c)
            .await?;
            let ended: Vec<(i64, String, i64)> = sqlx::query_as(
                "SELECT (ended_at + $3) / $4 AS week, status, COUNT(*) FROM enrollments
                 WHERE sequence_id = $1 AND ended_at >= $2 AND ($5 IS NULL OR account_id = $5)
                 GROUP BY week, status ORDER BY week, status",
            )
            .bind(sequence_id)
            .bind(ms(since))
            .bind(MONDAY)
            .bind(WEEK)
            .bind(account_id)
            .fetch_all(&mut *c)
            .await?;
            (started, ended)
        });
        let monday = |week: i64| time(week * WEEK - MONDAY);
        Ok(SequenceWeeks {
            started: started.into_iter().map(|(w, n)| Ok((monday(w)?, n))).collect::<Result<_>>()?,
            ended: ended.into_iter().map(|(w, s, n)| Ok((monday(w)?, s, n))).collect::<Result<_>>()?,
        })
    }

    /// A sequence's report, counted by the database whatever the number of
    /// enrollments: enrollments by status and by outcome, and per step the
    /// actions completed, skipped (by reason) and failed.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn sequence_report(&mut self, sequence_id: &str, account_id: Option<&str>) -> Result<SequenceReport> {
        let (by_status, by_outcome, steps) = on_tx!(self, |c| {
            let by_status: Vec<(String, i64)> = sqlx::query_as(
                "SELECT status, COUNT(*) FROM enrollments WHERE sequence_id = $1 AND ($2 IS NULL OR account_id = $2)
                 GROUP BY status ORDER BY status",
            )
            .bind(sequence_id)
            .bind(account_id)
            .fetch_all(&mut *c)
            .await?;
            let by_outcome: Vec<(String, i64)> = sqlx::query_as(
                "SELECT outcome, COUNT(*) FROM enrollments
                 WHERE sequence_id = $1 AND outcome IS NOT NULL AND ($2 IS NULL OR account_id = $2)
                 GROUP BY outcome ORDER BY outcome",
            )
            .bind(sequence_id)
            .bind(account_id)
            .fetch_all(&mut *c)
            .await?;
            let steps: Vec<(i64, String, String, i64)> = sqlx::query_as(
                "SELECT a.step, a.status, COALESCE(a.result, ''), COUNT(*)
                 FROM actions a JOIN enrollments e ON e.id = a.enrollment_id
                 WHERE e.sequence_id = $1 AND a.status IN ('completed', 'skipped', 'failed')
                   AND ($2 IS NULL OR e.account_id = $2)
                 GROUP BY a.step, a.status, COALESCE(a.result, '') ORDER BY a.step",
            )
            .bind(sequence_id)
            .bind(account_id)
            .fetch_all(&mut *c)
            .await?;
            (by_status, by_outcome, steps)
        });
        Ok(SequenceReport { by_status, by_outcome, steps })
    }

    /// A page of `account_id`'s enrollments of a sequence (or, with
    /// `by_contact`, of a contact), in creation order; with `status`, only
    /// those in it. A plan shared with sub-accounts holds theirs too: each
    /// account lists its own.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn enrollments_page(
        &mut self,
        account_id: &str,
        of: &str,
        by_contact: bool,
        status: Option<EnrollmentStatus>,
        page: &SyncPage<'_>,
    ) -> Result<Vec<Enrollment>> {
        let column = if by_contact { "contact_id" } else { "sequence_id" };
        let rows: Vec<EnrollmentRow> = match status {
            None => {
                let sql =
                    format!("{SELECT_ENROLLMENT} WHERE {column} = $1 AND account_id = $2 AND {}", page.clause("", 3));
                on_tx!(self, |c| bind_page!(sqlx::query_as(&sql).bind(of).bind(account_id), page)
                    .fetch_all(&mut *c)
                    .await?)
            }
            Some(status) => {
                let sql = format!(
                    "{SELECT_ENROLLMENT} WHERE {column} = $1 AND account_id = $2 AND status = $3 AND {}",
                    page.clause("", 4)
                );
                on_tx!(self, |c| bind_page!(sqlx::query_as(&sql).bind(of).bind(account_id).bind(status.as_str()), page)
                    .fetch_all(&mut *c)
                    .await?)
            }
        };
        rows.into_iter().map(EnrollmentRow::into_domain).collect()
    }
}

impl Tx {
    /// How many enrollments of a sequence hold a drip slot: every
    /// unfinished one that is not queued (`pending`, `running`, `paused`).
    /// Counting only `running` would let a burst of new, still `pending`
    /// enrollments overshoot the limit.
    ///
    /// The sequence's slots are this transaction's until it ends: on
    /// PostgreSQL the sequence's row is locked first (`FOR NO KEY UPDATE`,
    /// which new enrollments' foreign-key checks do not wait for), so two
    /// hosts freeing or taking slots at once count one after the other
    /// instead of both handing the same free slot on; SQLite has one writer.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn drip_slots_held(&mut self, sequence_id: &str) -> Result<i64> {
        if let super::TxInner::Postgres(c) = &mut self.inner {
            sqlx::query("SELECT id FROM sequences WHERE id = $1 FOR NO KEY UPDATE")
                .bind(sequence_id)
                .fetch_optional(&mut **c)
                .await?;
        }
        Ok(on_tx!(self, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM enrollments WHERE sequence_id = $1 AND status IN ('pending', 'running', 'paused')"
        )
        .bind(sequence_id)
        .fetch_one(&mut *c)
        .await?))
    }

    /// Enrolls a contact, starting now at step 0.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`](super::StoreError::Conflict) with constraint
    /// `enrollments_one_open_per_contact` when the contact has an unfinished
    /// enrollment in the sequence; [`StoreError::Invalid`](super::StoreError::Invalid)
    /// when the contact, sequence, version or user is not in the account.
    pub async fn create_enrollment(
        &mut self,
        account_id: &str,
        new: &NewEnrollment,
        now: DateTime<Utc>,
    ) -> Result<Enrollment> {
        let id = new_id("enr");
        let queued_at = (new.status == EnrollmentStatus::Queued).then_some(ms(now));
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO enrollments (id, account_id, contact_id, sequence_id, version, initiated_by, status,
                                      current_step, started_at, event_date, queued_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $8, $8)"
        )
        .bind(&id)
        .bind(account_id)
        .bind(&new.contact_id)
        .bind(&new.sequence_id)
        .bind(new.version)
        .bind(&new.initiated_by)
        .bind(new.status.as_str())
        .bind(ms(now))
        .bind(ms_opt(new.event_date))
        .bind(queued_at)
        .execute(&mut *c)
        .await?
        .rows_affected());
        self.enrollment(&id).await
    }

    /// Adds enrollments the engine made in full (ids, statuses, steps and
    /// dates set), a few hundred rows a statement. One that would be a
    /// second unfinished enrollment of its contact in its sequence (another
    /// writer enrolled the contact meanwhile) is left out. Returns the ids
    /// added.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when a referenced
    /// record does not exist.
    pub async fn insert_enrollments(&mut self, batch: &[Enrollment]) -> Result<HashSet<String>> {
        const COLUMNS: usize = 14;
        let mut added = HashSet::with_capacity(batch.len());
        for chunk in batch.chunks(MAX_BINDS / COLUMNS) {
            let ids: Vec<String> = on_tx!(self, |c| {
                let mut q = QueryBuilder::new(
                    "INSERT INTO enrollments (id, account_id, contact_id, sequence_id, version, initiated_by, status,
                                              current_step, started_at, next_action_at, event_date, queued_at,
                                              created_at, updated_at) ",
                );
                q.push_values(chunk, |mut row, e| {
                    row.push_bind(&e.id)
                        .push_bind(&e.account_id)
                        .push_bind(&e.contact_id)
                        .push_bind(&e.sequence_id)
                        .push_bind(e.version)
                        .push_bind(&e.initiated_by)
                        .push_bind(e.status.as_str())
                        .push_bind(e.current_step)
                        .push_bind(ms(e.started_at))
                        .push_bind(ms_opt(e.next_action_at))
                        .push_bind(ms_opt(e.event_date))
                        .push_bind(ms_opt(e.queued_at))
                        .push_bind(ms(e.created_at))
                        .push_bind(ms(e.updated_at));
                });
                q.push(" ON CONFLICT DO NOTHING RETURNING id");
                q.build_query_scalar().fetch_all(&mut *c).await?
            });
            added.extend(ids);
        }
        Ok(added)
    }

    /// Writes every mutable field of `enrollment` (status, pause reason,
    /// outcome, step, dates). The schema refuses a paused enrollment without
    /// a reason, a reason without a pause, and an outcome before completion.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when a CHECK
    /// refuses it; [`StoreError::Conflict`](super::StoreError::Conflict) when
    /// reopening would make two unfinished enrollments;
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn save_enrollment(&mut self, enrollment: &Enrollment, now: DateTime<Utc>) -> Result<()> {
        let e = enrollment;
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE enrollments SET version = $2, status = $3, pause_reason = $4, outcome = $5, current_step = $6,
                                    last_action_completed_at = $7, next_action_at = $8, event_date = $9,
                                    resume_at = $10, queued_at = $11, ended_at = $12, updated_at = $13
             WHERE id = $1"
        )
        .bind(&e.id)
        .bind(e.version)
        .bind(e.status.as_str())
        .bind(e.pause_reason.map(|r| r.as_str()))
        .bind(e.outcome.map(|o| o.as_str()))
        .bind(e.current_step)
        .bind(ms_opt(e.last_action_completed_at))
        .bind(ms_opt(e.next_action_at))
        .bind(ms_opt(e.event_date))
        .bind(ms_opt(e.resume_at))
        .bind(ms_opt(e.queued_at))
        .bind(ms_opt(e.ended_at))
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        found((done > 0).then_some(()), "enrollment", &e.id)
    }

    /// Moves a batch of running enrollments on in one statement: each
    /// `(enrollment, status, current step, next action on)` after an action
    /// completed at `now`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when a status
    /// breaks a schema rule.
    pub async fn advance_enrollments(
        &mut self,
        batch: &[(&str, EnrollmentStatus, i64, Option<DateTime<Utc>>)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        on_tx!(self, |c| {
            let mut q = QueryBuilder::new("UPDATE enrollments SET last_action_completed_at = ");
            q.push_bind(ms(now)).push(", updated_at = ").push_bind(ms(now));
            q.push(", status = v.column2, current_step = v.column3, next_action_at = v.column4 FROM (");
            q.push_values(batch, |mut row, (id, status, step, next)| {
                row.push_bind(*id).push_bind(status.as_str()).push_bind(*step).push_bind(ms_opt(*next));
            });
            q.push(") AS v WHERE enrollments.id = v.column1");
            q.build().execute(&mut *c).await?.rows_affected()
        });
        Ok(())
    }

    /// Ends a batch of enrollments, each with its final status and
    /// outcome, in one statement (their actions are closed apart, by
    /// [`Tx::close_open_actions_of`](super::Tx::close_open_actions_of)).
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) for a status that
    /// is not final.
    pub async fn end_enrollments(
        &mut self,
        batch: &[(&str, EnrollmentStatus, Option<EnrollmentOutcome>)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some((id, status, _)) = batch.iter().find(|(_, status, _)| status.is_open()) {
            return Err(super::StoreError::Invalid(format!("enrollment {id} cannot end as {status}")));
        }
        on_tx!(self, |c| {
            let mut q = QueryBuilder::new("UPDATE enrollments SET ended_at = ");
            q.push_bind(ms(now)).push(", last_action_completed_at = ").push_bind(ms(now));
            q.push(", updated_at = ").push_bind(ms(now));
            q.push(
                ", status = v.column2, outcome = v.column3, pause_reason = NULL, resume_at = NULL, queued_at = NULL,
                   next_action_at = NULL
                 FROM (",
            );
            q.push_values(batch, |mut row, (id, status, outcome)| {
                row.push_bind(*id).push_bind(status.as_str()).push_bind(outcome.map(|o| o.as_str()));
            });
            q.push(") AS v WHERE enrollments.id = v.column1");
            q.build().execute(&mut *c).await?.rows_affected()
        });
        Ok(())
    }

    /// Removes an enrollment and all its history: its actions, events and
    /// outbox rows go with it through the schema's cascades (SPEC §5
    /// "remove"; it cannot be recovered).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn delete_enrollment(&mut self, account_id: &str, id: &str, now: DateTime<Utc>) -> Result<()> {
        let done = on_tx!(self, |c| sqlx::query("DELETE FROM enrollments WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(id)
            .execute(&mut *c)
            .await?
            .rows_affected());
        found((done > 0).then_some(()), "enrollment", id)?;
        self.record_deletions(account_id, Collection::Enrollments, &[id.to_owned()], now).await
    }
}
