//! A guest whose `execute` allocates until it dies: the host must cap its memory.

use stepwise_plugin_sdk::prelude::*;

/// One allocation: a mebibyte.
const CHUNK: usize = 1 << 20;

/// No settings.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Config {}

/// An automatic step that keeps every mebibyte it allocates.
#[derive(Debug)]
pub struct MemoryBomb;

impl Action for MemoryBomb {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("memory-bomb", "Memory bomb").automatic().result(ResultSpec::continues("done", "Done"))
    }

    fn execute(_: &StepContext, _: Config, _: &Subject) -> Outcome {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Filled with ones, not zeros, so every page is written to.
            hoard.push(std::hint::black_box(vec![1_u8; CHUNK]));
        }
    }
}

stepwise_plugin_sdk::export_action!(MemoryBomb);
