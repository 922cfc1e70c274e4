//! `stepwise:plugin/messaging`, as every contract version since 0.1.0 has it: queueing email and text messages.
//! Messages land in the call's report; the engine writes them to the outbox
//! in the transaction that completes the action.

#![allow(clippy::duplicate_mod, reason = "a module of every contract version, each against its own types")]

use super::action_world::stepwise::plugin::messaging::{Email, Host, Sms};
use super::convert::{code_name, host_error};
use super::wit::{ErrorCode, HostError};
use crate::capability::Need;
use crate::report::{HostCallResult, QueuedMessage};
use crate::state::HostCtx;
use crate::types::Capability;

/// Authorizes and validates a message, then queues what `make` builds
/// from the new message id.
fn queue(
    ctx: &mut HostCtx,
    function: &str,
    capability: Capability,
    to: &str,
    problem: Option<String>,
    make: impl FnOnce(String) -> QueuedMessage,
) -> Result<String, HostError> {
    let detail = format!("to {to}");
    if let Err(denial) = ctx.authorize(function, &detail, Need::Plain(capability)) {
        return Err(host_error(ErrorCode::Denied, denial.to_string()));
    }
    if let Some(message) = problem {
        let code = code_name(ErrorCode::Invalid).to_owned();
        ctx.record(function, &detail, HostCallResult::Error { code, message: message.clone() });
        return Err(host_error(ErrorCode::Invalid, message));
    }
    let id = ctx.next_message_id();
    ctx.report.messages.push(make(id.clone()));
    ctx.record(function, &detail, HostCallResult::Ok);
    Ok(id)
}

impl Host for HostCtx {
    async fn send_email(&mut self, message: Email) -> wasmtime::Result<Result<String, HostError>> {
        self.count_call()?;
        let size = message.to.len()
            + message.subject.len()
            + message.text.len()
            + message.html.as_ref().map_or(0, String::len);
        self.charge(size)?;
        let problem = email_problem(&message);
        let to = message.to.clone();
        Ok(queue(self, "messaging.send-email", Capability::SendEmail, &to, problem, |id| QueuedMessage::Email {
            id,
            to: message.to,
            subject: message.subject,
            text: message.text,
            html: message.html,
        }))
    }

    async fn send_sms(&mut self, message: Sms) -> wasmtime::Result<Result<String, HostError>> {
        self.count_call()?;
        self.charge(message.to.len() + message.body.len())?;
        let problem = sms_problem(&message);
        let to = message.to.clone();
        Ok(queue(self, "messaging.send-sms", Capability::SendSms, &to, problem, |id| QueuedMessage::Sms {
            id,
            to: message.to,
            body: message.body,
        }))
    }
}

fn email_problem(message: &Email) -> Option<String> {
    let to = message.to.trim();
    let valid = to
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !to.contains(char::is_whitespace));
    if !valid {
        return Some(format!("recipient `{}` is not an email address", message.to));
    }
    if message.subject.contains(['\r', '\n']) {
        return Some("the subject must be one line".to_owned());
    }
    None
}

fn sms_problem(message: &Sms) -> Option<String> {
    let digits = message.to.strip_prefix('+').unwrap_or(&message.to);
    if !message.to.starts_with('+') || digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!("recipient `{}` is not a phone number in E.164 form", message.to));
    }
    if message.body.is_empty() {
        return Some("the message is empty".to_owned());
    }
    None
}
