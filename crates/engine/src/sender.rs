//! Sending identities: where an account's emails come from (the shared
//! relay with `Reply-To` the rep, or each rep's own address), a rep's
//! address and name, and the link that confirms the address is theirs.

use chrono::Duration;
use serde_json::json;

use super::{Engine, EngineError, Result};
use stepwise_domain::crm::{User, is_email};
use stepwise_domain::engagement::{AuditAction, DeferralReason, Editor, OutboxChannel, SenderMode};
use stepwise_domain::transport::{EmailPayload, SmtpAccount};
use stepwise_store::{HoldScope, NewAudit, NewOutboxMessage, SenderSmtp, new_id};

/// How long a confirmation link works.
pub const CONFIRMATION_HOURS: i64 = 72;

/// The longest sending name.
const MAX_SENDER_NAME: usize = 200;

/// What a rep asks their emails to come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderIdentity {
    /// The address; their email when `None`.
    pub email: Option<String>,
    /// The name; their name when `None`.
    pub name: Option<String>,
}

impl Engine {
    /// Sets where an account's emails come from. Steps held because their
    /// owner's address is not verified go at once when it is the relay.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] for an unknown account.
    pub async fn set_sender_mode(&self, account_id: &str, mode: SenderMode, editor: &Editor) -> Result<()> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let before = tx.account(account_id).await?;
        tx.set_sender_mode(account_id, mode).await?;
        let after = tx.account(account_id).await?;
        if mode == SenderMode::Relay && before.sender_mode != SenderMode::Relay {
            tx.release_holds(account_id, &[DeferralReason::SenderNotConnected], HoldScope::Account, now).await?;
        }
        let entry = NewAudit::changed(AuditAction::AccountSenderModeChanged, account_id, &before, &after);
        self.commit_audited(tx, account_id, editor, entry).await?;
        self.wake();
        Ok(())
    }

    /// Sets the address and name a user's emails come from. A new address
    /// is not verified until its confirmation link is followed (or an
    /// admin approves it), so the user's automatic email from their own
    /// address waits until then.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidField`] for an address that is not one or a
    /// name too long; [`EngineError::NotFound`].
    pub async fn set_sender_identity(
        &self,
        account_id: &str,
        user_id: &str,
        identity: &SenderIdentity,
        editor: &Editor,
    ) -> Result<User> {
        let email = identity.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
        if let Some(email) = email
            && !is_email(email)
        {
            return Err(EngineError::InvalidField {
                field: "/email".into(),
                message: format!("`{email}` is not an email address"),
            });
        }
        let name = identity.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        if let Some(name) = name
            && (name.chars().count() > MAX_SENDER_NAME || name.contains(['\r', '\n']))
        {
            return Err(EngineError::InvalidField {
                field: "/name".into(),
                message: format!("one line of at most {MAX_SENDER_NAME} characters"),
            });
        }
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let before = tx.user(account_id, user_id).await?;
        let mut user =
            User { sender_email: email.map(str::to_owned), sender_name: name.map(str::to_owned), ..before.clone() };
        if !user.sending_address().eq_ignore_ascii_case(before.sending_address()) {
            user.sender_connected = false;
        }
        tx.update_user(account_id, &user, now).await?;
        let entry = NewAudit::changed(AuditAction::UserUpdated, user_id, &before, &user);
        self.commit_audited(tx, account_id, editor, entry).await?;
        Ok(user)
    }

    /// Sets (or with `None` removes) the user's own SMTP server and login,
    /// which their emails from their own address go through. The password
    /// is kept for the dispatcher alone: never shown, never audited.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidField`] for an empty host or login;
    /// [`EngineError::NotFound`].
    pub async fn set_sender_smtp(
        &self,
        account_id: &str,
        user_id: &str,
        smtp: Option<&SmtpAccount>,
        editor: &Editor,
    ) -> Result<()> {
        if let Some(smtp) = smtp {
            let field =
                |field: &str, message: &str| EngineError::InvalidField { field: field.into(), message: message.into() };
            if smtp.host.trim().is_empty() || smtp.host.contains(char::is_whitespace) {
                return Err(field("/host", "a host name without spaces"));
            }
            if smtp.port == 0 {
                return Err(field("/port", "between 1 and 65535"));
            }
            if smtp.username.trim().is_empty() {
                return Err(field("/username", "must not be empty"));
            }
            if smtp.password.expose().is_empty() {
                return Err(field("/password", "must not be empty"));
            }
        }
        let now = self.now();
        let mut tx = self.store().begin().await?;
        tx.user(account_id, user_id).await?;
        let before = tx.sender_smtp(account_id, user_id).await?.as_ref().map(SenderSmtp::from);
        tx.set_sender_smtp(account_id, user_id, smtp, now).await?;
        let after = smtp.map(SenderSmtp::from);
        let entry =
            NewAudit::changed(AuditAction::UserUpdated, user_id, &json!({ "smtp": before }), &json!({ "smtp": after }));
        self.commit_audited(tx, account_id, editor, entry).await
    }

    /// Emails a user a link that confirms their sending address is theirs
    /// (through the relay, like every email of the host). Returns the
    /// address it went to.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidState`] when the host has no public URL to
    /// put in the link, or the address is verified already.
    pub async fn request_sender_confirmation(&self, account_id: &str, user_id: &str) -> Result<String> {
        let Some(public_url) = self.inner.config.public_url.as_deref() else {
            return Err(EngineError::InvalidState(
                "this host has no public URL (STEPWISE_PUBLIC_URL) for the confirmation link; an admin can \
                 approve the address instead (`sender_connected`)"
                    .into(),
            ));
        };
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let user = tx.user(account_id, user_id).await?;
        if user.sender_connected {
            return Err(EngineError::InvalidState(format!("{} is verified already", user.sending_address())));
        }
        let address = user.sending_address().to_owned();
        let expires = now + Duration::hours(CONFIRMATION_HOURS);
        let token = tx.create_sender_confirmation(account_id, user_id, &address, expires, now).await?;
        let link = format!("{}/sender/{token}", public_url.trim_end_matches('/'));
        let email = EmailPayload {
            to: address.clone(),
            subject: "Confirm your sending address".into(),
            text: format!(
                "{},\n\nFollow this link to confirm that the emails of your sequences may come from {address}:\n\n\
                 {link}\n\nIt works once, for {CONFIRMATION_HOURS} hours. If you did not ask for it, ignore this \
                 email: nothing is sent from your address until it is confirmed.\n",
                user.name
            ),
            ..EmailPayload::default()
        };
        let message = NewOutboxMessage {
            account_id: account_id.to_owned(),
            action_id: None,
            channel: OutboxChannel::Email,
            payload: json!(email),
            idempotency_key: new_id("snd"),
        };
        tx.enqueue_messages(&[message], now).await?;
        tx.commit().await?;
        self.inner.outbox_wake.notify_one();
        self.announce(super::wake::News::Outbox);
        Ok(address)
    }

    /// Follows a confirmation link: the address it was sent to is verified
    /// if it is still the user's sending address, and their held steps go.
    /// Returns the user.
    ///
    /// # Errors
    ///
    /// [`EngineError::Invalid`] for a link that is unknown, used, expired,
    /// or for an address the user no longer sends from.
    pub async fn confirm_sender(&self, token: &str) -> Result<User> {
        let invalid = || EngineError::Invalid("this confirmation link is not valid (used, expired or unknown)".into());
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let (account_id, user_id, email) = tx.take_sender_confirmation(token, now).await?.ok_or_else(invalid)?;
        let before = tx.user(&account_id, &user_id).await?;
        if !before.sending_address().eq_ignore_ascii_case(&email) {
            tx.commit().await?;
            return Err(EngineError::Invalid(format!(
                "this link confirms {email}, which is no longer the sending address of {}",
                before.name
            )));
        }
        let user = User { sender_connected: true, ..before.clone() };
        tx.update_user(&account_id, &user, now).await?;
        tx.release_holds(&account_id, &[DeferralReason::SenderNotConnected], HoldScope::Account, now).await?;
        let entry = NewAudit::changed(AuditAction::UserSenderConfirmed, &user_id, &before, &user);
        self.commit_audited(tx, &account_id, &Editor::user(user_id.clone()), entry).await?;
        self.wake();
        Ok(user)
    }
}
