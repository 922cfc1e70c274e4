//! A plugin's config as a form, generated from the JSON Schema its
//! manifest carries: a text box, number, checkbox, choice or checklist for
//! each property the schema types plainly, a JSON box for the rest, and the
//! whole config as JSON when the schema has no properties to list. Reading
//! the form back gives the config and what does not read (a number that is
//! not one, JSON that does not parse), each at its field; keys the form
//! does not show (a template the API set, say) ride along untouched.

use std::collections::HashMap;

use maud::{Markup, html};
use serde_json::{Map, Value};

/// A posted form's values by field name; a name may repeat (checkboxes).
pub type Posted = HashMap<String, Vec<String>>;

/// The posted pairs of a form, by name.
pub fn posted(pairs: Vec<(String, String)>) -> Posted {
    let mut posted = Posted::new();
    for (name, value) in pairs {
        posted.entry(name).or_default().push(value);
    }
    posted
}

/// The last value posted under `name` (a checkbox's hidden default comes
/// first), if any.
pub fn last<'a>(posted: &'a Posted, name: &str) -> Option<&'a str> {
    posted.get(name).and_then(|values| values.last()).map(String::as_str)
}

/// One of the values a choice allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The value, as the config holds it.
    pub value: String,
    /// What people read: the schema's description of it, or the value.
    pub label: String,
}

/// How a field is asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Widget {
    /// A string: one line, or a text area for message-like fields.
    Text {
        /// A text area.
        multiline: bool,
    },
    /// A whole number.
    Integer,
    /// A number.
    Number,
    /// Yes or no.
    Boolean,
    /// One of a few values.
    Choice(Vec<Choice>),
    /// Any of a few values (an array of an enumeration).
    Choices(Vec<Choice>),
    /// A list of strings, one per line.
    Lines,
    /// Anything else, as JSON.
    Json,
}

/// A property of the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The property's key.
    pub key: String,
    /// What people read.
    pub label: String,
    /// The schema's description.
    pub help: Option<String>,
    /// The schema requires it.
    pub required: bool,
    /// The schema's default, shown until something is chosen.
    pub default: Option<Value>,
    /// How it is asked for.
    pub widget: Widget,
}

impl Field {
    /// The field's JSON Pointer in the config.
    pub fn pointer(&self) -> String {
        format!("/{}", self.key.replace('~', "~0").replace('/', "~1"))
    }
}

/// The fields of a config whose schema is an object with properties;
/// `None` asks for the whole config as JSON.
pub fn fields(schema: &Value) -> Option<Vec<Field>> {
    let root = schema;
    let object = resolve(root, schema);
    let properties = object.get("properties")?.as_object()?;
    let required: Vec<&str> =
        object.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    Some(
        properties
            .iter()
            .map(|(key, node)| {
                let resolved = resolve(root, node);
                let help = node
                    .get("description")
                    .or_else(|| resolved.get("description"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Field {
                    key: key.clone(),
                    label: humane(key),
                    help,
                    required: required.contains(&key.as_str()),
                    default: node.get("default").or_else(|| resolved.get("default")).cloned(),
                    widget: widget(root, key, resolved),
                }
            })
            .collect(),
    )
}

/// Follows `$ref`s into the schema's own definitions, and a lone `allOf`
/// or the one non-null branch of an `anyOf`/`oneOf` (an optional value).
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let mut node = node;
    for _ in 0..8 {
        if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            match reference.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(target) => node = target,
                None => return node,
            }
            continue;
        }
        let branches =
            ["allOf", "anyOf", "oneOf"].iter().find_map(|k| node.get(*k).and_then(Value::as_array)).map(|all| {
                all.iter().filter(|b| b.get("type").and_then(Value::as_str) != Some("null")).collect::<Vec<_>>()
            });
        match branches.as_deref() {
            Some([only]) => node = only,
            _ => return node,
        }
    }
    node
}

/// The types a node allows, without `null`.
fn types(node: &Value) -> Vec<&str> {
    match node.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(all)) => all.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => Vec::new(),
    }
}

/// The values an enumeration allows: `enum`, or `oneOf`/`anyOf` branches
/// that are each one `const` (with a description to read).
fn choices(root: &Value, node: &Value) -> Option<Vec<Choice>> {
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        let values: Option<Vec<Choice>> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| v.as_str().map(|s| Choice { value: s.to_owned(), label: s.to_owned() }))
            .collect();
        return values.filter(|v| !v.is_empty());
    }
    let branches = node.get("oneOf").or_else(|| node.get("anyOf"))?.as_array()?;
    let values: Option<Vec<Choice>> = branches
        .iter()
        .map(|b| resolve(root, b))
        .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
        .map(|b| {
            let value = b
                .get("const")
                .or_else(|| b.get("enum").and_then(Value::as_array).filter(|e| e.len() == 1).and_then(|e| e.first()))?
                .as_str()?
                .to_owned();
            let label = match b.get("description").and_then(Value::as_str) {
                Some(d) => format!("{value}: {}", d.trim_end_matches('.')),
                None => value.clone(),
            };
            Some(Choice { value, label })
        })
        .collect();
    values.filter(|v| !v.is_empty())
}

/// Fields that hold a message or notes are text areas.
const MULTILINE: &[&str] = &["body", "text", "instructions", "script", "notes", "message", "html", "description"];

fn widget(root: &Value, key: &str, node: &Value) -> Widget {
    if let Some(choices) = choices(root, node) {
        return Widget::Choice(choices);
    }
    match types(node).as_slice() {
        ["string"] => Widget::Text { multiline: MULTILINE.contains(&key) },
        ["integer"] => Widget::Integer,
        ["number"] => Widget::Number,
        ["boolean"] => Widget::Boolean,
        ["array"] => {
            let items = node.get("items").map_or(&Value::Null, |i| resolve(root, i));
            match (choices(root, items), types(items).as_slice()) {
                (Some(choices), _) => Widget::Choices(choices),
                (None, ["string"]) => Widget::Lines,
                _ => Widget::Json,
            }
        }
        _ => Widget::Json,
    }
}

/// `max_segments` as people read it: "Max segments".
fn humane(key: &str) -> String {
    let words = key.replace(['_', '-'], " ");
    let mut chars = words.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// An element id made of a field name.
pub fn id_of(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// The name of the hidden field carrying the config's keys the form does
/// not show.
fn extra_name(prefix: &str) -> String {
    format!("{prefix}#extra")
}

/// A problem of a config field: its JSON Pointer (relative to the config)
/// and what is wrong.
pub type Problem = (String, String);

/// The problems at `pointer` or inside it.
fn at<'a>(problems: &'a [Problem], pointer: &str) -> Vec<&'a str> {
    problems
        .iter()
        .filter(|(p, _)| p == pointer || p.strip_prefix(pointer).is_some_and(|rest| rest.starts_with('/')))
        .map(|(_, message)| message.as_str())
        .collect()
}

/// The problems no field of `fields` shows (the whole config's, or a key
/// the form does not list).
pub fn unplaced<'a>(fields: Option<&[Field]>, problems: &'a [Problem]) -> Vec<&'a str> {
    problems
        .iter()
        .filter(|(p, _)| match fields {
            Some(fields) => !fields.iter().any(|f| {
                let pointer = f.pointer();
                *p == pointer || p.strip_prefix(&pointer).is_some_and(|rest| rest.starts_with('/'))
            }),
            None => false,
        })
        .map(|(_, message)| message.as_str())
        .collect()
}

/// The form of a config: its fields named `{prefix}{pointer}`, showing
/// what `typed` holds for a field (what was typed and did not read) or else
/// the config's value, each field's problems beside it.
pub fn render(
    prefix: &str,
    fields: Option<&[Field]>,
    config: &Value,
    typed: &HashMap<String, String>,
    problems: &[Problem],
) -> Markup {
    let Some(fields) = fields else {
        let name = prefix.to_owned();
        let shown = typed.get(&name).cloned().unwrap_or_else(|| pretty(config));
        let problems: Vec<&str> = problems.iter().map(|(_, m)| m.as_str()).collect();
        return html! {
            (labelled(&name, "Config (JSON)", None, &problems, |described| html! {
                textarea id=(id_of(&name)) name=(name) aria-invalid=[(!problems.is_empty()).then_some("true")]
                    aria-describedby=[described] { (shown) }
            }))
        };
    };
    let extra: Map<String, Value> = config
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !fields.iter().any(|f| &f.key == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    html! {
        @if !extra.is_empty() {
            input type="hidden" name=(extra_name(prefix)) value=(Value::Object(extra.clone()));
            p.muted { "Also set, not shown here: " (extra.keys().cloned().collect::<Vec<_>>().join(", ")) "." }
        }
        @for field in fields {
            (render_field(prefix, field, config.get(&field.key), typed, &at(problems, &field.pointer())))
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// A label, the control `control` makes (given the id of the text that
/// describes it, if any), the field's help and its problems.
fn labelled(
    name: &str,
    label: &str,
    help: Option<&str>,
    problems: &[&str],
    control: impl FnOnce(Option<String>) -> Markup,
) -> Markup {
    let id = id_of(name);
    let described = match (help.is_some(), problems.is_empty()) {
        (false, true) => None,
        (true, true) => Some(format!("{id}-help")),
        (false, false) => Some(format!("{id}-error")),
        (true, false) => Some(format!("{id}-error {id}-help")),
    };
    html! {
        div.field {
            label for=(id) { (label) }
            (control(described))
            @if let Some(help) = help { p.muted.help id=(format!("{id}-help")) { (help) } }
            @if !problems.is_empty() {
                p.field-error id=(format!("{id}-error")) role="alert" { (problems.join("; ")) }
            }
        }
    }
}

fn render_field(
    prefix: &str,
    field: &Field,
    value: Option<&Value>,
    typed: &HashMap<String, String>,
    problems: &[&str],
) -> Markup {
    let name = format!("{prefix}{}", field.pointer());
    let id = id_of(&name);
    let invalid = (!problems.is_empty()).then_some("true");
    let value = value.filter(|v| !v.is_null());
    let typed = typed.get(&name);
    let label = if field.required { format!("{} (required)", field.label) } else { field.label.clone() };
    let help = field.help.as_deref();
    let default_text = field.default.as_ref().filter(|d| !d.is_null()).map(|d| match d {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let as_text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    match &field.widget {
        Widget::Boolean => {
            let checked = value.or(field.default.as_ref()).and_then(Value::as_bool).unwrap_or(false);
            html! {
                div.field.check {
                    input type="hidden" name=(name) value="false";
                    input type="checkbox" id=(id) name=(name) value="true" checked[checked]
                        aria-describedby=[help.map(|_| format!("{id}-help"))];
                    label for=(id) { (field.label) }
                    @if let Some(help) = help { p.muted.help id=(format!("{id}-help")) { (help) } }
                    @if !problems.is_empty() { p.field-error role="alert" { (problems.join("; ")) } }
                }
            }
        }
        Widget::Choice(choices) => {
            let current = typed.cloned().unwrap_or_else(|| as_text(value));
            labelled(&name, &label, help, problems, |described| {
                html! {
                    select id=(id) name=(name) aria-invalid=[invalid] aria-describedby=[described] {
                        // A required choice always holds one of its values.
                        @if !field.required {
                            option value="" selected[current.is_empty()] {
                                @match &default_text { Some(d) => { "Default (" (d) ")" } None => { "None" } }
                            }
                        }
                        @for choice in choices {
                            option value=(choice.value) selected[choice.value == current] { (choice.label) }
                        }
                        @if !current.is_empty() && !choices.iter().any(|c| c.value == current) {
                            option value=(current) selected { (current) " (not one of the choices)" }
                        }
                    }
                }
            })
        }
        Widget::Choices(choices) => {
            let chosen: Vec<String> = value
                .or(field.default.as_ref())
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|v| as_text(Some(v)))
                .collect();
            html! {
                fieldset.field.choices aria-describedby=[help.map(|_| format!("{id}-help"))] {
                    legend { (label) }
                    input type="hidden" name=(name) value="";
                    @for (n, choice) in choices.iter().enumerate() {
                        @let choice_id = format!("{id}-{n}");
                        span.check {
                            input type="checkbox" id=(choice_id) name=(name) value=(choice.value)
                                checked[chosen.contains(&choice.value)];
                            label for=(choice_id) { (choice.label) }
                        }
                    }
                    @if let Some(help) = help { p.muted.help id=(format!("{id}-help")) { (help) } }
                    @if !problems.is_empty() { p.field-error role="alert" { (problems.join("; ")) } }
                }
            }
        }
        Widget::Lines => {
            let shown = typed.cloned().unwrap_or_else(|| {
                value
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|v| as_text(Some(v)))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            labelled(&name, &format!("{label}, one per line"), help, problems, |described| {
                html! { textarea.short id=(id) name=(name) aria-invalid=[invalid] aria-describedby=[described] { (shown) } }
            })
        }
        Widget::Json => {
            let shown = typed.cloned().unwrap_or_else(|| value.map(pretty).unwrap_or_default());
            labelled(&name, &format!("{label} (JSON)"), help, problems, |described| {
                html! {
                    textarea.short id=(id) name=(name) aria-invalid=[invalid] aria-describedby=[described]
                        placeholder=[default_text.clone()] { (shown) }
                }
            })
        }
        Widget::Text { multiline: true } => {
            let shown = typed.cloned().unwrap_or_else(|| as_text(value));
            labelled(&name, &label, help, problems, |described| {
                html! {
                    textarea id=(id) name=(name) aria-invalid=[invalid] aria-describedby=[described]
                        placeholder=[default_text.clone()] { (shown) }
                }
            })
        }
        Widget::Text { multiline: false } | Widget::Integer | Widget::Number => {
            let shown = typed.cloned().unwrap_or_else(|| as_text(value));
            let mode = match field.widget {
                Widget::Integer => Some("numeric"),
                Widget::Number => Some("decimal"),
                _ => None,
            };
            labelled(&name, &label, help, problems, |described| {
                html! {
                    input type="text" id=(id) name=(name) value=(shown) inputmode=[mode] aria-invalid=[invalid]
                        aria-describedby=[described] placeholder=[default_text.clone()];
                }
            })
        }
    }
}

/// A config read back from its form.
#[derive(Debug, Default, PartialEq)]
pub struct Read {
    /// The config.
    pub config: Value,
    /// What was typed into fields that did not read, by field name, to
    /// show again.
    pub typed: HashMap<String, String>,
    /// What did not read, at its pointer in the config.
    pub problems: Vec<Problem>,
}

/// Reads the config the form [`render`] made under `prefix` from `posted`.
pub fn read(prefix: &str, fields: Option<&[Field]>, posted: &Posted) -> Read {
    let mut read = Read::default();
    let Some(fields) = fields else {
        let text = last(posted, prefix).unwrap_or("").trim();
        read.config = if text.is_empty() {
            Value::Object(Map::new())
        } else {
            match serde_json::from_str::<Value>(text) {
                Ok(value) => value,
                Err(e) => {
                    read.typed.insert(prefix.to_owned(), text.to_owned());
                    read.problems.push((String::new(), format!("not valid JSON: {e}")));
                    Value::Object(Map::new())
                }
            }
        };
        return read;
    };
    let mut config = last(posted, &extra_name(prefix))
        .and_then(|extra| serde_json::from_str::<Map<String, Value>>(extra).ok())
        .unwrap_or_default();
    for field in fields {
        let name = format!("{prefix}{}", field.pointer());
        let text = last(posted, &name).unwrap_or("");
        let trimmed = text.trim();
        let mut wrong = |message: String| {
            read.typed.insert(name.clone(), text.to_owned());
            read.problems.push((field.pointer(), message));
        };
        let value = match &field.widget {
            Widget::Boolean => posted.get(&name).map(|_| Value::Bool(trimmed == "true")),
            Widget::Choices(_) => {
                let chosen: Vec<Value> = posted
                    .get(&name)
                    .into_iter()
                    .flatten()
                    .filter(|v| !v.is_empty())
                    .map(|v| Value::String(v.clone()))
                    .collect();
                (field.required || !chosen.is_empty()).then_some(Value::Array(chosen))
            }
            Widget::Lines => {
                let lines: Vec<Value> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| Value::String(l.to_owned()))
                    .collect();
                (field.required || !lines.is_empty()).then_some(Value::Array(lines))
            }
            _ if trimmed.is_empty() => match field.widget {
                Widget::Text { .. } if field.required => Some(Value::String(String::new())),
                _ => None,
            },
            Widget::Text { .. } => Some(Value::String(text.to_owned())),
            Widget::Choice(_) => Some(Value::String(trimmed.to_owned())),
            Widget::Integer => match trimmed.parse::<i64>() {
                Ok(n) => Some(Value::from(n)),
                Err(_) => {
                    wrong(format!("`{trimmed}` is not a whole number"));
                    None
                }
            },
            Widget::Number => match trimmed.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                Some(n) => Some(Value::Number(n)),
                None => {
                    wrong(format!("`{trimmed}` is not a number"));
                    None
                }
            },
            Widget::Json => match serde_json::from_str::<Value>(trimmed) {
                Ok(value) => Some(value),
                Err(e) => {
                    wrong(format!("not valid JSON: {e}"));
                    None
                }
            },
        };
        match value {
            Some(value) => {
                config.insert(field.key.clone(), value);
            }
            None => {
                config.remove(&field.key);
            }
        }
    }
    read.config = Value::Object(config);
    read
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shape schemars writes for a step's config: a `$ref`'d enum with
    /// described variants, optional fields, a default, a list and an array
    /// of objects.
    fn schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "title": { "type": "string", "description": "The title." },
                "body": { "type": ["string", "null"], "default": null },
                "priority": { "$ref": "#/$defs/Priority", "default": "normal" },
                "attempts": { "type": "integer", "format": "uint32", "minimum": 0, "default": 3 },
                "signature": { "type": "boolean", "default": true },
                "values": { "type": "array", "items": { "type": "string" } },
                "weekdays": { "type": "array", "items": { "$ref": "#/$defs/Day" } },
                "headers": { "type": "array", "items": { "type": "object", "properties": { "name": { "type": "string" } } } },
                "mode": { "anyOf": [{ "$ref": "#/$defs/Priority" }, { "type": "null" }] }
            },
            "required": ["title", "values"],
            "additionalProperties": false,
            "$defs": {
                "Priority": { "oneOf": [
                    { "type": "string", "const": "low", "description": "Can wait." },
                    { "type": "string", "const": "normal" },
                    { "type": "string", "const": "high" }
                ] },
                "Day": { "type": "string", "enum": ["mon", "tue"] }
            }
        })
    }

    fn widget_of(key: &str) -> Widget {
        fields(&schema()).unwrap().into_iter().find(|f| f.key == key).unwrap().widget
    }

    #[test]
    fn each_property_gets_the_control_its_type_asks_for() {
        assert_eq!(widget_of("title"), Widget::Text { multiline: false });
        assert_eq!(widget_of("body"), Widget::Text { multiline: true });
        assert_eq!(widget_of("attempts"), Widget::Integer);
        assert_eq!(widget_of("signature"), Widget::Boolean);
        assert_eq!(widget_of("values"), Widget::Lines);
        assert_eq!(widget_of("headers"), Widget::Json);
        let Widget::Choice(priorities) = widget_of("priority") else { panic!("a choice") };
        assert_eq!(priorities[0], Choice { value: "low".into(), label: "low: Can wait".into() });
        assert_eq!(priorities.len(), 3);
        assert!(matches!(widget_of("mode"), Widget::Choice(c) if c.len() == 3));
        assert!(matches!(widget_of("weekdays"), Widget::Choices(c) if c.len() == 2));
        let title = fields(&schema()).unwrap().into_iter().find(|f| f.key == "title").unwrap();
        assert!(title.required);
        assert_eq!(title.help.as_deref(), Some("The title."));
        assert_eq!(title.label, "Title");
    }

    #[test]
    fn a_schema_without_properties_is_edited_as_json() {
        assert_eq!(fields(&json!({ "type": "object" })), None);
        assert_eq!(fields(&json!(true)), None);
        let posted = posted(vec![("c".into(), "{\"a\": 1}".into())]);
        assert_eq!(read("c", None, &posted).config, json!({ "a": 1 }));
        let posted = super::posted(vec![("c".into(), "{nope".into())]);
        let read = read("c", None, &posted);
        assert_eq!(read.problems.len(), 1);
        assert!(read.problems[0].1.starts_with("not valid JSON"), "{:?}", read.problems);
        assert_eq!(read.typed["c"], "{nope");
    }

    #[test]
    fn a_form_reads_back_into_the_config_it_shows() {
        let fields = fields(&schema()).unwrap();
        let config = json!({
            "title": "Call {{contact.first_name}}",
            "priority": "high",
            "attempts": 5,
            "signature": false,
            "values": ["a", "b"],
            "weekdays": ["tue"],
            "headers": [{ "name": "x" }],
            "template_id": "tpl_1"
        });
        let html = render("s0.config", Some(&fields), &config, &HashMap::new(), &[]).into_string();
        assert!(
            html.contains(r#"name="s0.config#extra" value="{&quot;template_id&quot;:&quot;tpl_1&quot;}""#),
            "{html}"
        );
        assert!(html.contains(r#"<option value="high" selected>"#), "{html}");
        // What a browser posts for it.
        let pairs: Vec<(String, String)> = [
            ("s0.config#extra", r#"{"template_id":"tpl_1"}"#),
            ("s0.config/title", "Call {{contact.first_name}}"),
            ("s0.config/body", ""),
            ("s0.config/attempts", "5"),
            ("s0.config/signature", "false"),
            ("s0.config/values", "a\r\nb\r\n"),
            ("s0.config/weekdays", ""),
            ("s0.config/weekdays", "tue"),
            ("s0.config/headers", "[{\"name\": \"x\"}]"),
            ("s0.config/mode", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut pairs = pairs;
        pairs.push(("s0.config/priority".into(), "high".into()));
        let read = read("s0.config", Some(&fields), &posted(pairs));
        assert!(read.problems.is_empty(), "{:?}", read.problems);
        assert_eq!(read.config, config);
    }

    #[test]
    fn what_does_not_read_is_a_problem_at_its_field_and_is_shown_again() {
        let fields = fields(&schema()).unwrap();
        let posted = posted(vec![
            ("s.config/title".into(), String::new()),
            ("s.config/attempts".into(), "three".into()),
            ("s.config/headers".into(), "[{".into()),
            ("s.config/values".into(), "\n".into()),
        ]);
        let read = read("s.config", Some(&fields), &posted);
        assert_eq!(read.config, json!({ "title": "", "values": [] }), "a blank optional field is left to its default");
        let pointers: Vec<&str> = read.problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pointers, ["/attempts", "/headers"]);
        assert_eq!(read.problems[0].1, "`three` is not a whole number");
        let html = render("s.config", Some(&fields), &read.config, &read.typed, &read.problems).into_string();
        assert!(html.contains("value=\"three\""), "what was typed is shown again");
        assert!(html.contains("`three` is not a whole number"));
        assert!(html.contains("aria-invalid=\"true\""));
    }

    #[test]
    fn problems_a_field_cannot_show_are_listed_apart() {
        let fields = fields(&schema()).unwrap();
        let problems = vec![
            ("/headers/0/name".to_owned(), "must not be empty".to_owned()),
            (String::new(), "the config is wrong".to_owned()),
            ("/paid".to_owned(), "unknown field".to_owned()),
        ];
        assert_eq!(unplaced(Some(&fields), &problems), ["the config is wrong", "unknown field"]);
        assert_eq!(at(&problems, "/headers"), ["must not be empty"]);
        assert!(at(&problems, "/head").is_empty());
    }
}
