//! Signing in to the console: users' password hashes, server-side sessions
//! and one-time set-password links. Secrets (a session's cookie, a link's
//! token) are made here, returned once and kept only as SHA-256 hashes.

use super::keys::{hash, random_secret as secret};
use super::{ReadTx, Result, StoreError, Tx, ms, on_tx, time};
use chrono::{DateTime, Utc};
use stepwise_domain::crm::User;

/// A live console session and who it signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The row's id (the hash of the cookie's secret).
    pub id: String,
    /// The account.
    pub account_id: String,
    /// The user, active.
    pub user: User,
    /// The token every form of the session carries.
    pub csrf: String,
    /// When it was last used (to the minute).
    pub last_seen_at: DateTime<Utc>,
    /// When it expires unless used again.
    pub expires_at: DateTime<Utc>,
    /// When it ends whatever its use.
    pub ends_at: DateTime<Utc>,
}

/// Someone who may sign in with a password: an active user and their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The account.
    pub account_id: String,
    /// The user.
    pub user: User,
    /// The argon2id hash (PHC string).
    pub password_hash: String,
}

/// Whom a set-password link is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordLink {
    /// The link's row id (the hash of its token).
    pub id: String,
    /// The account.
    pub account_id: String,
    /// The user.
    pub user: User,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl ReadTx {
    /// The active users with `email` (in any account) who have a password,
    /// oldest account first; at most `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn credentials(&mut self, email: &str, limit: u32) -> Result<Vec<Credentials>> {
        let rows: Vec<(String, String, String)> = on_tx!(self, |c| sqlx::query_as(
            "SELECT u.account_id, u.id, u.password_hash FROM users u JOIN accounts a ON a.id = u.account_id
             WHERE LOWER(u.email) = LOWER($1) AND u.active AND u.password_hash IS NOT NULL
             ORDER BY a.created_at, a.id LIMIT $2"
        )
        .bind(email.trim())
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await?);
        let mut found = Vec::with_capacity(rows.len());
        for (account_id, user_id, password_hash) in rows {
            let user = self.user(&account_id, &user_id).await?;
            found.push(Credentials { account_id, user, password_hash });
        }
        Ok(found)
    }

    /// The password hash of a user of the account, if they have one.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the user is not the account's.
    pub async fn password_hash(&mut self, account_id: &str, user_id: &str) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> =
            on_tx!(self, |c| sqlx::query_as("SELECT password_hash FROM users WHERE account_id = $1 AND id = $2")
                .bind(account_id)
                .bind(user_id)
                .fetch_optional(&mut *c)
                .await?);
        row.map(|(h,)| h).ok_or_else(|| StoreError::NotFound { what: "user", id: user_id.to_owned() })
    }

    /// The live session of a cookie's secret at `now`: not expired, its
    /// user active.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn session(&mut self, secret: &str, now: DateTime<Utc>) -> Result<Option<Session>> {
        let row: Option<(String, String, String, String, i64, i64, i64)> = on_tx!(self, |c| sqlx::query_as(
            "SELECT s.id, s.account_id, s.user_id, s.csrf, s.last_seen_at, s.expires_at, s.ends_at
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = $1 AND s.expires_at > $2 AND s.ends_at > $2 AND u.active"
        )
        .bind(hash(secret))
        .bind(ms(now))
        .fetch_optional(&mut *c)
        .await?);
        let Some((id, account_id, user_id, csrf, last_seen, expires, ends)) = row else { return Ok(None) };
        let user = self.user(&account_id, &user_id).await?;
        Ok(Some(Session {
            id,
            account_id,
            user,
            csrf,
            last_seen_at: time(last_seen)?,
            expires_at: time(expires)?,
            ends_at: time(ends)?,
        }))
    }

    /// The unused, unexpired set-password link of a token at `now`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn password_link(&mut self, token: &str, now: DateTime<Utc>) -> Result<Option<PasswordLink>> {
        let row: Option<(String, String, String, i64)> = on_tx!(self, |c| sqlx::query_as(
            "SELECT l.id, l.account_id, l.user_id, l.expires_at FROM password_links l
             JOIN users u ON u.id = l.user_id
             WHERE l.id = $1 AND l.used_at IS NULL AND l.expires_at > $2 AND u.active"
        )
        .bind(hash(token))
        .bind(ms(now))
        .fetch_optional(&mut *c)
        .await?);
        let Some((id, account_id, user_id, expires)) = row else { return Ok(None) };
        let user = self.user(&account_id, &user_id).await?;
        Ok(Some(PasswordLink { id, account_id, user, expires_at: time(expires)? }))
    }
}

impl Tx {
    /// Sets a user's password hash and ends their sessions and unused
    /// links: a new password signs everyone out.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the user is not the account's.
    pub async fn set_password_hash(
        &mut self,
        account_id: &str,
        user_id: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE users SET password_hash = $3, updated_at = $4 WHERE account_id = $1 AND id = $2"
        )
        .bind(account_id)
        .bind(user_id)
        .bind(password_hash)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound { what: "user", id: user_id.to_owned() });
        }
        self.end_sessions(user_id).await?;
        on_tx!(self, |c| sqlx::query("UPDATE password_links SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .bind(ms(now))
            .execute(&mut *c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Ends every session of a user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn end_sessions(&mut self, user_id: &str) -> Result<u64> {
        Ok(on_tx!(self, |c| sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *c)
            .await?
            .rows_affected()))
    }

    /// Starts a session for a user at `now`: it expires `idle` after its
    /// last use and ends `lifetime` after now. Returns it and the cookie's
    /// secret, which is not kept.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] when the user is not the account's.
    pub async fn create_session(
        &mut self,
        account_id: &str,
        user_id: &str,
        now: DateTime<Utc>,
        idle: chrono::Duration,
        lifetime: chrono::Duration,
    ) -> Result<(Session, String)> {
        let cookie = secret();
        let id = hash(&cookie);
        let csrf = secret();
        let (expires, ends) = (now + idle.min(lifetime), now + lifetime);
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO sessions (id, account_id, user_id, csrf, created_at, last_seen_at, expires_at, ends_at)
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7)"
        )
        .bind(&id)
        .bind(account_id)
        .bind(user_id)
        .bind(&csrf)
        .bind(ms(now))
        .bind(ms(expires))
        .bind(ms(ends))
        .execute(&mut *c)
        .await?
        .rows_affected());
        let user = self.user(account_id, user_id).await?;
        let session = Session {
            id,
            account_id: account_id.to_owned(),
            user,
            csrf,
            last_seen_at: time(ms(now))?,
            expires_at: time(ms(expires))?,
            ends_at: time(ms(ends))?,
        };
        Ok((session, cookie))
    }

    /// Records a session's use at `now`: it expires `idle` later, never
    /// past its end.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn touch_session(&mut self, id: &str, now: DateTime<Utc>, idle: chrono::Duration) -> Result<()> {
        on_tx!(self, |c| sqlx::query(
            "UPDATE sessions SET last_seen_at = $2,
                    expires_at = CASE WHEN $3 < ends_at THEN $3 ELSE ends_at END
             WHERE id = $1"
        )
        .bind(id)
        .bind(ms(now))
        .bind(ms(now + idle))
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Ends a session (sign-out).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn delete_session(&mut self, id: &str) -> Result<()> {
        on_tx!(self, |c| sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Deletes sessions that expired before `now`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn delete_expired_sessions(&mut self, now: DateTime<Utc>) -> Result<u64> {
        Ok(on_tx!(self, |c| sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR ends_at <= $1")
            .bind(ms(now))
            .execute(&mut *c)
            .await?
            .rows_affected()))
    }

    /// Makes a one-time set-password link for a user of the account, valid
    /// for `valid`; earlier unused links of the user stop working. Returns
    /// the link's token, which is not kept.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] when the user is not the account's.
    pub async fn create_password_link(
        &mut self,
        account_id: &str,
        user_id: &str,
        created_by: Option<&str>,
        now: DateTime<Utc>,
        valid: chrono::Duration,
    ) -> Result<String> {
        self.user(account_id, user_id).await?;
        on_tx!(self, |c| sqlx::query("UPDATE password_links SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .bind(ms(now))
            .execute(&mut *c)
            .await?
            .rows_affected());
        let token = secret();
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO password_links (id, account_id, user_id, created_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(hash(&token))
        .bind(account_id)
        .bind(user_id)
        .bind(created_by)
        .bind(ms(now))
        .bind(ms(now + valid))
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(token)
    }

    /// Uses a set-password link: marks it used unless it was already.
    /// Returns whether this call used it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn use_password_link(&mut self, id: &str, now: DateTime<Utc>) -> Result<bool> {
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE password_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND expires_at > $2"
        )
        .bind(id)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(done == 1)
    }
}
