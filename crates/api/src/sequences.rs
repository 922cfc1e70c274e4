//! `/v1/sequences`: create with steps (checked by their plugins), read,
//! list, publish a new version of the steps, and change the state.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, FieldProblem};
use super::json::Body;
use super::json::Path;
use stepwise_domain::engagement::{AuditAction, PlanType, SequenceSettings, SequenceState, Step, TimingMode};
use stepwise_engine::SequenceEdit;
use stepwise_store::NewSequence;

/// A new sequence.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSequenceBody {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// What it is for (`general` unless set).
    #[serde(default = "general")]
    pub plan_type: PlanType,
    /// How due dates are computed (`after_previous` unless set).
    #[serde(default = "after_previous")]
    pub timing_mode: TimingMode,
    /// Settings.
    #[serde(default)]
    pub settings: SequenceSettings,
    /// The steps of version 1; none leaves the sequence without a version.
    #[serde(default)]
    pub steps: Vec<Step>,
}

fn general() -> PlanType {
    PlanType::General
}

fn after_previous() -> TimingMode {
    TimingMode::AfterPrevious
}

/// New steps for a sequence.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepsBody {
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// A state change.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    /// `active`, `paused` or `archived`.
    pub state: SequenceState,
}

/// Numbers the steps by their order and checks them with their plugins.
pub(crate) async fn checked_steps(
    state: &AppState,
    account: &str,
    mode: TimingMode,
    steps: Vec<Step>,
) -> Result<Vec<Step>, ApiError> {
    let steps: Vec<Step> = steps
        .into_iter()
        .enumerate()
        .map(|(i, step)| Step { position: u32::try_from(i).unwrap_or(u32::MAX), ..step })
        .collect();
    let problems = state.engine.validate_steps(account, mode, &steps).await?;
    if problems.is_empty() {
        return Ok(steps);
    }
    Err(ApiError::Validation {
        detail: format!("{} problem(s) in the steps", problems.len()),
        fields: problems.into_iter().map(|p| FieldProblem { field: p.field, message: p.message }).collect(),
    })
}

/// Checks settings, and that the next sequence they name is one the
/// account has.
async fn check_settings_of(state: &AppState, caller: &Caller, settings: &SequenceSettings) -> Result<(), ApiError> {
    check_settings(settings)?;
    if let Some(next) = &settings.next_sequence_id {
        let mut tx = state.engine.read().await?;
        match tx.sequence(&caller.account_id, next).await {
            Ok(_) => {}
            Err(stepwise_store::StoreError::NotFound { .. }) => {
                return Err(ApiError::field(
                    "/settings/next_sequence_id",
                    format!("no sequence {next} in the account"),
                    "the next sequence does not exist",
                ));
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

fn check_settings(settings: &SequenceSettings) -> Result<(), ApiError> {
    if let Some(hours) = &settings.business_hours {
        stepwise_engine::timing::validate_hours(hours)
            .map_err(|error| ApiError::field("/settings/business_hours", error.to_string(), error.to_string()))?;
    }
    if settings.drip_limit == Some(0) {
        return Err(ApiError::Validation {
            detail: "a drip limit of 0 would queue every enrollment forever".into(),
            fields: vec![FieldProblem {
                field: "/settings/drip_limit".into(),
                message: "at least 1, or leave it out".into(),
            }],
        });
    }
    Ok(())
}

/// `POST /v1/sequences`: a draft, with version 1 of its steps when given.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<NewSequenceBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    make(&state, &caller, body, AuditAction::SequenceCreated).await
}

/// Makes a draft sequence from `body`, audited as `action`.
async fn make(
    state: &AppState,
    caller: &Caller,
    body: NewSequenceBody,
    action: AuditAction,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if body.name.trim().is_empty() {
        return Err(ApiError::Validation {
            detail: "a sequence needs a name".into(),
            fields: vec![FieldProblem { field: "/name".into(), message: "must not be empty".into() }],
        });
    }
    check_settings_of(state, caller, &body.settings).await?;
    let steps = if body.steps.is_empty() {
        Vec::new()
    } else {
        checked_steps(state, &caller.account_id, body.timing_mode, body.steps).await?
    };
    let new = NewSequence {
        name: body.name,
        description: body.description,
        plan_type: body.plan_type,
        timing_mode: body.timing_mode,
        settings: body.settings,
    };
    let (sequence, version) =
        state.engine.create_sequence(&caller.account_id, &new, &steps, action, &caller.editor()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "sequence": sequence, "version": version }))))
}

/// A sequence in the list, and whether it is read-only here.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Listed {
    /// The sequence.
    pub sequence: stepwise_domain::engagement::Sequence,
    /// Shared locked by the parent account: read-only here.
    pub locked: bool,
}

/// `GET /v1/sequences`: a page of the account's own, and (on every page)
/// those its parent shares locked, read-only, marked `"locked": true`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    super::json::Query(query): super::json::Query<super::sync::ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.sync_page()?;
    let mut tx = state.engine.read().await?;
    let own = tx.sequences_page(&caller.account_id, &page).await?;
    let next = query.next(&own, |s| (s.created_at, &s.id));
    let mut sequences: Vec<Listed> = own.into_iter().map(|sequence| Listed { sequence, locked: false }).collect();
    if let Some(parent) = tx.account(&caller.account_id).await?.parent_id {
        sequences
            .extend(tx.locked_sequences(&parent).await?.into_iter().map(|sequence| Listed { sequence, locked: true }));
    }
    Ok(Json(json!({ "sequences": sequences, "next_after": next })))
}

/// A sequence the caller may read: their account's, or one their parent
/// account shares locked (then `true`: read-only).
async fn visible(
    tx: &mut stepwise_store::ReadTx,
    caller: &Caller,
    id: &str,
) -> Result<(stepwise_domain::engagement::Sequence, bool), ApiError> {
    match tx.sequence(&caller.account_id, id).await {
        Ok(sequence) => Ok((sequence, false)),
        Err(stepwise_store::StoreError::NotFound { .. }) => {
            let parent = tx.account(&caller.account_id).await?.parent_id;
            if let Some(parent) = parent
                && let Ok(sequence) = tx.sequence(&parent, id).await
                && sequence.settings.shared_locked
            {
                return Ok((sequence, true));
            }
            Err(ApiError::NotFound(format!("sequence {id} not found")))
        }
        Err(other) => Err(other.into()),
    }
}

/// Refuses changes to a parent's locked sequence, which sub-accounts read only.
async fn writable(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let mut tx = state.engine.read().await?;
    match visible(&mut tx, caller, id).await? {
        (_, true) => {
            Err(ApiError::Forbidden(format!("sequence {id} is shared locked by the parent account: read-only here")))
        }
        (_, false) => Ok(()),
    }
}

/// `GET /v1/sequences/{id}`: the sequence and its newest version.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    let (sequence, locked) = visible(&mut tx, &caller, &id).await?;
    let version = tx.latest_version(&id).await?;
    Ok(Json(json!({ "sequence": sequence, "version": version, "locked": locked })))
}

/// `POST /v1/sequences/{id}/versions`: publishes new steps. Running
/// enrollments keep their version; new ones get this one.
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<StepsBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    writable(&state, &caller, &id).await?;
    let mut tx = state.engine.read().await?;
    let sequence = tx.sequence(&caller.account_id, &id).await?;
    drop(tx);
    if sequence.state == SequenceState::Archived {
        return Err(ApiError::Conflict(format!("sequence {id} is archived")));
    }
    let steps = checked_steps(&state, &caller.account_id, sequence.timing_mode, body.steps).await?;
    let version = state.engine.publish_version(&caller.account_id, &id, &steps, &caller.editor()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "version": version }))))
}

/// `GET /v1/sequences/{id}/versions/{n}`.
pub async fn version(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, n)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    visible(&mut tx, &caller, &id).await?;
    Ok(Json(json!({ "version": tx.sequence_version(&id, n).await? })))
}

/// `POST /v1/sequences/{id}/state`.
pub async fn set_state(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<StateBody>,
) -> Result<Json<Value>, ApiError> {
    writable(&state, &caller, &id).await?;
    let sequence = state.engine.set_sequence_state(&caller.account_id, &id, body.state, &caller.editor()).await?;
    Ok(Json(json!({ "sequence": sequence })))
}

/// `GET /v1/sequences/{id}/enrollments`, paged.
pub async fn enrollments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    super::json::Query(query): super::json::Query<super::sync::EnrollmentsQuery>,
) -> Result<Json<Value>, ApiError> {
    let list = query.list();
    let page = list.sync_page()?;
    let mut tx = state.engine.read().await?;
    visible(&mut tx, &caller, &id).await?;
    // Each account lists its own, a shared plan's owner included.
    let enrollments = tx.enrollments_page(&caller.account_id, &id, false, query.status, &page).await?;
    let next = list.next(&enrollments, |e| (e.created_at, &e.id));
    let items = state.engine.enrollment_items_of(&mut tx, &caller.account_id, enrollments).await?;
    Ok(Json(json!({ "enrollments": items, "next_after": next })))
}

/// `GET /v1/sequences/{id}/report`: enrolled, by status, outcomes, replies,
/// bounces, and per step how many actions were completed, skipped (by
/// reason) and failed.
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    use std::collections::BTreeMap;

    let mut tx = state.engine.read().await?;
    // A sub-account's report of a plan its parent shares counts its own
    // enrollments; the owner's counts every account's.
    let (sequence, shared) = visible(&mut tx, &caller, &id).await?;
    let scope = shared.then_some(caller.account_id.as_str());
    let report = tx.sequence_report(&id, scope).await?;
    let by_status: BTreeMap<&str, i64> = report.by_status.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    let outcomes: BTreeMap<&str, i64> = report.by_outcome.iter().map(|(o, n)| (o.as_str(), *n)).collect();
    let mut steps: BTreeMap<i64, (i64, BTreeMap<&str, i64>, i64)> = BTreeMap::new();
    for (step, status, result, n) in &report.steps {
        let entry = steps.entry(*step).or_default();
        match status.as_str() {
            "completed" => entry.0 += n,
            "skipped" => *entry.1.entry(result.as_str()).or_default() += n,
            _ => entry.2 += n,
        }
    }
    let steps: Vec<Value> = steps
        .into_iter()
        .map(|(step, (completed, skipped, failed))| json!({ "step": step, "completed": completed, "skipped": skipped, "failed": failed }))
        .collect();
    let count = |status: &str| by_status.get(status).copied().unwrap_or(0);
    // The last twelve weeks, oldest first: enrollments started, and ended
    // by final status.
    let this_week = stepwise_domain::health::week_start(state.engine.now()).and_time(chrono::NaiveTime::MIN).and_utc();
    let since = this_week - chrono::Duration::weeks(11);
    let weekly = tx.sequence_weeks(&id, scope, since).await?;
    let weeks: Vec<Value> = (0..12)
        .map(|i| {
            let start = since + chrono::Duration::weeks(i);
            let started = weekly.started.iter().find(|(w, _)| *w == start).map_or(0, |(_, n)| *n);
            let ended: BTreeMap<&str, i64> = weekly
                .ended
                .iter()
                .filter(|(w, _, _)| *w == start)
                .map(|(_, status, n)| (status.as_str(), *n))
                .collect();
            json!({ "week_start": start.date_naive(), "enrolled": started, "ended": ended })
        })
        .collect();
    Ok(Json(json!({
        "weeks": weeks,
        "sequence_id": sequence.id,
        "enrolled": by_status.values().sum::<i64>(),
        "by_status": by_status,
        "outcomes": outcomes,
        "replies": count("replied"),
        "bounces": count("bounced"),
        "steps": steps,
    })))
}

/// The export format's name and version.
const EXPORT_FORMAT: &str = "stepwise.sequence/1";

/// A sequence as exported, and as imported again.
#[derive(Debug, serde::Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exported {
    /// Always `stepwise.sequence/1`.
    pub format: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// What it is for.
    pub plan_type: PlanType,
    /// How due dates are computed.
    pub timing_mode: TimingMode,
    /// Settings.
    #[serde(default)]
    pub settings: SequenceSettings,
    /// The steps of its newest version.
    pub steps: Vec<Step>,
}

/// Which export.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `json` (the default, importable) or `csv` (for review).
    pub format: Option<String>,
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// `GET /v1/sequences/{id}/export?format=json|csv`.
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    super::json::Query(q): super::json::Query<ExportQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let mut tx = state.engine.read().await?;
    let (sequence, _) = visible(&mut tx, &caller, &id).await?;
    let steps = tx.latest_version(&id).await?.map(|v| v.steps).unwrap_or_default();
    let exported = Exported {
        format: EXPORT_FORMAT.into(),
        name: sequence.name,
        description: sequence.description,
        plan_type: sequence.plan_type,
        timing_mode: sequence.timing_mode,
        settings: sequence.settings,
        steps,
    };
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(exported).into_response()),
        Some("csv") => {
            let mut out = String::from("position,name,plugin,version,activation,timing,owner,criteria,notify,config\n");
            for step in &exported.steps {
                let cells = [
                    step.position.to_string(),
                    step.name.clone(),
                    step.plugin.id.clone(),
                    step.plugin.version.clone(),
                    step.activation.as_str().to_owned(),
                    serde_json::to_string(&step.timing).unwrap_or_default(),
                    serde_json::to_string(&step.owner).unwrap_or_default(),
                    step.criteria.len().to_string(),
                    step.notify.to_string(),
                    step.config.to_string(),
                ];
                let row: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
                out.push_str(&row.join(","));
                out.push('\n');
            }
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response())
        }
        Some(other) => Err(ApiError::BadRequest(format!("format `{other}` is not `json` or `csv`"))),
    }
}

/// `POST /v1/sequences/import`: a draft made from an export, its steps
/// checked as when created.
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Body(exported): Body<Exported>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if exported.format != EXPORT_FORMAT {
        return Err(ApiError::field(
            "/format",
            format!("must be `{EXPORT_FORMAT}`"),
            format!("format `{}` is not `{EXPORT_FORMAT}`", exported.format),
        ));
    }
    let body = NewSequenceBody {
        name: exported.name,
        description: exported.description,
        plan_type: exported.plan_type,
        timing_mode: exported.timing_mode,
        settings: exported.settings,
        steps: exported.steps,
    };
    make(&state, &caller, body, AuditAction::SequenceImported).await
}

/// What may change of a sequence besides its steps.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// What it is for.
    pub plan_type: Option<PlanType>,
    /// Settings, replaced whole.
    pub settings: Option<SequenceSettings>,
}

/// `PATCH /v1/sequences/{id}`: name, description, plan type and settings.
/// Steps change by publishing a version; the timing mode never changes
/// once set, since every version's timings follow it.
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<EditBody>,
) -> Result<Json<Value>, ApiError> {
    writable(&state, &caller, &id).await?;
    if let Some(settings) = &body.settings {
        check_settings_of(&state, &caller, settings).await?;
    }
    if body.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::field("/name", "must not be empty", "a sequence needs a name"));
    }
    let edit = SequenceEdit {
        name: body.name,
        description: body.description,
        plan_type: body.plan_type,
        settings: body.settings,
    };
    let sequence = state.engine.edit_sequence(&caller.account_id, &id, edit, &caller.editor()).await?;
    Ok(Json(json!({ "sequence": sequence })))
}
