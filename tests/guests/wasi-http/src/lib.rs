//! A step importing `wasi:http/handler@0.3.0`: the host must
//! refuse it on load, naming the interface and the `http-fetch` capability.

use bindings::exports::stepwise::plugin::action::Guest;
use bindings::stepwise::plugin::types::{
    Activation, ConfigProblem, Done, EngageItem, Manifest, Outcome, PluginKind, ResultSpec, StepContext, Subject,
};

/// Bindings for a world that adds `wasi:http` to the action world.
#[allow(missing_docs, unsafe_code, unused_qualifications, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "wit",
        generate_all,
    });
}

/// An automatic step that posts through `wasi:http`.
#[derive(Debug)]
pub struct WasiHttp;

impl Guest for WasiHttp {
    fn describe() -> Manifest {
        Manifest {
            id: "wasi-http".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Action,
            title: "WASI HTTP".into(),
            description: "a step that reaches the network through wasi:http".into(),
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
        Ok(EngageItem { title: "WASI HTTP".into(), body: String::new(), draft: None })
    }

    fn execute(_: StepContext, _: String, _: Subject) -> Outcome {
        let status = bindings::wasi::http::handler::handle("https://example.com/");
        Outcome::Done(Done { result: "done".into(), output: status.to_string() })
    }
}

// Exported for wasm only: native linkers reject the component-model export
// names in a cdylib's version script (rust-lang/rust#141310).
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod export {
    use crate::WasiHttp;
    crate::bindings::export!(WasiHttp with_types_in crate::bindings);
}
