//! A guest whose `execute` panics: the host must turn the trap into a failure.

use stepwise_plugin_sdk::prelude::*;

/// No settings.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Config {}

/// An automatic step that panics.
#[derive(Debug)]
pub struct Trap;

impl Action for Trap {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("trap", "Trap").automatic().result(ResultSpec::continues("done", "Done"))
    }

    fn execute(_: &StepContext, _: Config, _: &Subject) -> Outcome {
        panic!("deliberate panic in execute")
    }
}

stepwise_plugin_sdk::export_action!(Trap);
