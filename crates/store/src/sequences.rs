//! Sequences and their immutable versions of steps.

use chrono::{DateTime, Utc};

use super::sync::{SyncPage, bind_page};

use super::{ReadTx, Result, Tx, found, ms, new_id, on_tx, time};
use stepwise_domain::engagement::{
    PlanType, Sequence, SequenceSettings, SequenceState, SequenceVersion, Step, TimingMode,
};

/// What [`Tx::create_sequence`] needs; a sequence starts in `draft`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSequence {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// What it is for.
    pub plan_type: PlanType,
    /// How due dates are computed.
    pub timing_mode: TimingMode,
    /// Settings.
    pub settings: SequenceSettings,
}

#[derive(sqlx::FromRow)]
struct SequenceRow {
    id: String,
    account_id: String,
    name: String,
    description: String,
    plan_type: String,
    state: String,
    timing_mode: String,
    next_sequence_id: Option<String>,
    lead_source: Option<String>,
    shared_locked: bool,
    settings: String,
    created_at: i64,
    updated_at: i64,
}

impl SequenceRow {
    fn into_domain(self) -> Result<Sequence> {
        // The columns are the truth for the settings the store queries by;
        // the JSON holds the rest.
        let settings = SequenceSettings {
            next_sequence_id: self.next_sequence_id,
            lead_source: self.lead_source,
            shared_locked: self.shared_locked,
            ..serde_json::from_str(&self.settings)?
        };
        Ok(Sequence {
            id: self.id,
            account_id: self.account_id,
            name: self.name,
            description: self.description,
            plan_type: self.plan_type.parse()?,
            state: self.state.parse()?,
            timing_mode: self.timing_mode.parse()?,
            settings,
            created_at: time(self.created_at)?,
            updated_at: time(self.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    sequence_id: String,
    version: i64,
    steps: String,
    created_by: Option<String>,
    created_at: i64,
}

impl VersionRow {
    fn into_domain(self) -> Result<SequenceVersion> {
        Ok(SequenceVersion {
            sequence_id: self.sequence_id,
            version: self.version,
            steps: serde_json::from_str::<Vec<Step>>(&self.steps)?,
            created_by: self.created_by,
            created_at: time(self.created_at)?,
        })
    }
}

const SELECT_SEQUENCE: &str = "
    SELECT id, account_id, name, description, plan_type, state, timing_mode, next_sequence_id, lead_source,
           shared_locked, settings, created_at, updated_at
    FROM sequences";

impl ReadTx {
    /// The sequence `id` of `account_id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn sequence(&mut self, account_id: &str, id: &str) -> Result<Sequence> {
        let sql = format!("{SELECT_SEQUENCE} WHERE account_id = $1 AND id = $2");
        let row: Option<SequenceRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(account_id).bind(id).fetch_optional(&mut *c).await?);
        found(row, "sequence", id)?.into_domain()
    }

    /// The sequence `id` that `account_id` enrolls in: its own, or one of
    /// its parent's (the caller checks that the parent shares it locked
    /// before enrolling; an enrollment already made goes on whatever the
    /// parent does later).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn sequence_for(&mut self, account_id: &str, id: &str) -> Result<Sequence> {
        let sql = format!(
            "{SELECT_SEQUENCE} WHERE id = $2 AND account_id IN ($1, (SELECT parent_id FROM accounts WHERE id = $1))"
        );
        let row: Option<SequenceRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(account_id).bind(id).fetch_optional(&mut *c).await?);
        found(row, "sequence", id)?.into_domain()
    }

    /// A page of an account's sequences, in creation order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn sequences_page(&mut self, account_id: &str, page: &SyncPage<'_>) -> Result<Vec<Sequence>> {
        let sql = format!("{SELECT_SEQUENCE} WHERE account_id = $1 AND {}", page.clause("", 2));
        let rows: Vec<SequenceRow> =
            on_tx!(self, |c| bind_page!(sqlx::query_as(&sql).bind(account_id), page).fetch_all(&mut *c).await?);
        rows.into_iter().map(SequenceRow::into_domain).collect()
    }

    /// The sequences an account shares locked (read-only) with its
    /// sub-accounts, by name.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn locked_sequences(&mut self, account_id: &str) -> Result<Vec<Sequence>> {
        let sql = format!("{SELECT_SEQUENCE} WHERE account_id = $1 AND shared_locked ORDER BY name, id");
        let rows: Vec<SequenceRow> = on_tx!(self, |c| sqlx::query_as(&sql).bind(account_id).fetch_all(&mut *c).await?);
        rows.into_iter().map(SequenceRow::into_domain).collect()
    }

    /// The sequences with these ids that `account_id`'s enrollments run
    /// in (its own and its parent's, as [`ReadTx::sequence_for`]), in no
    /// particular order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn sequences_in(&mut self, account_id: &str, ids: &[String]) -> Result<Vec<Sequence>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<SequenceRow> = on_tx!(self, |c| {
            let mut q = sqlx::QueryBuilder::new(SELECT_SEQUENCE);
            q.push(" WHERE account_id IN (")
                .push_bind(account_id)
                .push(", (SELECT parent_id FROM accounts WHERE id = ")
                .push_bind(account_id)
                .push(")) AND id IN ");
            super::in_list(&mut q, ids);
            q.build_query_as().fetch_all(&mut *c).await?
        });
        rows.into_iter().map(SequenceRow::into_domain).collect()
    }

    /// The active sequences of an account that auto-enroll leads of `lead_source`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn sequences_for_lead_source(&mut self, account_id: &str, lead_source: &str) -> Result<Vec<Sequence>> {
        let sql =
            format!("{SELECT_SEQUENCE} WHERE account_id = $1 AND lead_source = $2 AND state = 'active' ORDER BY id");
        let rows: Vec<SequenceRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(account_id).bind(lead_source).fetch_all(&mut *c).await?);
        rows.into_iter().map(SequenceRow::into_domain).collect()
    }

    /// Version `version` of a sequence.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn sequence_version(&mut self, sequence_id: &str, version: i64) -> Result<SequenceVersion> {
        let row: Option<VersionRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT sequence_id, version, steps, created_by, created_at
             FROM sequence_versions WHERE sequence_id = $1 AND version = $2"
        )
        .bind(sequence_id)
        .bind(version)
        .fetch_optional(&mut *c)
        .await?);
        found(row, "sequence version", &format!("{sequence_id}@{version}"))?.into_domain()
    }

    /// The newest version of a sequence, which new enrollments use.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn latest_version(&mut self, sequence_id: &str) -> Result<Option<SequenceVersion>> {
        let row: Option<VersionRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT sequence_id, version, steps, created_by, created_at
             FROM sequence_versions WHERE sequence_id = $1 ORDER BY version DESC LIMIT 1"
        )
        .bind(sequence_id)
        .fetch_optional(&mut *c)
        .await?);
        row.map(VersionRow::into_domain).transpose()
    }
}

impl Tx {
    /// Creates a sequence in `draft`, without steps.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when the next
    /// sequence is not in the account.
    pub async fn create_sequence(
        &mut self,
        account_id: &str,
        new: &NewSequence,
        now: DateTime<Utc>,
    ) -> Result<Sequence> {
        let id = new_id("seq");
        let settings = serde_json::to_string(&new.settings)?;
        let s = &new.settings;
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO sequences (id, account_id, name, description, plan_type, state, timing_mode,
                                    next_sequence_id, lead_source, shared_locked, settings, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'draft', $6, $7, $8, $9, $10, $11, $11)"
        )
        .bind(&id)
        .bind(account_id)
        .bind(&new.name)
        .bind(&new.description)
        .bind(new.plan_type.as_str())
        .bind(new.timing_mode.as_str())
        .bind(&s.next_sequence_id)
        .bind(&s.lead_source)
        .bind(s.shared_locked)
        .bind(&settings)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        self.sequence(account_id, &id).await
    }

    /// Replaces the name, description, plan type, state, timing mode and
    /// settings of `sequence.id`. Steps change only by publishing a version.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn update_sequence(&mut self, sequence: &Sequence, now: DateTime<Utc>) -> Result<()> {
        let settings = serde_json::to_string(&sequence.settings)?;
        let s = &sequence.settings;
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE sequences SET name = $3, description = $4, plan_type = $5, state = $6, timing_mode = $7,
                                  next_sequence_id = $8, lead_source = $9, shared_locked = $10, settings = $11,
                                  updated_at = $12
             WHERE account_id = $1 AND id = $2"
        )
        .bind(&sequence.account_id)
        .bind(&sequence.id)
        .bind(&sequence.name)
        .bind(&sequence.description)
        .bind(sequence.plan_type.as_str())
        .bind(sequence.state.as_str())
        .bind(sequence.timing_mode.as_str())
        .bind(&s.next_sequence_id)
        .bind(&s.lead_source)
        .bind(s.shared_locked)
        .bind(&settings)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        found((done > 0).then_some(()), "sequence", &sequence.id)
    }

    /// Sets a sequence's state. The engine decides which transitions are
    /// allowed and what they do to actions.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn set_sequence_state(
        &mut self,
        account_id: &str,
        id: &str,
        state: SequenceState,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE sequences SET state = $3, updated_at = $4 WHERE account_id = $1 AND id = $2"
        )
        .bind(account_id)
        .bind(id)
        .bind(state.as_str())
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        found((done > 0).then_some(()), "sequence", id)
    }

    /// Publishes `steps` as the next version of a sequence (1 for the first).
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when another
    /// transaction published the same number first;
    /// [`StoreError::NotFound`](super::StoreError::NotFound) when the
    /// sequence is not in the account.
    pub async fn publish_version(
        &mut self,
        account_id: &str,
        sequence_id: &str,
        steps: &[Step],
        created_by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SequenceVersion> {
        // Checked first so that another account's sequence is "not found",
        // never silently versioned.
        self.sequence(account_id, sequence_id).await?;
        let json = serde_json::to_string(steps)?;
        let version: i64 = on_tx!(self, |c| sqlx::query_scalar(
            "INSERT INTO sequence_versions (sequence_id, version, steps, created_by, created_at)
             SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4 FROM sequence_versions WHERE sequence_id = $1
             RETURNING version"
        )
        .bind(sequence_id)
        .bind(&json)
        .bind(created_by)
        .bind(ms(now))
        .fetch_one(&mut *c)
        .await?);
        Ok(SequenceVersion {
            sequence_id: sequence_id.to_owned(),
            version,
            steps: steps.to_vec(),
            created_by: created_by.map(str::to_owned),
            created_at: time(ms(now))?,
        })
    }
}
