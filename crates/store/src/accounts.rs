//! Accounts and their hierarchy, contact types and users.

use chrono::{DateTime, Utc};

use super::sync::{SyncPage, bind_page};

use super::{ReadTx, Result, StoreError, Tx, fetch_of_account, found, ms, new_id, on_tx, time};
use stepwise_domain::crm::{Role, User};
use stepwise_domain::engagement::{Account, ContactType, DEFAULT_CONTACT_TYPES};

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    name: String,
    parent_id: Option<String>,
    sender_mode: String,
    created_at: i64,
}

impl AccountRow {
    fn into_domain(self) -> Result<Account> {
        Ok(Account {
            id: self.id,
            name: self.name,
            parent_id: self.parent_id,
            sender_mode: self.sender_mode.parse()?,
            created_at: time(self.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ContactTypeRow {
    id: String,
    account_id: String,
    name: String,
    position: i64,
    is_default: bool,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    name: String,
    email: String,
    role: String,
    active: bool,
    delegate: bool,
    timezone: String,
    signature: String,
    sender_connected: bool,
    sender_email: Option<String>,
    sender_name: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// The columns of [`UserRow`].
const USER_COLUMNS: &str = "id, name, email, role, active, delegate, timezone, signature, sender_connected, \
                            sender_email, sender_name, created_at, updated_at";

impl UserRow {
    fn into_domain(self) -> Result<User> {
        Ok(User {
            id: self.id,
            name: self.name,
            email: self.email,
            role: parse_role(&self.role)?,
            active: self.active,
            delegate: self.delegate,
            timezone: self.timezone,
            signature: self.signature,
            sender_connected: self.sender_connected,
            sender_email: self.sender_email,
            sender_name: self.sender_name,
            created_at: Some(time(self.created_at)?),
            updated_at: Some(time(self.updated_at)?),
        })
    }
}

pub(super) fn role_str(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Agent => "agent",
        Role::Viewer => "viewer",
    }
}

fn parse_role(s: &str) -> Result<Role> {
    match s {
        "admin" => Ok(Role::Admin),
        "agent" => Ok(Role::Agent),
        "viewer" => Ok(Role::Viewer),
        other => Err(StoreError::Corrupt(format!("unknown role `{other}`"))),
    }
}

/// Whether `ancestor` is `id` or one of its ancestors in `table` (accounts or
/// companies, both with `id` and `parent_id`). `UNION` rather than `UNION ALL`
/// so that the walk ends even on a cycle that somehow exists.
pub(super) async fn is_self_or_ancestor(tx: &mut Tx, table: Hierarchy, id: &str, ancestor: &str) -> Result<bool> {
    let sql = match table {
        Hierarchy::Accounts => {
            "WITH RECURSIVE up(id, parent_id) AS (
                 SELECT id, parent_id FROM accounts WHERE id = $1
                 UNION SELECT a.id, a.parent_id FROM accounts a JOIN up ON a.id = up.parent_id)
             SELECT COUNT(*) FROM up WHERE id = $2"
        }
        Hierarchy::Companies => {
            "WITH RECURSIVE up(id, parent_id) AS (
                 SELECT id, parent_id FROM companies WHERE id = $1
                 UNION SELECT c.id, c.parent_id FROM companies c JOIN up ON c.id = up.parent_id)
             SELECT COUNT(*) FROM up WHERE id = $2"
        }
    };
    let count: i64 = on_tx!(tx, |c| sqlx::query_scalar(sql).bind(id).bind(ancestor).fetch_one(&mut *c).await?);
    Ok(count > 0)
}

/// The two acyclic hierarchies.
#[derive(Clone, Copy)]
pub(super) enum Hierarchy {
    Accounts,
    Companies,
}

/// Serializes changes to a hierarchy on PostgreSQL, where two concurrent
/// reparentings (A under B, B under A) could each pass the cycle check under
/// READ COMMITTED. SQLite needs nothing: `BEGIN IMMEDIATE` already serializes
/// writers.
pub(super) async fn lock_hierarchy(tx: &mut Tx, key: &str) -> Result<()> {
    if let super::TxInner::Postgres(t) = &mut tx.inner {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(key).execute(&mut **t).await?;
    }
    Ok(())
}

impl ReadTx {
    /// The account `id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn account(&mut self, id: &str) -> Result<Account> {
        let row: Option<AccountRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT id, name, parent_id, sender_mode, created_at FROM accounts WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(&mut *c)
        .await?);
        found(row, "account", id)?.into_domain()
    }

    /// The direct sub-accounts of `id`, by name.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn sub_accounts(&mut self, id: &str) -> Result<Vec<Account>> {
        let rows: Vec<AccountRow> = on_tx!(self, |c| {
            sqlx::query_as(
            "SELECT id, name, parent_id, sender_mode, created_at FROM accounts WHERE parent_id = $1 ORDER BY name, id"
        )
        .bind(id)
        .fetch_all(&mut *c)
        .await?
        });
        rows.into_iter().map(AccountRow::into_domain).collect()
    }

    /// The contact types of an account, in display order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn contact_types(&mut self, account_id: &str) -> Result<Vec<ContactType>> {
        let rows: Vec<ContactTypeRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT id, account_id, name, position, is_default FROM contact_types WHERE account_id = $1
             ORDER BY position, id"
        )
        .bind(account_id)
        .fetch_all(&mut *c)
        .await?);
        Ok(rows
            .into_iter()
            .map(|r| ContactType {
                id: r.id,
                account_id: r.account_id,
                name: r.name,
                position: r.position,
                default: r.is_default,
            })
            .collect())
    }

    /// The user `id` of `account_id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn user(&mut self, account_id: &str, id: &str) -> Result<User> {
        let row: Option<UserRow> = on_tx!(self, |c| sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE account_id = $1 AND id = $2"
        ))
        .bind(account_id)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?);
        found(row, "user", id)?.into_domain()
    }

    /// The user of `account_id` with this email address, case-insensitive.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn user_by_email(&mut self, account_id: &str, email: &str) -> Result<Option<User>> {
        let row: Option<UserRow> = on_tx!(self, |c| sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE account_id = $1 AND LOWER(email) = LOWER($2)"
        ))
        .bind(account_id)
        .bind(email)
        .fetch_optional(&mut *c)
        .await?);
        row.map(UserRow::into_domain).transpose()
    }

    /// The users of `account_id` with these ids, in no particular order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn users_in(&mut self, account_id: &str, ids: &[String]) -> Result<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let select = format!("SELECT {USER_COLUMNS} FROM users");
        let rows: Vec<UserRow> = fetch_of_account!(self, &select, "account_id" = account_id, "id" in ids);
        rows.into_iter().map(UserRow::into_domain).collect()
    }

    /// A page of an account's users, in creation order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn users_page(&mut self, account_id: &str, page: &SyncPage<'_>) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE account_id = $1 AND {}", page.clause("", 2));
        let rows: Vec<UserRow> =
            on_tx!(self, |c| bind_page!(sqlx::query_as(&sql).bind(account_id), page).fetch_all(&mut *c).await?);
        rows.into_iter().map(UserRow::into_domain).collect()
    }

    /// Up to `limit` users of an account ordered by id, those after
    /// `after` when given: the pages plugins read.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`]; [`StoreError::Corrupt`] on an unreadable row.
    pub async fn users_after(&mut self, account_id: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<UserRow> = on_tx!(self, |c| sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(account_id)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter().map(UserRow::into_domain).collect()
    }

    /// The users of an account, by name.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn users(&mut self, account_id: &str) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = on_tx!(self, |c| sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE account_id = $1 ORDER BY name, id"
        ))
        .bind(account_id)
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter().map(UserRow::into_domain).collect()
    }
}

impl Tx {
    /// Creates an account under `parent_id`, with the default contact types.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] when the parent does not exist.
    pub async fn create_account(&mut self, name: &str, parent_id: Option<&str>, now: DateTime<Utc>) -> Result<Account> {
        let id = new_id("acc");
        on_tx!(self, |c| sqlx::query("INSERT INTO accounts (id, name, parent_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(name)
            .bind(parent_id)
            .bind(ms(now))
            .execute(&mut *c)
            .await?
            .rows_affected());
        for (position, name) in DEFAULT_CONTACT_TYPES.iter().enumerate() {
            let default = position == DEFAULT_CONTACT_TYPES.len() - 1;
            self.create_contact_type(&id, name, position as i64, default).await?;
        }
        self.account(&id).await
    }

    /// Moves account `id` under `parent_id` (or to the top).
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] when the parent is the account itself or one
    /// of its descendants, or does not exist; [`StoreError::NotFound`].
    pub async fn set_account_parent(&mut self, id: &str, parent_id: Option<&str>) -> Result<()> {
        lock_hierarchy(self, "accounts").await?;
        if let Some(parent) = parent_id
            && is_self_or_ancestor(self, Hierarchy::Accounts, parent, id).await?
        {
            return Err(StoreError::Invalid(format!("account {parent} is {id} or one of its descendants")));
        }
        let done = on_tx!(self, |c| sqlx::query("UPDATE accounts SET parent_id = $2 WHERE id = $1")
            .bind(id)
            .bind(parent_id)
            .execute(&mut *c)
            .await?
            .rows_affected());
        found((done > 0).then_some(()), "account", id)
    }

    /// Adds a contact type to an account.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when the name is taken in the account.
    /// [`StoreError::Conflict`] when the name is taken in the account, or
    /// `default` when the account has a default type.
    pub async fn create_contact_type(
        &mut self,
        account_id: &str,
        name: &str,
        position: i64,
        default: bool,
    ) -> Result<ContactType> {
        let id = new_id("cty");
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO contact_types (id, account_id, name, position, is_default) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(&id)
        .bind(account_id)
        .bind(name)
        .bind(position)
        .bind(default)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(ContactType { id, account_id: account_id.to_owned(), name: name.to_owned(), position, default })
    }

    /// Renames a contact type; its contacts follow, since they reference it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when the name is taken; [`StoreError::NotFound`].
    pub async fn rename_contact_type(
        &mut self,
        account_id: &str,
        id: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let done =
            on_tx!(self, |c| sqlx::query("UPDATE contact_types SET name = $3 WHERE account_id = $1 AND id = $2")
                .bind(account_id)
                .bind(id)
                .bind(name)
                .execute(&mut *c)
                .await?
                .rows_affected());
        found((done > 0).then_some(()), "contact type", id)?;
        // Its contacts now show the new name: a change a sync must see.
        on_tx!(self, |c| sqlx::query(
            "UPDATE contacts SET updated_at = $3 WHERE account_id = $1 AND contact_type_id = $2"
        )
        .bind(account_id)
        .bind(id)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Creates a user in `account_id`; an empty `user.id` gets a new one.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when the email is taken in the account.
    pub async fn create_user(&mut self, account_id: &str, user: &User, now: DateTime<Utc>) -> Result<User> {
        let id = if user.id.is_empty() { new_id("usr") } else { user.id.clone() };
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO users (id, account_id, name, email, role, active, delegate, timezone, signature,
                                sender_connected, sender_email, sender_name, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $13, $11, $11)"
        )
        .bind(&id)
        .bind(account_id)
        .bind(&user.name)
        .bind(&user.email)
        .bind(role_str(user.role))
        .bind(user.active)
        .bind(user.delegate)
        .bind(&user.timezone)
        .bind(&user.signature)
        .bind(user.sender_connected)
        .bind(ms(now))
        .bind(&user.sender_email)
        .bind(&user.sender_name)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(User { id, created_at: Some(now), updated_at: Some(now), ..user.clone() })
    }

    /// Replaces every field of user `user.id` of `account_id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when the new email is taken; [`StoreError::NotFound`].
    pub async fn update_user(&mut self, account_id: &str, user: &User, now: DateTime<Utc>) -> Result<()> {
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE users SET name = $3, email = $4, role = $5, active = $6, delegate = $7, timezone = $8,
                              signature = $9, sender_connected = $10, updated_at = $11, sender_email = $12,
                              sender_name = $13
             WHERE account_id = $1 AND id = $2"
        )
        .bind(account_id)
        .bind(&user.id)
        .bind(&user.name)
        .bind(&user.email)
        .bind(role_str(user.role))
        .bind(user.active)
        .bind(user.delegate)
        .bind(&user.timezone)
        .bind(&user.signature)
        .bind(user.sender_connected)
        .bind(ms(now))
        .bind(&user.sender_email)
        .bind(&user.sender_name)
        .execute(&mut *c)
        .await?
        .rows_affected());
        found((done > 0).then_some(()), "user", &user.id)
    }
}

impl Tx {
    /// Sets where an account's emails come from.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when there is no such account.
    pub async fn set_sender_mode(
        &mut self,
        account_id: &str,
        mode: stepwise_domain::engagement::SenderMode,
    ) -> Result<()> {
        let done = on_tx!(self, |c| sqlx::query("UPDATE accounts SET sender_mode = $2 WHERE id = $1")
            .bind(account_id)
            .bind(mode.as_str())
            .execute(&mut *c)
            .await?
            .rows_affected());
        found((done > 0).then_some(()), "account", account_id)
    }

    /// Makes a link confirming that `email` is `user_id`'s, good until
    /// `expires_at`, and returns its token (kept only as its SHA-256); the
    /// user's earlier links stop working.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn create_sender_confirmation(
        &mut self,
        account_id: &str,
        user_id: &str,
        email: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let token = super::keys::random_secret();
        on_tx!(self, |c| {
            sqlx::query("DELETE FROM sender_confirmations WHERE account_id = $1 AND user_id = $2")
                .bind(account_id)
                .bind(user_id)
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "INSERT INTO sender_confirmations (token_hash, account_id, user_id, email, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(super::keys::hash(&token))
            .bind(account_id)
            .bind(user_id)
            .bind(email)
            .bind(ms(expires_at))
            .bind(ms(now))
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        Ok(token)
    }

    /// Takes the confirmation link of `token`, once: the account, the user
    /// and the address it confirms, unless it is unknown, used or expired.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn take_sender_confirmation(
        &mut self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, String, String)>> {
        let hash = super::keys::hash(token);
        let row: Option<(String, String, String, i64)> = on_tx!(self, |c| {
            let row = sqlx::query_as(
                "SELECT account_id, user_id, email, expires_at FROM sender_confirmations WHERE token_hash = $1",
            )
            .bind(&hash)
            .fetch_optional(&mut *c)
            .await?;
            sqlx::query("DELETE FROM sender_confirmations WHERE token_hash = $1").bind(&hash).execute(&mut *c).await?;
            row
        });
        Ok(row.filter(|(.., expires)| *expires > ms(now)).map(|(a, u, e, _)| (a, u, e)))
    }
}

/// A rep's own SMTP server as clients see it: never the password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct SenderSmtp {
    /// The server's host name.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is secured.
    pub security: stepwise_domain::transport::SmtpSecurity,
    /// The login.
    pub username: String,
}

impl ReadTx {
    /// A rep's own SMTP server and login, password included, for the
    /// dispatcher alone.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn sender_smtp(
        &mut self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<stepwise_domain::transport::SmtpAccount>> {
        let row: Option<(String, i64, String, String, String)> = on_tx!(self, |c| {
            sqlx::query_as(
            "SELECT host, port, security, username, password FROM sender_smtp WHERE account_id = $1 AND user_id = $2"
        )
        .bind(account_id)
        .bind(user_id)
        .fetch_optional(&mut *c)
        .await?
        });
        row.map(|(host, port, security, username, password)| {
            Ok(stepwise_domain::transport::SmtpAccount {
                host,
                port: u16::try_from(port).map_err(|_| StoreError::Corrupt(format!("port {port}")))?,
                security: security.parse().map_err(StoreError::Corrupt)?,
                username,
                password: stepwise_domain::Secret::new(password),
            })
        })
        .transpose()
    }
}

impl Tx {
    /// Sets (or with `None` removes) a rep's own SMTP server and login.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn set_sender_smtp(
        &mut self,
        account_id: &str,
        user_id: &str,
        account: Option<&stepwise_domain::transport::SmtpAccount>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_tx!(self, |c| {
            sqlx::query("DELETE FROM sender_smtp WHERE account_id = $1 AND user_id = $2")
                .bind(account_id)
                .bind(user_id)
                .execute(&mut *c)
                .await?;
            if let Some(a) = account {
                sqlx::query(
                    "INSERT INTO sender_smtp (account_id, user_id, host, port, security, username, password, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(account_id)
                .bind(user_id)
                .bind(&a.host)
                .bind(i64::from(a.port))
                .bind(a.security.as_str())
                .bind(&a.username)
                .bind(a.password.expose())
                .bind(ms(now))
                .execute(&mut *c)
                .await?;
            }
        });
        Ok(())
    }
}

impl From<&stepwise_domain::transport::SmtpAccount> for SenderSmtp {
    fn from(a: &stepwise_domain::transport::SmtpAccount) -> Self {
        SenderSmtp { host: a.host.clone(), port: a.port, security: a.security, username: a.username.clone() }
    }
}
