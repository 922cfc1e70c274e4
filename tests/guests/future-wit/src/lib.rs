//! A guest built for `stepwise:plugin@0.3.0`, a WIT version the host does not
//! support: the host must refuse it on load, by its version stamp and imports.

use bindings::exports::stepwise::plugin::action::Guest;
use bindings::stepwise::plugin::types::{
    Activation, ConfigProblem, Done, EngageItem, Manifest, Outcome, PluginKind, ResultSpec, StepContext, Subject,
};

/// Bindings for the copy of the contract in `wit/`, renamed to version 0.3.0.
#[allow(missing_docs, unsafe_code, unused_qualifications, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "action-plugin",
        path: "wit",
    });
}

/// The version stamp the SDK would write, claiming the future version.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
#[unsafe(link_section = "stepwise:wit-version")]
#[used]
static WIT_VERSION: [u8; 5] = *b"0.3.0";

/// A trivial automatic step.
#[derive(Debug)]
pub struct FutureWit;

impl Guest for FutureWit {
    fn describe() -> Manifest {
        Manifest {
            id: "future-wit".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Action,
            title: "Future WIT".into(),
            description: "a step built for a WIT version from the future".into(),
            config_schema: r#"{"type":"object"}"#.into(),
            channel: None,
            default_activation: Activation::Automatic,
            results: vec![ResultSpec {
                code: "done".into(),
                title: "Done".into(),
                ends_enrollment: false,
                outcome: None,
            }],
            capabilities: Vec::new(),
        }
    }

    fn validate_config(_: String) -> Vec<ConfigProblem> {
        Vec::new()
    }

    fn prepare(_: StepContext, _: String, _: Subject) -> Result<EngageItem, String> {
        Ok(EngageItem { title: "Future WIT".into(), body: String::new(), draft: None })
    }

    fn execute(_: StepContext, _: String, _: Subject) -> Outcome {
        Outcome::Done(Done { result: "done".into(), output: "null".into() })
    }
}

// Exported for wasm only: native linkers reject the component-model export
// names in a cdylib's version script (rust-lang/rust#141310).
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod export {
    use crate::FutureWit;
    crate::bindings::export!(FutureWit with_types_in crate::bindings);
}
