//! `stepwise:plugin/account@0.2.0`: the account's contact types and its
//! users' display fields.

use super::action_world::stepwise::plugin::account::Host;
use super::convert::{code_name, host_error, role};
use super::wit::{ContactType, ErrorCode, HostError, UserCard, UserPage};
use crate::capability::Need;
use crate::directory::MAX_USERS_PER_PAGE;
use crate::report::HostCallResult;
use crate::state::HostCtx;
use crate::types::Capability;

impl Host for HostCtx {
    async fn contact_types(&mut self) -> wasmtime::Result<Result<Vec<ContactType>, HostError>> {
        self.count_call()?;
        const FUNCTION: &str = "account.contact-types";
        if let Err(denial) = self.authorize(FUNCTION, "", Need::Plain(Capability::ReadContactTypes)) {
            return Ok(Err(host_error(ErrorCode::Denied, denial.to_string())));
        }
        let directory = self.invocation.directory.clone();
        let account = self.invocation.step.account_id.clone();
        match directory.contact_types(&account).await {
            Ok(types) => {
                self.charge(types.iter().map(|t| t.id.len() + t.name.len() + 1).sum())?;
                self.record(FUNCTION, "", HostCallResult::Ok);
                Ok(Ok(types
                    .into_iter()
                    .map(|t| ContactType { id: t.id, name: t.name, is_default: t.default })
                    .collect()))
            }
            Err(message) => Ok(Err(unavailable(self, FUNCTION, "", message))),
        }
    }

    async fn list_users(&mut self, after: Option<String>, limit: u32) -> wasmtime::Result<Result<UserPage, HostError>> {
        self.count_call()?;
        self.charge(after.as_ref().map_or(0, String::len))?;
        const FUNCTION: &str = "account.list-users";
        let detail = match &after {
            Some(after) => format!("after {after}, limit {limit}"),
            None => format!("limit {limit}"),
        };
        if let Err(denial) = self.authorize(FUNCTION, &detail, Need::Plain(Capability::ListUsers)) {
            return Ok(Err(host_error(ErrorCode::Denied, denial.to_string())));
        }
        if limit == 0 {
            let message = "the limit must be at least 1".to_owned();
            let code = code_name(ErrorCode::Invalid).to_owned();
            self.record(FUNCTION, &detail, HostCallResult::Error { code, message: message.clone() });
            return Ok(Err(host_error(ErrorCode::Invalid, message)));
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).min(MAX_USERS_PER_PAGE);
        let directory = self.invocation.directory.clone();
        let account = self.invocation.step.account_id.clone();
        // One more than the page tells whether another page follows.
        match directory.users_after(&account, after.as_deref(), limit + 1).await {
            Ok(mut users) => {
                let next = (users.len() > limit).then(|| {
                    users.truncate(limit);
                    users.last().map(|u| u.id.clone()).unwrap_or_default()
                });
                let size: usize =
                    users.iter().map(|u| u.id.len() + u.name.len() + u.email.len() + u.timezone.len()).sum();
                self.charge(size)?;
                self.record(FUNCTION, &detail, HostCallResult::Ok);
                let users = users
                    .into_iter()
                    .map(|u| UserCard {
                        id: u.id,
                        name: u.name,
                        email: u.email,
                        role: role(u.role),
                        active: u.active,
                        delegate: u.delegate,
                        timezone: u.timezone,
                    })
                    .collect();
                Ok(Ok(UserPage { users, next }))
            }
            Err(message) => Ok(Err(unavailable(self, FUNCTION, &detail, message))),
        }
    }
}

/// Records that the directory could not answer, and the error the plugin
/// sees.
fn unavailable(ctx: &mut HostCtx, function: &str, detail: &str, message: String) -> HostError {
    let code = code_name(ErrorCode::Unavailable).to_owned();
    ctx.record(function, detail, HostCallResult::Error { code, message: message.clone() });
    host_error(ErrorCode::Unavailable, message)
}
