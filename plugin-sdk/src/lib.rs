//! Write Stepwise step and criteria plugins in idiomatic Rust.
//!
//! A Stepwise plugin is a WebAssembly component. This crate hides the
//! generated WIT bindings behind two traits — [`Action`] for step types and
//! [`Predicate`] for criteria — and one export macro for each. Configuration
//! is a plain Rust type: the SDK parses it with serde, reports parse errors
//! with the field they concern, and derives the JSON Schema the manifest
//! publishes.
//!
//! Build a plugin for the `wasm32-wasip2` target with `crate-type =
//! ["cdylib"]`; the result is a component the Stepwise host loads.
//!
//! # Examples
//!
//! A complete step plugin that asks the rep to call the contact:
//!
//! ```
//! use stepwise_plugin_sdk::prelude::*;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Config {
//!     /// What to talk about, with tokens.
//!     topic: String,
//! }
//!
//! struct Ring;
//!
//! impl Action for Ring {
//!     type Config = Config;
//!
//!     fn manifest() -> Manifest {
//!         Manifest::action("ring", "Ring the contact")
//!             .description("asks the owner to call the contact about a topic")
//!             .channel(Channel::Phone)
//!             .result(ResultSpec::continues("done", "Done"))
//!             .capability(Capability::RenderTemplate)
//!     }
//!
//!     fn prepare(_: &StepContext, config: Config, subject: &Subject) -> Result<EngageItem, String> {
//!         let topic = templates::render(&config.topic).map_err(|e| e.message)?;
//!         Ok(EngageItem::new(format!("Call {}", subject.contact.first_name)).body(topic))
//!     }
//! }
//!
//! stepwise_plugin_sdk::export_action!(Ring);
//! ```

#![deny(missing_docs)]

extern crate self as stepwise_plugin_sdk;

pub mod account;
mod completion;
mod config;
pub mod contacts;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
pub mod http;
pub mod log;
mod manifest;
pub mod messaging;
mod outcome;
mod records;
pub mod templates;
pub mod users;

#[doc(hidden)]
pub mod __private;

pub use completion::check_result;
pub use config::parse_config;
pub use manifest::Manifest;

pub use schemars::JsonSchema;
pub use serde::{Deserialize, Serialize};

/// The WIT package version this SDK was built for. The export macros stamp
/// it into the component so the host can check it on load.
pub const WIT_VERSION: &str = "0.2.0";

/// Types of the WIT contract, re-exported under their Rust names.
pub use __private::bindings::action::stepwise::plugin::types::{
    Activation, Attribute, AttributeValue, Capability, Channel, Company, Completion, ConfigProblem, Contact,
    ContactField, ContactKind, ContactType, Done, Draft, EmailDraft, EngageItem, EnrollmentOutcome, ErrorCode, Failure,
    HostError, OptOuts, Outcome, PluginKind, ResultSpec, Retry, Role, SmsDraft, StepContext, Subject, User, UserCard,
    UserPage,
};

/// Everything a plugin usually needs, in one import.
pub mod prelude {
    pub use crate::{
        Action, Activation, Attribute, AttributeValue, Capability, Channel, Company, ConfigProblem, Contact,
        ContactField, Deserialize, Done, Draft, EmailDraft, EngageItem, EnrollmentOutcome, ErrorCode, Failure,
        HostError, JsonSchema, Manifest, Outcome, Predicate, ResultSpec, Serialize, SmsDraft, StepContext, Subject,
        User, account, contacts, http, log, messaging, templates, users,
    };
}

/// A step type: what it is, how its configuration is checked, what a rep
/// sees for it, and what executing it does.
///
/// Only [`Action::manifest`] is required; every other method has a default
/// that suits a simple manual step.
///
/// # Examples
///
/// ```
/// use stepwise_plugin_sdk::prelude::*;
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Config {}
///
/// struct Noop;
///
/// impl Action for Noop {
///     type Config = Config;
///     fn manifest() -> Manifest {
///         Manifest::action("noop", "Do nothing").automatic()
///     }
/// }
/// ```
pub trait Action {
    /// The step's configuration, parsed from the JSON stored with the step.
    type Config: serde::de::DeserializeOwned + JsonSchema;

    /// Describes the plugin. The SDK fills in the version (from the crate)
    /// and the configuration schema (from [`Action::Config`]).
    fn manifest() -> Manifest;

    /// Checks a parsed configuration beyond what its type says; the default
    /// finds nothing wrong. Parse errors are reported before this is called.
    fn validate(config: &Self::Config) -> Vec<ConfigProblem> {
        let _ = config;
        Vec::new()
    }

    /// Prepares the to-do item of a manual step. The default shows the step's
    /// title and the contact's name.
    ///
    /// # Errors
    ///
    /// A message for people when the item cannot be prepared.
    fn prepare(context: &StepContext, config: Self::Config, subject: &Subject) -> Result<EngageItem, String> {
        let _ = (context, config);
        let manifest = Self::manifest();
        let name = format!("{} {}", subject.contact.first_name, subject.contact.last_name);
        Ok(EngageItem::new(format!("{}: {}", manifest.title(), name.trim())))
    }

    /// Executes the step. The default completes it with the rep's chosen
    /// result, or with the manifest's first result for automatic steps.
    fn execute(context: &StepContext, config: Self::Config, subject: &Subject) -> Outcome {
        let _ = (config, subject);
        let result = match &context.completion {
            Some(completion) => completion.result.clone(),
            None => Self::manifest().first_result().unwrap_or_else(|| "done".into()),
        };
        Outcome::done(result)
    }
}

/// A criteria predicate: holds or not for a contact.
///
/// # Examples
///
/// ```
/// use stepwise_plugin_sdk::prelude::*;
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Config {}
///
/// struct HasEmail;
///
/// impl Predicate for HasEmail {
///     type Config = Config;
///     fn manifest() -> Manifest {
///         Manifest::predicate("has-email", "Has an email address")
///     }
///     fn evaluate(_: &StepContext, _: Config, subject: &Subject) -> Result<bool, String> {
///         Ok(subject.contact.email.is_some())
///     }
/// }
/// ```
pub trait Predicate {
    /// The predicate's configuration, parsed from the JSON stored with the
    /// criterion.
    type Config: serde::de::DeserializeOwned + JsonSchema;

    /// Describes the plugin; the SDK fills in version and schema.
    fn manifest() -> Manifest;

    /// Checks a parsed configuration beyond what its type says.
    fn validate(config: &Self::Config) -> Vec<ConfigProblem> {
        let _ = config;
        Vec::new()
    }

    /// Evaluates the predicate.
    ///
    /// # Errors
    ///
    /// A message for people when the predicate cannot be evaluated; the
    /// engine treats it as a failure, not as false.
    fn evaluate(context: &StepContext, config: Self::Config, subject: &Subject) -> Result<bool, String>;
}

/// Exports a type implementing [`Action`] as the component's step.
///
/// Use it once, at the root of the plugin crate.
///
/// # Examples
///
/// ```
/// # use stepwise_plugin_sdk::prelude::*;
/// # #[derive(Deserialize, JsonSchema)] struct Config {}
/// # struct Noop;
/// # impl Action for Noop { type Config = Config;
/// #     fn manifest() -> Manifest { Manifest::action("noop", "Noop") } }
/// stepwise_plugin_sdk::export_action!(Noop);
/// ```
#[macro_export]
macro_rules! export_action {
    ($plugin:ty) => {
        // Only wasm builds export: native linkers reject component-model
        // export names in a cdylib's version script, and a native build of
        // a plugin is for its unit tests only.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __StepwiseAction;

            impl $crate::__private::ActionGuest for __StepwiseAction {
                fn describe() -> $crate::__private::WitManifest {
                    $crate::__private::describe::<$plugin>(env!("CARGO_PKG_VERSION"))
                }
                fn validate_config(config: ::std::string::String) -> ::std::vec::Vec<$crate::ConfigProblem> {
                    $crate::__private::validate_action::<$plugin>(&config)
                }
                fn prepare(
                    context: $crate::StepContext,
                    config: ::std::string::String,
                    subject: $crate::Subject,
                ) -> ::std::result::Result<$crate::EngageItem, ::std::string::String> {
                    $crate::__private::prepare::<$plugin>(context, &config, subject)
                }
                fn execute(
                    context: $crate::StepContext,
                    config: ::std::string::String,
                    subject: $crate::Subject,
                ) -> $crate::Outcome {
                    $crate::__private::execute::<$plugin>(context, &config, subject)
                }
            }

            $crate::__private::bindings::action::__export_action_plugin!(
                __StepwiseAction with_types_in $crate::__private::bindings::action
            );
            $crate::__stamp_wit_version!();
        };
    };
}

/// Exports a type implementing [`Predicate`] as the component's predicate.
///
/// # Examples
///
/// ```
/// # use stepwise_plugin_sdk::prelude::*;
/// # #[derive(Deserialize, JsonSchema)] struct Config {}
/// # struct Always;
/// # impl Predicate for Always { type Config = Config;
/// #     fn manifest() -> Manifest { Manifest::predicate("always", "Always") }
/// #     fn evaluate(_: &StepContext, _: Config, _: &Subject) -> Result<bool, String> { Ok(true) } }
/// stepwise_plugin_sdk::export_predicate!(Always);
/// ```
#[macro_export]
macro_rules! export_predicate {
    ($plugin:ty) => {
        // Only wasm builds export: native linkers reject component-model
        // export names in a cdylib's version script, and a native build of
        // a plugin is for its unit tests only.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __StepwisePredicate;

            impl $crate::__private::PredicateGuest for __StepwisePredicate {
                fn describe() -> $crate::__private::WitManifest {
                    $crate::__private::describe_predicate::<$plugin>(env!("CARGO_PKG_VERSION"))
                }
                fn validate_config(config: ::std::string::String) -> ::std::vec::Vec<$crate::ConfigProblem> {
                    $crate::__private::validate_predicate::<$plugin>(&config)
                }
                fn evaluate(
                    context: $crate::StepContext,
                    config: ::std::string::String,
                    subject: $crate::Subject,
                ) -> ::std::result::Result<bool, ::std::string::String> {
                    $crate::__private::evaluate::<$plugin>(context, &config, subject)
                }
            }

            $crate::__private::bindings::predicate::__export_predicate_plugin!(
                __StepwisePredicate with_types_in $crate::__private::bindings::predicate
            );
            $crate::__stamp_wit_version!();
        };
    };
}

/// Stamps [`WIT_VERSION`] into a custom section of the component.
#[doc(hidden)]
#[macro_export]
macro_rules! __stamp_wit_version {
    () => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        #[unsafe(link_section = "stepwise:wit-version")]
        #[used]
        static __STEPWISE_WIT_VERSION: [u8; $crate::WIT_VERSION.len()] = $crate::__private::wit_version_bytes();
    };
}

/// The README's plugin example, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
