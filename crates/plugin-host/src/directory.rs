//! How host calls find the account's users and contact types: the store
//! answers in the server, fixtures answer in the runner.

use stepwise_domain::crm::User;
use stepwise_domain::engagement::{ContactType, DEFAULT_CONTACT_TYPES};

/// How to find a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    /// By identifier.
    Id(String),
    /// By email address, case-insensitive.
    Email(String),
}

/// The most users one `account.list-users` call returns.
pub const MAX_USERS_PER_PAGE: usize = 100;

/// Looks up what an account holds for `users.lookup-user`,
/// `account.contact-types`, `account.list-users` and owner changes through
/// `contacts.update-contact`.
#[async_trait::async_trait]
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// The user of `account_id` that `who` names, if any.
    ///
    /// # Errors
    ///
    /// A message when the directory cannot answer now.
    async fn user(&self, account_id: &str, who: &UserRef) -> Result<Option<User>, String>;

    /// The contact types of `account_id`, in display order.
    ///
    /// # Errors
    ///
    /// A message when the directory cannot answer now.
    async fn contact_types(&self, account_id: &str) -> Result<Vec<ContactType>, String>;

    /// Up to `limit` users of `account_id` ordered by identifier, those
    /// after `after` when given.
    ///
    /// # Errors
    ///
    /// A message when the directory cannot answer now.
    async fn users_after(&self, account_id: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>, String>;
}

/// A directory over fixed lists, for the runner and for tests.
#[derive(Debug, Clone)]
pub struct StaticDirectory {
    users: Vec<User>,
    contact_types: Vec<ContactType>,
}

impl Default for StaticDirectory {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl StaticDirectory {
    /// A directory holding `users` and a new account's contact types
    /// ([`DEFAULT_CONTACT_TYPES`]), whatever the account.
    pub fn new(users: Vec<User>) -> Self {
        Self { users, contact_types: Vec::new() }.with_contact_types(&DEFAULT_CONTACT_TYPES)
    }

    /// The same directory with contact types of these names, in this order,
    /// the last being the default.
    #[must_use]
    pub fn with_contact_types(mut self, names: &[&str]) -> Self {
        let last = names.len().saturating_sub(1);
        self.contact_types = names
            .iter()
            .enumerate()
            .map(|(i, name)| ContactType {
                id: format!("cty_{}", i + 1),
                account_id: String::new(),
                name: (*name).to_owned(),
                position: i64::try_from(i).unwrap_or(i64::MAX),
                default: i == last,
            })
            .collect();
        self
    }
}

#[async_trait::async_trait]
impl Directory for StaticDirectory {
    async fn user(&self, _account_id: &str, who: &UserRef) -> Result<Option<User>, String> {
        Ok(self
            .users
            .iter()
            .find(|u| match who {
                UserRef::Id(id) => &u.id == id,
                UserRef::Email(email) => u.email.eq_ignore_ascii_case(email),
            })
            .cloned())
    }

    async fn contact_types(&self, _account_id: &str) -> Result<Vec<ContactType>, String> {
        Ok(self.contact_types.clone())
    }

    async fn users_after(&self, _account_id: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>, String> {
        let mut users: Vec<&User> = self.users.iter().filter(|u| after.is_none_or(|a| u.id.as_str() > a)).collect();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(users.into_iter().take(limit).cloned().collect())
    }
}
