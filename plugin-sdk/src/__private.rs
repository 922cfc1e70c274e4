//! Glue between the export macros and the plugin traits; not public API.

#![allow(missing_docs)]

pub use wit_bindgen;

/// The generated bindings of both worlds. The predicate world reuses the
/// action world's types and imports so that one Rust type stands for each
/// WIT type.
pub mod bindings {
    #[allow(missing_docs, unsafe_code, unused_qualifications, clippy::all)]
    pub mod action {
        wit_bindgen::generate!({
            world: "action-plugin",
            path: "wit/stepwise-plugin@0.2.0",
            pub_export_macro: true,
            export_macro_name: "__export_action_plugin",
            default_bindings_module: "::stepwise_plugin_sdk::__private::bindings::action",
            runtime_path: "::stepwise_plugin_sdk::__private::wit_bindgen::rt",
            generate_unused_types: true,
        });
    }

    #[allow(missing_docs, unsafe_code, unused_qualifications, clippy::all)]
    pub mod predicate {
        wit_bindgen::generate!({
            world: "predicate-plugin",
            path: "wit/stepwise-plugin@0.2.0",
            pub_export_macro: true,
            export_macro_name: "__export_predicate_plugin",
            default_bindings_module: "::stepwise_plugin_sdk::__private::bindings::predicate",
            runtime_path: "::stepwise_plugin_sdk::__private::wit_bindgen::rt",
            with: {
                "stepwise:plugin/types@0.2.0": crate::__private::bindings::action::stepwise::plugin::types,
                "stepwise:plugin/log@0.2.0": crate::__private::bindings::action::stepwise::plugin::log,
                "stepwise:plugin/templates@0.2.0": crate::__private::bindings::action::stepwise::plugin::templates,
                "stepwise:plugin/http@0.2.0": crate::__private::bindings::action::stepwise::plugin::http,
                "stepwise:plugin/messaging@0.2.0": crate::__private::bindings::action::stepwise::plugin::messaging,
                "stepwise:plugin/contacts@0.2.0": crate::__private::bindings::action::stepwise::plugin::contacts,
                "stepwise:plugin/users@0.2.0": crate::__private::bindings::action::stepwise::plugin::users,
                "stepwise:plugin/account@0.2.0": crate::__private::bindings::action::stepwise::plugin::account,
            },
        });
    }
}

pub use bindings::action::exports::stepwise::plugin::action::Guest as ActionGuest;
pub use bindings::action::stepwise::plugin::types::Manifest as WitManifest;
pub use bindings::predicate::exports::stepwise::plugin::predicate::Guest as PredicateGuest;

use crate::{Action, ConfigProblem, EngageItem, Outcome, Predicate, StepContext, Subject};

/// The WIT version as a byte array, for the custom section.
pub const fn wit_version_bytes<const N: usize>() -> [u8; N] {
    let src = crate::WIT_VERSION.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = src[i];
        i += 1;
    }
    out
}

pub fn describe<A: Action>(version: &str) -> WitManifest {
    A::manifest().into_wit::<A::Config>(version)
}

pub fn describe_predicate<P: Predicate>(version: &str) -> WitManifest {
    P::manifest().into_wit::<P::Config>(version)
}

pub fn validate_action<A: Action>(config: &str) -> Vec<ConfigProblem> {
    match crate::parse_config::<A::Config>(config) {
        Ok(parsed) => A::validate(&parsed),
        Err(problem) => vec![problem],
    }
}

pub fn validate_predicate<P: Predicate>(config: &str) -> Vec<ConfigProblem> {
    match crate::parse_config::<P::Config>(config) {
        Ok(parsed) => P::validate(&parsed),
        Err(problem) => vec![problem],
    }
}

pub fn prepare<A: Action>(context: StepContext, config: &str, subject: Subject) -> Result<EngageItem, String> {
    let config = crate::parse_config::<A::Config>(config).map_err(|problem| problem.describe())?;
    A::prepare(&context, config, &subject)
}

pub fn execute<A: Action>(context: StepContext, config: &str, subject: Subject) -> Outcome {
    match crate::parse_config::<A::Config>(config) {
        Ok(config) => A::execute(&context, config, &subject),
        Err(problem) => Outcome::failed(problem.describe()),
    }
}

pub fn evaluate<P: Predicate>(context: StepContext, config: &str, subject: Subject) -> Result<bool, String> {
    let config = crate::parse_config::<P::Config>(config).map_err(|problem| problem.describe())?;
    P::evaluate(&context, config, &subject)
}
