//! Signing in to the console: passwords (argon2id, hashed off the async
//! threads), sessions that expire when idle and end after a lifetime, and
//! one-time set-password links. API keys are apart ([`Engine::authenticate`]).

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use super::{Engine, EngineError, Result};
use stepwise_domain::engagement::{AuditAction, Editor};
use stepwise_store::{NewAudit, Session};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest password accepted (hashing cost grows with it).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// How many accounts' users with one address a sign-in tries.
const MAX_SIGN_IN_CANDIDATES: u32 = 5;
/// How often a session's use is written.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// How long sessions and links last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// A session unused this long expires.
    pub idle: Duration,
    /// A session ends this long after sign-in, however it is used.
    pub lifetime: Duration,
    /// A set-password link works this long.
    pub link_valid: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(12 * 3600),
            lifetime: Duration::from_secs(7 * 24 * 3600),
            link_valid: Duration::from_secs(72 * 3600),
        }
    }
}

fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Checks a new password's length.
///
/// # Errors
///
/// [`EngineError::Invalid`] naming the rule it breaks.
pub fn check_password(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(EngineError::Invalid(format!(
            "the password has {chars} characters; it needs at least {MIN_PASSWORD_CHARS}"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(EngineError::Invalid(format!(
            "the password has {chars} characters; it may have at most {MAX_PASSWORD_CHARS}"
        )));
    }
    Ok(())
}

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, two
/// passes, one lane) on a blocking thread.
async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(|e| EngineError::Invalid(format!("hashing the password failed: {e}")))?
    .map_err(|e| EngineError::Invalid(format!("hashing the password failed: {e}")))
}

/// Whether `password` matches `stored`, on a blocking thread. An
/// unreadable hash matches nothing.
async fn verify(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password no one knows, verified when an address has
/// no password so that a sign-in takes as long whether or not it exists.
static DECOY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    let unknown = uuid_like();
    Argon2::default().hash_password(unknown.as_bytes(), &salt).map(|h| h.to_string()).unwrap_or_default()
});

/// A random string from the salt generator (the operating system's).
fn uuid_like() -> String {
    SaltString::generate(&mut OsRng).as_str().to_owned()
}

impl Engine {
    /// Sets a user's password (an admin's setting, or the user's own
    /// change); their sessions end. Audited without the password.
    ///
    /// # Errors
    ///
    /// [`EngineError::Invalid`] for a password too short or too long;
    /// [`EngineError::NotFound`] when the user is not the account's.
    pub async fn set_password(&self, account_id: &str, user_id: &str, password: &str, editor: &Editor) -> Result<()> {
        check_password(password)?;
        let hashed = hash(password.to_owned()).await?;
        let mut tx = self.store().begin().await?;
        let user = tx.user(account_id, user_id).await?;
        tx.set_password_hash(account_id, user_id, &hashed, self.now()).await?;
        let note = serde_json::json!({ "id": user.id, "password": "set" });
        let entry = NewAudit::changed(AuditAction::UserPasswordSet, user_id, &serde_json::json!(null), &note);
        tx.audit(account_id, editor, entry, self.now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A user's change of their own password: the current one must match.
    ///
    /// # Errors
    ///
    /// [`EngineError::Invalid`] when the current password does not match
    /// or the new one breaks a rule.
    pub async fn change_password(
        &self,
        account_id: &str,
        user_id: &str,
        current: &str,
        new: &str,
        editor: &Editor,
    ) -> Result<()> {
        let stored = self.read().await?.password_hash(account_id, user_id).await?;
        let matches = match stored {
            Some(stored) => verify(current.to_owned(), stored).await,
            None => false,
        };
        if !matches {
            return Err(EngineError::Invalid("the current password is not right".into()));
        }
        self.set_password(account_id, user_id, new, editor).await
    }

    /// A one-time link for a user to set their password, valid for the
    /// configured time; earlier unused links stop working. Returns the
    /// token the link carries (shown once).
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] when the user is not the account's.
    pub async fn password_link(&self, account_id: &str, user_id: &str, editor: &Editor) -> Result<String> {
        let mut tx = self.store().begin().await?;
        let valid = span(self.inner.config.sessions.link_valid);
        let token = tx.create_password_link(account_id, user_id, Some(&editor.user_id), self.now(), valid).await?;
        let note = serde_json::json!({ "id": user_id, "password": "link made" });
        let entry = NewAudit::changed(AuditAction::UserPasswordSet, user_id, &serde_json::json!(null), &note);
        tx.audit(account_id, editor, entry, self.now()).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Whether a set-password link works now; whose it is.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub async fn password_link_user(&self, token: &str) -> Result<Option<stepwise_store::PasswordLink>> {
        Ok(self.read().await?.password_link(token, self.now()).await?)
    }

    /// Sets a password through a one-time link, which then stops working.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidState`] when the link is unknown, used or
    /// expired; [`EngineError::Invalid`] for a password that breaks a rule.
    pub async fn use_password_link(&self, token: &str, password: &str) -> Result<stepwise_store::PasswordLink> {
        check_password(password)?;
        let gone = || EngineError::InvalidState("this link to set a password is unknown, used or expired".into());
        let link = self.password_link_user(token).await?.ok_or_else(gone)?;
        let hashed = hash(password.to_owned()).await?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        if !tx.use_password_link(&link.id, now).await? {
            return Err(gone());
        }
        tx.set_password_hash(&link.account_id, &link.user.id, &hashed, now).await?;
        let note = serde_json::json!({ "id": link.user.id, "password": "set by link" });
        let entry = NewAudit::changed(AuditAction::UserPasswordSet, &link.user.id, &serde_json::json!(null), &note);
        tx.audit(&link.account_id, &Editor::user(link.user.id.clone()), entry, now).await?;
        tx.commit().await?;
        Ok(link)
    }

    /// Signs in with an address and a password: a new session and the
    /// cookie's secret (shown once), or `None` when they do not match an
    /// active user. Takes about as long either way.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<Option<(Session, String)>> {
        if password.chars().count() > MAX_PASSWORD_CHARS {
            return Ok(None);
        }
        let candidates = self.read().await?.credentials(email, MAX_SIGN_IN_CANDIDATES).await?;
        if candidates.is_empty() {
            let decoy = tokio::task::spawn_blocking(|| DECOY.clone()).await.unwrap_or_default();
            verify(password.to_owned(), decoy).await;
            return Ok(None);
        }
        for candidate in candidates {
            if verify(password.to_owned(), candidate.password_hash.clone()).await {
                let config = self.inner.config.sessions;
                let mut tx = self.store().begin().await?;
                let now = self.now();
                let made = tx
                    .create_session(
                        &candidate.account_id,
                        &candidate.user.id,
                        now,
                        span(config.idle),
                        span(config.lifetime),
                    )
                    .await?;
                tx.delete_expired_sessions(now).await?;
                tx.commit().await?;
                return Ok(Some(made));
            }
        }
        Ok(None)
    }

    /// The live session of a cookie's secret, its use recorded (at most
    /// once a minute) so that it stays alive while used.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>> {
        let now = self.now();
        let Some(mut session) = self.read().await?.session(cookie, now).await? else { return Ok(None) };
        if now - session.last_seen_at >= TOUCH_EVERY {
            let idle = span(self.inner.config.sessions.idle);
            let mut tx = self.store().begin().await?;
            tx.touch_session(&session.id, now, idle).await?;
            tx.commit().await?;
            session.last_seen_at = now;
            session.expires_at = (now + idle).min(session.ends_at);
        }
        Ok(Some(session))
    }

    /// Ends a session (sign-out).
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub async fn sign_out(&self, session_id: &str) -> Result<()> {
        let mut tx = self.store().begin().await?;
        tx.delete_session(session_id).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hashed = hash("correct horse battery".into()).await.unwrap();
        assert!(hashed.starts_with("$argon2id$"), "{hashed}");
        assert!(verify("correct horse battery".into(), hashed.clone()).await);
        assert!(!verify("correct horse battery!".into(), hashed).await);
        assert!(!verify("anything".into(), "not a hash".into()).await);
    }

    #[tokio::test]
    async fn the_decoy_is_a_hash_no_password_matches() {
        assert!(PasswordHash::new(&DECOY).is_ok(), "the decoy parses, so verifying it costs a real hash");
        assert!(!verify(String::new(), DECOY.clone()).await);
    }

    #[test]
    fn passwords_are_checked_for_length() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough pass").is_ok());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
    }
}
