//! The records and contracts every part of Stepwise shares, with no I/O:
//! [`crm`] holds the records of the CRM that plugins see (contacts, users,
//! companies), [`engagement`] the records of sequences at work (steps,
//! enrollments, actions, events, the outbox), [`health`] a company's health
//! score from weighted indicators and its weekly history, [`plugin`] what
//! plugins say and answer, [`templates`] the token language of messages, and
//! [`transport`] how queued messages and calls leave the host.

pub mod crm;
pub mod engagement;
pub mod health;
pub mod plugin;
mod secret;
pub mod templates;
pub mod transport;

pub use secret::Secret;

/// At most `max_bytes` of `text`, cut back to a character boundary: for
/// the start of a body kept in a log or an error.
pub fn clip(text: &str, max_bytes: usize) -> &str {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
