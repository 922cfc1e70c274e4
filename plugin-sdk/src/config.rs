//! Parsing a step's JSON configuration into the plugin's own type.

use crate::ConfigProblem;

/// Parses `json` into `T`, naming the field of the first problem as a JSON
/// Pointer (`/headers/0/name`).
///
/// # Errors
///
/// A [`ConfigProblem`] when `json` is not valid JSON or does not fit `T`.
///
/// # Examples
///
/// ```
/// use stepwise_plugin_sdk::{parse_config, Deserialize};
///
/// #[derive(Deserialize, Debug)]
/// struct Config { url: String }
///
/// let problem = parse_config::<Config>(r#"{"url": 5}"#).unwrap_err();
/// assert_eq!(problem.field, "/url");
/// ```
pub fn parse_config<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, ConfigProblem> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| ConfigProblem { field: pointer(error.path()), message: error.into_inner().to_string() })?;
    deserializer.end().map_err(|error| ConfigProblem { field: String::new(), message: error.to_string() })?;
    Ok(value)
}

/// Turns serde's path (`headers[0].name`) into a JSON Pointer.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        out.push('/');
        match segment {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } => out.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => out.push_str(variant),
            Segment::Unknown => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Config {
        #[expect(dead_code, reason = "only parsed")]
        url: String,
        #[serde(default)]
        #[expect(dead_code, reason = "only parsed")]
        headers: Vec<Header>,
    }

    #[derive(serde::Deserialize, Debug)]
    struct Header {
        #[expect(dead_code, reason = "only parsed")]
        name: String,
    }

    #[test]
    fn names_the_nested_field() {
        let problem = parse_config::<Config>(r#"{"url":"x","headers":[{"name":1}]}"#).unwrap_err();
        assert_eq!(problem.field, "/headers/0/name");
        assert!(problem.message.contains("invalid type"), "{}", problem.message);
    }

    #[test]
    fn missing_field_is_reported_at_the_root() {
        let problem = parse_config::<Config>("{}").unwrap_err();
        assert_eq!(problem.field, "");
        assert!(problem.message.contains("missing field `url`"), "{}", problem.message);
    }

    #[test]
    fn trailing_garbage_is_a_problem() {
        assert!(parse_config::<Config>(r#"{"url":"x"} x"#).is_err());
    }

    #[test]
    fn unknown_field_is_named() {
        let problem = parse_config::<Config>(r#"{"url":"x","nope":1}"#).unwrap_err();
        assert!(problem.message.contains("unknown field `nope`"), "{}", problem.message);
    }
}
