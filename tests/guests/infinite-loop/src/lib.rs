//! A guest whose `execute` never returns: the host must stop it at its deadline.

use stepwise_plugin_sdk::prelude::*;

/// No settings.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Config {}

/// An automatic step that spins forever.
#[derive(Debug)]
pub struct InfiniteLoop;

impl Action for InfiniteLoop {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("infinite-loop", "Infinite loop").automatic().result(ResultSpec::continues("done", "Done"))
    }

    fn execute(_: &StepContext, _: Config, _: &Subject) -> Outcome {
        let mut turns = 0_u64;
        loop {
            // `black_box` keeps the optimiser from proving the loop useless.
            turns = std::hint::black_box(turns.wrapping_add(1));
        }
    }
}

stepwise_plugin_sdk::export_action!(InfiniteLoop);
