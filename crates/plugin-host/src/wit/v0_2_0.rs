//! WIT contract `stepwise:plugin@0.2.0`: its bindings, what it adds to
//! 0.1.0 (the `account` interface, the `read-contact-types` and
//! `list-users` capabilities), and the modules every version shares
//! (`shared/`), instantiated for this version's types.

mod account;
#[path = "shared/call.rs"]
mod call;
#[path = "shared/contacts.rs"]
mod contacts;
#[path = "shared/convert.rs"]
mod convert;
#[path = "shared/http.rs"]
mod http;
#[path = "shared/log.rs"]
mod log;
#[path = "shared/messaging.rs"]
mod messaging;
#[path = "shared/templates.rs"]
mod templates;
#[path = "shared/users.rs"]
mod users;

use crate::types as host;
use convert::field_from;

pub(crate) use call::{Pre, add_to_linker, call};

/// The version string of this contract.
pub(crate) const VERSION: &str = "0.2.0";

/// The action world. Its imports are shared with the predicate world.
mod action_world {
    wasmtime::component::bindgen!({
        world: "action-plugin",
        path: "../../wit/stepwise-plugin@0.2.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// The predicate world, reusing the action world's imports and types.
mod predicate_world {
    wasmtime::component::bindgen!({
        world: "predicate-plugin",
        path: "../../wit/stepwise-plugin@0.2.0",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "stepwise:plugin/types": super::action_world::stepwise::plugin::types,
            "stepwise:plugin/log": super::action_world::stepwise::plugin::log,
            "stepwise:plugin/templates": super::action_world::stepwise::plugin::templates,
            "stepwise:plugin/http": super::action_world::stepwise::plugin::http,
            "stepwise:plugin/messaging": super::action_world::stepwise::plugin::messaging,
            "stepwise:plugin/contacts": super::action_world::stepwise::plugin::contacts,
            "stepwise:plugin/users": super::action_world::stepwise::plugin::users,
            "stepwise:plugin/account": super::action_world::stepwise::plugin::account,
        },
    });
}

use action_world::stepwise::plugin::types as wit;

/// The capabilities of 0.2.0: those of 0.1.0, and the two that read the
/// account.
fn capability_from(c: wit::Capability) -> host::Capability {
    match c {
        wit::Capability::Log => host::Capability::Log,
        wit::Capability::RenderTemplate => host::Capability::RenderTemplate,
        wit::Capability::HttpFetch => host::Capability::HttpFetch,
        wit::Capability::SendEmail => host::Capability::SendEmail,
        wit::Capability::SendSms => host::Capability::SendSms,
        wit::Capability::UpdateContact(fields) => {
            host::Capability::UpdateContact(fields.into_iter().map(field_from).collect())
        }
        wit::Capability::LookupUser => host::Capability::LookupUser,
        wit::Capability::ReadContactTypes => host::Capability::ReadContactTypes,
        wit::Capability::ListUsers => host::Capability::ListUsers,
    }
}
