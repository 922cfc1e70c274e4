//! What a request carries, read strictly, every rejection a problem
//! document naming what is wrong:
//!
//! - [`Body`]: JSON only (415 for another media type, 413 over the limit,
//!   400 for broken JSON), checked against the JSON Schema of its type —
//!   the schema `/openapi.json` publishes — before it is deserialized, so
//!   an array is never taken for an object (serde would accept one) and a
//!   422 names the field that has the wrong type;
//! - [`Query`]: a query string (400 naming the parameter);
//! - [`Path`]: path parameters (400 naming the parameter).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, FieldProblem};

/// A JSON body of type `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned + JsonSchema + 'static,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match axum::Json::<Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(rejected(rejection)),
        };
        let schema = schema_of::<T>();
        let mut pointer = String::new();
        if let Err(message) = conforms(&value, &schema, &schema, &mut pointer, 0) {
            return Err(invalid(pointer, message));
        }
        let mut tracked = serde_path_to_error::Track::new();
        let deserializer = serde_path_to_error::Deserializer::new(&value, &mut tracked);
        match T::deserialize(deserializer) {
            Ok(body) => Ok(Body(body)),
            Err(error) => Err(invalid(pointer_of(&tracked.path()), error.to_string())),
        }
    }
}

/// A 422 naming the field at `pointer` (empty: the body itself).
fn invalid(pointer: String, message: String) -> ApiError {
    let detail = if pointer.is_empty() { format!("the body: {message}") } else { format!("{pointer}: {message}") };
    ApiError::Validation { detail, fields: vec![FieldProblem { field: pointer, message }] }
}

/// The JSON Pointer of where serde stopped (empty for the body itself).
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => pointer.push_str(&format!("/{}", key.replace('~', "~0").replace('/', "~1"))),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    pointer
}

fn rejected(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonSyntaxError(_) | JsonRejection::JsonDataError(_) => {
            ApiError::BadRequest(format!("the body is not valid JSON: {text}"))
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("send the body as JSON with `Content-Type: application/json`".into())
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(text),
        _ => ApiError::BadRequest(text),
    }
}

/// The JSON Schema of `T`, made once per type.
fn schema_of<T: JsonSchema + 'static>() -> Arc<Value> {
    static SCHEMAS: OnceLock<RwLock<HashMap<TypeId, Arc<Value>>>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(Default::default);
    let id = TypeId::of::<T>();
    if let Some(schema) = schemas.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id) {
        return schema.clone();
    }
    let schema = Arc::new(schemars::schema_for!(T).to_value());
    schemas.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, schema.clone());
    schema
}

/// How deep a body may nest before it is refused.
const MAX_DEPTH: usize = 64;

/// Whether `value` has the JSON types `schema` allows, everywhere; on a
/// mismatch `pointer` is left at the field and the message says what it
/// should be. Only types are checked: what serde checks itself (required
/// fields, enum values, unknown fields) it reports with its own words.
fn conforms(value: &Value, schema: &Value, root: &Value, pointer: &mut String, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    let Value::Object(schema) = schema else { return Ok(()) };
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let resolved = target.strip_prefix('#').and_then(|p| root.pointer(p)).unwrap_or(&Value::Bool(true));
        conforms(value, resolved, root, pointer, depth + 1)?;
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let actual = json_type(value);
        let fits = |t: &&str| *t == actual || (*t == "number" && actual == "integer");
        if !allowed.is_empty() && !allowed.iter().any(fits) {
            return Err(format!("expected {}, not {}", allowed.join(" or "), article(actual)));
        }
    }
    for all in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        conforms(value, all, root, pointer, depth + 1)?;
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            let mut first = None;
            let fits = alternatives.iter().any(|alternative| {
                let mut at = pointer.clone();
                let result = conforms(value, alternative, root, &mut at, depth + 1);
                if let Err(message) = result {
                    first.get_or_insert((at, message));
                    false
                } else {
                    true
                }
            });
            if !fits && let Some((at, message)) = first {
                // One alternative: say what it wanted; several: say that none fit.
                if alternatives.len() == 1 {
                    *pointer = at;
                    return Err(message);
                }
                return Err(format!("matches none of the {} shapes this field takes", alternatives.len()));
            }
        }
    }
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (name, field) in fields {
                let Some(field_schema) = properties.and_then(|p| p.get(name)).or(additional) else { continue };
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
                conforms(field, field_schema, root, pointer, depth + 1)?;
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            let prefix = schema.get("prefixItems").and_then(Value::as_array);
            for (i, item) in items.iter().enumerate() {
                let item_schema = prefix.and_then(|p| p.get(i)).or_else(|| schema.get("items"));
                let Some(item_schema) = item_schema else { continue };
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                conforms(item, item_schema, root, pointer, depth + 1)?;
                pointer.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn article(kind: &str) -> String {
    match kind {
        "null" => "null".into(),
        "array" | "object" | "integer" => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

/// A query string of type `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(Query).map_err(|error| {
            let name = error.path().to_string();
            let inner = error.into_inner();
            if name == "." {
                ApiError::BadRequest(format!("the query string is not valid: {inner}"))
            } else {
                ApiError::BadRequest(format!("query parameter `{name}`: {inner}"))
            }
        })
    }
}

/// The path parameters of a route, as `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::BadRequest(format!("the path is not valid: {}", rejection.body_text()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[expect(dead_code, reason = "only its schema is read")]
    struct Inner {
        on: bool,
    }

    #[derive(Debug, Deserialize, JsonSchema)]
    #[expect(dead_code, reason = "only its schema is read")]
    struct Outer {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        items: Vec<Inner>,
    }

    fn check(value: Value) -> Result<(), (String, String)> {
        let schema = schema_of::<Outer>();
        let mut pointer = String::new();
        conforms(&value, &schema, &schema, &mut pointer, 0).map_err(|message| (pointer, message))
    }

    #[test]
    fn an_array_is_not_an_object_anywhere() {
        assert_eq!(check(json!([])), Err((String::new(), "expected object, not an array".into())));
        assert!(check(json!({"inner": []})).is_err());
        let (field, _) = check(json!({"items": [{"on": true}, []]})).unwrap_err();
        assert_eq!(field, "/items/1");
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        let (field, message) = check(json!({"items": [{"on": "yes"}]})).unwrap_err();
        assert_eq!(field, "/items/0/on");
        assert_eq!(message, "expected boolean, not a string");
    }

    #[test]
    fn what_fits_passes() {
        assert!(check(json!({})).is_ok());
        assert!(check(json!({"name": null, "inner": {"on": false}, "items": []})).is_ok());
    }
}
