//! Checking a sequence's steps before they are saved: each step's plugin
//! exists and is a step type, its timing fits the sequence's mode, its
//! config passes the plugin's own validation (tokens included), its owner
//! exists, and each criterion is a predicate whose config passes too.

use std::sync::Arc;

use super::{Engine, Result, step_config, timing};
use stepwise_domain::engagement::{OwnerRule, PluginRef, Step, StepTiming, TimingMode};
use stepwise_plugin_host::types::PluginKind;
use stepwise_plugin_host::{AccountGrant, Invocation, Origin, Plugin};

/// One problem of a step, with the JSON Pointer of its field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepProblem {
    /// Such as `/steps/2/config/url`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The most steps a sequence version may have.
pub const MAX_STEPS: usize = 200;

/// The most criteria one step may have.
pub const MAX_CRITERIA: usize = 20;

impl Engine {
    /// Every problem of `steps` for a sequence timed by `mode`; empty when
    /// they can be saved. Positions are taken from the order of `steps`.
    ///
    /// # Errors
    ///
    /// A store error while looking up owners.
    pub async fn validate_steps(&self, account_id: &str, mode: TimingMode, steps: &[Step]) -> Result<Vec<StepProblem>> {
        let mut problems = Vec::new();
        if steps.is_empty() {
            problems.push(StepProblem { field: "/steps".into(), message: "a sequence needs at least one step".into() });
        }
        if steps.len() > MAX_STEPS {
            let message = format!("{} steps; a sequence has at most {MAX_STEPS}", steps.len());
            return Ok(vec![StepProblem { field: "/steps".into(), message }]);
        }
        let mut tx = self.store().begin_read().await?;
        let users = tx.users(account_id).await?;
        // Add-ons are the uploading account's alone: another account's are
        // "not installed" here, never revealed.
        let own: Vec<String> = tx.add_ons_of(account_id).await?.into_iter().map(|(id, _)| id).collect();
        // Plugins check configs as they will see them, templates added.
        let mut configs: Vec<serde_json::Value> = steps.iter().map(|s| s.config.clone()).collect();
        step_config::expand_templates(&mut tx, configs.iter_mut().map(|c| (account_id, c)).collect()).await?;
        drop(tx);
        for (i, step) in steps.iter().enumerate() {
            let at = |field: &str| format!("/steps/{i}{field}");
            let mut problem = |field: String, message: String| problems.push(StepProblem { field, message });
            let timing_ok = matches!(
                (mode, step.timing),
                (TimingMode::AfterPrevious, StepTiming::Delay { .. })
                    | (TimingMode::FromStart, StepTiming::Offset { .. })
                    | (TimingMode::FromEvent, StepTiming::Event { .. })
            );
            if !timing_ok {
                let expected = match mode {
                    TimingMode::AfterPrevious => "`delay` (after the previous step)",
                    TimingMode::FromStart => "`offset` (after enrollment)",
                    TimingMode::FromEvent => "`event` (before or after the event date)",
                };
                problem(at("/timing"), format!("a {mode} sequence times its steps by {expected}"));
            }
            let ms = match step.timing {
                StepTiming::Delay { ms } | StepTiming::Offset { ms } | StepTiming::Event { ms, .. } => ms,
            };
            if ms < 0 {
                problem(at("/timing/ms"), "must not be negative".into());
            } else if ms > timing::MAX_STEP_MS {
                problem(at("/timing/ms"), format!("must be at most {} (ten years)", timing::MAX_STEP_MS));
            }
            if step.criteria.len() > MAX_CRITERIA {
                problem(
                    at("/criteria"),
                    format!("{} criteria; a step has at most {MAX_CRITERIA}", step.criteria.len()),
                );
            }
            if let OwnerRule::SpecificUser { user_id } = &step.owner {
                match users.iter().find(|u| &u.id == user_id) {
                    None => problem(at("/owner/user_id"), format!("no user {user_id} in the account")),
                    Some(u) if !u.active => problem(at("/owner/user_id"), format!("user {user_id} is inactive")),
                    Some(u) if u.delegate => {
                        problem(at("/owner/user_id"), format!("user {user_id} is a delegate, who may not own actions"))
                    }
                    Some(_) => {}
                }
            }
            let config = &configs[i];
            if let Some(id) = step_config::template_id(config)
                && config.get(step_config::TEMPLATE).is_none()
            {
                problem(at("/config/template_id"), format!("no template {id} in the account"));
            }
            for (field, message) in self.check_config(account_id, &own, &step.plugin, PluginKind::Action, config).await
            {
                problems.push(StepProblem { field: at(&field), message });
            }
            for (c, criterion) in step.criteria.iter().take(MAX_CRITERIA).enumerate() {
                for (field, message) in self
                    .check_config(account_id, &own, &criterion.plugin, PluginKind::Predicate, &criterion.config)
                    .await
                {
                    let field = field.replacen("/config", &format!("/criteria/{c}/config"), 1).replacen(
                        "/plugin",
                        &format!("/criteria/{c}/plugin"),
                        1,
                    );
                    problems.push(StepProblem { field: at(&field), message });
                }
            }
        }
        Ok(problems)
    }

    /// Problems of one plugin reference and its config, with fields relative
    /// to the step (`/plugin`, `/config/...`).
    /// A step may name a built-in or one of `own`, the account's uploads.
    async fn check_config(
        &self,
        account_id: &str,
        own: &[String],
        plugin: &PluginRef,
        kind: PluginKind,
        config: &serde_json::Value,
    ) -> Vec<(String, String)> {
        self.sync_if_missing(account_id, &plugin.id, &plugin.version).await;
        let found: Arc<Plugin> = match self.registry().find(account_id, &plugin.id, &plugin.version) {
            Ok(Some(registered)) if registered.origin == Origin::Builtin || own.contains(&plugin.id) => {
                registered.plugin
            }
            Ok(Some(_) | None) => {
                return vec![(
                    "/plugin".into(),
                    format!("no plugin `{}` matching version `{}` is installed", plugin.id, plugin.version),
                )];
            }
            Err(error) => return vec![("/plugin/version".into(), error.to_string())],
        };
        if found.manifest().kind != kind {
            let wanted = match kind {
                PluginKind::Action => "a step type",
                PluginKind::Predicate => "a criteria predicate",
            };
            return vec![("/plugin".into(), format!("plugin `{}` is not {wanted}", plugin.id))];
        }
        // Validation may read the account (tokens, users, contact types),
        // and nothing else.
        let grant = Arc::new(AccountGrant::for_validation(found.manifest()));
        let invocation = Invocation::validating(grant, account_id, self.directory());
        match self.registry().runtime().validate_config(&found, invocation, &config.to_string()).await {
            Ok(call) => call.value.into_iter().map(|p| (format!("/config{}", p.field), p.message)).collect(),
            Err(error) => {
                vec![("/config".into(), format!("plugin `{}` could not check the config: {}", plugin.id, error.error))]
            }
        }
    }
}
