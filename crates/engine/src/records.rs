//! The account's records as people edit them: companies, contacts, users
//! and their keys, templates, contact types, sub-accounts, plugin settings
//! and sequences. Each edit is one transaction that writes the record and
//! its audit entry together (SPEC §11), so the API, which only reads the
//! store, asks the engine for every change.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::lifecycle::{ENROLL_CHUNK, Target};
use super::process::{EventExt, SYSTEM, contact_event};
use super::{Engine, EngineError, Result};
use stepwise_domain::crm::{Company, Contact, ContactKind, Role, User};
use stepwise_domain::engagement::{
    Account, AuditAction, ContactType, DeferralReason, Editor, Enrollment, EventKind, Level, PlanType, PluginAccount,
    PluginRecord, Sequence, SequenceSettings, SequenceVersion, Step, WebhookEventType,
};
use stepwise_domain::plugin::Manifest;
use stepwise_store::{ApiKey, HoldScope, NewAudit, NewEvent, NewSequence, Store, Template, Tx};

/// A template's editable text.
#[derive(Debug, Clone, Copy)]
pub struct TemplateText<'a> {
    /// Its name, unique in the account.
    pub name: &'a str,
    /// The subject line.
    pub subject: &'a str,
    /// The body.
    pub body: &'a str,
}

/// What may change of a sequence besides its steps; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct SequenceEdit {
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// What it is for.
    pub plan_type: Option<PlanType>,
    /// Settings, replaced whole.
    pub settings: Option<SequenceSettings>,
}

/// A new sub-account and its first admin, whose API key is shown once.
#[derive(Debug, Clone, Serialize)]
pub struct NewAccount {
    /// The account.
    pub account: Account,
    /// Its admin.
    pub admin: User,
    /// The admin's API key; kept only as a hash.
    pub secret: String,
}

/// What [`bootstrap`] made on an empty database.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    /// The account.
    pub account_id: String,
    /// Its admin.
    pub admin: User,
    /// The admin's API key; shown once, kept only as a hash.
    pub secret: String,
    /// The token of the admin's one-time link to set their console
    /// password (`/set-password/{token}`); shown once.
    pub password_token: String,
}

/// On a database with no account: creates one, with an admin user and an
/// API key for them. Does nothing (`None`) when an account exists. Run
/// before the engine starts, by `stepwise serve` and `stepwise admin
/// bootstrap`.
///
/// # Errors
///
/// A store error.
pub async fn bootstrap(store: &Store, now: DateTime<Utc>) -> Result<Option<Bootstrapped>> {
    bootstrap_as(store, DEFAULT_ADMIN_EMAIL, now).await
}

/// The first admin's address unless the operator names one: of the
/// reserved `.localhost` domain, valid where the API checks addresses (a
/// user saved back unchanged is accepted) and plainly a placeholder.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@stepwise.localhost";

/// [`bootstrap`], the admin signing in as `admin_email`.
///
/// # Errors
///
/// [`EngineError::Invalid`] when `admin_email` is not an email address; a
/// store error.
pub async fn bootstrap_as(store: &Store, admin_email: &str, now: DateTime<Utc>) -> Result<Option<Bootstrapped>> {
    if !stepwise_domain::crm::is_email(admin_email) {
        return Err(EngineError::Invalid(format!("the admin's email `{admin_email}` is not an email address")));
    }
    let mut tx = store.begin().await?;
    if tx.account_count().await? > 0 {
        return Ok(None);
    }
    let account = tx.create_account("Default", None, now).await?;
    let admin = User {
        name: "Administrator".into(),
        email: admin_email.trim().to_owned(),
        role: Role::Admin,
        ..User::default()
    };
    let admin = tx.create_user(&account.id, &admin, now).await?;
    let (_, secret) = tx.create_api_key(&account.id, &admin.id, "bootstrap", now).await?;
    let valid = chrono::Duration::from_std(super::SessionConfig::default().link_valid).unwrap_or(chrono::Duration::MAX);
    let password_token = tx.create_password_link(&account.id, &admin.id, None, now, valid).await?;
    tx.commit().await?;
    Ok(Some(Bootstrapped { account_id: account.id, admin, secret, password_token }))
}

/// Replaces every field of a contact and makes the steps held by its
/// unmet criteria due now: every change of a contact (a person's, a
/// plugin's, a signal's) goes through here, so none leaves a held step
/// waiting for its periodic re-check.
pub(crate) async fn save_contact(tx: &mut Tx, account_id: &str, contact: &Contact, now: DateTime<Utc>) -> Result<()> {
    save_contacts(tx, account_id, std::slice::from_ref(contact), now).await
}

/// [`save_contact`] for a set of contacts, a statement for each step.
pub(crate) async fn save_contacts(
    tx: &mut Tx,
    account_id: &str,
    contacts: &[Contact],
    now: DateTime<Utc>,
) -> Result<()> {
    if contacts.is_empty() {
        return Ok(());
    }
    tx.update_contacts(account_id, contacts, now).await?;
    let ids: Vec<String> = contacts.iter().map(|c| c.id.clone()).collect();
    tx.release_holds(account_id, &CONTACT_HOLDS, HoldScope::Contacts(&ids), now).await?;
    Ok(())
}

/// The holds a change of the contact may fix: criteria read the contact,
/// and an email address or a phone number may have been added.
const CONTACT_HOLDS: [DeferralReason; 3] =
    [DeferralReason::CriteriaUnmet, DeferralReason::MissingEmail, DeferralReason::MissingPhone];

/// The holds a change of a user may fix, for the actions they own.
const OWNER_HOLDS: [DeferralReason; 3] =
    [DeferralReason::OwnerInactive, DeferralReason::DelegatedOwner, DeferralReason::SenderNotConnected];

/// The holds a plugin enabled or granted anew may fix: its own steps, and
/// steps whose criteria it evaluates.
const PLUGIN_HOLDS: [DeferralReason; 2] = [DeferralReason::PluginDisabled, DeferralReason::CriteriaUnmet];

impl Engine {
    /// Writes `entry` by `editor`, then commits `tx`.
    pub(crate) async fn commit_audited(
        &self,
        mut tx: Tx,
        account_id: &str,
        editor: &Editor,
        entry: NewAudit<'_>,
    ) -> Result<()> {
        tx.audit(account_id, editor, entry, self.now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates a company.
    ///
    /// # Errors
    ///
    /// [`EngineError::Invalid`] when its parent or owner is not in the account.
    pub async fn create_company(&self, account_id: &str, company: &Company, editor: &Editor) -> Result<Company> {
        let mut tx = self.store().begin().await?;
        let company = tx.create_company(account_id, company, self.now()).await?;
        let entry = NewAudit::created(AuditAction::CompanyCreated, &company.id, &company);
        self.commit_audited(tx, account_id, editor, entry).await?;
        Ok(company)
    }

    /// Replaces a company's name, owner and parent; returns it as saved.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::Invalid`] when the parent
    /// would make a cycle or is not in the account.
    pub async fn update_company(&self, account_id: &str, company: &Company, editor: &Editor) -> Result<Company> {
        let mut tx = self.store().begin().await?;
        let before = tx.company(account_id, &company.id).await?;
        tx.update_company(account_id, company, self.now()).await?;
        let saved = tx.company(account_id, &company.id).await?;
        let entry = NewAudit::changed(AuditAction::CompanyUpdated, &company.id, &before, &saved);
        self.commit_audited(tx, account_id, editor, entry).await?;
        Ok(saved)
    }

    /// Replaces every field of a contact; returns it as saved. The change
    /// is on the contact's timeline as the engine's own changes are, and
    /// steps held for it are checked again at once.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::Invalid`] for an owner,
    /// company or contact type not in the account.
    pub async fn update_contact(&self, account_id: &str, contact: &Contact, editor: &Editor) -> Result<Contact> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let before = tx.contact(account_id, &contact.id).await?;
        save_contact(&mut tx, account_id, contact, now).await?;
        let saved = tx.contact(account_id, &contact.id).await?;
        let event = NewEvent {
            before: Some(serde_json::to_value(&before).unwrap_or_default()),
            after: Some(serde_json::to_value(&saved).unwrap_or_default()),
            ..contact_event(account_id, &saved, EventKind::ContactUpdated, &editor.user_id)
        };
        tx.record_event(&event, now).await?;
        let entry = NewAudit::changed(AuditAction::ContactUpdated, &contact.id, &before, &saved);
        self.commit_audited(tx, account_id, editor, entry).await?;
        self.wake();
        Ok(saved)
    }

    /// Deletes a contact, its enrollments and its history.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`].
    pub async fn delete_contact(&self, account_id: &str, id: &str, editor: &Editor) -> Result<()> {
        let mut tx = self.store().begin().await?;
        let before = tx.contact(account_id, id).await?;
        tx.delete_contact(account_id, id, self.now()).await?;
        self.commit_audited(tx, account_id, editor, NewAudit::deleted(AuditAction::ContactDeleted, id, &before)).await
    }

    /// Creates a user.
    ///
    /// # Errors
    ///
    /// A store error, e.g. a conflict when the email is taken.
    pub async fn create_user(&self, account_id: &str, user: &User, editor: &Editor) -> Result<User> {
        let mut tx = self.store().begin().await?;
        let user = tx.create_user(account_id, user, self.now()).await?;
        let entry = NewAudit::created(AuditAction::UserCreated, &user.id, &user);
        self.commit_audited(tx, account_id, editor, entry).await?;
        Ok(user)
    }

    /// Replaces every field of a user; returns them as saved. Steps waiting
    /// for an owner are looked at again.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; a store error.
    pub async fn update_user(&self, account_id: &str, user: &User, editor: &Editor) -> Result<User> {
        let mut tx = self.store().begin().await?;
        let before = tx.user(account_id, &user.id).await?;
        let now = self.now();
        tx.update_user(account_id, user, now).await?;
        let saved = tx.user(account_id, &user.id).await?;
        let fixes = (saved.active && !before.active)
            || (!saved.delegate && before.delegate)
            || (saved.sender_connected && !before.sender_connected);
        if fixes {
            tx.release_holds(account_id, &OWNER_HOLDS, HoldScope::Account, now).await?;
        }
        let entry = NewAudit::changed(AuditAction::UserUpdated, &user.id, &before, &saved);
        self.commit_audited(tx, account_id, editor, entry).await?;
        self.wake();
        Ok(saved)
    }

    /// Creates an API key for `owner`; the secret is returned here only.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] when the owner is not in the account.
    pub async fn create_api_key(
        &self,
        account_id: &str,
        owner: &str,
        name: &str,
        editor: &Editor,
    ) -> Result<(ApiKey, String)> {
        let mut tx = self.store().begin().await?;
        tx.user(account_id, owner).await?;
        let (key, secret) = tx.create_api_key(account_id, owner, name, self.now()).await?;
        // The key's record, never its secret.
        self.commit_audited(tx, account_id, editor, NewAudit::created(AuditAction::KeyCreated, &key.id, &key)).await?;
        Ok((key, secret))
    }

    /// Revokes a key; it authenticates nothing from now on.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`].
    pub async fn revoke_api_key(&self, account_id: &str, id: &str, editor: &Editor) -> Result<()> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let owner = tx.api_key_owner(account_id, id).await?;
        tx.revoke_api_key(account_id, id, now).await?;
        let revoked = json!({ "id": id, "user_id": owner, "revoked_at": now });
        let entry = NewAudit { action: AuditAction::KeyRevoked, target_id: id, before: None, after: Some(revoked) };
        self.commit_audited(tx, account_id, editor, entry).await
    }

    /// Creates a template.
    ///
    /// # Errors
    ///
    /// A store conflict when the name is taken.
    pub async fn create_template(&self, account_id: &str, text: TemplateText<'_>, editor: &Editor) -> Result<Template> {
        let mut tx = self.store().begin().await?;
        let template = tx.create_template(account_id, text.name, text.subject, text.body, self.now()).await?;
        let entry = NewAudit::created(AuditAction::TemplateCreated, &template.id, &template);
        self.commit_audited(tx, account_id, editor, entry).await?;
        Ok(template)
    }

    /// Replaces a template's text: every step using it sends the new text
    /// from then on, and actions held for legacy merge fields are checked
    /// again at once.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; a store conflict when the name is taken.
    pub async fn update_template(
        &self,
        account_id: &str,
        id: &str,
        text: TemplateText<'_>,
        editor: &Editor,
    ) -> Result<Template> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let before = tx.template(account_id, id).await?;
        let template = Template {
            name: text.name.to_owned(),
            subject: text.subject.to_owned(),
            body: text.body.to_owned(),
            updated_at: now,
            ..before.clone()
        };
        tx.update_template(account_id, &template, now).await?;
        tx.audit(account_id, editor, NewAudit::changed(AuditAction::TemplateUpdated, id, &before, &template), now)
            .await?;
        tx.release_holds(account_id, &[DeferralReason::LegacyMergeSyntax], HoldScope::Account, now).await?;
        tx.commit().await?;
        self.wake();
        Ok(template)
    }

    /// Deletes a template.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`].
    pub async fn delete_template(&self, account_id: &str, id: &str, editor: &Editor) -> Result<()> {
        let mut tx = self.store().begin().await?;
        let before = tx.template(account_id, id).await?;
        tx.delete_template(account_id, id, self.now()).await?;
        self.commit_audited(tx, account_id, editor, NewAudit::deleted(AuditAction::TemplateDeleted, id, &before)).await
    }

    /// Renames a contact type; names are unique in the account, ignoring
    /// case.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::InvalidState`] when another
    /// type has the name.
    pub async fn rename_contact_type(
        &self,
        account_id: &str,
        id: &str,
        name: &str,
        editor: &Editor,
    ) -> Result<ContactType> {
        let mut tx = self.store().begin().await?;
        let types = tx.contact_types(account_id).await?;
        let Some(current) = types.iter().find(|t| t.id == id) else {
            return Err(EngineError::NotFound { what: "contact type", id: id.to_owned() });
        };
        if let Some(taken) = types.iter().find(|t| t.id != id && t.name.to_lowercase() == name.to_lowercase()) {
            return Err(EngineError::InvalidState(format!(
                "the account has a contact type named `{}` already",
                taken.name
            )));
        }
        tx.rename_contact_type(account_id, id, name, self.now()).await?;
        let renamed = ContactType { name: name.to_owned(), ..current.clone() };
        let entry = NewAudit::changed(AuditAction::ContactTypeRenamed, id, current, &renamed);
        self.commit_audited(tx, account_id, editor, entry).await?;
        Ok(renamed)
    }

    /// Creates a sub-account of `parent_id` with its first admin and their
    /// API key, in the parent's audit trail.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn create_sub_account(
        &self,
        parent_id: &str,
        name: &str,
        admin: &User,
        editor: &Editor,
    ) -> Result<NewAccount> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let account = tx.create_account(name, Some(parent_id), now).await?;
        let admin = tx.create_user(&account.id, &User { role: Role::Admin, ..admin.clone() }, now).await?;
        let (_, secret) = tx.create_api_key(&account.id, &admin.id, "first admin", now).await?;
        let made = json!({ "account": account, "admin": admin });
        self.commit_audited(tx, parent_id, editor, NewAudit::created(AuditAction::AccountCreated, &account.id, &made))
            .await?;
        Ok(NewAccount { account, admin, secret })
    }

    /// Stores an uploaded add-on. The store gives a plugin id to its first
    /// uploader; the caller registers the plugin only after this succeeds.
    ///
    /// # Errors
    ///
    /// A store conflict when another account owns the id, or the version
    /// exists with other bytes.
    pub async fn save_add_on(&self, record: &PluginRecord, summary: &impl Serialize, editor: &Editor) -> Result<()> {
        let Some(account_id) = record.uploaded_by.as_deref() else {
            return Err(EngineError::Invalid("an add-on is uploaded by an account".into()));
        };
        let now = self.now();
        let mut tx = self.store().begin().await?;
        tx.save_plugin(record, now).await?;
        self.publish_needs_approval(&mut tx, account_id, record, now).await?;
        let entry = NewAudit::created(AuditAction::PluginUploaded, &record.id, summary);
        self.commit_audited(tx, account_id, editor, entry).await?;
        self.announce(super::wake::News::AddOns);
        Ok(())
    }

    /// Tells subscribers when an uploaded version of a plugin the account
    /// has enabled asks for capabilities an admin has not approved: its
    /// steps are held until an admin approves them.
    async fn publish_needs_approval(
        &self,
        tx: &mut Tx,
        account_id: &str,
        record: &PluginRecord,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(settings) = tx.plugin_account(account_id, &record.id).await? else { return Ok(()) };
        if !settings.enabled {
            return Ok(());
        }
        let manifest: Manifest = serde_json::from_str(&record.manifest)
            .map_err(|e| EngineError::Invalid(format!("the manifest of plugin `{}` does not read: {e}", record.id)))?;
        let unapproved = super::process::unapproved(&manifest.capabilities, &settings);
        if !unapproved.is_empty() {
            let data =
                json!({ "plugin_id": record.id, "version": record.version, "unapproved_capabilities": unapproved });
            tx.publish_event(account_id, WebhookEventType::PluginNeedsApproval, Some(&record.id), data, now).await?;
        }
        Ok(())
    }

    /// Sets whether an account may use a plugin and what it grants it.
    /// Steps held for the plugin are looked at again.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn set_plugin_account(&self, settings: &PluginAccount, editor: &Editor) -> Result<()> {
        let account_id = &settings.account_id;
        let mut tx = self.store().begin().await?;
        let before = tx.plugin_account(account_id, &settings.plugin_id).await?;
        let now = self.now();
        tx.set_plugin_account(settings, now).await?;
        if settings.enabled {
            tx.release_holds(account_id, &PLUGIN_HOLDS, HoldScope::Account, now).await?;
        }
        let entry = NewAudit::changed(AuditAction::PluginAccountChanged, &settings.plugin_id, &before, settings);
        self.commit_audited(tx, account_id, editor, entry).await?;
        self.wake();
        Ok(())
    }

    /// Creates a draft sequence, with version 1 of `steps` when there are
    /// any (already checked by the caller), audited as `action` (created or
    /// imported).
    ///
    /// # Errors
    ///
    /// [`EngineError::Invalid`] when the next sequence of its settings is not
    /// in the account.
    pub async fn create_sequence(
        &self,
        account_id: &str,
        new: &NewSequence,
        steps: &[Step],
        action: AuditAction,
        editor: &Editor,
    ) -> Result<(Sequence, Option<SequenceVersion>)> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let sequence = tx.create_sequence(account_id, new, now).await?;
        let version = if steps.is_empty() {
            None
        } else {
            Some(tx.publish_version(account_id, &sequence.id, steps, Some(&editor.user_id), now).await?)
        };
        let made = json!({ "sequence": sequence, "version": version });
        self.commit_audited(tx, account_id, editor, NewAudit::created(action, &sequence.id, &made)).await?;
        Ok((sequence, version))
    }

    /// Publishes new steps (already checked by the caller). Running
    /// enrollments keep their version; new ones get this one.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`].
    pub async fn publish_version(
        &self,
        account_id: &str,
        sequence_id: &str,
        steps: &[Step],
        editor: &Editor,
    ) -> Result<SequenceVersion> {
        let mut tx = self.store().begin().await?;
        let version = tx.publish_version(account_id, sequence_id, steps, Some(&editor.user_id), self.now()).await?;
        let entry = NewAudit::created(AuditAction::SequencePublished, sequence_id, &version);
        self.commit_audited(tx, account_id, editor, entry).await?;
        Ok(version)
    }

    /// Changes a sequence's name, description, plan type or settings.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`]; [`EngineError::Invalid`] when the next
    /// sequence of new settings is not in the account.
    pub async fn edit_sequence(
        &self,
        account_id: &str,
        id: &str,
        edit: SequenceEdit,
        editor: &Editor,
    ) -> Result<Sequence> {
        let mut tx = self.store().begin().await?;
        let before = tx.sequence(account_id, id).await?;
        let mut sequence = before.clone();
        sequence.name = edit.name.unwrap_or(sequence.name);
        sequence.description = edit.description.unwrap_or(sequence.description);
        sequence.plan_type = edit.plan_type.unwrap_or(sequence.plan_type);
        sequence.settings = edit.settings.unwrap_or(sequence.settings);
        tx.update_sequence(&sequence, self.now()).await?;
        let entry = NewAudit::changed(AuditAction::SequenceEdited, id, &before, &sequence);
        self.commit_audited(tx, account_id, editor, entry).await?;
        Ok(sequence)
    }

    /// Creates a contact; a new lead whose lead source an active sequence
    /// names is enrolled there at once (SPEC §2). Returns the contact and
    /// the enrollments made.
    ///
    /// # Errors
    ///
    /// [`EngineError::Invalid`] when the contact names a contact type,
    /// owner or company the account does not have.
    pub async fn create_contact(
        &self,
        account_id: &str,
        contact: &Contact,
        editor: &Editor,
    ) -> Result<(Contact, Vec<Enrollment>)> {
        let mut created = self.create_contacts(account_id, std::slice::from_ref(contact), editor).await?;
        created.pop().expect("a result per contact")
    }

    /// Creates a batch of contacts (an import) set-wise, a transaction per
    /// thousand: what [`Engine::create_contact`] does for one, with a
    /// statement per table for the lot, and the leads enrolled by lead
    /// source a set per sequence. A result per contact, in order; a bad
    /// contact never stops the others.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] when the store fails; the contacts of the
    /// chunks before stay created.
    pub async fn create_contacts(
        &self,
        account_id: &str,
        contacts: &[Contact],
        editor: &Editor,
    ) -> Result<Vec<Result<(Contact, Vec<Enrollment>)>>> {
        let now = self.now();
        let mut results = Vec::with_capacity(contacts.len());
        for chunk in contacts.chunks(ENROLL_CHUNK) {
            let mut tx = self.store().begin().await?;
            let created = self.create_contacts_in(&mut tx, account_id, chunk, editor, now).await?;
            tx.commit().await?;
            results.extend(created);
        }
        self.wake();
        Ok(results)
    }

    async fn create_contacts_in(
        &self,
        tx: &mut Tx,
        account_id: &str,
        chunk: &[Contact],
        editor: &Editor,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<(Contact, Vec<Enrollment>)>>> {
        let created = tx.create_contacts(account_id, chunk, now).await?;
        let made: Vec<&Contact> = created.iter().filter_map(|c| c.as_ref().ok()).collect();
        let events: Vec<NewEvent> =
            made.iter().map(|c| contact_event(account_id, c, EventKind::ContactCreated, &editor.user_id)).collect();
        tx.record_events(&events, now).await?;
        let entries: Vec<NewAudit<'_>> =
            made.iter().map(|c| NewAudit::created(AuditAction::ContactCreated, &c.id, *c)).collect();
        tx.audit_all(account_id, editor, &entries, now).await?;

        // New leads by lead source, in the order given (drip slots go in
        // that order); each is enrolled by its owner.
        let mut leads: Vec<(&str, Vec<String>)> = Vec::new();
        for c in &made {
            if let (ContactKind::Lead, Some(source)) = (c.kind, &c.lead_source) {
                match leads.iter_mut().find(|(s, _)| s == source) {
                    Some((_, ids)) => ids.push(c.id.clone()),
                    None => leads.push((source, vec![c.id.clone()])),
                }
            }
        }
        let by_id: HashMap<String, Contact> = made.iter().map(|c| (c.id.clone(), (*c).clone())).collect();
        let mut enrolled: HashMap<String, Vec<Enrollment>> = HashMap::new();
        let mut failures = Vec::new();
        for (source, ids) in &leads {
            for sequence in tx.sequences_for_lead_source(account_id, source).await? {
                let target = Target {
                    sequence_id: &sequence.id,
                    initiated_by: None,
                    by_owner: true,
                    event_date: None,
                    known: Some(&by_id),
                };
                let results = match self.enroll_set_in(tx, account_id, &target, ids, SYSTEM, now).await {
                    Ok(results) => results,
                    Err(error @ EngineError::Store(_)) => return Err(error),
                    Err(error) => ids.iter().filter_map(|_| error.of_request().map(Err)).collect(),
                };
                for (id, result) in ids.iter().zip(results) {
                    match result {
                        Ok(enrollment) => enrolled.entry(id.clone()).or_default().push(enrollment),
                        Err(error @ EngineError::Store(_)) => return Err(error),
                        Err(error) => {
                            let Some(contact) = by_id.get(id) else { continue };
                            let why = format!("lead source `{source}` names sequence {}, but: {error}", sequence.id);
                            failures.push(
                                contact_event(account_id, contact, EventKind::EnrollmentAutoFailed, SYSTEM)
                                    .reason(why)
                                    .level(Level::Warning),
                            );
                        }
                    }
                }
            }
        }
        tx.record_events(&failures, now).await?;
        Ok(created
            .into_iter()
            .map(|c| {
                let contact = c?;
                let enrollments = enrolled.remove(&contact.id).unwrap_or_default();
                Ok((contact, enrollments))
            })
            .collect())
    }
}
