//! `stepwise:plugin/users`, as every contract version since 0.1.0 has it: looking up users of the account.

#![allow(clippy::duplicate_mod, reason = "a module of every contract version, each against its own types")]

use super::action_world::stepwise::plugin::users::{Host, UserRef};
use super::convert::{code_name, host_error, user};
use super::wit::{ErrorCode, HostError, User};
use crate::capability::Need;
use crate::directory;
use crate::report::HostCallResult;
use crate::state::HostCtx;
use crate::types::Capability;

impl Host for HostCtx {
    async fn lookup_user(&mut self, who: UserRef) -> wasmtime::Result<Result<Option<User>, HostError>> {
        self.count_call()?;
        let (who, detail) = match who {
            UserRef::Id(id) => (directory::UserRef::Id(id.clone()), format!("id {id}")),
            UserRef::Email(email) => (directory::UserRef::Email(email.clone()), format!("email {email}")),
        };
        self.charge(detail.len())?;
        const FUNCTION: &str = "users.lookup-user";
        if let Err(denial) = self.authorize(FUNCTION, &detail, Need::Plain(Capability::LookupUser)) {
            return Ok(Err(host_error(ErrorCode::Denied, denial.to_string())));
        }
        let directory = self.invocation.directory.clone();
        let account = self.invocation.step.account_id.clone();
        match directory.user(&account, &who).await {
            Ok(found) => {
                self.charge(found.as_ref().map_or(0, |u| u.name.len() + u.email.len() + u.signature.len()))?;
                self.record(FUNCTION, &detail, HostCallResult::Ok);
                Ok(Ok(found.as_ref().map(user)))
            }
            Err(message) => {
                let code = code_name(ErrorCode::Unavailable).to_owned();
                self.record(FUNCTION, &detail, HostCallResult::Error { code, message: message.clone() });
                Ok(Err(host_error(ErrorCode::Unavailable, message)))
            }
        }
    }
}
