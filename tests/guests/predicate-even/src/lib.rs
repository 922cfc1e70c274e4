//! A predicate guest: holds when the contact's attribute `n` is an even number.

use stepwise_plugin_sdk::prelude::*;

/// No settings.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Config {}

/// True when `n` is even; an error when `n` is missing or not a number.
#[derive(Debug)]
pub struct Even;

impl Predicate for Even {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::predicate("predicate-even", "Attribute n is even")
            .description("holds when the contact attribute `n` is an even number")
    }

    fn evaluate(_: &StepContext, _: Config, subject: &Subject) -> Result<bool, String> {
        let attribute = subject.contact.attributes.iter().find(|a| a.name == "n");
        match attribute.map(|a| &a.value) {
            Some(AttributeValue::Number(n)) => Ok(n % 2.0 == 0.0),
            Some(_) => Err("attribute `n` is not a number".to_owned()),
            None => Err("the contact has no attribute `n`".to_owned()),
        }
    }
}

stepwise_plugin_sdk::export_predicate!(Even);
