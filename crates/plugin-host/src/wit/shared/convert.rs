//! Conversions between a contract version's types and the host's, for
//! every type that version shares with 0.1.0 (a module of each version's,
//! through `#[path]`). What a version adds or changes is converted in its
//! own module.

#![allow(clippy::duplicate_mod, reason = "a module of every contract version, each against its own types")]

use super::capability_from;
use super::wit;
use crate::state::HostCtx;
use crate::types as host;
use stepwise_domain::crm as model;

// ---- conversions: guest types into host types ----

pub(super) fn manifest(m: wit::Manifest) -> wasmtime::Result<host::Manifest> {
    let config_schema = serde_json::from_str(&m.config_schema)
        .map_err(|e| wasmtime::format_err!("the manifest's config-schema is not valid JSON: {e}"))?;
    Ok(host::Manifest {
        id: m.id,
        version: m.version,
        kind: match m.kind {
            wit::PluginKind::Action => host::PluginKind::Action,
            wit::PluginKind::Predicate => host::PluginKind::Predicate,
        },
        title: m.title,
        description: m.description,
        config_schema,
        channel: m.channel.map(|c| match c {
            wit::Channel::Email => host::Channel::Email,
            wit::Channel::Sms => host::Channel::Sms,
            wit::Channel::Phone => host::Channel::Phone,
        }),
        default_activation: activation_from(m.default_activation),
        results: m
            .results
            .into_iter()
            .map(|r| host::ResultSpec {
                code: r.code,
                title: r.title,
                ends_enrollment: r.ends_enrollment,
                outcome: r.outcome.map(|o| match o {
                    wit::EnrollmentOutcome::Positive => host::EnrollmentOutcome::Positive,
                    wit::EnrollmentOutcome::Negative => host::EnrollmentOutcome::Negative,
                    wit::EnrollmentOutcome::Neutral => host::EnrollmentOutcome::Neutral,
                }),
            })
            .collect(),
        capabilities: m.capabilities.into_iter().map(capability_from).collect(),
    })
}

pub(super) fn field_from(f: wit::ContactField) -> host::ContactField {
    match f {
        wit::ContactField::Owner => host::ContactField::Owner,
        wit::ContactField::ContactType => host::ContactField::ContactType,
        wit::ContactField::SalesCycle => host::ContactField::SalesCycle,
        wit::ContactField::Attributes => host::ContactField::Attributes,
    }
}

pub(super) fn activation_from(a: wit::Activation) -> host::Activation {
    match a {
        wit::Activation::Manual => host::Activation::Manual,
        wit::Activation::Automatic => host::Activation::Automatic,
    }
}

pub(super) fn outcome(o: wit::Outcome) -> host::Outcome {
    let json = |text: String| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    match o {
        wit::Outcome::Done(d) => host::Outcome::Done { result: d.result, output: json(d.output) },
        wit::Outcome::Skipped(reason) => host::Outcome::Skipped { reason },
        wit::Outcome::Retry(r) => {
            host::Outcome::Retry { after: std::time::Duration::from_millis(r.after_ms), reason: r.reason }
        }
        wit::Outcome::Failed(f) => host::Outcome::Failed { message: f.message, details: json(f.details) },
    }
}

impl From<wit::ConfigProblem> for host::ConfigProblem {
    fn from(p: wit::ConfigProblem) -> Self {
        Self { field: p.field, message: p.message }
    }
}

impl From<wit::Draft> for host::Draft {
    fn from(d: wit::Draft) -> Self {
        match d {
            wit::Draft::Email(e) => host::Draft::Email { to: e.to, subject: e.subject, body: e.body },
            wit::Draft::Sms(s) => host::Draft::Sms { to: s.to, body: s.body },
        }
    }
}

impl From<wit::EngageItem> for host::EngageItem {
    fn from(i: wit::EngageItem) -> Self {
        Self { title: i.title, body: i.body, draft: i.draft.map(Into::into) }
    }
}

// ---- conversions: host types into guest types ----

pub(super) fn millis(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn step_context(c: &host::StepContext) -> wit::StepContext {
    wit::StepContext {
        account_id: c.account_id.clone(),
        sequence_id: c.sequence_id.clone(),
        sequence_version: c.sequence_version,
        enrollment_id: c.enrollment_id.clone(),
        action_id: c.action_id.clone(),
        step_number: c.step_number,
        attempt: c.attempt,
        idempotency_key: c.idempotency_key.clone(),
        now: millis(c.now),
        event_date: c.event_date.map(millis),
        activation: match c.activation {
            host::Activation::Manual => wit::Activation::Manual,
            host::Activation::Automatic => wit::Activation::Automatic,
        },
        completion: c.completion.as_ref().map(|done| wit::Completion {
            result: done.result.clone(),
            draft: done.draft.as_ref().map(|d| match d {
                host::Draft::Email { to, subject, body } => {
                    wit::Draft::Email(wit::EmailDraft { to: to.clone(), subject: subject.clone(), body: body.clone() })
                }
                host::Draft::Sms { to, body } => wit::Draft::Sms(wit::SmsDraft { to: to.clone(), body: body.clone() }),
            }),
            user_id: done.user_id.clone(),
        }),
    }
}

pub(super) fn subject(s: &model::Subject) -> wit::Subject {
    wit::Subject {
        contact: contact(&s.contact),
        owner: s.owner.as_ref().map(user),
        company: s.company.as_ref().map(|c| wit::Company {
            id: c.id.clone(),
            name: c.name.clone(),
            owner_id: c.owner_id.clone(),
            parent_id: c.parent_id.clone(),
        }),
    }
}

pub(super) fn attribute_value(v: &model::AttributeValue) -> wit::AttributeValue {
    match v {
        model::AttributeValue::Text(t) => wit::AttributeValue::Text(t.clone()),
        model::AttributeValue::Number(n) => wit::AttributeValue::Number(*n),
        model::AttributeValue::Boolean(b) => wit::AttributeValue::Boolean(*b),
    }
}

pub(super) fn attribute_value_from(v: wit::AttributeValue) -> model::AttributeValue {
    match v {
        wit::AttributeValue::Text(t) => model::AttributeValue::Text(t),
        wit::AttributeValue::Number(n) => model::AttributeValue::Number(n),
        wit::AttributeValue::Boolean(b) => model::AttributeValue::Boolean(b),
    }
}

pub(super) fn contact(c: &model::Contact) -> wit::Contact {
    wit::Contact {
        id: c.id.clone(),
        kind: match c.kind {
            model::ContactKind::Lead => wit::ContactKind::Lead,
            model::ContactKind::Contact => wit::ContactKind::Contact,
        },
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        email: c.email.clone(),
        phone: c.phone.clone(),
        owner_id: c.owner_id.clone(),
        company_id: c.company_id.clone(),
        contact_type: c.contact_type.clone(),
        lead_source: c.lead_source.clone(),
        sales_cycle: c.sales_cycle.clone(),
        timezone: c.timezone.clone(),
        opt_outs: wit::OptOuts { email: c.opt_outs.email, sms: c.opt_outs.sms, phone: c.opt_outs.phone },
        attributes: c
            .attributes
            .iter()
            .map(|(name, value)| wit::Attribute { name: name.clone(), value: attribute_value(value) })
            .collect(),
        last_engaged: c.last_engaged.map(millis),
        last_contacted: c.last_contacted.map(millis),
    }
}

pub(super) fn user(u: &model::User) -> wit::User {
    wit::User {
        id: u.id.clone(),
        name: u.name.clone(),
        email: u.email.clone(),
        role: role(u.role),
        active: u.active,
        delegate: u.delegate,
        timezone: u.timezone.clone(),
        signature: u.signature.clone(),
        sender_connected: u.sender_connected,
    }
}

pub(super) fn role(r: model::Role) -> wit::Role {
    match r {
        model::Role::Admin => wit::Role::Admin,
        model::Role::Agent => wit::Role::Agent,
        model::Role::Viewer => wit::Role::Viewer,
    }
}

/// A host error the plugin sees.
pub(super) fn host_error(code: wit::ErrorCode, message: impl Into<String>) -> wit::HostError {
    wit::HostError { code, message: message.into() }
}

/// The kebab-case name of an error code, for reports.
pub(super) fn code_name(code: wit::ErrorCode) -> &'static str {
    match code {
        wit::ErrorCode::Denied => "denied",
        wit::ErrorCode::Invalid => "invalid",
        wit::ErrorCode::Blocked => "blocked",
        wit::ErrorCode::Timeout => "timeout",
        wit::ErrorCode::Transport => "transport",
        wit::ErrorCode::TooLarge => "too-large",
        wit::ErrorCode::NotFound => "not-found",
        wit::ErrorCode::Unavailable => "unavailable",
    }
}

impl wit::Host for HostCtx {}
