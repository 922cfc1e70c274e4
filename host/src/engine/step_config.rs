//! Step configs as plugins see them. A config's top-level `template_id`
//! names one of the account's message templates; before every call the host
//! adds that template as `template` (`{id, name, subject, body}`), so a step
//! always sends the template's current text and plugins never read the
//! store. A template that is gone is simply not added: the plugin reports
//! the step's `template_id` as unknown.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Engine, Result};
use crate::domain::Step;
use crate::store::{Template, Tx};

/// The config field that names a template.
pub const TEMPLATE_ID: &str = "template_id";
/// The config field the host fills with the named template.
pub const TEMPLATE: &str = "template";

/// The template a config names, if any.
pub fn template_id(config: &Value) -> Option<&str> {
    config.get(TEMPLATE_ID).and_then(Value::as_str)
}

/// `config` with `template` set from `found` (or removed when the template
/// is gone, so that a config cannot smuggle its own).
pub fn with_template(config: &Value, found: Option<&Template>) -> Value {
    let mut config = config.clone();
    if let Some(fields) = config.as_object_mut() {
        match found {
            Some(t) => {
                fields.insert(
                    TEMPLATE.into(),
                    json!({ "id": t.id, "name": t.name, "subject": t.subject, "body": t.body }),
                );
            }
            None => {
                fields.remove(TEMPLATE);
            }
        }
    }
    config
}

impl Engine {
    /// The templates `wanted` names, per account, in one query per account.
    pub(crate) async fn templates_of(
        &self,
        tx: &mut Tx,
        wanted: &HashMap<String, Vec<String>>,
    ) -> Result<HashMap<(String, String), Template>> {
        let mut found = HashMap::new();
        for (account, ids) in wanted {
            for template in tx.templates_in(account, ids).await? {
                found.insert((account.clone(), template.id.clone()), template);
            }
        }
        Ok(found)
    }

    /// Adds to `step`'s config the template it names, read through `tx`.
    pub(crate) async fn expand_step(&self, tx: &mut Tx, account_id: &str, step: &mut Step) -> Result<()> {
        if let Some(id) = template_id(&step.config).map(str::to_owned) {
            let wanted = HashMap::from([(account_id.to_owned(), vec![id.clone()])]);
            let found = self.templates_of(tx, &wanted).await?;
            step.config = with_template(&step.config, found.get(&(account_id.to_owned(), id)));
        }
        Ok(())
    }
}
