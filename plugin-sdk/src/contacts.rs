//! Changes to the current contact. Needs `update-contact` naming every
//! field changed.

use crate::__private::bindings::action::stepwise::plugin::contacts as wit;
use crate::{Contact, HostError};

pub use wit::{ContactUpdate, OwnerChange};

/// Applies `update` to the current contact and returns it as changed.
///
/// # Errors
///
/// A [`HostError`]: `denied` when a field is not granted, `not-found` for an
/// unknown owner.
///
/// # Examples
///
/// ```no_run
/// use stepwise_plugin_sdk::contacts::{self, ContactUpdate};
/// let contact = contacts::update(&ContactUpdate {
///     contact_type: Some("Clients".into()),
///     ..ContactUpdate::default()
/// })?;
/// # Ok::<(), stepwise_plugin_sdk::HostError>(())
/// ```
pub fn update(update: &ContactUpdate) -> Result<Contact, HostError> {
    wit::update_contact(update)
}

#[expect(clippy::derivable_impls, reason = "the type is generated; the derive cannot be added there")]
impl Default for ContactUpdate {
    fn default() -> Self {
        Self { owner: None, contact_type: None, sales_cycle: None, attributes: Vec::new() }
    }
}
