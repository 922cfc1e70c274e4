//! A guest whose `execute` returns an output over the output limit (3 MiB
//! unless its config says `{"bytes": N}`), well within its memory: the host
//! must refuse it from its length, before copying it.

use stepwise_plugin_sdk::prelude::*;

/// The length of the output string unless the config says otherwise.
const SIZE: usize = 3 << 20;

/// How large an output to return.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Config {
    /// Bytes of output.
    #[serde(default)]
    pub bytes: Option<usize>,
}

/// An automatic step that answers with a huge output.
#[derive(Debug)]
pub struct OversizedOutput;

impl Action for OversizedOutput {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("oversized-output", "Oversized output")
            .automatic()
            .result(ResultSpec::continues("done", "Done"))
    }

    fn execute(_: &StepContext, config: Config, _: &Subject) -> Outcome {
        // One allocation of the whole size: a skip's reason is passed as is,
        // where a done's output would be serialised into a second copy.
        Outcome::skipped("x".repeat(config.bytes.unwrap_or(SIZE)))
    }
}

stepwise_plugin_sdk::export_action!(OversizedOutput);
