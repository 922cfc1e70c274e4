//! What the account holds that steps name: its contact types
//! (`read-contact-types`) and its users' display fields (`list-users`).
//! New in contract 0.2.0. Both may be called from `validate`, so that a
//! step can check a name when its sequence is saved.

use crate::__private::bindings::action::stepwise::plugin::account as wit;
use crate::{ContactType, HostError, UserPage};

/// The most users one page holds.
pub const MAX_PAGE: u32 = 100;

/// The account's contact types, in the order the account shows them.
///
/// # Errors
///
/// A [`HostError`]: `denied` without `read-contact-types`, `unavailable`
/// when the host cannot answer now.
///
/// # Examples
///
/// ```no_run
/// use stepwise_plugin_sdk::account;
/// let types = account::contact_types()?;
/// let known = types.iter().any(|t| t.name == "Partners");
/// # Ok::<(), stepwise_plugin_sdk::HostError>(())
/// ```
pub fn contact_types() -> Result<Vec<ContactType>, HostError> {
    wit::contact_types()
}

/// The contact type of `types` named `name` (exactly, as the account shows
/// it), or a sentence naming those there are.
///
/// # Errors
///
/// When no type has that name: ``no contact type `Partner` in this account
/// (it has Clients, Partners, Other)``.
///
/// # Examples
///
/// ```
/// use stepwise_plugin_sdk::{ContactType, account};
/// let types = vec![ContactType { id: "cty_1".into(), name: "Partners".into(), is_default: true }];
/// assert!(account::contact_type_named(&types, "Partners").is_ok());
/// assert_eq!(
///     account::contact_type_named(&types, "Partner").unwrap_err(),
///     "no contact type `Partner` in this account (it has Partners)"
/// );
/// ```
pub fn contact_type_named<'a>(types: &'a [ContactType], name: &str) -> Result<&'a ContactType, String> {
    types.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        format!("no contact type `{name}` in this account (it has {})", names.join(", "))
    })
}

/// Up to `limit` users of the account ([`MAX_PAGE`] at most), ordered by
/// id, after the user `after` names, from the start when `None`. Pass the
/// page's `next` as `after` for the next page.
///
/// # Errors
///
/// A [`HostError`]: `denied` without `list-users`, `invalid` for a zero
/// limit, `unavailable` when the host cannot answer now.
///
/// # Examples
///
/// ```no_run
/// use stepwise_plugin_sdk::account;
/// let mut after = None;
/// loop {
///     let page = account::list_users(after.as_deref(), account::MAX_PAGE)?;
///     for user in &page.users {
///         // …
///     }
///     match page.next {
///         Some(next) => after = Some(next),
///         None => break,
///     }
/// }
/// # Ok::<(), stepwise_plugin_sdk::HostError>(())
/// ```
pub fn list_users(after: Option<&str>, limit: u32) -> Result<UserPage, HostError> {
    wit::list_users(after, limit)
}
