//! The plugin's log. Needs the `log` capability.
//!
//! # Examples
//!
//! ```no_run
//! stepwise_plugin_sdk::log::info("sending the reminder");
//! ```

use crate::__private::bindings::action::stepwise::plugin::log as wit;

pub use wit::Level;

/// Writes one line at `level`.
pub fn write(level: Level, message: &str) {
    wit::log(level, message);
}

/// Writes one line at debug level.
pub fn debug(message: &str) {
    write(Level::Debug, message);
}

/// Writes one line at info level.
pub fn info(message: &str) {
    write(Level::Info, message);
}

/// Writes one line at warn level.
pub fn warn(message: &str) {
    write(Level::Warn, message);
}

/// Writes one line at error level.
pub fn error(message: &str) {
    write(Level::Error, message);
}
