//! The `task` step: a manual to-do item the rep completes with a result.

use stepwise_plugin_sdk::prelude::*;

/// The result codes a rep can complete a task with, in the manifest's order.
const RESULTS: [&str; 3] = ["none", "positive", "negative"];

/// A task step's configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The task's one-line title, with tokens such as `{{contact.first_name}}`.
    pub title: String,
    /// What the rep should do, with tokens.
    #[serde(default)]
    pub instructions: Option<String>,
    /// How urgent the task is; `normal` unless set.
    #[serde(default)]
    pub priority: Priority,
}

/// How urgent a task is, for sorting the to-do list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Can wait.
    Low,
    /// The usual.
    #[default]
    Normal,
    /// Do it first.
    High,
}

/// The task step type.
#[derive(Debug)]
pub struct Task;

impl Action for Task {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("task", "Task")
            .description("puts a task on the owner's to-do list; the rep completes it with a result")
            .result(ResultSpec::continues(RESULTS[0], "None"))
            .result(ResultSpec::ends(RESULTS[1], "Positive", EnrollmentOutcome::Positive))
            .result(ResultSpec::ends(RESULTS[2], "Negative", EnrollmentOutcome::Negative))
            .capability(Capability::RenderTemplate)
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if config.title.trim().is_empty() {
            problems.push(ConfigProblem::new("/title", "must not be empty"));
        }
        let fields = [("/title", Some(config.title.as_str())), ("/instructions", config.instructions.as_deref())];
        problems.extend(templates::problems(fields, templates::problem));
        problems
    }

    fn prepare(_: &StepContext, config: Config, _: &Subject) -> Result<EngageItem, String> {
        let render = templates::by_field(templates::render);
        let title = render("/title", &config.title)?;
        let body = match &config.instructions {
            Some(instructions) => render("/instructions", instructions)?,
            None => String::new(),
        };
        Ok(EngageItem::new(title).body(body))
    }

    fn execute(context: &StepContext, _: Config, _: &Subject) -> Outcome {
        complete(context.completion.as_ref().map(|c| c.result.as_str()))
    }
}

/// What completing the task with the rep's `result` comes to; without one
/// (the step was made automatic) the task simply continues.
fn complete(result: Option<&str>) -> Outcome {
    match result {
        None => Outcome::done(RESULTS[0]),
        Some(code) => Outcome::completed(code, &RESULTS),
    }
}

stepwise_plugin_sdk::export_action!(Task);

#[cfg(test)]
mod tests {
    use super::*;
    use stepwise_plugin_sdk::fixtures::result_of;
    use stepwise_plugin_sdk::parse_config;

    #[test]
    fn completion_with_a_declared_result_is_done_with_it() {
        for code in RESULTS {
            assert_eq!(result_of(complete(Some(code))), code);
        }
    }

    #[test]
    fn unknown_result_fails_and_lists_the_valid_ones() {
        assert_eq!(
            result_of(complete(Some("interested"))),
            "failed: unknown result `interested`: expected one of none, positive, negative"
        );
    }

    #[test]
    fn automatic_use_continues() {
        assert_eq!(result_of(complete(None)), "none");
    }

    #[test]
    fn declared_results_match_the_manifest() {
        let manifest = Task::manifest();
        assert!(RESULTS.iter().all(|code| manifest.has_result(code)));
    }

    #[test]
    fn priority_defaults_to_normal() {
        let config: Config = parse_config(r#"{"title": "Call {{contact.first_name}}"}"#).unwrap();
        assert_eq!(config.priority, Priority::Normal);
        assert_eq!(config.instructions, None);
        let config: Config = parse_config(r#"{"title": "x", "priority": "high"}"#).unwrap();
        assert_eq!(config.priority, Priority::High);
    }

    #[test]
    fn unknown_fields_and_priorities_are_problems() {
        let problem = parse_config::<Config>(r#"{"title": "x", "due": 1}"#).unwrap_err();
        assert!(problem.message.contains("unknown field `due`"), "{}", problem.message);
        let problem = parse_config::<Config>(r#"{"title": "x", "priority": "urgent"}"#).unwrap_err();
        assert_eq!(problem.field, "/priority");
    }
}
