//! A guest that calls the host until it is stopped, with calls that cost
//! nothing in bytes: `log("")` without the `log` capability (each a
//! denial) and `templates.check("")`. The host must count calls, not only
//! bytes, and end the call with its own error.

use stepwise_plugin_sdk::prelude::*;

/// No settings.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Config {}

/// An automatic step that floods the host with empty calls.
#[derive(Debug)]
pub struct CallFlood;

impl Action for CallFlood {
    type Config = Config;

    fn manifest() -> Manifest {
        // Asks for render-template only: every `log` is denied.
        Manifest::action("call-flood", "Call flood")
            .automatic()
            .result(ResultSpec::continues("done", "Done"))
            .capability(Capability::RenderTemplate)
    }

    fn execute(_: &StepContext, _: Config, _: &Subject) -> Outcome {
        loop {
            log::info("");
            let _ = std::hint::black_box(templates::check(""));
        }
    }
}

stepwise_plugin_sdk::export_action!(CallFlood);
