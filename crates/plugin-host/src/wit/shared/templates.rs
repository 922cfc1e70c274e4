//! `stepwise:plugin/templates`, as every contract version since 0.1.0 has it: token rendering for the current subject.

#![allow(clippy::duplicate_mod, reason = "a module of every contract version, each against its own types")]

use super::action_world::stepwise::plugin::templates::Host;
use super::convert::{code_name, host_error};
use super::wit::{ErrorCode, HostError};
use crate::capability::Need;
use crate::report::HostCallResult;
use crate::state::HostCtx;
use crate::types::Capability;

/// The common part of `render` and `check`: authorization, budget and
/// recording. `work` does the template work itself.
fn template_call(
    ctx: &mut HostCtx,
    function: &str,
    template: &str,
    work: impl FnOnce(&HostCtx) -> Result<String, stepwise_domain::templates::TemplateError>,
) -> wasmtime::Result<Result<String, HostError>> {
    ctx.charge(template.len())?;
    let detail = preview(template);
    if let Err(denial) = ctx.authorize(function, &detail, Need::Plain(Capability::RenderTemplate)) {
        return Ok(Err(host_error(ErrorCode::Denied, denial.to_string())));
    }
    match work(ctx) {
        Ok(text) => {
            ctx.charge(text.len())?;
            ctx.record(function, &detail, HostCallResult::Ok);
            Ok(Ok(text))
        }
        Err(error) => {
            let message = error.to_string();
            let code = code_name(ErrorCode::Invalid).to_owned();
            ctx.record(function, &detail, HostCallResult::Error { code, message: message.clone() });
            Ok(Err(host_error(ErrorCode::Invalid, message)))
        }
    }
}

impl Host for HostCtx {
    async fn render(&mut self, template: String) -> wasmtime::Result<Result<String, HostError>> {
        self.count_call()?;
        template_call(self, "templates.render", &template, |ctx| {
            stepwise_domain::templates::render(&template, &ctx.invocation.subject)
        })
    }

    async fn check(&mut self, template: String) -> wasmtime::Result<Result<(), HostError>> {
        self.count_call()?;
        let checked = template_call(self, "templates.check", &template, |_| {
            stepwise_domain::templates::check(&template).map(|()| String::new())
        })?;
        Ok(checked.map(drop))
    }
}

/// The first characters of a template, for the report.
fn preview(template: &str) -> String {
    const MAX: usize = 60;
    match template.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &template[..cut]),
        None => template.to_owned(),
    }
}
