//! How host calls find users: the store answers in the server, fixtures
//! answer in the runner.

use stepwise_domain::crm::User;

/// How to find a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    /// By identifier.
    Id(String),
    /// By email address, case-insensitive.
    Email(String),
}

/// Looks up users of an account for `users.lookup-user` and for owner
/// changes through `contacts.update-contact`.
#[async_trait::async_trait]
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// The user of `account_id` that `who` names, if any.
    ///
    /// # Errors
    ///
    /// A message when the directory cannot answer now.
    async fn user(&self, account_id: &str, who: &UserRef) -> Result<Option<User>, String>;
}

/// A directory over a fixed list of users, for the runner and for tests.
#[derive(Debug, Clone, Default)]
pub struct StaticDirectory {
    users: Vec<User>,
}

impl StaticDirectory {
    /// A directory holding `users`, whatever the account.
    pub fn new(users: Vec<User>) -> Self {
        Self { users }
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
}
