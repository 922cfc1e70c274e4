//! The `proposal-paid` criteria predicate, an add-on: it holds once the
//! contact's proposal is paid, as a contact attribute records.
//!
//! It is not built into the host. An admin uploads the component at run
//! time (`POST /v1/plugins`), enables it for the account, and uses it as a
//! step's `hold` criterion: the step waits until the attribute says paid.
//!
//! Reading the attribute is a pure function of the contact, so it is
//! unit-tested natively.

use stepwise_plugin_sdk::prelude::*;

/// The attribute read unless the config names another.
pub const DEFAULT_ATTRIBUTE: &str = "proposal_paid";

/// The predicate's configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The contact attribute that records payment; `proposal_paid` unless set.
    #[serde(default = "default_attribute")]
    pub attribute: String,
}

fn default_attribute() -> String {
    DEFAULT_ATTRIBUTE.to_owned()
}

/// The predicate.
#[derive(Debug)]
pub struct ProposalPaid;

impl Predicate for ProposalPaid {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::predicate("proposal-paid", "Proposal paid").description(
            "holds once the contact's proposal is paid: the attribute `proposal_paid` (or the one configured) is \
             true, \"true\", \"yes\" or \"1\"",
        )
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        let name = &config.attribute;
        if name.trim().is_empty() {
            vec![ConfigProblem::new("/attribute", "must not be empty")]
        } else if name.trim() != name {
            vec![ConfigProblem::new("/attribute", format!("`{name}` has leading or trailing spaces"))]
        } else {
            Vec::new()
        }
    }

    fn evaluate(_: &StepContext, config: Config, subject: &Subject) -> Result<bool, String> {
        let value = subject.contact.attributes.iter().find(|a| a.name == config.attribute).map(|a| &a.value);
        is_paid(&config.attribute, value)
    }
}

/// Whether the attribute `name`, with `value` (`None`: the contact lacks
/// it), says the proposal is paid.
///
/// A missing attribute is not paid yet. A flag is read as is; text is
/// `true`/`yes`/`1` or `false`/`no`/`0` (any case, surrounding spaces
/// ignored; blank text is not paid); a number is `1` or `0`.
///
/// # Errors
///
/// Any other value: the attribute holds something this predicate cannot
/// read, which the engine reports instead of guessing.
pub fn is_paid(name: &str, value: Option<&AttributeValue>) -> Result<bool, String> {
    const TRUE: [&str; 3] = ["true", "yes", "1"];
    const FALSE: [&str; 4] = ["false", "no", "0", ""];
    match value {
        None => Ok(false),
        Some(AttributeValue::Boolean(flag)) => Ok(*flag),
        Some(AttributeValue::Text(text)) => {
            let word = text.trim();
            if TRUE.iter().any(|t| word.eq_ignore_ascii_case(t)) {
                Ok(true)
            } else if FALSE.iter().any(|f| word.eq_ignore_ascii_case(f)) {
                Ok(false)
            } else {
                Err(format!(
                    "attribute `{name}` is the text {text:?}; expected true/false, yes/no or 1/0 (or a boolean)"
                ))
            }
        }
        Some(AttributeValue::Number(n)) if *n == 1.0 => Ok(true),
        Some(AttributeValue::Number(n)) if *n == 0.0 => Ok(false),
        Some(AttributeValue::Number(n)) => {
            Err(format!("attribute `{name}` is the number {n}; expected 1 or 0 (or a boolean)"))
        }
    }
}

stepwise_plugin_sdk::export_predicate!(ProposalPaid);

#[cfg(test)]
mod tests {
    use super::*;
    use stepwise_plugin_sdk::parse_config;

    fn text(s: &str) -> AttributeValue {
        AttributeValue::Text(s.to_owned())
    }

    #[test]
    fn a_missing_attribute_is_not_paid_yet() {
        assert_eq!(is_paid("proposal_paid", None), Ok(false));
    }

    #[test]
    fn flags_are_read_as_they_are() {
        assert_eq!(is_paid("proposal_paid", Some(&AttributeValue::Boolean(true))), Ok(true));
        assert_eq!(is_paid("proposal_paid", Some(&AttributeValue::Boolean(false))), Ok(false));
    }

    #[test]
    fn text_is_read_case_insensitively() {
        for yes in ["true", "TRUE", "True", "yes", "Yes", "YES", "1", " yes "] {
            assert_eq!(is_paid("proposal_paid", Some(&text(yes))), Ok(true), "{yes:?}");
        }
        for no in ["false", "FALSE", "no", "No", "0", "", "  "] {
            assert_eq!(is_paid("proposal_paid", Some(&text(no))), Ok(false), "{no:?}");
        }
    }

    #[test]
    fn numbers_are_one_or_zero() {
        assert_eq!(is_paid("proposal_paid", Some(&AttributeValue::Number(1.0))), Ok(true));
        assert_eq!(is_paid("proposal_paid", Some(&AttributeValue::Number(0.0))), Ok(false));
        let error = is_paid("proposal_paid", Some(&AttributeValue::Number(250.0))).unwrap_err();
        assert_eq!(error, "attribute `proposal_paid` is the number 250; expected 1 or 0 (or a boolean)");
    }

    #[test]
    fn unreadable_text_is_an_error_naming_the_attribute_and_value() {
        let error = is_paid("invoice_paid", Some(&text("pending"))).unwrap_err();
        assert_eq!(
            error,
            "attribute `invoice_paid` is the text \"pending\"; expected true/false, yes/no or 1/0 (or a boolean)"
        );
        assert!(is_paid("proposal_paid", Some(&text("yes please"))).is_err());
    }

    #[test]
    fn the_attribute_defaults_to_proposal_paid() {
        let config: Config = parse_config("{}").unwrap();
        assert_eq!(config.attribute, "proposal_paid");
        let config: Config = parse_config(r#"{"attribute": "invoice_paid"}"#).unwrap();
        assert_eq!(config.attribute, "invoice_paid");
        assert!(ProposalPaid::validate(&config).is_empty());
    }

    #[test]
    fn bad_configs_are_problems_at_their_field() {
        let problem = parse_config::<Config>(r#"{"attribute": "x", "threshold": 1}"#).unwrap_err();
        assert!(problem.message.contains("unknown field `threshold`"), "{}", problem.message);
        let problem = parse_config::<Config>(r#"{"attribute": true}"#).unwrap_err();
        assert_eq!(problem.field, "/attribute");
        for (name, message) in [("", "must not be empty"), (" paid", "` paid` has leading or trailing spaces")] {
            let problems = ProposalPaid::validate(&Config { attribute: name.to_owned() });
            assert_eq!(problems.len(), 1, "{name:?}");
            assert_eq!((problems[0].field.as_str(), problems[0].message.as_str()), ("/attribute", message));
        }
    }

    #[test]
    fn the_schema_names_the_one_optional_field_and_its_default() {
        assert_eq!(ProposalPaid::manifest().id(), "proposal-paid");
        let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap();
        assert_eq!(schema["additionalProperties"], false, "{schema}");
        assert_eq!(schema["properties"]["attribute"]["type"], "string", "{schema}");
        assert_eq!(schema["properties"]["attribute"]["default"], "proposal_paid", "{schema}");
        assert!(schema.get("required").is_none(), "{schema}");
    }
}
