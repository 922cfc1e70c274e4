//! The company engagement overview ([E]): upcoming touchpoints, open work
//! items, the hierarchy, the timeline and the health score with its
//! history; and the account's health settings.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::actions::{due_limit, work_cursor, work_next, work_sort};
use super::auth::Caller;
use super::error::{ApiError, FieldProblem};
use super::json::{Body, Path, Query};
use super::page::Page;
use stepwise_domain::crm::Company;
use stepwise_domain::engagement::{Event, Priority, WorkItem};
use stepwise_domain::health::{HealthConfig, SortKey, sort};
use stepwise_engine::CompanyHealth;
use stepwise_store::{Family, Timeline, WorkFilter, WorkState};

/// How many upcoming touchpoints and timeline events the overview shows.
const OVERVIEW_ROWS: u32 = 20;

/// Which open work items a list holds.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkItemState {
    /// Active or held (the default).
    Open,
    /// Active: to be worked by a person now.
    Active,
    /// Held back by a rule (blocked until fixed or re-checked).
    Held,
}

/// Filters and order of a company's work items.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkItemsQuery {
    /// Include the contacts of every company below this one.
    pub children: Option<bool>,
    /// `open` (the default), `active` or `held`.
    pub state: Option<WorkItemState>,
    /// Only actions of this step type (plugin id).
    #[serde(rename = "type")]
    pub plugin: Option<String>,
    /// Only actions of this priority.
    pub priority: Option<Priority>,
    /// Only actions past their due date (`true`).
    pub overdue: Option<bool>,
    /// `priority` (most urgent first, the default), `-priority`, `due` or
    /// `-due`.
    pub sort: Option<String>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
}

/// The order of a health score's indicators.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {
    /// `indicator`, `value`, `target`, `weight`, `gap` or `points`, with a
    /// leading `-` for descending; the settings' order by default.
    pub sort: Option<String>,
}

/// A company below another, with its depth (1 for a child).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Descendant {
    /// The company.
    pub company: Company,
    /// 1 for a child, 2 for a grandchild, ….
    pub depth: u32,
}

/// A company's place in its hierarchy.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Hierarchy {
    /// Its parent, the parent's parent, … up to the root, nearest first.
    pub ancestors: Vec<Company>,
    /// Every company below it, by depth and then name (at most 1,000).
    pub descendants: Vec<Descendant>,
    /// More companies are below it than listed.
    pub truncated: bool,
}

impl From<Family> for Hierarchy {
    fn from(family: Family) -> Self {
        Hierarchy {
            ancestors: family.ancestors,
            descendants: family.descendants.into_iter().map(|(company, depth)| Descendant { company, depth }).collect(),
            truncated: family.truncated,
        }
    }
}

/// The engagement overview of a company.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Engagement {
    /// The company.
    pub company: Company,
    /// Its parents and children.
    pub hierarchy: Hierarchy,
    /// The next due actions of its contacts, soonest first (at most 20).
    pub upcoming: Vec<WorkItem>,
    /// Its open work items, as `GET …/work-items` lists them.
    pub work_items: Vec<WorkItem>,
    /// The cursor of the work items' next page.
    pub work_items_next: Option<String>,
    /// The newest events of its contacts, newest first (at most 20).
    pub timeline: Vec<Event>,
    /// Its health score and history.
    pub health: CompanyHealth,
}

/// The work filter a query names for the companies `ids`.
fn work_filter<'a>(
    state: &AppState,
    caller: &'a Caller,
    ids: &'a [String],
    q: &'a WorkItemsQuery,
) -> Result<WorkFilter<'a>, ApiError> {
    let work_state = match q.state.unwrap_or(WorkItemState::Open) {
        WorkItemState::Open => WorkState::Open,
        WorkItemState::Active => WorkState::Active,
        WorkItemState::Held => WorkState::Held,
    };
    Ok(WorkFilter {
        account_id: &caller.account_id,
        state: work_state,
        action_id: None,
        owner_id: None,
        company_ids: Some(ids),
        plugin_id: q.plugin.as_deref(),
        sequence_id: None,
        priority: q.priority,
        due_before: due_limit(None, q.overdue, state.engine.now()),
        sort: work_sort(Some(q.sort.as_deref().unwrap_or("priority")))?,
    })
}

/// `GET /v1/companies/{id}/engagement`: the whole overview in one answer.
pub async fn overview(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<WorkItemsQuery>,
) -> Result<Json<Engagement>, ApiError> {
    let mut tx = state.engine.read().await?;
    let company = tx.company(&caller.account_id, &id).await?;
    let children = q.children.unwrap_or(false);
    let (family, ids) = state.engine.company_scope(&mut tx, &caller.account_id, &id, children).await?;
    let upcoming = WorkFilter {
        account_id: &caller.account_id,
        state: WorkState::Upcoming,
        action_id: None,
        owner_id: None,
        company_ids: Some(&ids),
        plugin_id: None,
        sequence_id: None,
        priority: None,
        due_before: None,
        sort: stepwise_store::WorkSort::Due,
    };
    let upcoming = state.engine.work(&mut tx, &upcoming, None, OVERVIEW_ROWS).await?;
    let page = Page { after: None, limit: q.limit };
    let filter = work_filter(&state, &caller, &ids, &q)?;
    let after = work_cursor(q.after.as_deref())?;
    let work_items = state.engine.work(&mut tx, &filter, after.as_ref(), page.limit()?).await?;
    let work_items_next = work_next(&page, &work_items);
    let timeline = tx.recent_events(Timeline::Company(&id), OVERVIEW_ROWS).await?;
    let health = state.engine.company_health(&mut tx, &caller.account_id, &id).await?;
    Ok(Json(Engagement { company, hierarchy: family.into(), upcoming, work_items, work_items_next, timeline, health }))
}

/// `GET /v1/companies/{id}/work-items`: a page of the company's open work
/// items.
pub async fn work_items(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<WorkItemsQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    let (_, ids) = state.engine.company_scope(&mut tx, &caller.account_id, &id, q.children.unwrap_or(false)).await?;
    let page = Page { after: None, limit: q.limit };
    let filter = work_filter(&state, &caller, &ids, &q)?;
    let after = work_cursor(q.after.as_deref())?;
    let items = state.engine.work(&mut tx, &filter, after.as_ref(), page.limit()?).await?;
    let next = work_next(&page, &items);
    Ok(Json(json!({ "work_items": items, "next_after": next })))
}

/// The indicators' order a `sort` names.
fn health_sort(health: &mut CompanyHealth, sort_by: Option<&str>) -> Result<(), ApiError> {
    let Some(text) = sort_by else { return Ok(()) };
    let (descending, key) = match text.strip_prefix('-') {
        Some(key) => (true, key),
        None => (false, text),
    };
    let key: SortKey = key.parse().map_err(|_| {
        ApiError::field(
            "/sort",
            "one of indicator, value, target, weight, gap, points, each with an optional leading -",
            format!("sort `{text}` is not an indicator column"),
        )
    })?;
    sort(&mut health.score.indicators, key, descending);
    Ok(())
}

/// `GET /v1/companies/{id}/health`: the score now, each indicator, and the
/// weekly history.
pub async fn health(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HealthQuery>,
) -> Result<Json<CompanyHealth>, ApiError> {
    let mut tx = state.engine.read().await?;
    let mut health = state.engine.company_health(&mut tx, &caller.account_id, &id).await?;
    health_sort(&mut health, q.sort.as_deref())?;
    Ok(Json(health))
}

/// `POST /v1/companies/{id}/health/refresh`: recompute now and keep it as
/// this week's snapshot.
pub async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CompanyHealth>, ApiError> {
    Ok(Json(state.engine.refresh_company_health(&caller.account_id, &id).await?))
}

/// `GET /v1/health-settings`: how the account scores health.
pub async fn settings(State(state): State<AppState>, caller: Caller) -> Result<Json<HealthConfig>, ApiError> {
    let mut tx = state.engine.read().await?;
    Ok(Json(state.engine.health_config(&mut tx, &caller.account_id).await?))
}

/// `PUT /v1/health-settings`: replace the indicators, targets, weights and
/// window; every problem is named at its field.
pub async fn replace_settings(
    State(state): State<AppState>,
    caller: Caller,
    Body(config): Body<HealthConfig>,
) -> Result<Json<HealthConfig>, ApiError> {
    if let Err(problems) = config.validate() {
        let detail = format!("the health settings have {} problem(s)", problems.len());
        let fields = problems.into_iter().map(|p| FieldProblem { field: p.field, message: p.message }).collect();
        return Err(ApiError::Validation { detail, fields });
    }
    Ok(Json(state.engine.set_health_config(&caller.account_id, &config, &caller.editor()).await?))
}
