//! The Engage view and what a rep does from it: complete with a result,
//! skip, reschedule, hide (show-on-Engage back to false), explain, and the
//! to-do item its plugin prepares (a call script, a message draft).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::json::Body;
use super::json::{Path, Query};
use super::page::Page;
use stepwise_domain::crm::Role;
use stepwise_domain::engagement::{Action, DeferralReason, Priority, WorkItem};
use stepwise_plugin_host::types::{Draft, EngageItem};
use stepwise_store::{HeldFilter, WorkCursor, WorkFilter, WorkSort, WorkState};

/// Filters and order of the Engage view.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngageQuery {
    /// Whose list (admins only; the caller's own otherwise).
    pub user: Option<String>,
    /// Only actions of this step type (plugin id).
    #[serde(rename = "type")]
    pub plugin: Option<String>,
    /// Only actions of this sequence.
    pub sequence: Option<String>,
    /// Only actions of this priority.
    pub priority: Option<Priority>,
    /// Only actions past their due date (`true`).
    pub overdue: Option<bool>,
    /// Only actions due at or before this time.
    pub due_before: Option<DateTime<Utc>>,
    /// `due` (oldest first, the default), `-due`, `priority` (most urgent
    /// first, then oldest due) or `-priority`.
    pub sort: Option<String>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
}

/// The order a list of work's `sort` names.
pub(super) fn work_sort(sort: Option<&str>) -> Result<WorkSort, ApiError> {
    Ok(match sort {
        None | Some("due") => WorkSort::Due,
        Some("-due") => WorkSort::DueDescending,
        Some("priority") => WorkSort::Priority,
        Some("-priority") => WorkSort::PriorityAscending,
        Some(other) => {
            return Err(ApiError::field(
                "/sort",
                "one of due, -due, priority, -priority",
                format!("sort `{other}` is not one of `due`, `-due`, `priority`, `-priority`"),
            ));
        }
    })
}

/// The position a list of work's `after` names.
pub(super) fn work_cursor(after: Option<&str>) -> Result<Option<WorkCursor>, ApiError> {
    after
        .map(|text| {
            WorkCursor::parse(text).ok_or_else(|| {
                ApiError::field(
                    "/after",
                    "the next_after of the previous page",
                    format!("`after={text}` is not a cursor this list gave (`next_after`)"),
                )
            })
        })
        .transpose()
}

/// The cursor of the page after `items` when the page is full.
pub(super) fn work_next(page: &Page, items: &[WorkItem]) -> Option<String> {
    page.next(items, |_| "").and(items.last()).map(|last| WorkCursor::after(&last.action).to_string())
}

/// The latest due date of a list of work: `due_before`, or now for
/// `overdue`, whichever is earlier.
pub(super) fn due_limit(
    due_before: Option<DateTime<Utc>>,
    overdue: Option<bool>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let overdue = overdue.unwrap_or(false).then_some(now - chrono::Duration::milliseconds(1));
    match (due_before, overdue) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Filters of the held actions list.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeldQuery {
    /// Held for this reason (`duplicate_attempt`, `missing_phone`, …);
    /// for any without it.
    pub deferral: Option<DeferralReason>,
    /// Only actions this user owns (admins only; the caller's own
    /// otherwise).
    pub owner: Option<String>,
    /// Only actions of this sequence.
    pub sequence: Option<String>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
}

/// A result for a completion.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// One of the step type's results.
    pub result: String,
    /// The message as the rep edited it: the `draft` of
    /// `GET /v1/actions/{id}/item`, sent instead of the step's own text.
    #[serde(default)]
    pub draft: Option<Draft>,
}

/// How a send held as a duplicate attempt was resolved.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkSentBody {
    /// The step type's result that happened; by default its first result
    /// that does not end the enrollment.
    #[serde(default)]
    pub result: Option<String>,
}

/// A new due date.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    /// When the action is due again.
    pub due_at: DateTime<Utc>,
}

/// `GET /v1/engage`: a user's active actions.
pub async fn engage(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<EngageQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    let user = match &q.user {
        Some(user) if *user != caller.user.id => {
            caller.require(&[Role::Admin], "reading another user's Engage view")?;
            // Named inside the caller's account: another account's user is
            // not found.
            tx.user(&caller.account_id, user).await?.id
        }
        _ => caller.user.id.clone(),
    };
    let page = Page { after: None, limit: q.limit };
    let filter = WorkFilter {
        account_id: &caller.account_id,
        state: WorkState::Engage,
        action_id: None,
        owner_id: Some(&user),
        company_ids: None,
        plugin_id: q.plugin.as_deref(),
        sequence_id: q.sequence.as_deref(),
        priority: q.priority,
        due_before: due_limit(q.due_before, q.overdue, state.engine.now()),
        sort: work_sort(q.sort.as_deref())?,
    };
    let after = work_cursor(q.after.as_deref())?;
    let items = state.engine.work(&mut tx, &filter, after.as_ref(), page.limit()?).await?;
    let next = work_next(&page, &items);
    Ok(Json(json!({ "user_id": user, "actions": items, "next_after": next })))
}

/// `GET /v1/actions?deferral=…`: the actions held for a reason (or any),
/// by id.
/// An admin sees the whole account's (or one owner's); anyone else their
/// own.
pub async fn held(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<HeldQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.engine.read().await?;
    let owner = match q.owner {
        Some(owner) if owner != caller.user.id => {
            caller.require(&[Role::Admin], "listing another user's held actions")?;
            // Named inside the caller's account: another account's user is
            // not found.
            Some(tx.user(&caller.account_id, &owner).await?.id)
        }
        None if caller.role() == Role::Admin => None,
        _ => Some(caller.user.id.clone()),
    };
    let page = Page { after: q.after, limit: q.limit };
    let filter = HeldFilter {
        account_id: &caller.account_id,
        reason: q.deferral,
        owner_id: owner.as_deref(),
        sequence_id: q.sequence.as_deref(),
    };
    let actions = tx.held_page(&filter, page.after.as_deref(), page.limit()?).await?;
    let next = page.next(&actions, |a| &a.id);
    Ok(Json(json!({ "deferral": q.deferral, "actions": actions, "next_after": next })))
}

/// Only the action's owner or an admin works an action.
pub(super) async fn owned(state: &AppState, caller: &Caller, id: &str) -> Result<Action, ApiError> {
    let action = state.engine.action_of(&caller.account_id, id).await?;
    if caller.role() != Role::Admin && action.owner_id.as_deref() != Some(caller.user.id.as_str()) {
        return Err(ApiError::Forbidden(format!("action {id} is not yours; its owner or an admin may work it")));
    }
    Ok(action)
}

/// `GET /v1/actions/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ActionDetail>, ApiError> {
    let action = state.engine.action_of(&caller.account_id, &id).await?;
    let logs = state.engine.action_logs(&caller.account_id, &id).await?;
    Ok(Json(ActionDetail { action, logs }))
}

/// An action, with what its plugin's calls logged.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ActionDetail {
    /// The action.
    #[serde(flatten)]
    pub action: Action,
    /// The lines its plugin's calls logged, by attempt: at most 100 lines
    /// of 1 KiB each per attempt (a last `host` line says how many more
    /// there were). Empty when the plugin logged nothing or may not log.
    pub logs: Vec<stepwise_domain::engagement::ActionLogLine>,
}

/// `POST /v1/actions/{id}/complete`.
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<CompleteBody>,
) -> Result<Json<Action>, ApiError> {
    owned(&state, &caller, &id).await?;
    let completed = state
        .engine
        .complete_action_with_draft(&caller.account_id, &id, &caller.user.id, &body.result, body.draft)
        .await?;
    Ok(Json(completed))
}

/// `GET /v1/actions/{id}/item`: the to-do item as the step's plugin
/// prepares it now (title, instructions, message draft).
pub async fn item(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<EngageItem>, ApiError> {
    Ok(Json(state.engine.engage_item(&caller.account_id, &id).await?))
}

/// `POST /v1/actions/{id}/skip`.
pub async fn skip(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Action>, ApiError> {
    owned(&state, &caller, &id).await?;
    Ok(Json(state.engine.skip_action(&caller.account_id, &id, &caller.user.id).await?))
}

/// `POST /v1/actions/{id}/reschedule`.
pub async fn reschedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<RescheduleBody>,
) -> Result<Json<Action>, ApiError> {
    owned(&state, &caller, &id).await?;
    Ok(Json(state.engine.reschedule_action(&caller.account_id, &id, &caller.user.id, body.due_at).await?))
}

/// `POST /v1/actions/{id}/mark-sent`: a send held as a duplicate attempt
/// did leave; the action is completed and the enrollment moves on.
pub async fn mark_sent(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<MarkSentBody>,
) -> Result<Json<Action>, ApiError> {
    owned(&state, &caller, &id).await?;
    let result = body.result.as_deref();
    Ok(Json(state.engine.mark_sent(&caller.account_id, &id, &caller.user.id, result).await?))
}

/// `POST /v1/actions/{id}/send-again`: a send held as a duplicate attempt
/// did not leave; it is processed again now.
pub async fn send_again(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Action>, ApiError> {
    owned(&state, &caller, &id).await?;
    Ok(Json(state.engine.send_again(&caller.account_id, &id, &caller.user.id).await?))
}

/// `POST /v1/actions/{id}/hide`: show-on-Engage back to false; the action
/// is processed again, skip criteria included.
pub async fn hide(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Action>, ApiError> {
    owned(&state, &caller, &id).await?;
    Ok(Json(state.engine.hide_from_engage(&caller.account_id, &id, &caller.user.id).await?))
}

/// `GET /v1/actions/{id}/explain`: why it is (not) on the Engage view.
pub async fn explain(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(state.engine.explain(&caller.account_id, &id).await?)))
}
