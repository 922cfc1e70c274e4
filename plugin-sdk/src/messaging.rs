//! Outgoing email and text messages, queued and delivered by the host.

use crate::__private::bindings::action::stepwise::plugin::messaging as wit;
use crate::HostError;

pub use wit::{Email, Sms};

/// Queues `email`; returns its message id. Needs `send-email`.
///
/// # Errors
///
/// A [`HostError`] when the message cannot be queued or is denied.
///
/// # Examples
///
/// ```no_run
/// use stepwise_plugin_sdk::messaging::{self, Email};
/// let id = messaging::send_email(&Email {
///     to: "ada@example.com".into(),
///     subject: "Hello".into(),
///     text: "Hi Ada".into(),
///     html: None,
/// })?;
/// # Ok::<(), stepwise_plugin_sdk::HostError>(())
/// ```
pub fn send_email(email: &Email) -> Result<String, HostError> {
    wit::send_email(email)
}

/// Queues `sms`; returns its message id. Needs `send-sms`.
///
/// # Errors
///
/// A [`HostError`] when the message cannot be queued or is denied.
pub fn send_sms(sms: &Sms) -> Result<String, HostError> {
    wit::send_sms(sms)
}
