//! Tokens such as `{{contact.first_name}}`, rendered by the host for the
//! current contact. Needs the `render-template` capability.

use crate::__private::bindings::action::stepwise::plugin::templates as wit;
use crate::{ConfigProblem, HostError};

/// Renders `template` for the contact, owner and company of the current
/// call.
///
/// # Errors
///
/// A [`HostError`] naming an unknown token, or `denied` without the
/// capability.
///
/// # Examples
///
/// ```no_run
/// let greeting = stepwise_plugin_sdk::templates::render("Hi {{contact.first_name | \"there\"}}")?;
/// # Ok::<(), stepwise_plugin_sdk::HostError>(())
/// ```
pub fn render(template: &str) -> Result<String, HostError> {
    wit::render(template)
}

/// Checks that every token of `template` is known.
///
/// # Errors
///
/// A [`HostError`] naming the first unknown token.
pub fn check(template: &str) -> Result<(), HostError> {
    wit::check(template)
}

/// Checks `template` and turns an unknown token into a problem with `field`,
/// for use in `validate`.
///
/// # Examples
///
/// ```no_run
/// use stepwise_plugin_sdk::templates;
/// let problems: Vec<_> = templates::problem("/subject", "Hello {{contact.nope}}").into_iter().collect();
/// ```
pub fn problem(field: &str, template: &str) -> Option<ConfigProblem> {
    check(template).err().map(|e| ConfigProblem::new(field, e.message))
}
