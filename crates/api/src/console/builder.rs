//! The sequence builder ([P]): a new draft sequence, then its steps in one
//! form: add a step of any type the account's plugin catalog offers,
//! remove it, move it up or down, and set its name, timing, activation,
//! owner rule, criteria, notification and config, the config as a form made
//! from the plugin's JSON Schema ([`schema_form`]). "Check" and "Publish"
//! go through the API's own checks (`POST /v1/sequences/{id}/versions`), so
//! each plugin's validation problems are shown at their fields; nothing is
//! saved until a version is published, and running enrollments keep the
//! version they started on.
//!
//! The steps being built travel in the form itself: every button posts the
//! whole form, so what was typed is never lost, and no script is needed.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::layout::{csrf, page};
use super::schema_form::{self, Choice, Field, Posted, Problem, Widget, id_of, last};
use super::{Form, Shown, Visitor, describe, see_other, text};
use crate::AppState;
use crate::auth::ADMINS;
use crate::error::{ApiError, FieldProblem};
use crate::json;
use crate::sequences::{self as api, NewSequenceBody, StepsBody};
use stepwise_domain::crm::User;
use stepwise_domain::engagement::{
    Activation, Criterion, OnUnmet, OwnerRule, PlanType, PluginRef, Relative, SequenceSettings, Step, StepTiming,
    TimingMode,
};
use stepwise_engine::{MAX_CRITERIA, MAX_STEPS, TEMPLATE, TEMPLATE_ID};
use stepwise_store::SyncPage;

/// A plugin version the account may put in a step.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    version: String,
    predicate: bool,
    title: String,
    description: String,
    schema: Value,
    activation: Activation,
    /// Enabled for the account (built-ins are unless turned off; add-ons
    /// once an admin enables them).
    usable: bool,
}

/// The account's plugin catalog, as `GET /v1/plugins` lists it, and its
/// message templates (a step's `template_id` is chosen among them).
struct Catalog {
    entries: Vec<Entry>,
    templates: Vec<Choice>,
}

impl Catalog {
    async fn of(state: &AppState, visitor: &Visitor) -> Result<Self, Shown> {
        let axum::Json(listed) = crate::plugins::list(State(state.clone()), visitor.caller.clone()).await?;
        let entries = listed["plugins"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let m = &p["manifest"];
                let builtin = text(p, "origin") == "builtin";
                let enabled = p["account"]["enabled"].as_bool();
                Entry {
                    id: text(m, "id").to_owned(),
                    version: text(m, "version").to_owned(),
                    predicate: text(m, "kind") == "predicate",
                    title: text(m, "title").to_owned(),
                    description: text(m, "description").to_owned(),
                    schema: m["config_schema"].clone(),
                    activation: text(m, "default_activation").parse().unwrap_or(Activation::Manual),
                    usable: enabled.unwrap_or(builtin),
                }
            })
            .collect();
        let mut tx = state.engine.read().await?;
        let templates = tx
            .templates(&visitor.caller.account_id, &SyncPage::first(1_000))
            .await?
            .into_iter()
            .map(|t| Choice { label: format!("{} ({})", t.name, t.id), value: t.id })
            .collect();
        Ok(Self { entries, templates })
    }

    /// The config fields of a plugin version: its schema's, less the
    /// template the host fills in before each call, with the account's
    /// templates to choose a `template_id` from.
    fn fields(&self, entry: Option<&Entry>) -> Option<Vec<Field>> {
        let mut fields = schema_form::fields(&entry?.schema)?;
        fields.retain(|f| f.key != TEMPLATE);
        for field in fields.iter_mut().filter(|f| f.key == TEMPLATE_ID && !self.templates.is_empty()) {
            field.widget = Widget::Choice(self.templates.clone());
        }
        Some(fields)
    }

    /// The version a step naming `plugin` would run: the newest that
    /// matches its requirement, as the host picks it.
    fn resolve(&self, state: &AppState, account: &str, plugin: &PluginRef) -> Option<&Entry> {
        let found = state.engine.registry().find(account, &plugin.id, &plugin.version).ok()??;
        let version = found.plugin.manifest().version.clone();
        self.entries.iter().find(|e| e.id == plugin.id && e.version == version)
    }

    /// The newest version of each plugin of a kind, by title.
    fn newest(&self, state: &AppState, account: &str, predicate: bool) -> Vec<&Entry> {
        let mut ids: Vec<&str> =
            self.entries.iter().filter(|e| e.predicate == predicate).map(|e| e.id.as_str()).collect();
        ids.dedup();
        let mut newest: Vec<&Entry> = ids
            .into_iter()
            .filter_map(|id| self.resolve(state, account, &PluginRef { id: id.to_owned(), version: "*".into() }))
            .collect();
        newest.sort_by(|a, b| a.title.cmp(&b.title).then(a.id.cmp(&b.id)));
        newest.dedup_by(|a, b| a.id == b.id);
        newest
    }
}

/// The version requirement a new step takes: compatible releases of the
/// newest version (`^1` from 1.4.2, `^0.3` from 0.3.1).
fn requirement(version: &str) -> String {
    match version.split('.').collect::<Vec<_>>().as_slice() {
        ["0", minor, ..] => format!("^0.{minor}"),
        [major, ..] => format!("^{major}"),
        [] => "*".into(),
    }
}

/// A step as the builder holds it between two posts: the step, what was
/// typed that did not read (by field name after `s{i}.`), and its problems
/// (JSON Pointers inside the step).
#[derive(Debug, Clone)]
struct Draft {
    step: Step,
    typed: HashMap<String, String>,
    problems: Vec<Problem>,
}

impl Draft {
    fn new(step: Step) -> Self {
        Self { step, typed: HashMap::new(), problems: Vec::new() }
    }

    /// The problems at `pointer` inside the step, or inside that field.
    fn at(&self, pointer: &str) -> Vec<&str> {
        self.problems
            .iter()
            .filter(|(p, _)| p == pointer || p.strip_prefix(pointer).is_some_and(|r| r.starts_with('/')))
            .map(|(_, m)| m.as_str())
            .collect()
    }

    /// The problems no field of the step shows (too many criteria, say).
    fn loose(&self) -> Vec<&str> {
        const SHOWN: [&str; 6] = ["/plugin", "/name", "/timing", "/owner", "/config", "/regarding"];
        self.problems
            .iter()
            .filter(|(p, _)| {
                let shown = SHOWN.iter().any(|s| p == s || p.strip_prefix(s).is_some_and(|r| r.starts_with('/')));
                let criterion = p
                    .strip_prefix("/criteria/")
                    .and_then(|r| r.split('/').nth(1))
                    .is_some_and(|field| field == "plugin" || field == "config");
                !(shown || criterion)
            })
            .map(|(_, m)| m.as_str())
            .collect()
    }

    /// The problems inside `pointer`, relative to it.
    fn inside(&self, pointer: &str) -> Vec<Problem> {
        self.problems
            .iter()
            .filter_map(|(p, m)| {
                let rest = p.strip_prefix(pointer)?;
                (rest.is_empty() || rest.starts_with('/')).then(|| (rest.to_owned(), m.clone()))
            })
            .collect()
    }

    /// What was typed under `prefix` (after `s{i}.`), named as the form
    /// for step `i` names it.
    fn typed_for(&self, i: usize) -> HashMap<String, String> {
        self.typed.iter().map(|(k, v)| (format!("s{i}.{k}"), v.clone())).collect()
    }
}

/// Units a step's wait is given in.
const UNITS: [(&str, &str, i64); 4] = [
    ("minutes", "minutes", 60_000),
    ("hours", "hours", 3_600_000),
    ("days", "days", 86_400_000),
    ("weeks", "weeks", 604_800_000),
];

/// A wait in milliseconds as an amount of the largest unit that divides it.
fn amount_of(ms: i64) -> (String, &'static str) {
    if ms == 0 {
        return ("0".into(), "days");
    }
    for (unit, _, size) in UNITS.iter().rev() {
        if ms % size == 0 {
            return ((ms / size).to_string(), unit);
        }
    }
    (format!("{}", ms as f64 / 60_000.0), "minutes")
}

/// When a step is due, as people say it: "at once", "2 days after the
/// previous step", "3 hours before the event date".
pub(super) fn timing_text(timing: StepTiming, first: bool) -> String {
    let ms = timing_ms(timing);
    let after = match timing {
        StepTiming::Delay { .. } if first => "after enrollment",
        StepTiming::Delay { .. } => "after the previous step",
        StepTiming::Offset { .. } => "after enrollment",
        StepTiming::Event { relative: Relative::Before, .. } => "before the event date",
        StepTiming::Event { relative: Relative::After, .. } => "after the event date",
    };
    if ms == 0 {
        return match timing {
            StepTiming::Event { .. } => "on the event date".to_owned(),
            _ if first || matches!(timing, StepTiming::Offset { .. }) => "at enrollment".to_owned(),
            _ => "with the previous step".to_owned(),
        };
    }
    let (amount, unit) = amount_of(ms);
    let unit = if amount == "1" { unit.trim_end_matches('s') } else { unit };
    format!("{amount} {unit} {after}")
}

fn timing_ms(timing: StepTiming) -> i64 {
    match timing {
        StepTiming::Delay { ms } | StepTiming::Offset { ms } | StepTiming::Event { ms, .. } => ms,
    }
}

fn timing_of(mode: TimingMode, ms: i64, relative: Relative) -> StepTiming {
    match mode {
        TimingMode::AfterPrevious => StepTiming::Delay { ms },
        TimingMode::FromStart => StepTiming::Offset { ms },
        TimingMode::FromEvent => StepTiming::Event { ms, relative },
    }
}

/// Reads the steps the form holds.
fn read_steps(state: &AppState, account: &str, catalog: &Catalog, mode: TimingMode, posted: &Posted) -> Vec<Draft> {
    let count = last(posted, "steps").and_then(|n| n.parse::<usize>().ok()).unwrap_or(0).min(MAX_STEPS);
    (0..count).map(|i| read_step(state, account, catalog, mode, posted, i)).collect()
}

fn read_step(state: &AppState, account: &str, catalog: &Catalog, mode: TimingMode, posted: &Posted, i: usize) -> Draft {
    let field = |name: &str| last(posted, &format!("s{i}.{name}")).unwrap_or("").to_owned();
    let mut typed = HashMap::new();
    let mut problems = Vec::new();
    let plugin = PluginRef { id: field("plugin"), version: field("version").trim().to_owned() };
    let fields = catalog.fields(catalog.resolve(state, account, &plugin));
    let config = schema_form::read(&format!("s{i}.config"), fields.as_deref(), posted);
    relocate(&mut typed, &mut problems, config.typed, config.problems, i, "/config");

    let amount = field("amount");
    let size = UNITS.iter().find(|(u, _, _)| *u == field("unit")).map_or(86_400_000, |u| u.2);
    let ms = match amount.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => (n * size as f64).round() as i64,
        _ => {
            typed.insert("amount".to_owned(), amount.clone());
            typed.insert("unit".to_owned(), field("unit"));
            problems.push(("/timing/ms".to_owned(), format!("`{}` is not a number", amount.trim())));
            0
        }
    };
    let relative = if field("relative") == "before" { Relative::Before } else { Relative::After };
    let owner = match field("owner").as_str() {
        "specific_user" => OwnerRule::SpecificUser { user_id: field("owner_user") },
        "contact_owner" => OwnerRule::ContactOwner,
        "company_owner" => OwnerRule::CompanyOwner,
        _ => OwnerRule::Initiator,
    };
    let criteria_count = field("criteria").parse::<usize>().unwrap_or(0).min(MAX_CRITERIA);
    let criteria = (0..criteria_count)
        .map(|c| {
            let at = |name: &str| field(&format!("c{c}.{name}"));
            let plugin = PluginRef { id: at("plugin"), version: at("version").trim().to_owned() };
            let fields = catalog.fields(catalog.resolve(state, account, &plugin));
            let config = schema_form::read(&format!("s{i}.c{c}.config"), fields.as_deref(), posted);
            relocate(&mut typed, &mut problems, config.typed, config.problems, i, &format!("/criteria/{c}/config"));
            Criterion { plugin, config: config.config, on_unmet: at("on_unmet").parse().unwrap_or(OnUnmet::Hold) }
        })
        .collect();
    let regarding = field("regarding");
    let step = Step {
        position: u32::try_from(i).unwrap_or(u32::MAX),
        name: field("name"),
        plugin,
        config: config.config,
        timing: timing_of(mode, ms, relative),
        activation: field("activation").parse().unwrap_or(Activation::Manual),
        owner,
        criteria,
        notify: field("notify") == "true",
        regarding: Some(regarding.trim().to_owned()).filter(|r| !r.is_empty()),
    };
    Draft { step, typed, problems }
}

/// Keeps what a config form could not read, named after `s{i}.` and at
/// its pointer inside the step.
fn relocate(
    typed: &mut HashMap<String, String>,
    problems: &mut Vec<Problem>,
    from_typed: HashMap<String, String>,
    from_problems: Vec<Problem>,
    i: usize,
    under: &str,
) {
    let prefix = format!("s{i}.");
    typed.extend(from_typed.into_iter().map(|(k, v)| (k.strip_prefix(&prefix).unwrap_or(&k).to_owned(), v)));
    problems.extend(from_problems.into_iter().map(|(p, m)| (format!("{under}{p}"), m)));
}

/// What a button of the builder asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Check,
    Publish,
    Add,
    Remove(usize),
    Up(usize),
    Down(usize),
    AddCriterion(usize),
    RemoveCriterion(usize, usize),
}

impl Op {
    fn parse(op: &str) -> Option<Self> {
        let mut parts = op.split(':');
        let verb = parts.next()?;
        let mut n = || parts.next().and_then(|n| n.parse::<usize>().ok());
        Some(match verb {
            "check" => Self::Check,
            "publish" => Self::Publish,
            "add" => Self::Add,
            "remove" => Self::Remove(n()?),
            "up" => Self::Up(n()?),
            "down" => Self::Down(n()?),
            "criterion" => Self::AddCriterion(n()?),
            "uncriterion" => Self::RemoveCriterion(n()?, n()?),
            _ => return None,
        })
    }
}

/// The builder's page: the sequence, its steps as drafts, problems no
/// step shows, and a flash.
struct Builder<'a> {
    visitor: &'a Visitor,
    id: &'a str,
    version: Option<i64>,
    mode: TimingMode,
    catalog: &'a Catalog,
    users: &'a [User],
    drafts: &'a [Draft],
    general: &'a [String],
    flash: Option<&'a str>,
}

impl Builder<'_> {
    fn render(&self, state: &AppState) -> Markup {
        let actions = self.catalog.newest(state, &self.visitor.caller.account_id, false);
        let next = self.version.map_or(1, |v| v + 1);
        html! {
            @if let Some(flash) = self.flash { p.flash role="status" { (flash) } }
            p.muted {
                @match self.version {
                    Some(v) => { "Version " (v) " is published. Publishing these steps makes version " (next) "; running enrollments keep the version they started on." }
                    None => { "No version is published yet. Add the steps, then publish version 1." }
                }
                " Nothing here is saved until you publish. "
                a href=(format!("/sequences/{}", self.id)) { "Back to the sequence" }
            }
            form.builder method="post" action=(format!("/sequences/{}/builder", self.id)) novalidate {
                (csrf(self.visitor))
                input type="hidden" name="steps" value=(self.drafts.len());
                // The first button is the one Enter presses.
                div.actions { button.secondary type="submit" name="op" value="check" { "Check the steps" } }
                @if !self.general.is_empty() {
                    div.error #problems role="alert" {
                        p { "These steps cannot be published yet:" }
                        ul { @for problem in self.general { li { (problem) } } }
                    }
                }
                @if self.drafts.is_empty() { p.muted #no-steps { "No steps yet: add the first below." } }
                ol.steps {
                    @for (i, draft) in self.drafts.iter().enumerate() {
                        li { (self.step(state, i, draft)) }
                    }
                }
                section.card aria-labelledby="add-title" {
                    h2 #add-title { "Add a step" }
                    label for="new_type" { "Step type" }
                    select #new_type name="new_type" {
                        @for entry in &actions {
                            option value=(entry.id) {
                                (entry.title) " (" (entry.id) " " (entry.version) ")"
                                @if !entry.usable { " — not enabled for the account" }
                            }
                        }
                    }
                    div.actions { button.secondary type="submit" name="op" value="add" { "Add step" } }
                }
                div.actions {
                    button #publish type="submit" name="op" value="publish" { "Publish version " (next) }
                }
            }
        }
    }

    fn step(&self, state: &AppState, i: usize, draft: &Draft) -> Markup {
        let account = &self.visitor.caller.account_id;
        let step = &draft.step;
        let entry = self.catalog.resolve(state, account, &step.plugin);
        let name = |rest: &str| format!("s{i}.{rest}");
        let id = |rest: &str| id_of(&name(rest));
        let typed = draft.typed_for(i);
        let (amount, unit) = match draft.typed.get("amount") {
            Some(typed) => {
                let unit = draft.typed.get("unit").map(String::as_str);
                (typed.clone(), UNITS.iter().find(|u| Some(u.0) == unit).map_or("days", |u| u.0))
            }
            None => amount_of(timing_ms(step.timing)),
        };
        let relative = match step.timing {
            StepTiming::Event { relative: Relative::Before, .. } => "before",
            _ => "after",
        };
        let owner = match &step.owner {
            OwnerRule::Initiator => ("initiator", ""),
            OwnerRule::SpecificUser { user_id } => ("specific_user", user_id.as_str()),
            OwnerRule::ContactOwner => ("contact_owner", ""),
            OwnerRule::CompanyOwner => ("company_owner", ""),
        };
        let fields = self.catalog.fields(entry);
        let config_problems = draft.inside("/config");
        let wait_label = match self.mode {
            TimingMode::AfterPrevious if i == 0 => "Wait after enrollment",
            TimingMode::AfterPrevious => "Wait after the previous step",
            TimingMode::FromStart => "Due after enrollment",
            TimingMode::FromEvent => "Due relative to the event date",
        };
        let problems_of = |pointer: &str| draft.at(pointer);
        let predicates = self.catalog.newest(state, account, true);
        html! {
            fieldset.step #(format!("step-{i}")) {
                legend { "Step " (i + 1) ": " (entry.map_or(step.plugin.id.as_str(), |e| e.title.as_str())) }
                input type="hidden" name=(name("plugin")) value=(step.plugin.id);
                input type="hidden" name=(name("criteria")) value=(step.criteria.len());
                @for problem in problems_of("/plugin") { p.field-error role="alert" { (problem) } }
                @for problem in draft.loose() { p.field-error role="alert" { (problem) } }
                div.row {
                    (text_field(&name("name"), "Name", &step.name, &problems_of("/name")))
                    (text_field(&name("version"), "Plugin version", &step.plugin.version, &problems_of("/plugin/version")))
                }
                div.row {
                    @let timing_problems = problems_of("/timing");
                    div.field {
                        label for=(id("amount")) { (wait_label) }
                        input type="text" inputmode="decimal" id=(id("amount")) name=(name("amount")) value=(amount)
                            aria-invalid=[(!timing_problems.is_empty()).then_some("true")]
                            aria-describedby=[(!timing_problems.is_empty()).then(|| format!("{}-error", id("amount")))];
                        @if !timing_problems.is_empty() {
                            p.field-error id=(format!("{}-error", id("amount"))) role="alert" { (timing_problems.join("; ")) }
                        }
                    }
                    div.field {
                        label for=(id("unit")) { "Unit" }
                        select id=(id("unit")) name=(name("unit")) {
                            @for (value, label, _) in UNITS { option value=(value) selected[value == unit] { (label) } }
                        }
                    }
                    @if self.mode == TimingMode::FromEvent {
                        div.field {
                            label for=(id("relative")) { "Before or after" }
                            select id=(id("relative")) name=(name("relative")) {
                                option value="before" selected[relative == "before"] { "before the event date" }
                                option value="after" selected[relative == "after"] { "after the event date" }
                            }
                        }
                    }
                }
                div.row {
                    div.field {
                        label for=(id("activation")) { "Activation" }
                        select id=(id("activation")) name=(name("activation")) {
                            option value="manual" selected[step.activation == Activation::Manual] { "Manual: on the owner's Engage view" }
                            option value="automatic" selected[step.activation == Activation::Automatic] { "Automatic: Stepwise performs it" }
                        }
                    }
                    div.field {
                        label for=(id("owner")) { "Owner" }
                        select id=(id("owner")) name=(name("owner")) {
                            @for (value, label) in [("initiator", "Who enrolled the contact"), ("contact_owner", "The contact's owner"), ("company_owner", "The company's owner"), ("specific_user", "A named user")] {
                                option value=(value) selected[owner.0 == value] { (label) }
                            }
                        }
                    }
                    div.field {
                        @let user_problems = problems_of("/owner");
                        label for=(id("owner_user")) { "Named user" }
                        select id=(id("owner_user")) name=(name("owner_user"))
                            aria-invalid=[(!user_problems.is_empty()).then_some("true")] {
                            option value="" { "— for a named user —" }
                            @for user in self.users.iter().filter(|u| u.active && !u.delegate) {
                                option value=(user.id) selected[owner.1 == user.id] { (user.name) " (" (user.email) ")" }
                            }
                        }
                        @if !user_problems.is_empty() { p.field-error role="alert" { (user_problems.join("; ")) } }
                    }
                }
                div.field.check {
                    input type="hidden" name=(name("notify")) value="false";
                    input type="checkbox" id=(id("notify")) name=(name("notify")) value="true" checked[step.notify];
                    label for=(id("notify")) { "Notify the owner when it is due" }
                }
                (text_field(&name("regarding"), "Regarding (an opportunity reference; optional)", step.regarding.as_deref().unwrap_or(""), &[]))
                fieldset.config {
                    legend { "Config" }
                    @if let Some(entry) = entry { p.muted { (entry.description) } }
                    @for problem in schema_form::unplaced(fields.as_deref(), &config_problems) {
                        p.field-error role="alert" { (problem) }
                    }
                    (schema_form::render(&name("config"), fields.as_deref(), &step.config, &typed, &config_problems))
                }
                fieldset.criteria {
                    legend { "Criteria" }
                    @if step.criteria.is_empty() { p.muted { "None: the step is performed when it is due." } }
                    @for (c, criterion) in step.criteria.iter().enumerate() {
                        (self.criterion(state, i, c, criterion, draft))
                    }
                    @if !predicates.is_empty() {
                        div.row {
                            div.field {
                                label for=(id("new_predicate")) { "Predicate" }
                                select id=(id("new_predicate")) name=(name("new_predicate")) {
                                    @for entry in &predicates {
                                        option value=(entry.id) {
                                            (entry.title) " (" (entry.id) ")"
                                            @if !entry.usable { " — not enabled for the account" }
                                        }
                                    }
                                }
                            }
                            div.field { button.secondary type="submit" name="op" value=(format!("criterion:{i}")) { "Add criterion" } }
                        }
                    }
                }
                div.actions {
                    @if i > 0 { button.secondary type="submit" name="op" value=(format!("up:{i}")) { "Move up" } }
                    @if i + 1 < self.drafts.len() { button.secondary type="submit" name="op" value=(format!("down:{i}")) { "Move down" } }
                    button.danger type="submit" name="op" value=(format!("remove:{i}")) { "Remove step " (i + 1) }
                }
            }
        }
    }

    fn criterion(&self, state: &AppState, i: usize, c: usize, criterion: &Criterion, draft: &Draft) -> Markup {
        let account = &self.visitor.caller.account_id;
        let name = |rest: &str| format!("s{i}.c{c}.{rest}");
        let entry = self.catalog.resolve(state, account, &criterion.plugin);
        let fields = self.catalog.fields(entry);
        let pointer = format!("/criteria/{c}");
        let problems = draft.inside(&format!("{pointer}/config"));
        html! {
            fieldset.criterion {
                legend { "Criterion " (c + 1) ": " (entry.map_or(criterion.plugin.id.as_str(), |e| e.title.as_str())) }
                input type="hidden" name=(name("plugin")) value=(criterion.plugin.id);
                @for problem in draft.at(&format!("{pointer}/plugin")) { p.field-error role="alert" { (problem) } }
                div.row {
                    (text_field(&name("version"), "Plugin version", &criterion.plugin.version, &[]))
                    div.field {
                        label for=(id_of(&name("on_unmet"))) { "When it does not hold" }
                        select id=(id_of(&name("on_unmet"))) name=(name("on_unmet")) {
                            option value="hold" selected[criterion.on_unmet == OnUnmet::Hold] { "Hold the step until it does" }
                            option value="skip" selected[criterion.on_unmet == OnUnmet::Skip] { "Skip the step" }
                        }
                    }
                }
                @for problem in schema_form::unplaced(fields.as_deref(), &problems) { p.field-error role="alert" { (problem) } }
                (schema_form::render(&name("config"), fields.as_deref(), &criterion.config, &draft.typed_for(i), &problems))
                button.danger type="submit" name="op" value=(format!("uncriterion:{i}:{c}")) { "Remove criterion " (c + 1) }
            }
        }
    }
}

/// A one-line text field with its label and problems.
fn text_field(name: &str, label: &str, value: &str, problems: &[&str]) -> Markup {
    let id = id_of(name);
    html! {
        div.field {
            label for=(id) { (label) }
            input type="text" id=(id) name=(name) value=(value)
                aria-invalid=[(!problems.is_empty()).then_some("true")]
                aria-describedby=[(!problems.is_empty()).then(|| format!("{id}-error"))];
            @if !problems.is_empty() { p.field-error id=(format!("{id}-error")) role="alert" { (problems.join("; ")) } }
        }
    }
}

/// The sequence, its newest version number and its steps, refusing what
/// the visitor may not build (a viewer, an agent, a plan the parent shares
/// locked) as the API refuses publishing.
async fn load(state: &AppState, visitor: &Visitor, id: &str) -> Result<(Value, Option<i64>, Vec<Step>), Shown> {
    visitor.caller.require(ADMINS, "building a sequence's steps")?;
    let axum::Json(got) = api::get(State(state.clone()), visitor.caller.clone(), json::Path(id.to_owned())).await?;
    if got["locked"] == Value::Bool(true) {
        return Err(Shown(ApiError::Forbidden(format!(
            "sequence {id} is shared locked by the parent account: read-only here"
        ))));
    }
    let version = got["version"]["version"].as_i64();
    let steps: Vec<Step> = serde_json::from_value(got["version"]["steps"].clone()).unwrap_or_default();
    Ok((got["sequence"].clone(), version, steps))
}

async fn users(state: &AppState, visitor: &Visitor) -> Result<Vec<User>, Shown> {
    let mut tx = state.engine.read().await?;
    Ok(tx.users(&visitor.caller.account_id).await?)
}

/// `GET /sequences/{id}/builder`: the newest version's steps, to change.
pub async fn builder(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, Shown> {
    let (sequence, version, steps) = load(&state, &visitor, &id).await?;
    let catalog = Catalog::of(&state, &visitor).await?;
    let drafts: Vec<Draft> = steps.into_iter().map(Draft::new).collect();
    let shown = Shows { drafts: &drafts, general: &[], flash: None, status: StatusCode::OK };
    show(&state, &visitor, (&id, &sequence, version), &catalog, shown).await
}

/// What the builder shows after a post.
struct Shows<'a> {
    drafts: &'a [Draft],
    general: &'a [String],
    flash: Option<&'a str>,
    status: StatusCode,
}

/// The builder's page for the sequence `(id, sequence, version)`.
async fn show(
    state: &AppState,
    visitor: &Visitor,
    (id, sequence, version): (&str, &Value, Option<i64>),
    catalog: &Catalog,
    shows: Shows<'_>,
) -> Result<Response, Shown> {
    let users = users(state, visitor).await?;
    let builder = Builder {
        visitor,
        id,
        version,
        mode: text(sequence, "timing_mode").parse().unwrap_or(TimingMode::AfterPrevious),
        catalog,
        users: &users,
        drafts: shows.drafts,
        general: shows.general,
        flash: shows.flash,
    };
    let title = format!("Steps of {}", text(sequence, "name"));
    Ok((shows.status, page(visitor, &title, "sequences", builder.render(state))).into_response())
}

/// `POST /sequences/{id}/builder`: one button of the builder. Adding,
/// removing and moving change the form; "Check" runs the API's checks;
/// "Publish" publishes a version through the API, or shows why not.
pub async fn change(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, Shown> {
    let posted = schema_form::posted(pairs);
    visitor.check_csrf(last(&posted, super::CSRF_FIELD))?;
    let (sequence, version, _) = load(&state, &visitor, &id).await?;
    let catalog = Catalog::of(&state, &visitor).await?;
    let account = visitor.caller.account_id.clone();
    let mode: TimingMode = text(&sequence, "timing_mode").parse().unwrap_or(TimingMode::AfterPrevious);
    let op = last(&posted, "op").and_then(Op::parse).unwrap_or(Op::Check);
    let mut drafts = read_steps(&state, &account, &catalog, mode, &posted);
    let mut general = Vec::new();
    let mut flash = None;
    let mut status = StatusCode::OK;
    match op {
        Op::Add => {
            let chosen = last(&posted, "new_type").unwrap_or("");
            let entry = catalog.newest(&state, &account, false).into_iter().find(|e| e.id == chosen).cloned();
            match entry {
                Some(entry) if drafts.len() < MAX_STEPS => {
                    let wait = if drafts.is_empty() { 0 } else { 86_400_000 };
                    drafts.push(Draft::new(Step {
                        position: u32::try_from(drafts.len()).unwrap_or(u32::MAX),
                        name: entry.title.clone(),
                        plugin: PluginRef { id: entry.id.clone(), version: requirement(&entry.version) },
                        config: Value::Object(Map::new()),
                        timing: timing_of(mode, wait, Relative::Before),
                        activation: entry.activation,
                        owner: OwnerRule::Initiator,
                        criteria: Vec::new(),
                        notify: false,
                        regarding: None,
                    }));
                    flash = Some(format!("Step {} added: {}.", drafts.len(), entry.title));
                }
                Some(_) => general.push(format!("a sequence has at most {MAX_STEPS} steps")),
                None => general.push(format!("no step type `{chosen}` in the account's catalog")),
            }
        }
        Op::Remove(i) if i < drafts.len() => {
            drafts.remove(i);
            flash = Some(format!("Step {} removed.", i + 1));
        }
        Op::Up(i) if i > 0 && i < drafts.len() => drafts.swap(i - 1, i),
        Op::Down(i) if i + 1 < drafts.len() => drafts.swap(i, i + 1),
        Op::AddCriterion(i) if i < drafts.len() => {
            let chosen = last(&posted, &format!("s{i}.new_predicate")).unwrap_or("");
            let entry = catalog.newest(&state, &account, true).into_iter().find(|e| e.id == chosen).cloned();
            match entry {
                Some(entry) => drafts[i].step.criteria.push(Criterion {
                    plugin: PluginRef { id: entry.id.clone(), version: requirement(&entry.version) },
                    config: Value::Object(Map::new()),
                    on_unmet: OnUnmet::Hold,
                }),
                None => general.push(format!("no predicate `{chosen}` in the account's catalog")),
            }
        }
        Op::RemoveCriterion(i, c) if i < drafts.len() && c < drafts[i].step.criteria.len() => {
            drafts[i].step.criteria.remove(c);
            // What was typed into the criteria no longer lines up.
            drafts[i].typed.retain(|k, _| !k.starts_with('c'));
            drafts[i].problems.retain(|(p, _)| !p.starts_with("/criteria"));
        }
        Op::Check | Op::Publish => {
            let unread = drafts.iter().any(|d| !d.problems.is_empty());
            let steps: Vec<Step> = drafts.iter().map(|d| d.step.clone()).collect();
            let outcome = if op == Op::Publish && !unread {
                let body = json::Body(StepsBody { steps });
                api::publish(State(state.clone()), visitor.caller.clone(), json::Path(id.clone()), body)
                    .await
                    .map(|_| Some(()))
            } else {
                api::checked_steps(&state, &account, mode, steps).await.map(|_| None)
            };
            match outcome {
                Ok(Some(())) => return Ok(see_other(&format!("/sequences/{id}?done=published"))),
                Ok(None) if !unread => flash = Some("No problems: the steps can be published.".to_owned()),
                Ok(None) => {}
                Err(ApiError::Validation { fields, detail }) => {
                    place(&mut drafts, &mut general, fields);
                    if general.is_empty() && drafts.iter().all(|d| d.problems.is_empty()) {
                        general.push(detail);
                    }
                }
                Err(error @ (ApiError::Conflict(_) | ApiError::BadRequest(_))) => general.push(describe(&error)),
                Err(error) => return Err(error.into()),
            }
            let problems = drafts.iter().map(|d| d.problems.len()).sum::<usize>();
            if problems > 0 || !general.is_empty() {
                status = StatusCode::UNPROCESSABLE_ENTITY;
                if problems > 0 {
                    general.insert(0, format!("{problems} problem(s), shown at their fields"));
                }
            }
        }
        _ => general.push("that step or criterion is no longer in the form".to_owned()),
    }
    let shown = Shows { drafts: &drafts, general: &general, flash: flash.as_deref(), status };
    show(&state, &visitor, (&id, &sequence, version), &catalog, shown).await
}

/// Puts each of the API's problems (`/steps/{i}/…`) at its step; the rest
/// are the whole form's.
fn place(drafts: &mut [Draft], general: &mut Vec<String>, fields: Vec<FieldProblem>) {
    for problem in fields {
        let placed = problem.field.strip_prefix("/steps/").and_then(|rest| {
            let (index, inside) = rest.split_once('/').map_or((rest, ""), |(i, r)| (i, r));
            let i = index.parse::<usize>().ok().filter(|i| *i < drafts.len())?;
            Some((i, if inside.is_empty() { String::new() } else { format!("/{inside}") }))
        });
        match placed {
            Some((i, pointer)) if !pointer.is_empty() => {
                drafts[i].problems.push((pointer, problem.message));
            }
            Some((i, _)) => general.push(format!("step {}: {}", i + 1, problem.message)),
            None => general.push(problem.message),
        }
    }
}

/// The form that starts a sequence.
#[derive(Debug, Deserialize)]
pub struct NewForm {
    name: String,
    #[serde(default)]
    description: String,
    plan_type: PlanType,
    timing_mode: TimingMode,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// The "new sequence" card of the sequence list.
pub fn new_form(visitor: &Visitor, problem: Option<&str>) -> Markup {
    html! {
        section.card aria-labelledby="new-title" {
            h2 #new-title { "New sequence" }
            form method="post" action="/sequences/new" {
                (csrf(visitor))
                label for="new-name" { "Name" }
                input #new-name type="text" name="name" required aria-invalid=[problem.map(|_| "true")]
                    aria-describedby=[problem.map(|_| "new-error")];
                @if let Some(problem) = problem { p.field-error #new-error role="alert" { (problem) } }
                label for="new-description" { "Description" }
                input #new-description type="text" name="description";
                div.row {
                    div.field {
                        label for="new-plan-type" { "For" }
                        select #new-plan-type name="plan_type" {
                            @for plan in PlanType::ALL { option value=(plan) selected[*plan == PlanType::General] { (plan) } }
                        }
                    }
                    div.field {
                        label for="new-timing" { "Timing" }
                        select #new-timing name="timing_mode" {
                            option value="after_previous" { "Each step after the previous one" }
                            option value="from_start" { "Each step from enrollment" }
                            option value="from_event" { "Before or after an event date" }
                        }
                    }
                }
                p { button type="submit" { "Create and add steps" } }
            }
        }
    }
}

/// `POST /sequences/new`: a draft sequence without steps, as
/// `POST /v1/sequences`, then its builder.
pub async fn create(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<NewForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    visitor.caller.require(ADMINS, "creating a sequence")?;
    let body = NewSequenceBody {
        name: form.name,
        description: form.description,
        plan_type: form.plan_type,
        timing_mode: form.timing_mode,
        settings: SequenceSettings::default(),
        steps: Vec::new(),
    };
    match api::create(State(state.clone()), visitor.caller.clone(), json::Body(body)).await {
        Ok((_, axum::Json(made))) => Ok(see_other(&format!("/sequences/{}/builder", text(&made["sequence"], "id")))),
        Err(error @ ApiError::Validation { .. }) => {
            let problem = describe(&error);
            super::sequences::list_with(&state, &visitor, StatusCode::UNPROCESSABLE_ENTITY, None, Some(&problem)).await
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_step_takes_the_compatible_releases_of_the_newest_version() {
        assert_eq!(requirement("0.3.1"), "^0.3");
        assert_eq!(requirement("1.4.2"), "^1");
    }

    #[test]
    fn a_wait_is_shown_in_the_largest_unit_that_divides_it() {
        assert_eq!(amount_of(0), ("0".into(), "days"));
        assert_eq!(amount_of(2 * 86_400_000), ("2".into(), "days"));
        assert_eq!(amount_of(14 * 86_400_000), ("2".into(), "weeks"));
        assert_eq!(amount_of(90 * 60_000), ("90".into(), "minutes"));
        assert_eq!(amount_of(90_000), ("1.5".into(), "minutes"));
    }

    #[test]
    fn a_timing_reads_as_people_say_it() {
        assert_eq!(timing_text(StepTiming::Delay { ms: 0 }, true), "at enrollment");
        assert_eq!(timing_text(StepTiming::Delay { ms: 0 }, false), "with the previous step");
        assert_eq!(timing_text(StepTiming::Delay { ms: 86_400_000 }, false), "1 day after the previous step");
        assert_eq!(timing_text(StepTiming::Offset { ms: 3 * 3_600_000 }, false), "3 hours after enrollment");
        let before = StepTiming::Event { ms: 14 * 86_400_000, relative: Relative::Before };
        assert_eq!(timing_text(before, false), "2 weeks before the event date");
    }

    #[test]
    fn buttons_name_what_they_do() {
        assert_eq!(Op::parse("up:2"), Some(Op::Up(2)));
        assert_eq!(Op::parse("uncriterion:1:0"), Some(Op::RemoveCriterion(1, 0)));
        assert_eq!(Op::parse("remove"), None);
        assert_eq!(Op::parse("explode:1"), None);
    }

    #[test]
    fn the_apis_problems_land_at_their_steps() {
        let step = |name: &str| {
            Draft::new(Step {
                position: 0,
                name: name.into(),
                plugin: PluginRef { id: "task".into(), version: "^0.1".into() },
                config: Value::Null,
                timing: StepTiming::Delay { ms: 0 },
                activation: Activation::Manual,
                owner: OwnerRule::Initiator,
                criteria: Vec::new(),
                notify: false,
                regarding: None,
            })
        };
        let mut drafts = vec![step("a"), step("b")];
        let mut general = Vec::new();
        let problem = |field: &str, message: &str| FieldProblem { field: field.into(), message: message.into() };
        place(
            &mut drafts,
            &mut general,
            vec![
                problem("/steps/1/config/title", "must not be empty"),
                problem("/steps", "a sequence needs at least one step"),
                problem("/steps/7/config", "gone"),
            ],
        );
        assert_eq!(drafts[1].problems, [("/config/title".to_owned(), "must not be empty".to_owned())]);
        assert_eq!(drafts[1].at("/config"), ["must not be empty"]);
        assert_eq!(drafts[1].inside("/config"), [("/title".to_owned(), "must not be empty".to_owned())]);
        assert!(drafts[0].problems.is_empty());
        assert_eq!(general, ["a sequence needs at least one step", "gone"]);
    }
}
