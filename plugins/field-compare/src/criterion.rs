//! A config checked and compiled into a test, and the test applied to a
//! subject. Checking and evaluating share [`Criterion::compile`], so a
//! config that saves is exactly a config that evaluates.

use std::cmp::Ordering;

use serde_json::Value;
use stepwise_plugin_sdk::{ConfigProblem, Subject};

use crate::field::{Field, Found, Type};
use crate::time::{self, When};
use crate::{Config, Op};

/// The longest `matches` pattern, in bytes.
pub const MAX_PATTERN: usize = 1_000;
/// The most values an `in` list holds.
pub const MAX_VALUES: usize = 1_000;
/// The compiled size a `matches` pattern may take, in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A checked config, ready to evaluate.
#[derive(Debug)]
pub struct Criterion {
    field: Field,
    test: Test,
    case_sensitive: bool,
}

#[derive(Debug)]
enum Test {
    Exists,
    Compare(Op, Expected),
    In(Vec<Expected>),
    /// The needle, case-folded unless the comparison is case-sensitive.
    Contains(String),
    Matches(regex_lite::Regex),
}

/// One value to compare with, typed by the field it is compared with.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    /// Text, case-folded unless the comparison is case-sensitive.
    Text(String),
    Number(f64),
    Flag(bool),
    Time(When),
}

impl Criterion {
    /// Checks `config` and compiles it.
    ///
    /// # Errors
    ///
    /// Every problem found, each at its field's JSON Pointer (`/field`,
    /// `/op`, `/value`, `/value/2`).
    pub fn compile(config: &Config) -> Result<Criterion, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let field = Field::parse(&config.field).map_err(|message| problems.push(ConfigProblem::new("/field", message)));
        let op = config.op;
        let value = match (op, &config.value) {
            (Op::Exists, Some(_)) => {
                problems.push(ConfigProblem::new("/value", "`exists` takes no value"));
                None
            }
            (Op::Exists, None) => None,
            (_, None) => {
                problems.push(ConfigProblem::new("/value", format!("`{}` needs a value", op.name())));
                None
            }
            (_, Some(value)) => Some(value),
        };
        let Ok(field) = field else { return Err(problems) };
        if let Some(why) = unsupported(op, &field) {
            problems.push(ConfigProblem::new("/op", why));
            return Err(problems);
        }
        let fold = !config.case_sensitive;
        let test = match (op, value) {
            (Op::Exists, _) => Some(Test::Exists),
            (_, None) => None,
            (Op::In, Some(value)) => list(&field, value, fold, &mut problems).map(Test::In),
            (Op::Contains, Some(value)) => match value.as_str() {
                Some(needle) if !needle.is_empty() => Some(Test::Contains(folded(needle, fold))),
                Some(_) => {
                    problems.push(ConfigProblem::new("/value", "`contains` needs text that is not empty"));
                    None
                }
                None => {
                    problems.push(ConfigProblem::new("/value", "`contains` takes text"));
                    None
                }
            },
            (Op::Matches, Some(value)) => pattern(value, fold, &mut problems).map(Test::Matches),
            (_, Some(Value::Array(_))) => {
                let message = format!("`{}` takes one value; use `in` for a list", op.name());
                problems.push(ConfigProblem::new("/value", message));
                None
            }
            (_, Some(value)) => match expected(&field, op, value, fold) {
                Ok(expected) => Some(Test::Compare(op, expected)),
                Err(message) => {
                    problems.push(ConfigProblem::new("/value", message));
                    None
                }
            },
        };
        match test {
            Some(test) if problems.is_empty() => Ok(Criterion { field, test, case_sensitive: config.case_sensitive }),
            _ => Err(problems),
        }
    }

    /// Whether the criterion holds for `subject` at `now` (milliseconds
    /// since the Unix epoch). A missing field holds only for `ne`; a value
    /// of another type than the config's (an attribute holding text where
    /// the config compares numbers) likewise: `ne` is always `eq` negated.
    pub fn holds(&self, subject: &Subject, now: i64) -> bool {
        let found = self.field.read(subject);
        let fold = !self.case_sensitive;
        match &self.test {
            Test::Exists => found != Found::Missing,
            Test::Compare(op, expected) => {
                let order = compare(found, expected, now, fold);
                match op {
                    Op::Eq => order == Some(Ordering::Equal),
                    Op::Ne => order != Some(Ordering::Equal),
                    Op::Lt => order == Some(Ordering::Less),
                    Op::Lte => matches!(order, Some(Ordering::Less | Ordering::Equal)),
                    Op::Gt => order == Some(Ordering::Greater),
                    Op::Gte => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
                    Op::Contains | Op::In | Op::Exists | Op::Matches => false,
                }
            }
            Test::In(values) => values.iter().any(|e| compare(found, e, now, fold) == Some(Ordering::Equal)),
            Test::Contains(needle) => match found {
                Found::Text(text) => folded(text, fold).contains(needle.as_str()),
                _ => false,
            },
            Test::Matches(regex) => match found {
                Found::Text(text) => regex.is_match(text),
                _ => false,
            },
        }
    }
}

impl Op {
    /// The operator as a config writes it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Contains => "contains",
            Op::In => "in",
            Op::Exists => "exists",
            Op::Matches => "matches",
        }
    }

    fn orders(self) -> bool {
        matches!(self, Op::Lt | Op::Lte | Op::Gt | Op::Gte)
    }
}

/// Why `op` cannot apply to `field`, when it cannot.
fn unsupported(op: Op, field: &Field) -> Option<String> {
    let name = field.name();
    let text_only = matches!(op, Op::Contains | Op::Matches);
    match field.ty() {
        Type::Time if text_only => Some(format!("`{}` reads text; {name} is a time", op.name())),
        Type::Flag if text_only || op.orders() => {
            Some(format!("{name} is true or false: use `eq`, `ne`, `in` or `exists`, not `{}`", op.name()))
        }
        Type::Kind if text_only || op.orders() => {
            Some(format!("kind is `lead` or `contact`: use `eq`, `ne`, `in` or `exists`, not `{}`", op.name()))
        }
        _ => None,
    }
}

/// The elements of an `in` list.
fn list(field: &Field, value: &Value, fold: bool, problems: &mut Vec<ConfigProblem>) -> Option<Vec<Expected>> {
    let Value::Array(items) = value else {
        problems.push(ConfigProblem::new("/value", "`in` takes a list of values, such as [\"Website\", \"Referral\"]"));
        return None;
    };
    if items.is_empty() {
        problems.push(ConfigProblem::new("/value", "`in` needs at least one value"));
        return None;
    }
    if items.len() > MAX_VALUES {
        problems.push(ConfigProblem::new("/value", format!("`in` takes at most {MAX_VALUES} values")));
        return None;
    }
    let before = problems.len();
    let values: Vec<Expected> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let found = match item {
                Value::Array(_) => Err("a list holds single values, not lists".to_owned()),
                item => expected(field, Op::In, item, fold),
            };
            found.map_err(|message| problems.push(ConfigProblem::new(format!("/value/{i}"), message))).ok()
        })
        .collect();
    (problems.len() == before).then_some(values)
}

/// A `matches` pattern, compiled.
fn pattern(value: &Value, fold: bool, problems: &mut Vec<ConfigProblem>) -> Option<regex_lite::Regex> {
    let message = match value.as_str() {
        None => "`matches` takes a regular expression, as text".to_owned(),
        Some("") => "`matches` needs a pattern that is not empty".to_owned(),
        Some(p) if p.len() > MAX_PATTERN => format!("the pattern is longer than {MAX_PATTERN} bytes"),
        Some(p) => match regex_lite::RegexBuilder::new(p).case_insensitive(fold).size_limit(REGEX_SIZE_LIMIT).build() {
            Ok(regex) => return Some(regex),
            Err(error) => format!("not a valid regular expression: {}", one_line(&error.to_string())),
        },
    };
    problems.push(ConfigProblem::new("/value", message));
    None
}

/// A value to compare `field` with by `op`, typed by the field.
fn expected(field: &Field, op: Op, value: &Value, fold: bool) -> Result<Expected, String> {
    let name = field.name();
    let nonblank = |text: &str| {
        if text.trim().is_empty() {
            Err("must not be blank: blank text counts as missing (use `exists` to test presence)".to_owned())
        } else {
            Ok(Expected::Text(folded(text, fold)))
        }
    };
    match (field.ty(), value) {
        (_, Value::Null | Value::Object(_) | Value::Array(_)) => Err("must be text, a number or true/false".to_owned()),
        (Type::Text, Value::String(text)) => nonblank(text),
        (Type::Text, other) => {
            Err(format!("{name} is text: compare it with text, such as \"{}\"", other.to_string().trim_matches('"')))
        }
        (Type::Kind, Value::String(kind)) if kind == "lead" || kind == "contact" => Ok(Expected::Text(kind.clone())),
        (Type::Kind, _) => Err("kind is `lead` or `contact`".to_owned()),
        (Type::Time, Value::String(text)) => {
            When::parse(text).map(Expected::Time).ok_or_else(|| format!("{name} is a time: write {}", time::FORMS))
        }
        (Type::Time, _) => Err(format!("{name} is a time: write {}", time::FORMS)),
        (Type::Flag, Value::Bool(flag)) => Ok(Expected::Flag(*flag)),
        (Type::Flag, _) => Err(format!("{name} is true or false")),
        (Type::Attribute, Value::Bool(_)) if op.orders() => {
            Err(format!("`{}` orders numbers, times and text, not true/false", op.name()))
        }
        (Type::Attribute, Value::Bool(flag)) => Ok(Expected::Flag(*flag)),
        (Type::Attribute, Value::Number(n)) => {
            n.as_f64().map(Expected::Number).ok_or_else(|| "is not a number this predicate can read".to_owned())
        }
        (Type::Attribute, Value::String(text)) => match When::parse(text) {
            Some(when) => Ok(Expected::Time(when)),
            None => nonblank(text),
        },
    }
}

/// How `found` orders against `expected`; `None` when it is missing or of
/// another type.
fn compare(found: Found<'_>, expected: &Expected, now: i64, fold: bool) -> Option<Ordering> {
    match (found, expected) {
        (Found::Text(text), Expected::Text(e)) => Some(folded(text, fold).as_str().cmp(e.as_str())),
        (Found::Number(n), Expected::Number(e)) => n.partial_cmp(e),
        (Found::Flag(b), Expected::Flag(e)) => Some(b.cmp(e)),
        (Found::Time(t), Expected::Time(when)) => Some(t.cmp(&when.resolve(now))),
        // An attribute holding a time as text.
        (Found::Text(text), Expected::Time(when)) => time::instant(text).map(|t| t.cmp(&when.resolve(now))),
        _ => None,
    }
}

/// `text` in lower case when folding, as it is otherwise.
fn folded(text: &str, fold: bool) -> String {
    if fold { text.to_lowercase() } else { text.to_owned() }
}

/// An error message on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
