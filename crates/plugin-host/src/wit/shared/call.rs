//! Calling into a component of one contract version: finding its exports
//! once at load, then making each call with the version's own types and
//! converting the answer into the host's. Every version since 0.1.0 shares
//! this file (a module of each version's, through `#[path]`): the world
//! exports the same functions with the same shapes.

#![allow(clippy::duplicate_mod, reason = "a module of every contract version, each against its own types")]

use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, HasSelf, InstancePre, Linker};

use super::convert::{manifest, outcome, step_context, subject};
use super::wit;
use super::{VERSION, action_world, predicate_world};
use crate::state::{CallState, HostCtx};
use crate::types as host;
use crate::wit::{Request, Response};

/// Adds this version's host interfaces to `linker`. The predicate world
/// imports the same interfaces as the action world.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    fn host(state: &mut CallState) -> &mut HostCtx {
        &mut state.host
    }
    action_world::ActionPlugin::add_to_linker::<CallState, HasSelf<HostCtx>>(linker, host)
}

/// A component of this contract version, ready to instantiate.
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
            host::PluginKind::Action => format!("stepwise:plugin/action@{VERSION}"),
            host::PluginKind::Predicate => format!("stepwise:plugin/predicate@{VERSION}"),
        };
        let interface = interface.as_str();
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
