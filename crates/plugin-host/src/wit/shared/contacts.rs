//! `stepwise:plugin/contacts`, as every contract version since 0.1.0 has it: changes to the current contact. The
//! change is applied to the call's copy of the contact and reported; the
//! engine commits it with the action.

#![allow(clippy::duplicate_mod, reason = "a module of every contract version, each against its own types")]

use std::collections::BTreeSet;

use super::action_world::stepwise::plugin::contacts::{ContactUpdate, Host, OwnerChange};
use super::convert::{attribute_value_from, code_name, contact, host_error};
use super::wit::{Contact, ErrorCode, HostError};
use crate::capability::Need;
use crate::directory::UserRef;
use crate::report::{ContactChange, HostCallResult};
use crate::state::HostCtx;
use crate::types::ContactField;

impl Host for HostCtx {
    async fn update_contact(&mut self, update: ContactUpdate) -> wasmtime::Result<Result<Contact, HostError>> {
        self.count_call()?;
        let size = update.contact_type.as_ref().map_or(0, String::len)
            + update.sales_cycle.as_ref().map_or(0, String::len)
            + update.attributes.iter().map(|a| a.name.len() + 16).sum::<usize>();
        self.charge(size)?;
        let mut fields = BTreeSet::new();
        if update.owner.is_some() {
            fields.insert(ContactField::Owner);
        }
        if update.contact_type.is_some() {
            fields.insert(ContactField::ContactType);
        }
        if update.sales_cycle.is_some() {
            fields.insert(ContactField::SalesCycle);
        }
        if !update.attributes.is_empty() {
            fields.insert(ContactField::Attributes);
        }
        let names: Vec<_> = fields.iter().map(|f| f.name()).collect();
        let detail = names.join(", ");
        const FUNCTION: &str = "contacts.update-contact";
        if let Err(denial) = self.authorize(FUNCTION, &detail, Need::ContactFields(fields)) {
            return Ok(Err(host_error(ErrorCode::Denied, denial.to_string())));
        }
        let mut change = ContactChange::default();
        if let Some(owner) = update.owner {
            match owner {
                OwnerChange::Unassign => change.owner = Some(None),
                OwnerChange::Assign(id) => {
                    let directory = self.invocation.directory.clone();
                    let account = self.invocation.step.account_id.clone();
                    let problem = match directory.user(&account, &UserRef::Id(id.clone())).await {
                        Err(message) => Some((ErrorCode::Unavailable, message)),
                        Ok(None) => Some((ErrorCode::NotFound, format!("no user `{id}` in this account"))),
                        Ok(Some(user)) if !user.active => {
                            Some((ErrorCode::Invalid, format!("user `{id}` is inactive")))
                        }
                        Ok(Some(user)) if user.delegate => {
                            Some((ErrorCode::Invalid, format!("user `{id}` is a delegate and may not own contacts")))
                        }
                        Ok(Some(_)) => None,
                    };
                    if let Some((code, message)) = problem {
                        let result =
                            HostCallResult::Error { code: code_name(code).to_owned(), message: message.clone() };
                        self.record(FUNCTION, &detail, result);
                        return Ok(Err(host_error(code, message)));
                    }
                    change.owner = Some(Some(id));
                }
            }
        }
        change.contact_type = update.contact_type;
        change.sales_cycle = update.sales_cycle;
        change.attributes = update.attributes.into_iter().map(|a| (a.name, attribute_value_from(a.value))).collect();

        let current = &mut self.invocation.subject.contact;
        if let Some(owner) = &change.owner {
            current.owner_id.clone_from(owner);
        }
        if let Some(contact_type) = &change.contact_type {
            current.contact_type.clone_from(contact_type);
        }
        if let Some(cycle) = &change.sales_cycle {
            current.sales_cycle = Some(cycle.clone());
        }
        for (name, value) in &change.attributes {
            current.attributes.insert(name.clone(), value.clone());
        }
        let updated = contact(current);
        self.report.contact_changes.push(change);
        self.record(FUNCTION, &detail, HostCallResult::Ok);
        Ok(Ok(updated))
    }
}
