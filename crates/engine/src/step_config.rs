//! Step configs as plugins see them. A config's top-level `template_id`
//! names one of the account's message templates; before every call the host
//! adds that template as `template` (`{id, name, subject, body}`), so a step
//! always sends the template's current text and plugins never read the
//! store. A template that is gone is simply not added: the plugin reports
//! the step's `template_id` as unknown.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::Result;
use stepwise_store::{ReadTx, Template};

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

/// Adds to each config the template it names (see [`with_template`]): the
/// configs of `account_id`, or each with its own account, read with one
/// query per account.
pub(crate) async fn expand_templates(tx: &mut ReadTx, configs: Vec<(&str, &mut Value)>) -> Result<()> {
    let mut wanted: HashMap<&str, Vec<String>> = HashMap::new();
    for (account, config) in &configs {
        if let Some(id) = template_id(config) {
            wanted.entry(*account).or_default().push(id.to_owned());
        }
    }
    let mut found: HashMap<(&str, String), Template> = HashMap::new();
    for (account, ids) in wanted {
        for template in tx.templates_in(account, &ids).await? {
            found.insert((account, template.id.clone()), template);
        }
    }
    for (account, config) in configs {
        if let Some(id) = template_id(config).map(str::to_owned) {
            *config = with_template(config, found.get(&(account, id)));
        }
    }
    Ok(())
}
