//! The `field-compare` criteria predicate: holds when a field of the
//! contact, of its company, or one of its attributes compares with a value
//! as the config says (`{"field": "attributes.plan", "op": "eq", "value":
//! "pro"}`).
//!
//! Everything it reads is in the call's subject and context, so it asks for
//! no capability and makes no host call. The rules (types, case, missing
//! fields) are in the README.

use stepwise_plugin_sdk::prelude::*;

mod criterion;
mod field;
mod time;

pub use criterion::{Criterion, MAX_PATTERN, MAX_VALUES};
pub use field::{Field, Found, Type};
pub use time::When;

/// A field-compare criterion's configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The field to read: a contact field (`first_name`, `last_name`,
    /// `email`, `phone`, `kind`, `contact_type`, `lead_source`,
    /// `sales_cycle`, `timezone`, `owner_id`, `company_id`, `last_engaged`,
    /// `last_contacted`, `opt_outs.email`, `opt_outs.sms`,
    /// `opt_outs.phone`), a company field (`company.name`,
    /// `company.owner_id`, `company.parent_id`) or an attribute
    /// (`attributes.<name>`).
    pub field: String,
    /// How to compare.
    pub op: Op,
    /// What to compare with: text, a number, true/false, a time (an RFC 3339
    /// time, a `YYYY-MM-DD` date, or `now`, `now-7d`, `now+2h`), or for
    /// `in` a list of those. Absent for `exists`.
    #[serde(default)]
    #[schemars(with = "Option<ValueSchema>")]
    pub value: Option<serde_json::Value>,
    /// Compare text with its case; by default case is ignored.
    #[serde(default)]
    pub case_sensitive: bool,
}

/// How a field compares with the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal: exactly `eq` negated, so a missing field is not equal.
    Ne,
    /// Less than: a smaller number, an earlier time, text sorting before.
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than: a larger number, a later time, text sorting after.
    Gt,
    /// Greater than or equal.
    Gte,
    /// The text holds the value as a substring.
    Contains,
    /// Equal to one of a list of values.
    In,
    /// The field is present and not blank; takes no value.
    Exists,
    /// The text matches a regular expression (anywhere unless anchored).
    Matches,
}

/// The shape of `value`, for the schema only.
#[derive(JsonSchema)]
#[serde(untagged)]
#[expect(dead_code, reason = "describes the schema; the config keeps the JSON value and checks it field by field")]
enum ValueSchema {
    Scalar(Scalar),
    List(Vec<Scalar>),
}

/// One value.
#[derive(JsonSchema)]
#[serde(untagged)]
#[expect(dead_code, reason = "describes the schema")]
enum Scalar {
    Text(String),
    Number(f64),
    Flag(bool),
}

/// The predicate.
#[derive(Debug)]
pub struct FieldCompare;

impl Predicate for FieldCompare {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::predicate("field-compare", "Field comparison").description(
            "holds when a contact field, a company field or an attribute compares with a value: eq, ne, lt, lte, \
             gt, gte, contains, in, exists or matches",
        )
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        Criterion::compile(config).err().unwrap_or_default()
    }

    fn evaluate(context: &StepContext, config: Config, subject: &Subject) -> Result<bool, String> {
        let criterion = Criterion::compile(&config).map_err(|problems| ConfigProblem::describe_all(&problems))?;
        Ok(criterion.holds(subject, context.now))
    }
}

stepwise_plugin_sdk::export_predicate!(FieldCompare);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use stepwise_plugin_sdk::{ContactKind, fixtures, parse_config};

    /// 2025-01-06T09:00:00Z, a Monday.
    pub const NOW: i64 = 1_736_154_000_000;
    const DAY: i64 = 86_400_000;

    pub fn attribute(name: &str, value: AttributeValue) -> Attribute {
        Attribute { name: name.to_owned(), value }
    }

    /// Ada, a contact of Analytical Engines with a few attributes.
    pub fn ada() -> Subject {
        let contact = Contact { lead_source: Some("Website".into()), ..fixtures::contact() };
        Subject { contact, ..fixtures::subject() }
    }

    fn with_attributes(attributes: &[(&str, AttributeValue)]) -> Subject {
        let mut subject = ada();
        subject.contact.attributes = attributes.iter().map(|(n, v)| attribute(n, v.clone())).collect();
        subject
    }

    fn criterion(config: Value) -> Criterion {
        let config: Config = parse_config(&config.to_string()).expect("parses");
        Criterion::compile(&config).unwrap_or_else(|p| panic!("{p:?}"))
    }

    fn holds(config: Value, subject: &Subject) -> bool {
        criterion(config).holds(subject, NOW)
    }

    /// The problems of a config, as `(field, message)`.
    fn problems(config: Value) -> Vec<(String, String)> {
        match parse_config::<Config>(&config.to_string()) {
            Err(problem) => vec![(problem.field, problem.message)],
            Ok(config) => FieldCompare::validate(&config).into_iter().map(|p| (p.field, p.message)).collect(),
        }
    }

    fn problem_at(config: Value, field: &str, words: &str) {
        let found = problems(config.clone());
        assert!(
            found.iter().any(|(f, m)| f == field && m.contains(words)),
            "{config}: expected {words:?} at {field}, got {found:?}"
        );
    }

    #[test]
    fn text_equality_ignores_case_unless_asked() {
        let subject = with_attributes(&[("plan", AttributeValue::Text("Pro".into()))]);
        assert!(holds(json!({"field": "attributes.plan", "op": "eq", "value": "pro"}), &subject));
        assert!(holds(json!({"field": "attributes.plan", "op": "eq", "value": "PRO"}), &subject));
        assert!(!holds(
            json!({"field": "attributes.plan", "op": "eq", "value": "pro", "case_sensitive": true}),
            &subject
        ));
        assert!(holds(
            json!({"field": "attributes.plan", "op": "eq", "value": "Pro", "case_sensitive": true}),
            &subject
        ));
        assert!(!holds(json!({"field": "attributes.plan", "op": "ne", "value": "pro"}), &subject));
        assert!(holds(json!({"field": "lead_source", "op": "eq", "value": "website"}), &subject));
        assert!(holds(json!({"field": "first_name", "op": "ne", "value": "Grace"}), &subject));
        assert!(holds(json!({"field": "email", "op": "eq", "value": "ADA@example.com"}), &subject));
        // Unicode letters fold too.
        let mut emile = ada();
        emile.contact.first_name = "Émile".into();
        assert!(holds(json!({"field": "first_name", "op": "eq", "value": "émile"}), &emile));
    }

    #[test]
    fn numbers_compare_as_numbers() {
        let subject = with_attributes(&[("seats", AttributeValue::Number(12.0))]);
        let at =
            |op: &str, value: Value| holds(json!({"field": "attributes.seats", "op": op, "value": value}), &subject);
        assert!(at("gt", json!(9)), "12 > 9 as numbers, though \"12\" < \"9\" as text");
        assert!(at("gte", json!(12)));
        assert!(at("lte", json!(12.0)));
        assert!(!at("lt", json!(12)));
        assert!(at("lt", json!(12.5)));
        assert!(at("eq", json!(12)));
        assert!(at("ne", json!(13)));
        assert!(at("in", json!([1, 12, 100])));
        assert!(!at("in", json!([1, 2])));
    }

    #[test]
    fn text_orders_by_code_point_after_folding() {
        let subject = ada();
        assert!(!holds(json!({"field": "last_name", "op": "gt", "value": "lovelace"}), &subject));
        assert!(holds(json!({"field": "last_name", "op": "gte", "value": "lovelace"}), &subject));
        assert!(holds(json!({"field": "last_name", "op": "lt", "value": "m"}), &subject));
        assert!(holds(json!({"field": "last_name", "op": "gt", "value": "K"}), &subject));
        // Case-sensitive: upper case sorts before lower case.
        assert!(holds(json!({"field": "last_name", "op": "lt", "value": "a", "case_sensitive": true}), &subject));
    }

    #[test]
    fn timestamps_compare_as_times_fixed_or_from_now() {
        let mut subject = ada();
        subject.contact.last_contacted = Some(NOW - 10 * DAY);
        let at = |op: &str, value: &str| holds(json!({"field": "last_contacted", "op": op, "value": value}), &subject);
        assert!(at("lt", "now-7d"), "last contacted more than a week ago");
        assert!(!at("gte", "now-7d"));
        assert!(at("gte", "now-2w"));
        assert!(at("gt", "2024-12-27"), "10 days before 2025-01-06T09:00Z is 2024-12-27T09:00Z");
        assert!(!at("gt", "2024-12-28"));
        assert!(at("eq", "2024-12-27T09:00:00Z"));
        assert!(at("eq", "2024-12-27T10:00:00+01:00"), "offsets are honoured");
        assert!(at("lt", "now"));
        // The same criterion, a week later by the call's clock.
        let stale = criterion(json!({"field": "last_contacted", "op": "gte", "value": "now-14d"}));
        assert!(stale.holds(&subject, NOW));
        assert!(!stale.holds(&subject, NOW + 7 * DAY));
    }

    #[test]
    fn attributes_holding_times_as_text_compare_as_times() {
        let subject = with_attributes(&[
            ("renewal", AttributeValue::Text("2025-02-01".into())),
            ("signed", AttributeValue::Text("2024-06-30T12:00:00Z".into())),
            ("note", AttributeValue::Text("call back".into())),
        ]);
        assert!(holds(json!({"field": "attributes.renewal", "op": "lt", "value": "now+30d"}), &subject));
        assert!(!holds(json!({"field": "attributes.renewal", "op": "lt", "value": "now+7d"}), &subject));
        assert!(holds(json!({"field": "attributes.signed", "op": "lt", "value": "2024-07-01"}), &subject));
        assert!(holds(json!({"field": "attributes.renewal", "op": "eq", "value": "2025-02-01T00:00:00Z"}), &subject));
        // Text that is not a time never orders against a time.
        assert!(!holds(json!({"field": "attributes.note", "op": "lt", "value": "now"}), &subject));
        assert!(!holds(json!({"field": "attributes.note", "op": "gte", "value": "now"}), &subject));
    }

    #[test]
    fn a_missing_field_holds_only_for_ne() {
        let mut subject = ada();
        subject.contact.sales_cycle = Some("   ".into());
        let text_ops = [
            ("eq", json!("x")),
            ("lt", json!("x")),
            ("lte", json!("x")),
            ("gt", json!("x")),
            ("gte", json!("x")),
            ("contains", json!("x")),
            ("in", json!(["x"])),
            ("matches", json!(".*")),
        ];
        let time_ops = [
            ("eq", json!("now")),
            ("lt", json!("now")),
            ("lte", json!("now")),
            ("gt", json!("now")),
            ("gte", json!("now")),
            ("in", json!(["now"])),
        ];
        let missing = [
            ("attributes.plan", &text_ops[..], json!("x")),
            ("sales_cycle", &text_ops[..], json!("x")),
            ("company.name", &text_ops[..], json!("x")),
            ("timezone", &text_ops[..], json!("x")),
            ("last_engaged", &time_ops[..], json!("now")),
        ];
        for (field, ops, other) in missing {
            for (op, value) in ops {
                let config = json!({"field": field, "op": op, "value": value});
                assert!(!holds(config.clone(), &subject), "{config}");
            }
            assert!(holds(json!({"field": field, "op": "ne", "value": other}), &subject), "{field} ne");
            assert!(!holds(json!({"field": field, "op": "exists"}), &subject), "{field} exists");
        }
        assert!(holds(json!({"field": "first_name", "op": "exists"}), &subject));
        assert!(holds(json!({"field": "opt_outs.email", "op": "exists"}), &subject), "flags always exist");
    }

    #[test]
    fn a_value_of_another_type_is_false_except_for_ne() {
        let subject = with_attributes(&[
            ("seats", AttributeValue::Text("12".into())),
            ("paid", AttributeValue::Boolean(true)),
            ("score", AttributeValue::Number(7.0)),
        ]);
        // Text is never read as a number: store numbers as JSON numbers.
        assert!(!holds(json!({"field": "attributes.seats", "op": "eq", "value": 12}), &subject));
        assert!(!holds(json!({"field": "attributes.seats", "op": "gt", "value": 1}), &subject));
        assert!(!holds(json!({"field": "attributes.seats", "op": "lte", "value": 100}), &subject));
        assert!(holds(json!({"field": "attributes.seats", "op": "ne", "value": 12}), &subject));
        assert!(holds(json!({"field": "attributes.seats", "op": "eq", "value": "12"}), &subject));
        assert!(!holds(json!({"field": "attributes.score", "op": "eq", "value": "7"}), &subject));
        assert!(!holds(json!({"field": "attributes.score", "op": "contains", "value": "7"}), &subject));
        assert!(!holds(json!({"field": "attributes.score", "op": "matches", "value": "7"}), &subject));
        assert!(holds(json!({"field": "attributes.paid", "op": "eq", "value": true}), &subject));
        assert!(!holds(json!({"field": "attributes.paid", "op": "eq", "value": "true"}), &subject));
        assert!(holds(json!({"field": "attributes.paid", "op": "in", "value": [false, true]}), &subject));
    }

    #[test]
    fn contains_is_a_substring_ignoring_case() {
        let subject = ada();
        assert!(holds(json!({"field": "email", "op": "contains", "value": "@EXAMPLE."}), &subject));
        assert!(!holds(
            json!({"field": "email", "op": "contains", "value": "@EXAMPLE.", "case_sensitive": true}),
            &subject
        ));
        assert!(!holds(json!({"field": "email", "op": "contains", "value": "gmail"}), &subject));
    }

    #[test]
    fn in_holds_for_any_element() {
        let subject = ada();
        assert!(holds(json!({"field": "lead_source", "op": "in", "value": ["Referral", "WEBSITE"]}), &subject));
        assert!(!holds(json!({"field": "lead_source", "op": "in", "value": ["Referral", "Event"]}), &subject));
        assert!(holds(json!({"field": "kind", "op": "in", "value": ["contact"]}), &subject));
        assert!(holds(json!({"field": "kind", "op": "ne", "value": "lead"}), &subject));
        let mut lead = ada();
        lead.contact.kind = ContactKind::Lead;
        assert!(holds(json!({"field": "kind", "op": "eq", "value": "lead"}), &lead));
    }

    #[test]
    fn matches_is_a_regular_expression_anywhere_unless_anchored() {
        let subject = ada();
        assert!(holds(json!({"field": "email", "op": "matches", "value": "@example\\.(com|org)$"}), &subject));
        assert!(holds(json!({"field": "email", "op": "matches", "value": "^ADA@"}), &subject), "case folded");
        assert!(!holds(json!({"field": "email", "op": "matches", "value": "^ADA@", "case_sensitive": true}), &subject));
        assert!(!holds(json!({"field": "email", "op": "matches", "value": "^example"}), &subject));
        assert!(holds(json!({"field": "phone", "op": "matches", "value": "^\\+1\\d{7,}$"}), &subject));
    }

    #[test]
    fn flags_compare_as_flags() {
        let mut subject = ada();
        subject.contact.opt_outs.phone = true;
        assert!(holds(json!({"field": "opt_outs.phone", "op": "eq", "value": true}), &subject));
        assert!(holds(json!({"field": "opt_outs.email", "op": "eq", "value": false}), &subject));
        assert!(holds(json!({"field": "opt_outs.email", "op": "ne", "value": true}), &subject));
    }

    #[test]
    fn company_fields_read_the_company() {
        let mut subject = ada();
        subject.company =
            Some(Company { id: "com_1".into(), name: "Analytical Engines".into(), owner_id: None, parent_id: None });
        assert!(holds(json!({"field": "company.name", "op": "contains", "value": "engines"}), &subject));
        assert!(!holds(json!({"field": "company.owner_id", "op": "exists"}), &subject));
        assert!(holds(json!({"field": "company.owner_id", "op": "ne", "value": "usr_grace"}), &subject));
    }

    #[test]
    fn problems_name_their_field() {
        problem_at(json!({"field": "firstname", "op": "eq", "value": "x"}), "/field", "unknown field `firstname`");
        problem_at(json!({"field": "attributes.", "op": "exists"}), "/field", "names no attribute");
        problem_at(json!({"field": "email", "op": "like", "value": "x"}), "/op", "unknown variant `like`");
        problem_at(
            json!({"field": "email", "op": "eq", "value": "x", "negate": true}),
            "/negate",
            "unknown field `negate`",
        );
        problem_at(json!({"field": "email", "op": "eq"}), "/value", "`eq` needs a value");
        problem_at(json!({"field": "email", "op": "exists", "value": "x"}), "/value", "`exists` takes no value");
        problem_at(json!({"field": "first_name", "op": "gt", "value": 5}), "/value", "first_name is text");
        problem_at(json!({"field": "first_name", "op": "eq", "value": " "}), "/value", "must not be blank");
        problem_at(json!({"field": "first_name", "op": "eq", "value": ["a"]}), "/value", "use `in` for a list");
        problem_at(json!({"field": "first_name", "op": "eq", "value": {"a": 1}}), "/value", "must be text");
        problem_at(json!({"field": "last_engaged", "op": "lt", "value": "last week"}), "/value", "is a time");
        problem_at(json!({"field": "last_engaged", "op": "lt", "value": 1_700_000_000_000_i64}), "/value", "is a time");
        problem_at(json!({"field": "last_engaged", "op": "contains", "value": "2025"}), "/op", "is a time");
        problem_at(json!({"field": "opt_outs.sms", "op": "lt", "value": true}), "/op", "true or false");
        problem_at(json!({"field": "opt_outs.sms", "op": "eq", "value": "yes"}), "/value", "true or false");
        problem_at(json!({"field": "kind", "op": "eq", "value": "prospect"}), "/value", "`lead` or `contact`");
        problem_at(json!({"field": "kind", "op": "matches", "value": "l"}), "/op", "`lead` or `contact`");
        problem_at(json!({"field": "attributes.paid", "op": "gt", "value": true}), "/value", "not true/false");
        problem_at(json!({"field": "email", "op": "contains", "value": ""}), "/value", "not empty");
        problem_at(json!({"field": "email", "op": "contains", "value": 5}), "/value", "takes text");
        problem_at(json!({"field": "email", "op": "in", "value": "x"}), "/value", "takes a list");
        problem_at(json!({"field": "email", "op": "in", "value": []}), "/value", "at least one value");
        problem_at(json!({"field": "email", "op": "in", "value": ["a", 2, ["b"]]}), "/value/1", "email is text");
        problem_at(json!({"field": "email", "op": "in", "value": ["a", 2, ["b"]]}), "/value/2", "not lists");
        problem_at(json!({"field": "email", "op": "matches", "value": "(unclosed"}), "/value", "not a valid regular");
        problem_at(json!({"field": "email", "op": "matches", "value": "\\p{Letter}"}), "/value", "not a valid regular");
        problem_at(
            json!({"field": "email", "op": "matches", "value": "a".repeat(MAX_PATTERN + 1)}),
            "/value",
            "longer",
        );
        problem_at(json!({"field": "email", "op": "matches", "value": ""}), "/value", "not empty");
        let long: Vec<Value> = (0..=MAX_VALUES).map(|i| json!(i.to_string())).collect();
        problem_at(json!({"field": "email", "op": "in", "value": long}), "/value", "at most 1000");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let found = problems(json!({"field": "email", "op": "in", "value": [1, "a", true]}));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["/value/0", "/value/2"], "{found:?}");
        let found = problems(json!({"field": "nope", "op": "exists", "value": 1}));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["/field", "/value"], "{found:?}");
    }

    #[test]
    fn valid_configs_have_no_problems() {
        for config in [
            json!({"field": "attributes.plan", "op": "eq", "value": "pro"}),
            json!({"field": "attributes.seats", "op": "gte", "value": 10}),
            json!({"field": "last_contacted", "op": "lt", "value": "now-7d"}),
            json!({"field": "lead_source", "op": "in", "value": ["Website", "Referral"]}),
            json!({"field": "company.owner_id", "op": "exists"}),
            json!({"field": "company.owner_id", "op": "exists", "value": null}),
            json!({"field": "email", "op": "matches", "value": "@example\\.com$", "case_sensitive": true}),
            json!({"field": "opt_outs.email", "op": "eq", "value": false}),
        ] {
            assert_eq!(problems(config.clone()), [], "{config}");
        }
    }

    #[test]
    fn evaluating_a_bad_config_is_an_error_not_false() {
        let config: Config = parse_config(r#"{"field": "nope", "op": "eq", "value": "x"}"#).unwrap();
        let context = fixtures::context(NOW);
        let error = FieldCompare::evaluate(&context, config, &ada()).unwrap_err();
        assert!(error.starts_with("invalid config: /field: unknown field `nope`"), "{error}");
        let config: Config = parse_config(r#"{"field": "lead_source", "op": "eq", "value": "WEBSITE"}"#).unwrap();
        assert_eq!(FieldCompare::evaluate(&context, config, &ada()), Ok(true));
    }

    #[test]
    fn the_schema_lists_the_operators_and_refuses_unknown_fields() {
        assert_eq!(FieldCompare::manifest().id(), "field-compare");
        let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap();
        assert_eq!(schema["additionalProperties"], false, "{schema}");
        assert_eq!(schema["required"], json!(["field", "op"]), "{schema}");
        let text = schema.to_string();
        for op in ["eq", "ne", "lt", "lte", "gt", "gte", "contains", "in", "exists", "matches"] {
            assert!(text.contains(&format!("\"{op}\"")), "{op} in {schema}");
        }
        assert!(schema["properties"]["value"].is_object(), "{schema}");
    }
}
