//! Processing one due action in the order of SPEC §4, and applying what a
//! plugin answered (SPEC §5): the heart of the scheduler.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::checks::{self, Facts};
use super::step_config;
use super::timing;
use super::{Engine, EngineError, Result};
use stepwise_domain::crm::{Company, Contact, Subject, User};
use stepwise_domain::engagement::{
    Action, ActionStatus, Activation, ClaimedAction, DeferralReason, Enrollment, EnrollmentStatus, Level, OnUnmet,
    Outcome as EnrollmentOutcome, OwnerRule, PauseReason, PluginAccount, PluginRef, Sequence, SequenceState,
    SequenceVersion, Step,
};
use stepwise_plugin_host::report::{CallReport, QueuedMessage};
use stepwise_plugin_host::types::{Capability, Completion, EnrollmentOutcome as PluginOutcome, Outcome, StepContext};
use stepwise_plugin_host::{AccountGrant, Directory, Grant, Invocation, Origin, Plugin, UserRef};
use stepwise_store::{ActionCompletion, BatchCompletion, NewEvent, NewOutboxMessage, Schedule, Store, StoreError, Tx};

/// A plugin's answer for a claimed action, waiting to be written.
#[derive(Debug)]
pub(crate) struct Pending {
    pub ctx: Context,
    pub lease: String,
    pub outcome: Outcome,
    pub report: CallReport,
}

/// Everything processing an action looks at, read in one snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub action: Action,
    pub enrollment: Enrollment,
    pub sequence: Sequence,
    pub version: Arc<SequenceVersion>,
    pub step: Step,
    pub contact: Contact,
    pub company: Option<Company>,
    pub owner: Option<User>,
    /// The step's plugin, or why it cannot run for the account.
    pub plugin: Result<Arc<Plugin>, String>,
    pub grant: Arc<AccountGrant>,
    /// Every action of the enrollment, by step, as read with the rest.
    pub siblings: Vec<Action>,
}

impl Context {
    pub fn subject(&self) -> Subject {
        Subject { contact: self.contact.clone(), owner: self.owner.clone(), company: self.company.clone() }
    }

    pub fn channel(&self) -> Option<stepwise_plugin_host::types::Channel> {
        self.plugin.as_ref().ok().and_then(|p| p.manifest().channel)
    }

    pub fn facts(&self) -> Facts<'_> {
        Facts {
            channel: self.channel(),
            activation: self.step.activation,
            owner: self.owner.as_ref(),
            contact: &self.contact,
            plugin: self.plugin.as_ref().map(|_| ()).map_err(String::as_str),
            legacy_merge: checks::uses_legacy_merge(&self.step.config),
        }
    }

    /// An event about this action's enrollment.
    pub fn event(&self, kind: &str, actor: &str) -> NewEvent {
        enrollment_event(&self.enrollment, self.contact.company_id.clone(), Some(&self.action.id), kind, actor)
    }

    pub fn step_context(&self, now: DateTime<Utc>, completion: Option<Completion>) -> StepContext {
        StepContext {
            account_id: self.enrollment.account_id.clone(),
            sequence_id: self.sequence.id.clone(),
            sequence_version: u32::try_from(self.enrollment.version).unwrap_or(u32::MAX),
            enrollment_id: self.enrollment.id.clone(),
            action_id: self.action.id.clone(),
            step_number: u32::try_from(self.action.step + 1).unwrap_or(u32::MAX),
            attempt: u32::try_from(self.action.attempts.max(0) + 1).unwrap_or(u32::MAX),
            // The action id never changes across retries of the action.
            idempotency_key: self.action.id.clone(),
            now,
            event_date: self.enrollment.event_date,
            activation: match self.step.activation {
                Activation::Manual => stepwise_plugin_host::types::Activation::Manual,
                Activation::Automatic => stepwise_plugin_host::types::Activation::Automatic,
            },
            completion,
        }
    }
}

/// The set-wise write of one plugin answer (see [`Engine::write_fast`]).
#[derive(Debug)]
struct FastPlan {
    completion: BatchCompletion,
    /// `(action, due, current)` for the next action and the ones after it.
    schedules: Vec<(String, Option<DateTime<Utc>>, bool)>,
    enrollment_id: String,
    /// The step the enrollment moves to and when it is due; `None` when
    /// this was its last step and it completes.
    next: Option<(i64, Option<DateTime<Utc>>)>,
    events: Vec<NewEvent>,
}

/// Whether an answer takes the set-wise path, and what it writes: done with
/// a result that does not end the enrollment (or skipped by the plugin),
/// nothing sent, no contact changed, and either a next step to move to or,
/// for the last step, an enrollment that simply completes (no drip queue to
/// serve, no next sequence to chain into).
fn fast_plan(p: &Pending, now: DateTime<Utc>) -> Option<FastPlan> {
    if !p.report.messages.is_empty() || !p.report.contact_changes.is_empty() {
        return None;
    }
    let ctx = &p.ctx;
    let actor = format!("plugin:{}", ctx.step.plugin.id);
    let (status, result, output, event) = match &p.outcome {
        Outcome::Done { result, output } => {
            let ends = ctx.plugin.as_ref().ok().and_then(|pl| pl.manifest().result(result).map(|r| r.ends_enrollment));
            if ends != Some(false) {
                return None;
            }
            let event = ctx.event("action.completed", &actor).reason(format!("result `{result}`")).change(
                json!({ "status": ctx.action.status }),
                json!({ "status": ActionStatus::Completed, "result": result }),
            );
            (ActionStatus::Completed, result.clone(), Some(output.clone()), event)
        }
        Outcome::Skipped { reason } => {
            (ActionStatus::Skipped, reason.clone(), None, ctx.event("action.skipped", &actor).reason(reason.clone()))
        }
        Outcome::Retry { .. } | Outcome::Failed { .. } => return None,
    };
    let completion = BatchCompletion {
        id: ctx.action.id.clone(),
        lease_token: p.lease.clone(),
        status,
        result: Some(result),
        output,
    };
    let Some(next) = ctx.siblings.iter().find(|a| a.step > ctx.action.step && a.status == ActionStatus::Future) else {
        let settings = &ctx.sequence.settings;
        let open = ctx.siblings.iter().any(|a| {
            a.id != ctx.action.id
                && matches!(
                    a.status,
                    ActionStatus::Future | ActionStatus::Active | ActionStatus::Disabled | ActionStatus::Failed
                )
        });
        if settings.drip_limit.is_some() || settings.next_sequence_id.is_some() || open {
            return None;
        }
        let ended = enrollment_event(&ctx.enrollment, ctx.contact.company_id.clone(), None, "enrollment.ended", SYSTEM)
            .reason("every step is done")
            .change(
                json!({ "status": ctx.enrollment.status, "pause_reason": null }),
                json!({ "status": EnrollmentStatus::Completed, "outcome": EnrollmentOutcome::Neutral }),
            );
        return Some(FastPlan {
            completion,
            schedules: Vec::new(),
            enrollment_id: ctx.enrollment.id.clone(),
            next: None,
            events: vec![event, ended],
        });
    };
    let from = usize::try_from(next.step).ok()?;
    let mut schedules = Vec::new();
    let mut next_due = next.due_at;
    match timing::recompute_after(ctx.sequence.timing_mode, &ctx.version.steps, from, now) {
        Some(dues) => {
            for (step, due) in (next.step..).zip(dues) {
                if let Some(a) = ctx.siblings.iter().find(|a| a.step == step && a.status == ActionStatus::Future) {
                    schedules.push((a.id.clone(), Some(due), a.id == next.id));
                    if a.id == next.id {
                        next_due = Some(due);
                    }
                }
            }
        }
        None => schedules.push((next.id.clone(), next.due_at, true)),
    }
    Some(FastPlan {
        completion,
        schedules,
        enrollment_id: ctx.enrollment.id.clone(),
        next: Some((next.step, next_due)),
        events: vec![event],
    })
}

/// The distinct values of `items`, in first-seen order.
fn unique<T: Clone + Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    items.filter(|i| seen.insert(i.clone())).collect()
}

/// An event about an enrollment, to be completed with reason, change and level.
pub(crate) fn enrollment_event(
    enrollment: &Enrollment,
    company_id: Option<String>,
    action_id: Option<&str>,
    kind: &str,
    actor: &str,
) -> NewEvent {
    NewEvent {
        account_id: enrollment.account_id.clone(),
        contact_id: Some(enrollment.contact_id.clone()),
        company_id,
        enrollment_id: Some(enrollment.id.clone()),
        action_id: action_id.map(str::to_owned),
        kind: kind.to_owned(),
        actor: actor.to_owned(),
        reason: None,
        before: None,
        after: None,
        level: Level::Info,
    }
}

/// Builder helpers on events.
pub(crate) trait EventExt {
    fn reason(self, reason: impl Into<String>) -> Self;
    fn change(self, before: serde_json::Value, after: serde_json::Value) -> Self;
    fn level(self, level: Level) -> Self;
}

impl EventExt for NewEvent {
    fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    fn change(mut self, before: serde_json::Value, after: serde_json::Value) -> Self {
        self.before = Some(before);
        self.after = Some(after);
        self
    }

    fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
}

/// The actor recorded for what the scheduler does.
pub(crate) const SYSTEM: &str = "system";

/// User lookups of plugins, answered by the store within the account.
#[derive(Debug, Clone)]
pub(crate) struct StoreDirectory {
    pub store: Store,
}

#[async_trait::async_trait]
impl Directory for StoreDirectory {
    async fn user(&self, account_id: &str, who: &UserRef) -> std::result::Result<Option<User>, String> {
        let mut tx = self.store.begin_read().await.map_err(|e| e.to_string())?;
        let found = match who {
            UserRef::Id(id) => match tx.user(account_id, id).await {
                Ok(user) => Ok(Some(user)),
                Err(StoreError::NotFound { .. }) => Ok(None),
                Err(other) => Err(other),
            },
            UserRef::Email(email) => tx.user_by_email(account_id, email).await,
        };
        found.map_err(|e| e.to_string())
    }
}

/// Whether a plugin can have effects outside the host that must never be
/// repeated by accident (it sends or calls out), so its automatic attempts
/// are recorded before it runs (the duplicate-attempt failsafe).
fn has_outside_effects(plugin: &Plugin) -> bool {
    plugin
        .manifest()
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::SendEmail | Capability::SendSms | Capability::HttpFetch))
}

impl Engine {
    /// Which plugin a step runs and under which grant, or why it cannot run
    /// for the account. Built-in plugins are enabled with what their
    /// manifest declares unless an admin says otherwise; add-ons run only
    /// once an admin enabled them and approved every capability the version
    /// asks for.
    pub(crate) async fn access(
        &self,
        tx: &mut Tx,
        account_id: &str,
        plugin: &PluginRef,
    ) -> Result<(Result<Arc<Plugin>, String>, Arc<AccountGrant>)> {
        self.sync_if_missing(account_id, &plugin.id, &plugin.version).await;
        let settings = tx.plugin_account(account_id, &plugin.id).await?;
        Ok(self.access_with(account_id, settings.as_ref(), plugin))
    }

    /// [`Engine::access`] with the account's settings for the plugin read.
    pub(crate) fn access_with(
        &self,
        account_id: &str,
        settings: Option<&PluginAccount>,
        plugin: &PluginRef,
    ) -> (Result<Arc<Plugin>, String>, Arc<AccountGrant>) {
        let none = Arc::new(AccountGrant::none());
        let registered = match self.registry().find(account_id, &plugin.id, &plugin.version) {
            Ok(Some(registered)) => registered,
            Ok(None) => {
                let why = format!("no plugin `{}` matching version `{}` is installed", plugin.id, plugin.version);
                return (Err(why), none);
            }
            Err(error) => return (Err(error.to_string()), none),
        };
        let manifest = registered.plugin.manifest();
        let grant = match settings {
            Some(settings) if !settings.enabled => {
                return (Err(format!("plugin `{}` is disabled for the account", plugin.id)), none);
            }
            Some(settings) => {
                let grant: Grant = match serde_json::from_value(settings.grants.clone()) {
                    Ok(grant) => grant,
                    Err(error) => {
                        return (Err(format!("the grant of plugin `{}` does not parse: {error}", plugin.id)), none);
                    }
                };
                let unapproved: Vec<&str> = manifest
                    .capabilities
                    .iter()
                    .map(Capability::name)
                    .filter(|name| !settings.approved_capabilities.iter().any(|a| a == name))
                    .collect();
                if !unapproved.is_empty() && registered.origin == Origin::AddOn {
                    let why = format!(
                        "version {} of plugin `{}` asks for capabilities an admin has not approved: {}",
                        manifest.version,
                        plugin.id,
                        unapproved.join(", ")
                    );
                    return (Err(why), none);
                }
                grant
            }
            None if registered.origin == Origin::Builtin => {
                Grant { capabilities: manifest.capabilities.clone(), http_allow: Vec::new() }
            }
            None => return (Err(format!("add-on plugin `{}` is not enabled for the account", plugin.id)), none),
        };
        match AccountGrant::new(grant) {
            Ok(grant) => (Ok(registered.plugin), Arc::new(grant)),
            Err(why) => (Err(format!("the grant of plugin `{}` is invalid: {why}", plugin.id)), none),
        }
    }

    /// The user a step's owner rule names for an enrollment (SPEC §7).
    pub(crate) fn owner_of(
        rule: &OwnerRule,
        enrollment: &Enrollment,
        contact: &Contact,
        company: Option<&Company>,
    ) -> Option<String> {
        match rule {
            OwnerRule::Initiator => enrollment.initiated_by.clone(),
            OwnerRule::SpecificUser { user_id } => Some(user_id.clone()),
            OwnerRule::ContactOwner => contact.owner_id.clone(),
            OwnerRule::CompanyOwner => company.and_then(|c| c.owner_id.clone()),
        }
    }

    /// Reads everything about an action. With `account`, an action of
    /// another account is "not found".
    pub(crate) async fn load_context(&self, action_id: &str, account: Option<&str>) -> Result<Context> {
        let mut tx = self.store().begin_read().await?;
        let action = tx.action(action_id).await?;
        let enrollment = tx.enrollment(&action.enrollment_id).await?;
        if account.is_some_and(|a| a != enrollment.account_id) {
            return Err(EngineError::NotFound { what: "action", id: action_id.to_owned() });
        }
        let account_id = enrollment.account_id.clone();
        let sequence = tx.sequence(&account_id, &enrollment.sequence_id).await?;
        let version = self.version(&mut tx, &sequence.id, enrollment.version).await?;
        let step =
            version.steps.iter().find(|s| i64::from(s.position) == action.step).cloned().ok_or_else(|| {
                EngineError::Invalid(format!("version {} has no step {}", version.version, action.step))
            })?;
        let contact = tx.contact(&account_id, &enrollment.contact_id).await?;
        let company = match &contact.company_id {
            Some(id) => Some(tx.company(&account_id, id).await?),
            None => None,
        };
        let owner = match Self::owner_of(&step.owner, &enrollment, &contact, company.as_ref()) {
            Some(id) => match tx.user(&account_id, &id).await {
                Ok(user) => Some(user),
                Err(StoreError::NotFound { .. }) => None,
                Err(other) => return Err(other.into()),
            },
            None => None,
        };
        let mut step = step;
        step_config::expand_templates(&mut tx, vec![(account_id.as_str(), &mut step.config)]).await?;
        let (plugin, grant) = self.access(&mut tx, &account_id, &step.plugin).await?;
        let siblings = tx.actions_of_enrollment(&enrollment.id).await?;
        tx.rollback().await?;
        Ok(Context { action, enrollment, sequence, version, step, contact, company, owner, plugin, grant, siblings })
    }

    /// Reads the contexts of a batch of claimed actions with a handful of
    /// queries for the whole batch rather than several per action. An
    /// action whose records cannot be read gets its error.
    pub(crate) async fn load_contexts(&self, claimed: &[ClaimedAction]) -> Result<Vec<Result<Context>>> {
        let mut tx = self.store().begin_read().await?;
        // The claimed actions are read with the rest of their enrollments'.
        let enrollment_ids: Vec<String> = unique(claimed.iter().map(|c| c.enrollment_id.clone()));
        let enrollments: HashMap<String, Enrollment> =
            tx.enrollments_by_ids(&enrollment_ids).await?.into_iter().map(|e| (e.id.clone(), e)).collect();
        let mut siblings: HashMap<String, Vec<Action>> = HashMap::new();
        let mut actions: HashMap<String, Action> = HashMap::new();
        for a in tx.actions_of_enrollments(&enrollment_ids).await? {
            if claimed.iter().any(|c| c.id == a.id) {
                actions.insert(a.id.clone(), a.clone());
            }
            siblings.entry(a.enrollment_id.clone()).or_default().push(a);
        }
        let mut sequences = HashMap::new();
        let mut contacts = HashMap::new();
        let mut companies = HashMap::new();
        let mut users = HashMap::new();
        let mut settings: HashMap<(String, String), PluginAccount> = HashMap::new();
        let accounts = unique(enrollments.values().map(|e| e.account_id.clone()));
        for account in &accounts {
            let of_account = || enrollments.values().filter(move |e| &e.account_id == account);
            let sequence_ids = unique(of_account().map(|e| e.sequence_id.clone()));
            for q in tx.sequences_in(account, &sequence_ids).await? {
                sequences.insert(q.id.clone(), q);
            }
            let contact_ids = unique(of_account().map(|e| e.contact_id.clone()));
            let found = tx.contacts_in(account, &contact_ids).await?;
            let company_ids = unique(found.iter().filter_map(|c| c.company_id.clone()));
            for c in found {
                contacts.insert(c.id.clone(), c);
            }
            for c in tx.companies_in(account, &company_ids).await? {
                companies.insert(c.id.clone(), c);
            }
            for pa in tx.plugin_accounts(account).await? {
                settings.insert((pa.account_id.clone(), pa.plugin_id.clone()), pa);
            }
        }
        // Owners depend on each step's rule, so they are read last.
        let mut steps = HashMap::new();
        let mut owner_ids: HashMap<String, Vec<String>> = HashMap::new();
        for a in actions.values() {
            let Some(e) = enrollments.get(&a.enrollment_id) else { continue };
            let (Some(sequence), Some(contact)) = (sequences.get(&e.sequence_id), contacts.get(&e.contact_id)) else {
                continue;
            };
            let version = self.version(&mut tx, &sequence.id, e.version).await?;
            let Some(step) = version.steps.iter().find(|s| i64::from(s.position) == a.step).cloned() else { continue };
            let company = contact.company_id.as_ref().and_then(|id| companies.get(id));
            if let Some(owner) = Self::owner_of(&step.owner, e, contact, company) {
                owner_ids.entry(e.account_id.clone()).or_default().push(owner);
            }
            steps.insert(a.id.clone(), (version, step));
        }
        for (account, ids) in owner_ids {
            for u in tx.users_in(&account, &unique(ids.into_iter())).await? {
                users.insert(u.id.clone(), u);
            }
        }
        // Steps that name a template get it, one query per account.
        let configs = steps
            .iter_mut()
            .filter_map(|(action_id, (_, step))| {
                let enrollment = enrollments.get(&actions.get(action_id)?.enrollment_id)?;
                Some((enrollment.account_id.as_str(), &mut step.config))
            })
            .collect();
        step_config::expand_templates(&mut tx, configs).await?;
        tx.rollback().await?;
        // A step may name an add-on uploaded through another host.
        let plugins = unique(steps.iter().filter_map(|(action_id, (_, step))| {
            let account = &enrollments.get(&actions.get(action_id)?.enrollment_id)?.account_id;
            Some((account.clone(), step.plugin.id.clone(), step.plugin.version.clone()))
        }));
        for (account, id, version) in plugins {
            self.sync_if_missing(&account, &id, &version).await;
        }

        Ok(claimed
            .iter()
            .map(|c| {
                let missing = |what: &'static str, id: &str| EngineError::NotFound { what, id: id.to_owned() };
                let action = actions.get(&c.id).cloned().ok_or_else(|| missing("action", &c.id))?;
                let enrollment = enrollments
                    .get(&action.enrollment_id)
                    .cloned()
                    .ok_or_else(|| missing("enrollment", &action.enrollment_id))?;
                let sequence = sequences
                    .get(&enrollment.sequence_id)
                    .cloned()
                    .ok_or_else(|| missing("sequence", &enrollment.sequence_id))?;
                let contact = contacts
                    .get(&enrollment.contact_id)
                    .cloned()
                    .ok_or_else(|| missing("contact", &enrollment.contact_id))?;
                let (version, step) =
                    steps.get(&action.id).cloned().ok_or_else(|| missing("step of action", &action.id))?;
                let company = contact.company_id.as_ref().and_then(|id| companies.get(id)).cloned();
                let owner = Self::owner_of(&step.owner, &enrollment, &contact, company.as_ref())
                    .and_then(|id| users.get(&id).cloned());
                let key = (enrollment.account_id.clone(), step.plugin.id.clone());
                let (plugin, grant) = self.access_with(&enrollment.account_id, settings.get(&key), &step.plugin);
                let siblings = siblings.get(&enrollment.id).cloned().unwrap_or_default();
                Ok(Context {
                    action,
                    enrollment,
                    sequence,
                    version,
                    step,
                    contact,
                    company,
                    owner,
                    plugin,
                    grant,
                    siblings,
                })
            })
            .collect())
    }

    /// An invocation of the step's plugin for this context.
    pub(crate) fn invocation(
        &self,
        ctx: &Context,
        grant: Arc<AccountGrant>,
        completion: Option<Completion>,
    ) -> Invocation {
        Invocation {
            grant,
            step: ctx.step_context(self.now(), completion),
            subject: ctx.subject(),
            directory: Arc::new(StoreDirectory { store: self.store().clone() }),
        }
    }

    /// Processes one claimed action (SPEC §4). Every outcome but a plugin's
    /// answer is written here; a plugin's answer is returned, so that the
    /// scheduler writes a whole batch of them in one transaction.
    pub(crate) async fn process(&self, claimed: ClaimedAction, ctx: Context) -> Result<Option<Pending>> {
        let lease = Some(claimed.lease_token.as_str());
        let now = self.now();

        // The enrollment or the sequence may have changed since the action
        // became due; the action then follows them.
        if !ctx.enrollment.status.is_open() {
            let mut tx = self.store().begin().await?;
            tx.close_open_actions(&ctx.enrollment.id, "enrollment_ended", now).await?;
            tx.commit().await?;
            return Ok(None);
        }
        if ctx.enrollment.status == EnrollmentStatus::Paused || ctx.sequence.state != SequenceState::Active {
            let mut tx = self.store().begin().await?;
            tx.disable_actions(&ctx.enrollment.id, now).await?;
            tx.commit().await?;
            return Ok(None);
        }

        // 1. Queued behind a drip limit: parked until a slot frees.
        if ctx.enrollment.status == EnrollmentStatus::Queued {
            return self
                .defer(&ctx, lease, DeferralReason::Queued, None, "waiting for a drip slot".into())
                .await
                .map(|()| None);
        }

        // 2. Requirements, re-evaluated later.
        if let Some(unmet) = checks::first_unmet(&ctx.facts()) {
            let again = now + self.recheck();
            return self.defer(&ctx, lease, unmet.reason, Some(again), unmet.detail).await.map(|()| None);
        }
        let Ok(plugin) = ctx.plugin.clone() else { unreachable!("an unusable plugin is an unmet requirement") };

        // 3. Channel opt-out: skipped at once, no criteria needed.
        if checks::opted_out(plugin.manifest().channel, &ctx.contact) {
            let completion = ActionCompletion::skipped("opted_out", None, Some(DeferralReason::OptedOut));
            return self.skip_and_advance(&ctx, lease, completion, SYSTEM, now).await.map(|()| None);
        }

        // 4. Criteria. Skip criteria are evaluated once per stay on Engage.
        for criterion in &ctx.step.criteria {
            if criterion.on_unmet == OnUnmet::Skip && ctx.action.skip_criteria_evaluated {
                continue;
            }
            match self.evaluate(&ctx, criterion).await {
                Ok(true) => {}
                Ok(false) if criterion.on_unmet == OnUnmet::Skip => {
                    let completion =
                        ActionCompletion::skipped("criteria_unmet", None, Some(DeferralReason::CriteriaUnmet));
                    return self.skip_and_advance(&ctx, lease, completion, SYSTEM, now).await.map(|()| None);
                }
                Ok(false) => {
                    let detail = format!("criterion `{}` does not hold", criterion.plugin.id);
                    return self
                        .defer(&ctx, lease, DeferralReason::CriteriaUnmet, Some(now + self.recheck()), detail)
                        .await
                        .map(|()| None);
                }
                Err(why) => {
                    // A criterion that cannot answer holds the action rather
                    // than skipping it: a broken predicate must not silently
                    // drop steps.
                    let detail = format!("criterion `{}` could not be evaluated: {why}", criterion.plugin.id);
                    return self
                        .defer(&ctx, lease, DeferralReason::CriteriaUnmet, Some(now + self.recheck()), detail)
                        .await
                        .map(|()| None);
                }
            }
        }

        // 5. Manual: on the owner's Engage view.
        if ctx.step.activation == Activation::Manual {
            return self.activate(&ctx, lease, now).await.map(|()| None);
        }

        // 6. Automatic: business hours, the duplicate-attempt failsafe, then run.
        if let Some(hours) = &ctx.sequence.settings.business_hours {
            match timing::next_opening(hours, now) {
                Ok(None) => {}
                Ok(Some(opening)) => {
                    let detail = format!("the sequence's business hours open again at {opening}");
                    return self
                        .defer(&ctx, lease, DeferralReason::OutsideBusinessHours, Some(opening), detail)
                        .await
                        .map(|()| None);
                }
                Err(why) => {
                    let detail = format!("the sequence's business hours are invalid: {why}");
                    return self
                        .defer(&ctx, lease, DeferralReason::OutsideBusinessHours, Some(now + self.recheck()), detail)
                        .await
                        .map(|()| None);
                }
            }
        }
        if ctx.action.send_attempted_at.is_some() {
            let detail = "an earlier attempt was never confirmed: skip the action or reschedule it to try again".into();
            return self.defer(&ctx, lease, DeferralReason::DuplicateAttempt, None, detail).await.map(|()| None);
        }
        let mut ctx = ctx;
        // An automatic call goes through the voice provider, when there is one.
        let phone = plugin.manifest().channel == Some(stepwise_plugin_host::types::Channel::Phone);
        let voice = self.voice().filter(|_| phone).cloned();
        if voice.is_some() || has_outside_effects(&plugin) {
            let mut tx = self.store().begin().await?;
            // The context keeps the attempts made before this one; the
            // recorded send marks this attempt as counted.
            let attempted = tx.record_send_attempt(&ctx.action.id, &claimed.lease_token, now).await?;
            tx.commit().await?;
            ctx.action.send_attempted_at = attempted.send_attempted_at;
        }
        if let Some(voice) = voice {
            let (outcome, report) = self.place_call(&ctx, &plugin, voice.as_ref()).await?;
            return Ok(Some(Pending { ctx, lease: claimed.lease_token, outcome, report }));
        }
        let config = ctx.step.config.to_string();
        let invocation = self.invocation(&ctx, ctx.grant.clone(), None);
        let (outcome, report) = match self.registry().runtime().execute(&plugin, invocation, &config).await {
            Ok(call) => {
                self.inner.calls.record(&ctx.step.plugin.id, "execute", call.report.wall);
                (call.value, call.report)
            }
            Err(error) => {
                self.inner.calls.record(&ctx.step.plugin.id, "execute", error.report.wall);
                let message = error.error.to_string();
                (Outcome::Failed { message, details: json!({ "kind": "plugin_error" }) }, *error.report)
            }
        };
        Ok(Some(Pending { ctx, lease: claimed.lease_token, outcome, report }))
    }

    fn recheck(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config().recheck_after).unwrap_or(chrono::Duration::minutes(15))
    }

    /// Evaluates a criterion for [`Engine::explain`].
    pub(crate) async fn evaluate_for_explain(
        &self,
        ctx: &Context,
        criterion: &stepwise_domain::engagement::Criterion,
    ) -> std::result::Result<bool, String> {
        self.evaluate(ctx, criterion).await
    }

    /// Evaluates one criterion against the action's subject.
    async fn evaluate(
        &self,
        ctx: &Context,
        criterion: &stepwise_domain::engagement::Criterion,
    ) -> std::result::Result<bool, String> {
        let mut tx = self.store().begin_read().await.map_err(|e| e.to_string())?;
        let (plugin, grant) =
            self.access(&mut tx, &ctx.enrollment.account_id, &criterion.plugin).await.map_err(|e| e.to_string())?;
        drop(tx);
        let plugin = plugin?;
        let invocation = self.invocation(ctx, grant, None);
        let call = self.registry().runtime().evaluate(&plugin, invocation, &criterion.config.to_string()).await;
        let wall = match &call {
            Ok(call) => call.report.wall,
            Err(error) => error.report.wall,
        };
        self.inner.calls.record(&criterion.plugin.id, "evaluate", wall);
        call.map_err(|e| e.error.to_string())?.value
    }

    /// Holds an action back for `reason`: due again at `until`, or parked
    /// (`None`) until something makes it due. An event is written when the
    /// reason changes, not at every re-check.
    async fn defer(
        &self,
        ctx: &Context,
        lease: Option<&str>,
        reason: DeferralReason,
        until: Option<DateTime<Utc>>,
        detail: String,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        tx.reschedule_action(
            &ctx.action.id,
            lease,
            until.or(if reason == DeferralReason::Queued || reason == DeferralReason::DuplicateAttempt {
                None
            } else {
                Some(now)
            }),
            Some(reason),
            false,
            now,
        )
        .await?;
        if ctx.action.deferral_reason != Some(reason) {
            let level = if reason == DeferralReason::DuplicateAttempt { Level::Warning } else { Level::Info };
            let event = ctx
                .event("action.deferred", SYSTEM)
                .reason(format!("{}: {detail}", reason.sentence()))
                .change(
                    json!({ "deferral_reason": ctx.action.deferral_reason }),
                    json!({ "deferral_reason": reason, "due_at": until }),
                )
                .level(level);
            tx.record_event(&event, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts a manual action on its owner's Engage view.
    async fn activate(&self, ctx: &Context, lease: Option<&str>, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.store().begin().await?;
        let owner = ctx.owner.as_ref().map(|o| o.id.as_str());
        if ctx.action.owner_id.as_deref() != owner {
            tx.set_action_owner(&ctx.action.id, owner, now).await?;
        }
        let has_skip_criteria = ctx.step.criteria.iter().any(|c| c.on_unmet == OnUnmet::Skip);
        tx.activate_action(&ctx.action.id, lease, has_skip_criteria, now).await?;
        let mut enrollment = ctx.enrollment.clone();
        if enrollment.status == EnrollmentStatus::Pending {
            enrollment.status = EnrollmentStatus::Running;
            tx.save_enrollment(&enrollment, now).await?;
        }
        let event = ctx
            .event("action.activated", SYSTEM)
            .reason(format!("on the Engage view of {}", owner.unwrap_or("nobody")))
            .change(
                json!({ "status": ctx.action.status }),
                json!({ "status": ActionStatus::Active, "owner_id": owner }),
            );
        tx.record_event(&event, now).await?;
        if ctx.step.notify {
            let notice = ctx
                .event("notification", SYSTEM)
                .reason(format!("step {} ({}) is on your Engage view", ctx.action.step + 1, ctx.step.name))
                .change(json!(null), json!({ "user_id": owner }));
            tx.record_event(&notice, now).await?;
        }
        Ok(tx.commit().await?)
    }

    /// Skips an action and moves the enrollment on.
    pub(crate) async fn skip_and_advance(
        &self,
        ctx: &Context,
        lease: Option<&str>,
        completion: ActionCompletion,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.store().begin().await?;
        tx.complete_action(&ctx.action.id, lease, &completion, now).await?;
        let event = ctx.event("action.skipped", actor).reason(completion.result.clone().unwrap_or_default()).change(
            json!({ "status": ctx.action.status }),
            json!({ "status": ActionStatus::Skipped, "opt_out": completion.opt_out }),
        );
        tx.record_event(&event, now).await?;
        let mut enrollment = ctx.enrollment.clone();
        self.advance(&mut tx, &mut enrollment, &ctx.sequence, &ctx.version, ctx.action.step, now).await?;
        tx.commit().await?;
        self.wake();
        Ok(())
    }

    /// Applies what a step's plugin answered (SPEC §5), in one transaction.
    pub(crate) async fn finish(
        &self,
        ctx: &Context,
        lease: Option<&str>,
        by: Option<&str>,
        outcome: Outcome,
        report: CallReport,
    ) -> Result<()> {
        match self.finish_alone(ctx, lease, by, outcome, &report).await {
            // What the plugin asked for cannot be written (say, a contact
            // type the account does not have): the step failed.
            Err(EngineError::Invalid(why)) if by.is_none() => {
                let failed = Outcome::Failed { message: why, details: json!({ "kind": "invalid_effect" }) };
                self.finish_alone(ctx, lease, by, failed, &CallReport::default()).await
            }
            other => other,
        }
    }

    async fn finish_alone(
        &self,
        ctx: &Context,
        lease: Option<&str>,
        by: Option<&str>,
        outcome: Outcome,
        report: &CallReport,
    ) -> Result<()> {
        let mut tx = self.store().begin().await?;
        self.apply_outcome(&mut tx, ctx, lease, by, outcome, report).await?;
        tx.commit().await?;
        self.after_outcomes(!report.messages.is_empty());
        Ok(())
    }

    /// Writes a batch of plugin answers in one transaction (group commit).
    /// A lost lease skips its action (nothing of it was written); any other
    /// error rolls the batch back and each answer is written on its own, so
    /// one bad answer never holds up the others.
    pub(crate) async fn finish_batch(&self, batch: Vec<Pending>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let (plans, batch): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (fast_plan(&p, now), p)).partition(|(plan, _)| plan.is_some());
        let plans: Vec<FastPlan> = plans.into_iter().filter_map(|(plan, _)| plan).collect();
        let batch: Vec<Pending> = batch.into_iter().map(|(_, p)| p).collect();
        if !plans.is_empty() {
            self.write_fast(plans, now).await?;
        }
        if batch.is_empty() {
            return Ok(());
        }
        let messages = batch.iter().any(|p| !p.report.messages.is_empty());
        let mut tx = self.store().begin().await?;
        let mut failed = false;
        for p in &batch {
            match self.apply_outcome(&mut tx, &p.ctx, Some(&p.lease), None, p.outcome.clone(), &p.report).await {
                Ok(()) | Err(EngineError::Store(StoreError::LeaseLost(_))) => {}
                Err(error) => {
                    tracing::debug!(action = %p.ctx.action.id, %error, "a batched outcome failed; writing one by one");
                    failed = true;
                    break;
                }
            }
        }
        if !failed {
            match tx.commit().await {
                Ok(()) => {
                    self.after_outcomes(messages);
                    return Ok(());
                }
                Err(error) => tracing::warn!(%error, "a batch of outcomes did not commit; writing one by one"),
            }
        } else {
            drop(tx);
        }
        for p in batch {
            if let Err(error) = self.finish(&p.ctx, Some(&p.lease), None, p.outcome, p.report).await {
                tracing::warn!(action = %p.ctx.action.id, %error, "the outcome was not written; the action is retried when its lease expires");
            }
        }
        Ok(())
    }

    /// Writes the common case set-wise: a batch of automatic actions done
    /// (or skipped by their plugin) with nothing sent or changed, each
    /// moving its enrollment to a next step. Four statements for the whole
    /// batch; an action whose lease was lost is left out of every one.
    async fn write_fast(&self, plans: Vec<FastPlan>, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.store().begin().await?;
        let completions: Vec<BatchCompletion> = plans.iter().map(|p| p.completion.clone()).collect();
        let done: std::collections::HashSet<String> =
            tx.complete_actions(&completions, now).await?.into_iter().collect();
        let plans: Vec<&FastPlan> = plans.iter().filter(|p| done.contains(&p.completion.id)).collect();
        let schedules: Vec<Schedule<'_>> = plans
            .iter()
            .flat_map(|p| p.schedules.iter().map(|(id, due, current)| Schedule { id, due_at: *due, current: *current }))
            .collect();
        tx.schedule_actions(&schedules, now).await?;
        let moving: Vec<_> = plans
            .iter()
            .filter_map(|p| p.next.map(|(step, due)| (p.enrollment_id.as_str(), EnrollmentStatus::Running, step, due)))
            .collect();
        tx.advance_enrollments(&moving, now).await?;
        let ending: Vec<&str> = plans.iter().filter(|p| p.next.is_none()).map(|p| p.enrollment_id.as_str()).collect();
        tx.complete_enrollments(&ending, now).await?;
        let events: Vec<NewEvent> = plans.iter().flat_map(|p| p.events.iter().cloned()).collect();
        tx.record_events(&events, now).await?;
        tx.commit().await?;
        self.after_outcomes(false);
        Ok(())
    }

    fn after_outcomes(&self, messages: bool) {
        if messages {
            self.inner.outbox_wake.notify_one();
        }
        self.wake();
    }

    async fn apply_outcome(
        &self,
        tx: &mut Tx,
        ctx: &Context,
        lease: Option<&str>,
        by: Option<&str>,
        outcome: Outcome,
        report: &CallReport,
    ) -> Result<()> {
        let now = self.now();
        let actor = by.map_or_else(|| format!("plugin:{}", ctx.step.plugin.id), str::to_owned);
        let tx = &mut *tx;
        let mut enrollment = ctx.enrollment.clone();
        match outcome {
            Outcome::Done { result, output } => {
                let spec = ctx.plugin.as_ref().ok().and_then(|p| p.manifest().result(&result).cloned());
                let completion = ActionCompletion {
                    status: ActionStatus::Completed,
                    result: Some(result.clone()),
                    output: Some(output),
                    completed_by: by.map(str::to_owned),
                    opt_out: false,
                    deferral_reason: None,
                };
                tx.complete_action(&ctx.action.id, lease, &completion, now).await?;
                self.apply_effects(tx, ctx, report, &actor, now).await?;
                let event = ctx.event("action.completed", &actor).reason(format!("result `{result}`")).change(
                    json!({ "status": ctx.action.status }),
                    json!({ "status": ActionStatus::Completed, "result": result }),
                );
                tx.record_event(&event, now).await?;
                match spec.filter(|s| s.ends_enrollment) {
                    Some(spec) => {
                        let outcome = match spec.outcome {
                            Some(PluginOutcome::Positive) => EnrollmentOutcome::Positive,
                            Some(PluginOutcome::Negative) => EnrollmentOutcome::Negative,
                            Some(PluginOutcome::Neutral) | None => EnrollmentOutcome::Neutral,
                        };
                        let why = format!("step {} ended with `{result}`", ctx.action.step + 1);
                        self.end_enrollment(
                            tx,
                            &mut enrollment,
                            &ctx.sequence,
                            EnrollmentStatus::Completed,
                            Some(outcome),
                            &actor,
                            &why,
                            now,
                        )
                        .await?;
                    }
                    None => {
                        self.advance(tx, &mut enrollment, &ctx.sequence, &ctx.version, ctx.action.step, now).await?
                    }
                }
            }
            Outcome::Skipped { reason } => {
                let completion = ActionCompletion::skipped(&reason, by, None);
                tx.complete_action(&ctx.action.id, lease, &completion, now).await?;
                self.apply_effects(tx, ctx, report, &actor, now).await?;
                let event = ctx.event("action.skipped", &actor).reason(reason);
                tx.record_event(&event, now).await?;
                self.advance(tx, &mut enrollment, &ctx.sequence, &ctx.version, ctx.action.step, now).await?;
            }
            Outcome::Retry { after, reason } if i64::from(self.config().max_attempts) > ctx.action.attempts + 1 => {
                let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::minutes(1));
                // `confirm_send`: the plugin answered, so the attempt is known.
                tx.reschedule_action(&ctx.action.id, lease, Some(now + after), None, true, now).await?;
                if ctx.action.send_attempted_at.is_none() {
                    tx.count_attempt(&ctx.action.id, now).await?;
                }
                let event = ctx.event("action.retry", &actor).reason(reason).level(Level::Warning);
                tx.record_event(&event, now).await?;
            }
            Outcome::Retry { reason, .. } => {
                let message = format!("gave up after {} attempts: {reason}", ctx.action.attempts + 1);
                self.fail(
                    tx,
                    ctx,
                    &mut enrollment,
                    lease,
                    &actor,
                    message,
                    json!({ "kind": "retries_exhausted" }),
                    now,
                )
                .await?;
            }
            Outcome::Failed { message, details } => {
                self.fail(tx, ctx, &mut enrollment, lease, &actor, message, details, now).await?;
            }
        }
        Ok(())
    }

    /// An automatic step failed: the action keeps the details, the
    /// enrollment pauses with reason `error`, and an error event says why.
    #[expect(clippy::too_many_arguments, reason = "one transaction's worth of context")]
    async fn fail(
        &self,
        tx: &mut Tx,
        ctx: &Context,
        enrollment: &mut Enrollment,
        lease: Option<&str>,
        actor: &str,
        message: String,
        details: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.monitor_failure(tx, ctx, &message, &details, now).await?;
        let output = json!({ "error": message, "details": details });
        tx.fail_action(&ctx.action.id, lease, &output, now).await?;
        let before = json!({ "status": enrollment.status });
        enrollment.status = EnrollmentStatus::Paused;
        enrollment.pause_reason = Some(PauseReason::Error);
        tx.save_enrollment(enrollment, now).await?;
        let event = ctx
            .event("action.failed", actor)
            .reason(message)
            .change(
                before,
                json!({ "status": EnrollmentStatus::Paused, "pause_reason": PauseReason::Error, "details": details }),
            )
            .level(Level::Error);
        tx.record_event(&event, now).await?;
        Ok(())
    }

    /// Writes what the plugin did besides answering: queued messages go to
    /// the outbox, contact changes to the contact.
    async fn apply_effects(
        &self,
        tx: &mut Tx,
        ctx: &Context,
        report: &CallReport,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for message in &report.messages {
            let (channel, key, payload) = match message {
                QueuedMessage::Email { id, .. } => {
                    (stepwise_domain::engagement::Channel::Email, id, serde_json::to_value(message).unwrap_or_default())
                }
                QueuedMessage::Sms { id, .. } => {
                    (stepwise_domain::engagement::Channel::Sms, id, serde_json::to_value(message).unwrap_or_default())
                }
            };
            let new = NewOutboxMessage {
                account_id: ctx.enrollment.account_id.clone(),
                action_id: Some(ctx.action.id.clone()),
                channel,
                payload,
                idempotency_key: key.clone(),
            };
            match tx.enqueue_message(&new, now).await {
                Ok(_) => {}
                // Queued by an earlier attempt of the same action: never twice.
                Err(StoreError::Conflict { constraint, .. }) if constraint == "outbox_idempotency_key_key" => {}
                Err(other) => return Err(other.into()),
            }
        }
        if !report.messages.is_empty() {
            let mut contact = tx.contact(&ctx.enrollment.account_id, &ctx.contact.id).await?;
            contact.last_contacted = Some(now);
            tx.update_contact(&ctx.enrollment.account_id, &contact, now).await?;
        }
        for change in &report.contact_changes {
            let mut contact = tx.contact(&ctx.enrollment.account_id, &ctx.contact.id).await?;
            let before = serde_json::to_value(&contact).unwrap_or_default();
            if let Some(owner) = &change.owner {
                contact.owner_id = owner.clone();
            }
            if let Some(contact_type) = &change.contact_type {
                contact.contact_type = contact_type.clone();
            }
            if let Some(cycle) = &change.sales_cycle {
                contact.sales_cycle = Some(cycle.clone());
            }
            for (name, value) in &change.attributes {
                contact.attributes.insert(name.clone(), value.clone());
            }
            tx.update_contact(&ctx.enrollment.account_id, &contact, now).await?;
            let event = NewEvent {
                enrollment_id: Some(ctx.enrollment.id.clone()),
                action_id: Some(ctx.action.id.clone()),
                before: Some(before),
                after: Some(serde_json::to_value(&contact).unwrap_or_default()),
                ..contact_event(&ctx.enrollment.account_id, &contact, "contact.updated", actor)
            };
            tx.record_event(&event, now).await?;
        }
        Ok(())
    }
}

/// An event about a contact, outside any enrollment.
pub fn contact_event(account_id: &str, contact: &Contact, kind: &str, actor: &str) -> NewEvent {
    NewEvent {
        account_id: account_id.to_owned(),
        contact_id: Some(contact.id.clone()),
        company_id: contact.company_id.clone(),
        enrollment_id: None,
        action_id: None,
        kind: kind.to_owned(),
        actor: actor.to_owned(),
        reason: None,
        before: None,
        after: None,
        level: Level::Info,
    }
}
