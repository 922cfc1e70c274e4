//! Processing one due action in the order of SPEC §4, and applying what a
//! plugin answered (SPEC §5): the heart of the scheduler.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::attempts::AttemptGate;
use super::checks::{self, Facts};
use super::step_config;
use super::timing;
use super::transition::Answer;
use super::writer::Decided;
use super::{Engine, EngineError, Result};
use stepwise_domain::crm::{Company, Contact, Subject, User};
use stepwise_domain::engagement::{
    Action, Activation, ClaimedAction, ContactType, DeferralReason, Enrollment, EnrollmentStatus, EventKind, Level,
    OnUnmet, OwnerRule, PluginAccount, PluginRef, SenderMode, Sequence, SequenceState, SequenceVersion, Step,
};
use stepwise_plugin_host::types::{Capability, Completion, Outcome as PluginOutcome, StepContext};
use stepwise_plugin_host::{AccountGrant, Directory, Grant, Invocation, Origin, Plugin, UserRef};
use stepwise_store::{NewEvent, ReadTx, Store, StoreError};

/// The capabilities of `asked` an admin has not approved for the account.
pub(crate) fn unapproved<'a>(asked: &'a [Capability], settings: &PluginAccount) -> Vec<&'a str> {
    asked
        .iter()
        .map(Capability::name)
        .filter(|name| !settings.approved_capabilities.iter().any(|a| a == name))
        .collect()
}

/// Everything processing an action looks at, read in one snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
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
    /// The enrollment's actions still to be performed (`future` or
    /// `disabled`; the claimed one among them), by step, as read with the
    /// rest: what moving the enrollment on looks at.
    pub siblings: Vec<Action>,
    /// Where the account's emails come from.
    pub sender_mode: SenderMode,
}

impl Snapshot {
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
            sender_mode: self.sender_mode,
        }
    }

    /// An event about this action's enrollment.
    pub fn event(&self, kind: EventKind, actor: &str) -> NewEvent {
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
            activation: self.step.activation,
            completion,
        }
    }
}

/// Where processing leaves a claimed action.
pub(crate) enum Processed {
    /// Decided, to be written with the batch (`None`: it followed its
    /// enrollment, and that is written).
    Answered(Option<Box<Decided>>),
    /// Too little of its lease is left for its plugin calls: it is given
    /// back for the next claim rather than run late.
    Released {
        /// The action.
        id: String,
        /// Its lease.
        lease: String,
    },
}

/// Where [`Engine::triage`] leaves an action.
enum Triage {
    /// Processed without running its plugin.
    Done(Processed),
    /// Its plugin is to run.
    Run(Box<Run>),
}

/// An action whose plugin is to run, with what running it needs.
struct Run {
    lease: String,
    ctx: Snapshot,
    plugin: Arc<Plugin>,
    /// The voice provider an automatic call goes through.
    voice: Option<Arc<dyn stepwise_domain::transport::Voice>>,
}

/// The distinct values of `items`, in first-seen order.
pub(crate) fn unique<T: Clone + Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(i.clone())).collect()
}

/// An event about an enrollment, to be completed with reason, change and level.
pub(crate) fn enrollment_event(
    enrollment: &Enrollment,
    company_id: Option<String>,
    action_id: Option<&str>,
    kind: EventKind,
    actor: &str,
) -> NewEvent {
    NewEvent {
        account_id: enrollment.account_id.clone(),
        contact_id: Some(enrollment.contact_id.clone()),
        company_id,
        enrollment_id: Some(enrollment.id.clone()),
        action_id: action_id.map(str::to_owned),
        kind,
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

    async fn contact_types(&self, account_id: &str) -> std::result::Result<Vec<ContactType>, String> {
        let mut tx = self.store.begin_read().await.map_err(|e| e.to_string())?;
        tx.contact_types(account_id).await.map_err(|e| e.to_string())
    }

    async fn users_after(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> std::result::Result<Vec<User>, String> {
        let mut tx = self.store.begin_read().await.map_err(|e| e.to_string())?;
        tx.users_after(account_id, after, limit).await.map_err(|e| e.to_string())
    }
}

impl Engine {
    /// Where plugins find the account's users and contact types.
    pub(crate) fn directory(&self) -> Arc<dyn Directory> {
        Arc::new(StoreDirectory { store: self.store().clone() })
    }

    /// Which plugin a step runs and under which grant, or why it cannot run
    /// for the account. Built-in plugins are enabled with what their
    /// manifest declares unless an admin says otherwise; add-ons run only
    /// once an admin enabled them and approved every capability the version
    /// asks for.
    pub(crate) async fn access(
        &self,
        tx: &mut ReadTx,
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
                let unapproved = unapproved(&manifest.capabilities, settings);
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
    pub(crate) async fn load_snapshot(&self, action_id: &str, account: Option<&str>) -> Result<Snapshot> {
        let mut tx = self.store().begin_read().await?;
        let action = tx.action(action_id).await?;
        let enrollment = tx.enrollment(&action.enrollment_id).await?;
        if account.is_some_and(|a| a != enrollment.account_id) {
            return Err(EngineError::NotFound { what: "action", id: action_id.to_owned() });
        }
        let account_id = enrollment.account_id.clone();
        let sequence = tx.sequence_for(&account_id, &enrollment.sequence_id).await?;
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
        let sender_mode = tx.account(&account_id).await?.sender_mode;
        tx.rollback().await?;
        Ok(Snapshot {
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
            sender_mode,
        })
    }

    /// Reads the contexts of a batch of claimed actions with a handful of
    /// queries for the whole batch rather than several per action. An
    /// action whose records cannot be read gets its error.
    pub(crate) async fn load_snapshots(&self, claimed: &[ClaimedAction]) -> Result<Vec<Result<Snapshot>>> {
        let mut tx = self.store().begin_read().await?;
        // The claimed actions are read with the rest of their enrollments'
        // unperformed ones.
        let enrollment_ids: Vec<String> = unique(claimed.iter().map(|c| c.enrollment_id.clone()));
        let enrollments: HashMap<String, Enrollment> =
            tx.enrollments_by_ids(&enrollment_ids).await?.into_iter().map(|e| (e.id.clone(), e)).collect();
        let mut siblings: HashMap<String, Vec<Action>> = HashMap::new();
        let mut actions: HashMap<String, Action> = HashMap::new();
        let claimed_ids: HashSet<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
        for a in tx.unperformed_actions_of(&enrollment_ids).await? {
            if claimed_ids.contains(a.id.as_str()) {
                actions.insert(a.id.clone(), a.clone());
            }
            siblings.entry(a.enrollment_id.clone()).or_default().push(a);
        }
        let mut sequences = HashMap::new();
        let mut contacts = HashMap::new();
        let mut companies = HashMap::new();
        let mut users = HashMap::new();
        let mut settings: HashMap<(String, String), PluginAccount> = HashMap::new();
        let mut sender_modes: HashMap<String, SenderMode> = HashMap::new();
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
            sender_modes.insert(account.clone(), tx.account(account).await?.sender_mode);
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
                let sender_mode = sender_modes.get(&enrollment.account_id).copied().unwrap_or_default();
                Ok(Snapshot {
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
                    sender_mode,
                })
            })
            .collect())
    }

    /// An invocation of the step's plugin for this context.
    pub(crate) fn invocation(
        &self,
        ctx: &Snapshot,
        grant: Arc<AccountGrant>,
        completion: Option<Completion>,
    ) -> Invocation {
        Invocation {
            grant,
            step: ctx.step_context(self.now(), completion),
            subject: ctx.subject(),
            directory: self.directory(),
            effects: None,
        }
    }

    /// Takes one claimed action through the checks of SPEC §4 up to the
    /// point where its plugin would run: either it is answered already
    /// (deferred, skipped, activated), returned decided so that the
    /// scheduler writes a whole batch of answers in one transaction, or it
    /// is to [`Engine::run_plugin`]. `Answered(None)` when the action only followed
    /// its enrollment (ended or paused meanwhile), which is written here.
    async fn triage(&self, claimed: ClaimedAction, ctx: Snapshot) -> Result<Triage> {
        let now = self.now();
        // 0. Its calls (the criteria and the step) must fit in its lease.
        if !self.lease_covers(claimed.lease_expires_at, now, ctx.step.criteria.len() + 1) {
            return Ok(Triage::Done(Processed::Released { id: claimed.id, lease: claimed.lease_token }));
        }
        let lease = Some(claimed.lease_token.clone());
        let answer = |ctx: Snapshot, answer: Answer| -> Result<Triage> {
            Ok(Triage::Done(Processed::Answered(Some(Box::new(self.decided(ctx, lease.clone(), answer))))))
        };

        // The enrollment or the sequence may have changed since the action
        // became due; the action then follows them.
        if !ctx.enrollment.status.is_open() {
            let mut tx = self.store().begin().await?;
            tx.close_open_actions(&ctx.enrollment.id, "enrollment_ended", now).await?;
            tx.commit().await?;
            return Ok(Triage::Done(Processed::Answered(None)));
        }
        if ctx.enrollment.status == EnrollmentStatus::Paused || ctx.sequence.state != SequenceState::Active {
            let mut tx = self.store().begin().await?;
            tx.disable_actions(&ctx.enrollment.id, now).await?;
            tx.commit().await?;
            return Ok(Triage::Done(Processed::Answered(None)));
        }

        // 1. Queued behind a drip limit: parked until a slot frees.
        if ctx.enrollment.status == EnrollmentStatus::Queued {
            let detail = "waiting for a drip slot".into();
            return answer(ctx, Answer::Defer { reason: DeferralReason::Queued, until: None, detail });
        }

        // 2. Requirements, re-evaluated later.
        if let Some(unmet) = checks::first_unmet(&ctx.facts()) {
            let until = Some(now + self.recheck());
            return answer(ctx, Answer::Defer { reason: unmet.reason, until, detail: unmet.detail });
        }
        let Ok(plugin) = ctx.plugin.clone() else { unreachable!("an unusable plugin is an unmet requirement") };

        // 3. Channel opt-out: skipped at once, no criteria needed.
        if checks::opted_out(plugin.manifest().channel, &ctx.contact) {
            let skip = Answer::Skip { result: "opted_out".into(), reason: Some(DeferralReason::OptedOut), by: None };
            return answer(ctx, skip);
        }

        // 4. Criteria. Skip criteria are evaluated once per stay on Engage.
        for criterion in &ctx.step.criteria {
            if criterion.on_unmet == OnUnmet::Skip && ctx.action.skip_criteria_evaluated {
                continue;
            }
            match self.evaluate(&ctx, criterion).await {
                Ok(true) => {}
                Ok(false) if criterion.on_unmet == OnUnmet::Skip => {
                    let reason = Some(DeferralReason::CriteriaUnmet);
                    return answer(ctx, Answer::Skip { result: "criteria_unmet".into(), reason, by: None });
                }
                Ok(false) => {
                    let detail = format!("criterion `{}` does not hold", criterion.plugin.id);
                    let until = Some(now + self.recheck());
                    return answer(ctx, Answer::Defer { reason: DeferralReason::CriteriaUnmet, until, detail });
                }
                Err(why) => {
                    // A criterion that cannot answer holds the action rather
                    // than skipping it: a broken predicate must not silently
                    // drop steps.
                    let detail = format!("criterion `{}` could not be evaluated: {why}", criterion.plugin.id);
                    let until = Some(now + self.recheck());
                    return answer(ctx, Answer::Defer { reason: DeferralReason::CriteriaUnmet, until, detail });
                }
            }
        }

        // 5. Manual: on the owner's Engage view.
        if ctx.step.activation == Activation::Manual {
            return answer(ctx, Answer::Activate);
        }

        // 6. Automatic: business hours, the duplicate-attempt failsafe, then run.
        if let Some(hours) = &ctx.sequence.settings.business_hours {
            match timing::next_opening(hours, now) {
                Ok(None) => {}
                Ok(Some(opening)) => {
                    let detail = format!("the sequence's business hours open again at {opening}");
                    let reason = DeferralReason::OutsideBusinessHours;
                    return answer(ctx, Answer::Defer { reason, until: Some(opening), detail });
                }
                Err(why) => {
                    let detail = format!("the sequence's business hours are invalid: {why}");
                    let (reason, until) = (DeferralReason::OutsideBusinessHours, Some(now + self.recheck()));
                    return answer(ctx, Answer::Defer { reason, until, detail });
                }
            }
        }
        if ctx.action.send_attempted_at.is_some() {
            let detail = "an earlier attempt was never confirmed: skip the action or reschedule it to try again".into();
            return answer(ctx, Answer::Defer { reason: DeferralReason::DuplicateAttempt, until: None, detail });
        }
        // An automatic call goes through the voice provider, when there is one.
        let phone = plugin.manifest().channel == Some(stepwise_plugin_host::types::Channel::Phone);
        let voice = self.voice().filter(|_| phone).cloned();
        Ok(Triage::Run(Box::new(Run { lease: claimed.lease_token, ctx, plugin, voice })))
    }

    /// Runs the plugin of an action [`Engine::triage`] let through. Its
    /// calls go through an [`AttemptGate`]: the first request that may
    /// leave and that a retry would repeat records the attempt first. When
    /// the gate refused (the lease was lost), nothing is answered and the
    /// action is left to its lease.
    async fn run_plugin(&self, run: Run) -> Result<Decided> {
        let Run { lease, mut ctx, plugin, voice } = run;
        let gate = AttemptGate::new(self, &ctx.action.id, &lease);
        let (outcome, report) = match voice {
            Some(voice) => self.place_call(&ctx, &plugin, voice.as_ref(), gate.clone()).await?,
            None => {
                let mut invocation = self.invocation(&ctx, ctx.grant.clone(), None);
                invocation.effects = Some(gate.clone());
                let config = ctx.step.config.to_string();
                match self.registry().runtime().execute(&plugin, invocation, &config).await {
                    Ok(call) => {
                        self.inner.calls.record(&ctx.step.plugin.id, "execute", call.report.wall);
                        (call.value, call.report)
                    }
                    Err(error) => {
                        self.inner.calls.record(&ctx.step.plugin.id, "execute", error.report.wall);
                        let message = error.error.to_string();
                        let details = json!({ "kind": "plugin_error" });
                        (PluginOutcome::Failed { message, details }, *error.report)
                    }
                }
            }
        };
        match gate.outcome() {
            None => {}
            // On record, the attempt was counted: the answer counts no other.
            Some(Ok(())) => ctx.action.send_attempted_at = Some(self.now()),
            Some(Err(why)) => {
                return Err(EngineError::InvalidState(format!("the step's request was held back: {why}")));
            }
        }
        Ok(self.decided(ctx, Some(lease), Answer::Plugin { outcome, report, by: None }))
    }

    /// Takes one claimed action through [`Engine::triage`] and, when its
    /// plugin is to run, [`Engine::run_plugin`].
    pub(crate) async fn process(&self, claimed: ClaimedAction, ctx: Snapshot) -> Result<Processed> {
        match self.triage(claimed, ctx).await? {
            Triage::Done(processed) => Ok(processed),
            Triage::Run(run) => Ok(Processed::Answered(Some(Box::new(self.run_plugin(*run).await?)))),
        }
    }

    fn recheck(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config().recheck_after).unwrap_or(chrono::Duration::minutes(15))
    }

    /// Evaluates a criterion for [`Engine::explain`].
    pub(crate) async fn evaluate_for_explain(
        &self,
        ctx: &Snapshot,
        criterion: &stepwise_domain::engagement::Criterion,
    ) -> std::result::Result<bool, String> {
        self.evaluate(ctx, criterion).await
    }

    /// Evaluates one criterion against the action's subject.
    async fn evaluate(
        &self,
        ctx: &Snapshot,
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
}

/// An event about a contact, outside any enrollment.
pub fn contact_event(account_id: &str, contact: &Contact, kind: EventKind, actor: &str) -> NewEvent {
    NewEvent {
        account_id: account_id.to_owned(),
        contact_id: Some(contact.id.clone()),
        company_id: contact.company_id.clone(),
        enrollment_id: None,
        action_id: None,
        kind,
        actor: actor.to_owned(),
        reason: None,
        before: None,
        after: None,
        level: Level::Info,
    }
}
