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

/// The unknown tokens of every template of `fields` that is set, each given
/// as its field (a JSON Pointer) and template, found in order with `check`
/// (the host's [`problem`], or a stand-in in native unit tests).
///
/// # Examples
///
/// ```
/// use stepwise_plugin_sdk::{ConfigProblem, templates};
///
/// let (title, notes) = (Some("Call {{contact.first_name}}"), None);
/// let fake = |field: &str, template: &str| {
///     template.contains("{{contact.").then(|| ConfigProblem::new(field, "no contact here"))
/// };
/// let problems = templates::problems([("/title", title), ("/notes", notes)], fake);
/// assert_eq!(problems.len(), 1);
/// assert_eq!(problems[0].field, "/title");
/// ```
pub fn problems<'a>(
    fields: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    check: impl Fn(&str, &str) -> Option<ConfigProblem>,
) -> Vec<ConfigProblem> {
    fields.into_iter().filter_map(|(field, template)| check(field, template?)).collect()
}

/// The message for a template at `field` that does not render: `cannot
/// render /title: unknown token …`.
///
/// # Examples
///
/// ```no_run
/// use stepwise_plugin_sdk::templates;
/// let body = templates::render("Hi {{contact.nope}}").map_err(|e| templates::render_error("/body", &e))?;
/// # Ok::<(), String>(())
/// ```
pub fn render_error(field: &str, error: &HostError) -> String {
    format!("cannot render {field}: {}", error.message)
}

/// `render` (the host's [`render`], or a stand-in in native unit tests) as a
/// function of a field and its template, whose errors name the field as
/// [`render_error`] does.
///
/// # Examples
///
/// ```
/// use stepwise_plugin_sdk::{HostError, templates};
///
/// // The rendering of a plugin's to-do item, with the renderer passed in so
/// // that a unit test can pass a stand-in for the host's.
/// fn title(template: &str, render: impl Fn(&str) -> Result<String, HostError>) -> Result<String, String> {
///     let render = templates::by_field(render);
///     render("/title", template)
/// }
///
/// let fake = |t: &str| Ok(t.replace("{{contact.first_name}}", "Ada"));
/// assert_eq!(title("Call {{contact.first_name}}", fake).unwrap(), "Call Ada");
/// ```
pub fn by_field(render: impl Fn(&str) -> Result<String, HostError>) -> impl Fn(&str, &str) -> Result<String, String> {
    move |field, template| render(template).map_err(|error| render_error(field, &error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn fake(template: &str) -> Result<String, HostError> {
        match template {
            "{{nope}}" => Err(HostError { code: ErrorCode::Invalid, message: "unknown token `nope`".into() }),
            other => Ok(other.to_uppercase()),
        }
    }

    #[test]
    fn problems_are_found_in_the_templates_that_are_set() {
        let check = |field: &str, template: &str| {
            template.contains("{{nope}}").then(|| ConfigProblem::new(field, "unknown token `nope`"))
        };
        let fields =
            [("/title", Some("{{nope}}")), ("/body", None), ("/notes", Some("fine")), ("/x", Some("{{nope}}"))];
        let found: Vec<String> = problems(fields, check).into_iter().map(|p| p.field).collect();
        assert_eq!(found, ["/title", "/x"]);
        assert!(problems([("/title", None)], |_, _| panic!("only set templates are checked")).is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let render = by_field(fake);
        assert_eq!(render("/title", "hi").unwrap(), "HI");
        assert_eq!(render("/notes", "{{nope}}").unwrap_err(), "cannot render /notes: unknown token `nope`");
        assert_eq!(render("the body", "{{nope}}").unwrap_err(), "cannot render the body: unknown token `nope`");
    }
}
