//! A guest whose `execute` returns a 3 MiB output (over the 1 MiB output limit, well within memory): the host must refuse to store it.

use stepwise_plugin_sdk::prelude::*;

/// The length of the output string.
const SIZE: usize = 3 << 20;

/// No settings.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Config {}

/// An automatic step that is done with a huge output.
#[derive(Debug)]
pub struct OversizedOutput;

impl Action for OversizedOutput {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("oversized-output", "Oversized output")
            .automatic()
            .result(ResultSpec::continues("done", "Done"))
    }

    fn execute(_: &StepContext, _: Config, _: &Subject) -> Outcome {
        Outcome::done_with("done", &"x".repeat(SIZE))
    }
}

stepwise_plugin_sdk::export_action!(OversizedOutput);
