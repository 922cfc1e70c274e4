//! The manifest builder: what a plugin says about itself.

use crate::__private::WitManifest;
use crate::{Activation, Capability, Channel, EnrollmentOutcome, PluginKind, ResultSpec};

/// What a plugin says about itself, built with chained calls. The SDK adds
/// the crate's version and the configuration's JSON Schema.
///
/// # Examples
///
/// ```
/// use stepwise_plugin_sdk::prelude::*;
///
/// let manifest = Manifest::action("call", "Call")
///     .description("the owner calls the contact")
///     .channel(Channel::Phone)
///     .result(ResultSpec::continues("no_answer", "No answer"))
///     .result(ResultSpec::ends("interested", "Interested", EnrollmentOutcome::Positive));
/// assert_eq!(manifest.title(), "Call");
/// ```
#[derive(Debug, Clone)]
pub struct Manifest {
    id: String,
    title: String,
    description: String,
    kind: PluginKind,
    channel: Option<Channel>,
    activation: Activation,
    results: Vec<ResultSpec>,
    capabilities: Vec<Capability>,
}

impl Manifest {
    /// A step type, manual unless [`Manifest::automatic`] is called.
    pub fn action(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self::new(PluginKind::Action, id.into(), title.into())
    }

    /// A criteria predicate.
    pub fn predicate(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self::new(PluginKind::Predicate, id.into(), title.into())
    }

    fn new(kind: PluginKind, id: String, title: String) -> Self {
        Self {
            id,
            title,
            description: String::new(),
            kind,
            channel: None,
            activation: Activation::Manual,
            results: Vec::new(),
            capabilities: Vec::new(),
        }
    }

    /// Sets the description shown to admins.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Declares the channel the step uses; the engine skips the step when the
    /// contact opted out of it.
    #[must_use]
    pub fn channel(mut self, channel: Channel) -> Self {
        self.channel = Some(channel);
        self
    }

    /// Makes new steps of this type automatic by default.
    #[must_use]
    pub fn automatic(mut self) -> Self {
        self.activation = Activation::Automatic;
        self
    }

    /// Makes new steps of this type manual by default (the default).
    #[must_use]
    pub fn manual(mut self) -> Self {
        self.activation = Activation::Manual;
        self
    }

    /// Adds a result the step can end with.
    #[must_use]
    pub fn result(mut self, result: ResultSpec) -> Self {
        self.results.push(result);
        self
    }

    /// Requests a capability; the admin must grant it too.
    #[must_use]
    pub fn capability(mut self, capability: Capability) -> Self {
        self.capabilities.push(capability);
        self
    }

    /// The plugin's identifier.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The plugin's title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The code of the first declared result, if any.
    pub fn first_result(&self) -> Option<String> {
        self.results.first().map(|r| r.code.clone())
    }

    /// Whether `code` is one of the declared results.
    pub fn has_result(&self, code: &str) -> bool {
        self.results.iter().any(|r| r.code == code)
    }

    pub(crate) fn into_wit<C: schemars::JsonSchema>(self, version: &str) -> WitManifest {
        let schema = schemars::schema_for!(C);
        WitManifest {
            id: self.id,
            version: version.to_owned(),
            kind: self.kind,
            title: self.title,
            description: self.description,
            config_schema: serde_json::to_string(&schema).unwrap_or_else(|_| "{}".to_owned()),
            channel: self.channel,
            default_activation: self.activation,
            results: self.results,
            capabilities: self.capabilities,
        }
    }
}

impl ResultSpec {
    /// A result after which the enrollment continues with its next step.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::ResultSpec;
    /// let spec = ResultSpec::continues("no_answer", "No answer");
    /// assert!(!spec.ends_enrollment);
    /// ```
    pub fn continues(code: impl Into<String>, title: impl Into<String>) -> Self {
        Self { code: code.into(), title: title.into(), ends_enrollment: false, outcome: None }
    }

    /// A result that ends the enrollment with `outcome`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::{ResultSpec, EnrollmentOutcome};
    /// let spec = ResultSpec::ends("interested", "Interested", EnrollmentOutcome::Positive);
    /// assert!(spec.ends_enrollment);
    /// ```
    pub fn ends(code: impl Into<String>, title: impl Into<String>, outcome: EnrollmentOutcome) -> Self {
        Self { code: code.into(), title: title.into(), ends_enrollment: true, outcome: Some(outcome) }
    }
}
