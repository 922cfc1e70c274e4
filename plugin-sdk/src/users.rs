//! Users of the account. Needs `lookup-user`.

use crate::__private::bindings::action::stepwise::plugin::users as wit;
use crate::{HostError, User};

pub use wit::UserRef;

/// Finds a user by id or email; `None` when there is none.
///
/// # Errors
///
/// A [`HostError`] when the lookup is denied.
///
/// # Examples
///
/// ```no_run
/// use stepwise_plugin_sdk::users::{self, UserRef};
/// let user = users::lookup(&UserRef::Email("rep@example.com".into()))?;
/// # Ok::<(), stepwise_plugin_sdk::HostError>(())
/// ```
pub fn lookup(who: &UserRef) -> Result<Option<User>, HostError> {
    wit::lookup_user(who)
}
