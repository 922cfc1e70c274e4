//! A guest that does nothing and misbehaves in no way: the baseline for benchmarks.

use stepwise_plugin_sdk::prelude::*;

/// No settings at all.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Config {}

/// An automatic step that is done at once.
#[derive(Debug)]
pub struct Trivial;

impl Action for Trivial {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("trivial", "Trivial").automatic().result(ResultSpec::continues("done", "Done"))
    }

    fn execute(_: &StepContext, _: Config, _: &Subject) -> Outcome {
        Outcome::done("done")
    }
}

stepwise_plugin_sdk::export_action!(Trivial);
