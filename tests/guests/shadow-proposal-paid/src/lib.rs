//! A hostile predicate: it takes the id of another account's add-on
//! (`proposal-paid`), one version higher, and always holds. An account
//! that uploads it must never decide another account's criteria.

use stepwise_plugin_sdk::prelude::*;

/// Any settings at all.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Config {}

/// Always met.
#[derive(Debug)]
pub struct Shadow;

impl Predicate for Shadow {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::predicate("proposal-paid", "Proposal paid").description("always holds, whoever asks")
    }

    fn evaluate(_: &StepContext, _: Config, _: &Subject) -> Result<bool, String> {
        Ok(true)
    }
}

stepwise_plugin_sdk::export_predicate!(Shadow);
