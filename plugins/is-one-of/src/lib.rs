//! The `is-one-of` criteria predicate: holds when the contact's lead
//! source, contact type or sales cycle is one of a list
//! (`{"field": "lead_source", "values": ["Website", "Referral"]}`).
//!
//! Lists like these are picked from the account's own names, so matching
//! forgives what people do not see: case and surrounding spaces.

use stepwise_plugin_sdk::prelude::*;

/// The most values a list holds.
pub const MAX_VALUES: usize = 500;

/// An is-one-of criterion's configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The contact field to read.
    pub field: ListField,
    /// The values that satisfy the criterion; case and surrounding spaces
    /// are ignored.
    #[schemars(length(min = 1, max = 500))]
    pub values: Vec<String>,
}

/// A contact field holding one of an account's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListField {
    /// Where the lead came from, such as `Website`.
    LeadSource,
    /// The contact type, such as `Clients` or `Partners`.
    ContactType,
    /// The sales cycle, such as `Negotiation`.
    SalesCycle,
}

/// The predicate.
#[derive(Debug)]
pub struct IsOneOf;

impl Predicate for IsOneOf {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::predicate("is-one-of", "Lead source, contact type or sales cycle is one of").description(
            "holds when the contact's lead source, contact type or sales cycle is one of a list of values, ignoring \
             case and surrounding spaces",
        )
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        problems(config)
    }

    fn evaluate(_: &StepContext, config: Config, subject: &Subject) -> Result<bool, String> {
        if let Some(problem) = problems(&config).into_iter().next() {
            return Err(problem.describe());
        }
        Ok(is_one_of(&config, &subject.contact))
    }
}

stepwise_plugin_sdk::export_predicate!(IsOneOf);

/// How values compare: without surrounding spaces, in lower case.
fn key(value: &str) -> String {
    value.trim().to_lowercase()
}

/// Every problem of `config`: an empty or overlong list, blank values and
/// values repeating an earlier one (as compared), each at its pointer.
pub fn problems(config: &Config) -> Vec<ConfigProblem> {
    if config.values.is_empty() {
        return vec![ConfigProblem::new("/values", "needs at least one value")];
    }
    if config.values.len() > MAX_VALUES {
        return vec![ConfigProblem::new("/values", format!("holds at most {MAX_VALUES} values"))];
    }
    let mut problems = Vec::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, value) in config.values.iter().enumerate() {
        let key = key(value);
        if key.is_empty() {
            problems.push(ConfigProblem::new(format!("/values/{i}"), "must not be blank"));
        } else if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            let message = format!("repeats /values/{first} (case and surrounding spaces are ignored)");
            problems.push(ConfigProblem::new(format!("/values/{i}"), message));
        } else {
            seen.push((key, i));
        }
    }
    problems
}

/// Whether the contact's field is one of the values. A contact without a
/// lead source or sales cycle (or a blank one) matches no list.
pub fn is_one_of(config: &Config, contact: &Contact) -> bool {
    let value = match config.field {
        ListField::LeadSource => contact.lead_source.as_deref(),
        ListField::ContactType => Some(contact.contact_type.as_str()),
        ListField::SalesCycle => contact.sales_cycle.as_deref(),
    };
    let Some(value) = value.map(key).filter(|v| !v.is_empty()) else { return false };
    config.values.iter().any(|v| key(v) == value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stepwise_plugin_sdk::{ContactKind, fixtures, parse_config};

    fn ada() -> Contact {
        Contact { kind: ContactKind::Lead, lead_source: Some("Website".into()), ..fixtures::contact() }
    }

    fn config(field: ListField, values: &[&str]) -> Config {
        Config { field, values: values.iter().map(|v| (*v).to_owned()).collect() }
    }

    #[test]
    fn matches_ignoring_case_and_surrounding_spaces() {
        let mut contact = ada();
        assert!(is_one_of(&config(ListField::LeadSource, &["Website", "Referral"]), &contact));
        assert!(is_one_of(&config(ListField::LeadSource, &["referral", " WEBSITE "]), &contact));
        assert!(!is_one_of(&config(ListField::LeadSource, &["Referral", "Web"]), &contact), "whole values only");
        contact.lead_source = Some("  website".into());
        assert!(is_one_of(&config(ListField::LeadSource, &["Website"]), &contact));
        contact.lead_source = Some("Événement".into());
        assert!(is_one_of(&config(ListField::LeadSource, &["événement"]), &contact), "Unicode case folds");
    }

    #[test]
    fn each_field_is_read() {
        let mut contact = ada();
        contact.sales_cycle = Some("Negotiation".into());
        assert!(is_one_of(&config(ListField::ContactType, &["Partners", "clients"]), &contact));
        assert!(!is_one_of(&config(ListField::ContactType, &["Partners"]), &contact));
        assert!(is_one_of(&config(ListField::SalesCycle, &["negotiation"]), &contact));
        assert!(!is_one_of(&config(ListField::SalesCycle, &["Website"]), &contact));
    }

    #[test]
    fn a_missing_or_blank_value_matches_nothing() {
        let mut contact = ada();
        assert!(!is_one_of(&config(ListField::SalesCycle, &["Negotiation"]), &contact), "no sales cycle");
        contact.lead_source = None;
        assert!(!is_one_of(&config(ListField::LeadSource, &["Website"]), &contact));
        contact.lead_source = Some("  ".into());
        assert!(!is_one_of(&config(ListField::LeadSource, &["Website"]), &contact));
    }

    #[test]
    fn problems_name_the_value() {
        let at = |config: &Config| -> Vec<(String, String)> {
            problems(config).into_iter().map(|p| (p.field, p.message)).collect()
        };
        assert_eq!(
            at(&config(ListField::LeadSource, &[])),
            [("/values".to_owned(), "needs at least one value".into())]
        );
        let found = at(&config(ListField::LeadSource, &["Website", " ", "website ", "Event", "EVENT"]));
        assert_eq!(
            found,
            [
                ("/values/1".to_owned(), "must not be blank".to_owned()),
                ("/values/2".to_owned(), "repeats /values/0 (case and surrounding spaces are ignored)".to_owned()),
                ("/values/4".to_owned(), "repeats /values/3 (case and surrounding spaces are ignored)".to_owned()),
            ]
        );
        let many: Vec<String> = (0..=MAX_VALUES).map(|i| format!("source {i}")).collect();
        let found = problems(&Config { field: ListField::LeadSource, values: many });
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].field.as_str(), found[0].message.as_str()), ("/values", "holds at most 500 values"));
        assert!(problems(&config(ListField::SalesCycle, &["Negotiation", "Closed"])).is_empty());
    }

    #[test]
    fn configs_parse_strictly() {
        let problem = parse_config::<Config>(r#"{"field": "owner_id", "values": ["x"]}"#).unwrap_err();
        assert_eq!(problem.field, "/field");
        assert!(problem.message.contains("expected one of `lead_source`, `contact_type`, `sales_cycle`"));
        let problem = parse_config::<Config>(r#"{"field": "lead_source", "values": "Website"}"#).unwrap_err();
        assert_eq!(problem.field, "/values");
        let problem = parse_config::<Config>(r#"{"field": "lead_source", "values": ["Website", 3]}"#).unwrap_err();
        assert_eq!(problem.field, "/values/1");
        let problem = parse_config::<Config>(r#"{"field": "lead_source", "values": [], "any": 1}"#).unwrap_err();
        assert_eq!(problem.field, "/any");
    }

    #[test]
    fn evaluating_a_bad_config_is_an_error_not_false() {
        let context = fixtures::context(0);
        let subject = Subject { contact: ada(), ..fixtures::subject() };
        let error = IsOneOf::evaluate(&context, config(ListField::LeadSource, &[]), &subject).unwrap_err();
        assert_eq!(error, "invalid config at /values: needs at least one value");
        assert_eq!(IsOneOf::evaluate(&context, config(ListField::LeadSource, &["website"]), &subject), Ok(true));
    }

    #[test]
    fn the_schema_names_both_fields() {
        assert_eq!(IsOneOf::manifest().id(), "is-one-of");
        let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap();
        assert_eq!(schema["additionalProperties"], false, "{schema}");
        assert_eq!(schema["required"], json!(["field", "values"]), "{schema}");
        assert_eq!(schema["properties"]["values"]["minItems"], 1, "{schema}");
    }
}
