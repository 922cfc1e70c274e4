//! What a rep does from the Engage view: see an action's item, complete
//! it with a result (the plugin runs with the completion), skip it,
//! reschedule it, or send it back to be processed again.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::process::{EventExt, Snapshot};
use super::transition::Answer;
use super::{Engine, EngineError, Result};
use stepwise_domain::crm::Contact;
use stepwise_domain::engagement::{
    Action, ActionStatus, DeferralReason, Enrollment, EnrollmentItem, EnrollmentStatus, EventKind, WorkItem,
};
use stepwise_plugin_host::report::CallReport;
use stepwise_plugin_host::types::{Completion, Draft, EngageItem, Outcome as PluginOutcome, ResultSpec};
use stepwise_store::{EnrollmentFilter, ReadTx, StoreError, WorkCursor, WorkFilter};

/// A user's change raced the scheduler, which holds the action's lease.
pub(crate) fn lease_busy(error: impl Into<EngineError>) -> EngineError {
    match error.into() {
        EngineError::Store(StoreError::LeaseLost(id)) => {
            EngineError::InvalidState(format!("action {id} is being processed right now; try again in a moment"))
        }
        other => other,
    }
}

impl Engine {
    /// Completes an action on the Engage view with one of its step type's
    /// results. The plugin runs with the rep's completion, so its effects
    /// (a message sent, a field changed) happen now.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::InvalidState`] unless the
    /// action is active; [`EngineError::Invalid`] for a result the step type
    /// does not declare; [`EngineError::Plugin`] when the plugin fails, in
    /// which case nothing changes.
    pub async fn complete_action(
        &self,
        account_id: &str,
        action_id: &str,
        user_id: &str,
        result: &str,
    ) -> Result<Action> {
        self.complete_action_with_draft(account_id, action_id, user_id, result, None).await
    }

    /// [`Engine::complete_action`] with the message as the rep edited it on
    /// the Engage view (the draft of [`Engine::engage_item`]): the plugin
    /// sends that instead of its own rendering, or refuses it.
    ///
    /// # Errors
    ///
    /// As [`Engine::complete_action`]; a draft the plugin refuses is an
    /// [`EngineError::Plugin`].
    pub async fn complete_action_with_draft(
        &self,
        account_id: &str,
        action_id: &str,
        user_id: &str,
        result: &str,
        draft: Option<Draft>,
    ) -> Result<Action> {
        let ctx = self.load_snapshot(action_id, Some(account_id)).await?;
        if ctx.action.status != ActionStatus::Active {
            return Err(EngineError::InvalidState(format!(
                "action {action_id} is {}; only an action on the Engage view can be completed",
                ctx.action.status
            )));
        }
        let plugin = ctx.plugin.clone().map_err(EngineError::InvalidState)?;
        let manifest = plugin.manifest();
        if manifest.result(result).is_none() {
            let known: Vec<&str> = manifest.results.iter().map(|r| r.code.as_str()).collect();
            return Err(EngineError::Invalid(format!(
                "`{result}` is not a result of step type `{}`; expected one of: {}",
                manifest.id,
                known.join(", ")
            )));
        }
        let completion = Completion { result: result.to_owned(), draft, user_id: user_id.to_owned() };
        let invocation = self.invocation(&ctx, ctx.grant.clone(), Some(completion));
        let call = self
            .registry()
            .runtime()
            .execute(&plugin, invocation, &ctx.step.config.to_string())
            .await
            .inspect(|call| self.call_metrics().record(&manifest.id, "execute", call.report.wall))
            .map_err(|e| EngineError::Plugin { plugin: manifest.id.clone(), message: e.error.to_string() })?;
        match call.value {
            PluginOutcome::Failed { message, .. } => {
                return Err(EngineError::Plugin { plugin: manifest.id.clone(), message });
            }
            PluginOutcome::Retry { reason, .. } => {
                return Err(EngineError::Plugin {
                    plugin: manifest.id.clone(),
                    message: format!("asked to try again later: {reason}"),
                });
            }
            outcome => {
                let answer = Answer::Plugin { outcome, report: call.report, by: Some(user_id.to_owned()) };
                self.write_one(self.decided(ctx, None, answer)).await.map_err(lease_busy)?;
            }
        }
        self.action_of(account_id, action_id).await
    }

    /// What the rep sees for an action on the Engage view: its step's
    /// plugin prepares the title, the instructions (a call script, say) and
    /// any message draft, for the contact as it is now.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::InvalidState`] when the
    /// step's plugin cannot run for the account; [`EngineError::Plugin`] when
    /// the plugin cannot prepare the item.
    pub async fn engage_item(&self, account_id: &str, action_id: &str) -> Result<EngageItem> {
        Ok(self.engage_item_with_results(account_id, action_id).await?.0)
    }

    /// [`Engine::engage_item`] with the results a rep may complete the
    /// action with (its step type's), from one read of the action.
    ///
    /// # Errors
    ///
    /// As [`Engine::engage_item`].
    pub async fn engage_item_with_results(
        &self,
        account_id: &str,
        action_id: &str,
    ) -> Result<(EngageItem, Vec<ResultSpec>)> {
        let ctx = self.load_snapshot(action_id, Some(account_id)).await?;
        let plugin = ctx.plugin.clone().map_err(EngineError::InvalidState)?;
        let id = plugin.manifest().id.clone();
        let invocation = self.invocation(&ctx, ctx.grant.clone(), None);
        let call = self
            .registry()
            .runtime()
            .prepare(&plugin, invocation, &ctx.step.config.to_string())
            .await
            .inspect(|call| self.call_metrics().record(&id, "prepare", call.report.wall))
            .map_err(|e| EngineError::Plugin { plugin: id.clone(), message: e.error.to_string() })?;
        let item = call.value.map_err(|message| EngineError::Plugin { plugin: id, message })?;
        Ok((item, plugin.manifest().results.clone()))
    }

    /// A page of work as a list shows it (a rep's Engage view, a company's
    /// work items or upcoming touchpoints): each action with its contact's,
    /// company's, sequence's and step's names, read in a handful of
    /// statements whatever the page's length.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub async fn work(
        &self,
        tx: &mut ReadTx,
        filter: &WorkFilter<'_>,
        after: Option<&WorkCursor>,
        limit: u32,
    ) -> Result<Vec<WorkItem>> {
        let rows = tx.work_page(filter, after, limit).await?;
        let now = self.now();
        // The engine's version cache: a page's rows run a few versions,
        // each read once.
        let mut names = Vec::with_capacity(rows.len());
        for row in &rows {
            let version = self.version(tx, &row.sequence_id, row.version).await?;
            let step = usize::try_from(row.action.step).ok().and_then(|i| version.steps.get(i));
            names.push(step.map_or_else(|| format!("step {}", row.action.step + 1), |s| s.name.clone()));
        }
        Ok(rows
            .into_iter()
            .zip(names)
            .map(|(row, title)| {
                let overdue = row.action.status == ActionStatus::Active && row.action.due_at.is_some_and(|d| d < now);
                WorkItem {
                    title,
                    overdue,
                    contact_id: row.contact_id,
                    contact_name: row.contact_name,
                    contact_email: row.contact_email,
                    company_id: row.company_id,
                    company_name: row.company_name,
                    sequence_id: row.sequence_id,
                    sequence_name: row.sequence_name,
                    sequence_version: row.version,
                    action: row.action,
                }
            })
            .collect())
    }

    /// A page of enrollments as a list shows them ([I]): each with its
    /// contact's and sequence's names, its current step's name and the
    /// contact's last engaged and contacted times, newest first.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub async fn enrollment_items(
        &self,
        tx: &mut ReadTx,
        filter: &EnrollmentFilter<'_>,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<EnrollmentItem>> {
        let rows = tx.enrollment_rows(filter, after, limit).await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let e = &row.enrollment;
            let version = self.version(tx, &e.sequence_id, e.version).await?;
            let step_name = usize::try_from(e.current_step).ok().and_then(|i| Some(version.steps.get(i)?.name.clone()));
            items.push(EnrollmentItem {
                enrollment: row.enrollment,
                contact_name: row.contact_name,
                contact_email: row.contact_email,
                last_engaged: row.last_engaged,
                last_contacted: row.last_contacted,
                sequence_name: row.sequence_name,
                step_name,
            });
        }
        Ok(items)
    }

    /// `enrollments` of `account_id` as the rows of a list: each with its
    /// contact's name and times, its sequence's name and its step's name.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn enrollment_items_of(
        &self,
        tx: &mut ReadTx,
        account_id: &str,
        enrollments: Vec<Enrollment>,
    ) -> Result<Vec<EnrollmentItem>> {
        let ids = |of: fn(&Enrollment) -> &String| {
            let mut ids: Vec<String> = enrollments.iter().map(|e| of(e).clone()).collect();
            ids.sort();
            ids.dedup();
            ids
        };
        let contacts: HashMap<String, Contact> =
            tx.contacts_in(account_id, &ids(|e| &e.contact_id)).await?.into_iter().map(|c| (c.id.clone(), c)).collect();
        let sequences: HashMap<String, String> =
            tx.sequences_in(account_id, &ids(|e| &e.sequence_id)).await?.into_iter().map(|s| (s.id, s.name)).collect();
        let mut items = Vec::with_capacity(enrollments.len());
        for enrollment in enrollments {
            let version = self.version(tx, &enrollment.sequence_id, enrollment.version).await?;
            let step_name =
                usize::try_from(enrollment.current_step).ok().and_then(|i| Some(version.steps.get(i)?.name.clone()));
            let contact = contacts.get(&enrollment.contact_id);
            items.push(EnrollmentItem {
                contact_name: contact
                    .map(|c| format!("{} {}", c.first_name, c.last_name).trim().to_owned())
                    .unwrap_or_default(),
                contact_email: contact.and_then(|c| c.email.clone()),
                last_engaged: contact.and_then(|c| c.last_engaged),
                last_contacted: contact.and_then(|c| c.last_contacted),
                sequence_name: sequences.get(&enrollment.sequence_id).cloned().unwrap_or_default(),
                step_name,
                enrollment,
            });
        }
        Ok(items)
    }

    /// The action `action_id` of the account.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] when it is not the account's.
    pub async fn action_of(&self, account_id: &str, action_id: &str) -> Result<Action> {
        Ok(self.load_snapshot(action_id, Some(account_id)).await?.action)
    }

    /// The log lines kept of an action of `account_id`'s plugin calls, by
    /// attempt (none for an action of another account).
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn action_logs(
        &self,
        account_id: &str,
        action_id: &str,
    ) -> Result<Vec<stepwise_domain::engagement::ActionLogLine>> {
        let mut tx = self.store().begin_read().await?;
        Ok(tx.action_logs(account_id, action_id).await?)
    }

    /// Loads an action that a user may change: the enrollment's current,
    /// unperformed action of an enrollment that is pending or running.
    async fn user_snapshot(&self, account_id: &str, action_id: &str) -> Result<Snapshot> {
        let ctx = self.load_snapshot(action_id, Some(account_id)).await?;
        if !ctx.action.current || !matches!(ctx.action.status, ActionStatus::Future | ActionStatus::Active) {
            return Err(EngineError::InvalidState(format!(
                "action {action_id} is {}{}; only the enrollment's current, unperformed action can be changed",
                ctx.action.status,
                if ctx.action.current { "" } else { " and not current" }
            )));
        }
        if !matches!(ctx.enrollment.status, EnrollmentStatus::Pending | EnrollmentStatus::Running) {
            return Err(EngineError::InvalidState(format!(
                "the enrollment of action {action_id} is {}",
                ctx.enrollment.status
            )));
        }
        Ok(ctx)
    }

    /// Skips the current action by a user's choice; the enrollment moves on.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::InvalidState`] unless it is
    /// the current unperformed action of a pending or running enrollment.
    pub async fn skip_action(&self, account_id: &str, action_id: &str, user_id: &str) -> Result<Action> {
        let ctx = self.user_snapshot(account_id, action_id).await?;
        let skip = Answer::Skip { result: "skipped_by_user".into(), reason: None, by: Some(user_id.to_owned()) };
        self.write_one(self.decided(ctx, None, skip)).await.map_err(lease_busy)?;
        self.action_of(account_id, action_id).await
    }

    /// Reschedules the current action from the Engage view: a new due date,
    /// off the Engage view until it is processed again [G]. A held
    /// duplicate attempt is released by it (the user chose to try again).
    ///
    /// # Errors
    ///
    /// As [`Engine::skip_action`].
    pub async fn reschedule_action(
        &self,
        account_id: &str,
        action_id: &str,
        user_id: &str,
        due_at: DateTime<Utc>,
    ) -> Result<Action> {
        let ctx = self.user_snapshot(account_id, action_id).await?;
        let answer = Answer::Reschedule { due_at, by: user_id.to_owned() };
        self.write_one(self.decided(ctx, None, answer)).await.map_err(lease_busy)?;
        self.action_of(account_id, action_id).await
    }

    /// Resolves a send held as a duplicate attempt that a person found did
    /// leave: the action is completed with `result` (by default the step
    /// type's first result that does not end the enrollment), nothing is
    /// sent, and the enrollment moves on.
    ///
    /// # Errors
    ///
    /// As [`Engine::skip_action`]; [`EngineError::InvalidState`] unless the
    /// action is held as a duplicate attempt; [`EngineError::Invalid`] for a
    /// result the step type does not declare.
    pub async fn mark_sent(
        &self,
        account_id: &str,
        action_id: &str,
        user_id: &str,
        result: Option<&str>,
    ) -> Result<Action> {
        let ctx = self.duplicate_attempt(account_id, action_id).await?;
        let plugin = ctx.plugin.clone().map_err(EngineError::InvalidState)?;
        let manifest = plugin.manifest();
        let result = match result {
            Some(code) => manifest.result(code).ok_or_else(|| {
                let known: Vec<&str> = manifest.results.iter().map(|r| r.code.as_str()).collect();
                EngineError::Invalid(format!(
                    "result: `{code}` is not a result of step type `{}`; expected one of: {}",
                    manifest.id,
                    known.join(", ")
                ))
            })?,
            None => manifest.results.iter().find(|r| !r.ends_enrollment).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "result: every result of step type `{}` ends the enrollment; name the one that happened",
                    manifest.id
                ))
            })?,
        };
        let outcome = PluginOutcome::Done { result: result.code.clone(), output: json!({ "marked_sent_by": user_id }) };
        let answer = Answer::Plugin { outcome, report: CallReport::default(), by: Some(user_id.to_owned()) };
        self.write_one(self.decided(ctx, None, answer)).await.map_err(lease_busy)?;
        self.action_of(account_id, action_id).await
    }

    /// Resolves a send held as a duplicate attempt that a person found did
    /// not leave: the earlier attempt is forgotten and the action is
    /// processed again now.
    ///
    /// # Errors
    ///
    /// As [`Engine::mark_sent`].
    pub async fn send_again(&self, account_id: &str, action_id: &str, user_id: &str) -> Result<Action> {
        let ctx = self.duplicate_attempt(account_id, action_id).await?;
        let answer = Answer::Reschedule { due_at: self.now(), by: user_id.to_owned() };
        self.write_one(self.decided(ctx, None, answer)).await.map_err(lease_busy)?;
        self.wake();
        self.action_of(account_id, action_id).await
    }

    /// Loads an action a user may change that is held as a duplicate attempt.
    async fn duplicate_attempt(&self, account_id: &str, action_id: &str) -> Result<Snapshot> {
        let ctx = self.user_snapshot(account_id, action_id).await?;
        if ctx.action.deferral_reason != Some(DeferralReason::DuplicateAttempt) {
            let now = ctx.action.deferral_reason.map_or_else(|| "not held".to_owned(), |r| format!("held as `{r}`"));
            return Err(EngineError::InvalidState(format!(
                "action {action_id} is {now}; only a send held as `duplicate_attempt` can be marked sent or sent again"
            )));
        }
        Ok(ctx)
    }

    /// Sets show-on-Engage back to false: the action leaves the Engage view
    /// and is processed again now, skip criteria included [G].
    ///
    /// # Errors
    ///
    /// As [`Engine::skip_action`].
    pub async fn hide_from_engage(&self, account_id: &str, action_id: &str, user_id: &str) -> Result<Action> {
        let ctx = self.user_snapshot(account_id, action_id).await?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let action = tx.reset_show_on_engage(action_id, now).await.map_err(lease_busy)?;
        let event = ctx
            .event(EventKind::ActionShowOnEngageReset, user_id)
            .change(json!({ "show_on_engage": ctx.action.show_on_engage }), json!({ "show_on_engage": false }));
        tx.record_event(&event, now).await?;
        tx.commit().await?;
        self.wake();
        Ok(action)
    }
}
