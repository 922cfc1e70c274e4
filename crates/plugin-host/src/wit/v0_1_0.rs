//! WIT contract `stepwise:plugin@0.1.0`: bindings, conversions between its
//! types and the host's, and the calls into its two worlds.

mod contacts;
mod http;
mod log;
mod messaging;
mod templates;
mod users;

use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, HasSelf, InstancePre, Linker};

use crate::state::{CallState, HostCtx};
use crate::types as host;
use stepwise_domain::crm as model;

/// The version string of this contract.
pub(crate) const VERSION: &str = "0.1.0";

/// The action world. Its imports are shared with the predicate world.
mod action_world {
    wasmtime::component::bindgen!({
        world: "action-plugin",
        path: "../../wit/stepwise-plugin@0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// The predicate world, reusing the action world's imports and types.
mod predicate_world {
    wasmtime::component::bindgen!({
        world: "predicate-plugin",
        path: "../../wit/stepwise-plugin@0.1.0",
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
        },
    });
}

use action_world::stepwise::plugin::types as wit;

/// Adds this version's host interfaces to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    fn host(state: &mut CallState) -> &mut HostCtx {
        &mut state.host
    }
    action_world::ActionPlugin::add_to_linker::<CallState, HasSelf<HostCtx>>(linker, host)
}

/// A component of this version, ready to instantiate.
#[derive(Clone)]
pub(crate) struct Pre {
    /// The bindings of the whole world, used for `describe`.
    world: World,
    /// The same pre-instance, for the other calls.
    instance: InstancePre<CallState>,
    /// Where the other functions are among the component's exports.
    exports: Exports,
}

/// The bindings of a world. Instantiating through them type-checks every
/// export, which `load` does once, when it calls `describe`.
#[derive(Clone)]
enum World {
    /// A step.
    Action(action_world::ActionPluginPre<CallState>),
    /// A predicate.
    Predicate(predicate_world::PredicatePluginPre<CallState>),
}

/// The exported functions besides `describe`, found once at load. A call
/// type-checks only the function it makes.
#[derive(Clone)]
enum Exports {
    Action { validate: ComponentExportIndex, prepare: ComponentExportIndex, execute: ComponentExportIndex },
    Predicate { validate: ComponentExportIndex, evaluate: ComponentExportIndex },
}

impl Pre {
    pub(crate) fn new(pre: InstancePre<CallState>, kind: host::PluginKind) -> wasmtime::Result<Self> {
        let component = pre.component();
        let interface = match kind {
            host::PluginKind::Action => "stepwise:plugin/action@0.1.0",
            host::PluginKind::Predicate => "stepwise:plugin/predicate@0.1.0",
        };
        let parent = component
            .get_export_index(None, interface)
            .ok_or_else(|| wasmtime::format_err!("no exported instance named `{interface}`"))?;
        let export = |name: &str| {
            component
                .get_export_index(Some(&parent), name)
                .ok_or_else(|| wasmtime::format_err!("instance export `{interface}` does not have export `{name}`"))
        };
        let (world, exports) = match kind {
            host::PluginKind::Action => (
                World::Action(action_world::ActionPluginPre::new(pre.clone())?),
                Exports::Action {
                    validate: export("validate-config")?,
                    prepare: export("prepare")?,
                    execute: export("execute")?,
                },
            ),
            host::PluginKind::Predicate => (
                World::Predicate(predicate_world::PredicatePluginPre::new(pre.clone())?),
                Exports::Predicate { validate: export("validate-config")?, evaluate: export("evaluate")? },
            ),
        };
        Ok(Self { world, instance: pre, exports })
    }
}

/// A call into a plugin, in host types.
pub(crate) enum Request<'a> {
    Describe,
    Validate(&'a str),
    Prepare(&'a str),
    Execute(&'a str),
    Evaluate(&'a str),
}

/// A plugin's answer, in host types.
pub(crate) enum Response {
    Manifest(host::Manifest),
    Problems(Vec<host::ConfigProblem>),
    Item(Result<host::EngageItem, String>),
    Outcome(host::Outcome),
    Verdict(Result<bool, String>),
}

/// The arguments of `prepare`, `execute` and `evaluate`.
type StepArgs<'a> = (&'a wit::StepContext, &'a str, &'a wit::Subject);

/// Instantiates `pre` in `store` and makes `request`. Returns the answer
/// and its size in bytes as the guest produced it, for the output limit.
pub(crate) async fn call(
    pre: &Pre,
    store: &mut Store<CallState>,
    request: Request<'_>,
) -> wasmtime::Result<(Response, usize)> {
    let config = match request {
        Request::Describe => {
            let manifest = match &pre.world {
                World::Action(world) => {
                    let world = world.instantiate_async(&mut *store).await?;
                    world.stepwise_plugin_action().call_describe(&mut *store).await?
                }
                World::Predicate(world) => {
                    let world = world.instantiate_async(&mut *store).await?;
                    world.stepwise_plugin_predicate().call_describe(&mut *store).await?
                }
            };
            return describe(manifest);
        }
        Request::Validate(c) | Request::Prepare(c) | Request::Execute(c) | Request::Evaluate(c) => c,
    };
    // Only the function called is type-checked, against the types of this
    // contract: a mismatch fails the call instead of calling with bad types.
    let export = match (&pre.exports, &request) {
        (Exports::Action { validate, .. } | Exports::Predicate { validate, .. }, Request::Validate(_)) => validate,
        (Exports::Action { prepare, .. }, Request::Prepare(_)) => prepare,
        (Exports::Action { execute, .. }, Request::Execute(_)) => execute,
        (Exports::Predicate { evaluate, .. }, Request::Evaluate(_)) => evaluate,
        (Exports::Action { .. }, _) => wasmtime::bail!("a step plugin cannot evaluate criteria"),
        (Exports::Predicate { .. }, _) => wasmtime::bail!("a predicate plugin cannot prepare or execute a step"),
    };
    let instance = pre.instance.instantiate_async(&mut *store).await?;
    if let Request::Validate(_) = request {
        let func = instance.get_typed_func::<(&str,), (Vec<wit::ConfigProblem>,)>(&mut *store, export)?;
        let (list,) = func.call_async(&mut *store, (config,)).await?;
        return Ok(problems(list));
    }
    let invocation = &store.data().host.invocation;
    let (ctx, subj) = (step_context(&invocation.step), subject(&invocation.subject));
    let args: StepArgs<'_> = (&ctx, config, &subj);
    match request {
        Request::Prepare(_) => {
            let func =
                instance.get_typed_func::<StepArgs<'_>, (Result<wit::EngageItem, String>,)>(&mut *store, export)?;
            let (item,) = func.call_async(&mut *store, args).await?;
            let size = match &item {
                Ok(i) => i.title.len() + i.body.len() + i.draft.as_ref().map_or(0, draft_size),
                Err(e) => e.len(),
            };
            Ok((Response::Item(item.map(Into::into)), size))
        }
        Request::Execute(_) => {
            let func = instance.get_typed_func::<StepArgs<'_>, (wit::Outcome,)>(&mut *store, export)?;
            let (out,) = func.call_async(&mut *store, args).await?;
            let size = match &out {
                wit::Outcome::Done(d) => d.result.len() + d.output.len(),
                wit::Outcome::Skipped(r) => r.len(),
                wit::Outcome::Retry(r) => r.reason.len(),
                wit::Outcome::Failed(f) => f.message.len() + f.details.len(),
            };
            Ok((Response::Outcome(outcome(out)), size))
        }
        Request::Evaluate(_) => {
            let func = instance.get_typed_func::<StepArgs<'_>, (Result<bool, String>,)>(&mut *store, export)?;
            let (verdict,) = func.call_async(&mut *store, args).await?;
            let size = verdict.as_ref().err().map_or(1, String::len);
            Ok((Response::Verdict(verdict), size))
        }
        Request::Describe | Request::Validate(_) => unreachable!("answered above"),
    }
}

fn describe(m: wit::Manifest) -> wasmtime::Result<(Response, usize)> {
    let size = m.config_schema.len() + m.description.len() + m.title.len() + m.id.len();
    Ok((Response::Manifest(manifest(m)?), size))
}

fn problems(list: Vec<wit::ConfigProblem>) -> (Response, usize) {
    let size = list.iter().map(|p| p.field.len() + p.message.len()).sum();
    (Response::Problems(list.into_iter().map(Into::into).collect()), size)
}

fn draft_size(d: &wit::Draft) -> usize {
    match d {
        wit::Draft::Email(e) => e.to.len() + e.subject.len() + e.body.len(),
        wit::Draft::Sms(s) => s.to.len() + s.body.len(),
    }
}

// ---- conversions: guest types into host types ----

fn manifest(m: wit::Manifest) -> wasmtime::Result<host::Manifest> {
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
    }
}

fn field_from(f: wit::ContactField) -> host::ContactField {
    match f {
        wit::ContactField::Owner => host::ContactField::Owner,
        wit::ContactField::ContactType => host::ContactField::ContactType,
        wit::ContactField::SalesCycle => host::ContactField::SalesCycle,
        wit::ContactField::Attributes => host::ContactField::Attributes,
    }
}

fn activation_from(a: wit::Activation) -> host::Activation {
    match a {
        wit::Activation::Manual => host::Activation::Manual,
        wit::Activation::Automatic => host::Activation::Automatic,
    }
}

fn outcome(o: wit::Outcome) -> host::Outcome {
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

fn millis(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

fn step_context(c: &host::StepContext) -> wit::StepContext {
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

fn subject(s: &model::Subject) -> wit::Subject {
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
        role: match u.role {
            model::Role::Admin => wit::Role::Admin,
            model::Role::Agent => wit::Role::Agent,
            model::Role::Viewer => wit::Role::Viewer,
        },
        active: u.active,
        delegate: u.delegate,
        timezone: u.timezone.clone(),
        signature: u.signature.clone(),
        sender_connected: u.sender_connected,
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
