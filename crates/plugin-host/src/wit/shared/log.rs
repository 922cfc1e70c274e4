//! `stepwise:plugin/log`, as every contract version since 0.1.0 has it: the plugin's log.

#![allow(clippy::duplicate_mod, reason = "a module of every contract version, each against its own types")]

use super::action_world::stepwise::plugin::log::{Host, Level};
use crate::capability::Need;
use crate::report::LogLevel;
use crate::state::HostCtx;
use crate::types::Capability;

impl Host for HostCtx {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.count_call()?;
        // Charged before the check so that a denied plugin cannot flood the
        // report with denials for free.
        self.charge(message.len())?;
        if self.authorize("log.log", "", Need::Plain(Capability::Log)).is_err() {
            // `log` has no error channel: the denial is recorded and the
            // line dropped.
            return Ok(());
        }
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.log(level, message)
    }
}
