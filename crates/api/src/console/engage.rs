//! The Engage view ([G][S]): a rep's to-do list, sortable and filterable,
//! and one action's page: its to-do item as the step's plugin prepares it
//! (instructions, the email or SMS draft to edit), complete with one of the
//! step's results, skip, reschedule, hide, and why it is or is not on the
//! list.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDateTime, TimeZone as _, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{csrf, page, time, timezone};
use super::{CsrfForm, Form, Shown, Visitor, given, see_other};
use crate::AppState;
use crate::actions::{due_limit, owned, work_cursor, work_next, work_sort};
use crate::auth::WORKERS;
use crate::error::ApiError;
use crate::page::Page;
use stepwise_domain::engagement::{ActionStatus, Priority, WorkItem};
use stepwise_engine::EngineError;
use stepwise_plugin_host::types::{Draft, EngageItem, PluginKind};
use stepwise_store::{SyncPage, WorkFilter, WorkState};

/// The Engage view's filters and order, as its form sends them.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    sort: Option<String>,
    #[serde(rename = "type")]
    plugin: Option<String>,
    sequence: Option<String>,
    priority: Option<String>,
    overdue: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

fn priority_badge(priority: Priority) -> Markup {
    html! { span class=(format!("badge {priority}")) { (priority) } }
}

/// The priority filter of a list of work's form, `chosen` selected.
pub fn priority_filter(chosen: Option<&str>) -> Markup {
    html! {
        div {
            label for="priority" { "Priority" }
            select #priority name="priority" {
                option value="" { "Any" }
                @for p in Priority::ALL.iter().rev() {
                    option value=(p) selected[chosen == Some(p.as_str())] { (p) }
                }
            }
        }
    }
}

/// The rows of a list of work, as a table (cards on a phone).
pub fn work_table(visitor: &Visitor, caption: &str, items: &[WorkItem], with_owner_view: bool) -> Markup {
    html! {
        div.table-wrap {
            table.rows {
                caption.muted { (caption) }
                thead { tr {
                    th scope="col" { "Title" } th scope="col" { "Contact" } th scope="col" { "Company" }
                    th scope="col" { "Sequence" } th scope="col" { "Type" } th scope="col" { "Priority" }
                    th scope="col" { "Due" }
                } }
                tbody {
                    @for item in items {
                        tr {
                            td data-label="Title" { a href=(format!("/actions/{}", item.action.id)) { (item.title) } }
                            td data-label="Contact" { (item.contact_name) }
                            td data-label="Company" {
                                @match (&item.company_id, &item.company_name) {
                                    (Some(id), Some(name)) => { a href=(format!("/companies/{id}")) { (name) } }
                                    _ => { span.muted { "—" } }
                                }
                            }
                            td data-label="Sequence" { (item.sequence_name) }
                            td data-label="Type" { (item.action.plugin_id) }
                            td data-label="Priority" { (priority_badge(item.action.priority)) }
                            td data-label="Due" {
                                (time(visitor, item.action.due_at))
                                @if item.overdue { " " span.badge.overdue { "overdue" } }
                                @if with_owner_view && item.action.status != ActionStatus::Active {
                                    " " span.badge { (item.action.status) }
                                }
                            }
                        }
                    }
                    @if items.is_empty() {
                        tr { td colspan="7" { span.muted { "Nothing here." } } }
                    }
                }
            }
        }
    }
}

/// `GET /engage`: the visitor's to-do list.
pub async fn list(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(q): Query<ListQuery>,
) -> Result<Response, Shown> {
    let caller = &visitor.caller;
    let priority = match given(q.priority.as_deref()) {
        Some(p) => Some(p.parse::<Priority>().map_err(|_| {
            ApiError::field("/priority", "low, normal or high", format!("priority `{p}` is not low, normal or high"))
        })?),
        None => None,
    };
    let page_size = Page { after: None, limit: Some(50) };
    let overdue = q.overdue.as_deref() == Some("on");
    let filter = WorkFilter {
        account_id: &caller.account_id,
        state: WorkState::Engage,
        action_id: None,
        owner_id: Some(&caller.user.id),
        company_ids: None,
        plugin_id: given(q.plugin.as_deref()),
        sequence_id: given(q.sequence.as_deref()),
        priority,
        due_before: due_limit(None, Some(overdue), state.engine.now()),
        sort: work_sort(given(q.sort.as_deref()))?,
    };
    let after = work_cursor(given(q.after.as_deref()))?;
    let mut tx = state.engine.read().await?;
    let items = state.engine.work(&mut tx, &filter, after.as_ref(), page_size.limit()?).await?;
    let next = work_next(&page_size, &items);
    let sequences = tx.sequences_page(&caller.account_id, &SyncPage::first(200)).await?;
    let types: Vec<String> = {
        let mut ids: Vec<String> = state
            .engine
            .registry()
            .list()
            .into_iter()
            .filter(|r| r.plugin.manifest().kind == PluginKind::Action && r.usable_by(&caller.account_id))
            .map(|r| r.plugin.manifest().id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let selected = |value: &Option<String>, option: &str| value.as_deref() == Some(option);
    let next_link = next.map(|cursor| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("sort", &q.sort),
            ("type", &q.plugin),
            ("sequence", &q.sequence),
            ("priority", &q.priority),
            ("overdue", &q.overdue),
        ] {
            if let Some(value) = given(value.as_deref()) {
                query.append_pair(key, value);
            }
        }
        query.append_pair("after", &cursor);
        format!("/engage?{}", query.finish())
    });
    let body = html! {
        @if let Some(done) = given(q.done.as_deref()) {
            p.flash role="status" { "Action " (done) "." }
        }
        form.filters method="get" action="/engage" aria-label="Filter and sort" {
            div {
                label for="sort" { "Sort by" }
                select #sort name="sort" {
                    option value="due" selected[selected(&q.sort, "due")] { "Due date, oldest first" }
                    option value="-due" selected[selected(&q.sort, "-due")] { "Due date, latest first" }
                    option value="priority" selected[selected(&q.sort, "priority")] { "Priority, highest first" }
                    option value="-priority" selected[selected(&q.sort, "-priority")] { "Priority, lowest first" }
                }
            }
            div {
                label for="type" { "Type" }
                select #type name="type" {
                    option value="" { "Any" }
                    @for id in &types { option value=(id) selected[selected(&q.plugin, id)] { (id) } }
                }
            }
            div {
                label for="sequence" { "Sequence" }
                select #sequence name="sequence" {
                    option value="" { "Any" }
                    @for s in &sequences { option value=(s.id) selected[selected(&q.sequence, &s.id)] { (s.name) } }
                }
            }
            (priority_filter(q.priority.as_deref()))
            div {
                label for="overdue" { input #overdue type="checkbox" name="overdue" checked[overdue]; " Overdue only" }
            }
            div { button type="submit" { "Apply" } }
        }
        (work_table(&visitor, "Your actions", &items, false))
        @if let Some(link) = next_link {
            p.pager { a href=(link) { "Next page" } }
        }
        section.card aria-labelledby="missing-title" {
            h2 #missing-title { "Why is this not on my list?" }
            p.muted { "Name an action (its id, from a contact's enrollment or a link) to see the checklist it goes through." }
            form method="get" action="/why" {
                label for="action" { "Action id" }
                input #action type="text" name="action" required pattern="act_[0-9a-f]+";
                " " button.secondary type="submit" { "Explain" }
            }
        }
    };
    Ok(page(&visitor, "Engage", "engage", body).into_response())
}

/// The action a "why is this not on my list?" form names.
#[derive(Debug, Deserialize)]
pub struct WhyQuery {
    action: String,
}

/// `GET /why?action=`: the action's page at its checklist.
pub async fn why(_visitor: Visitor, Query(q): Query<WhyQuery>) -> Response {
    let id: String = q.action.trim().chars().filter(char::is_ascii_alphanumeric).take(64).collect();
    let id = id.strip_prefix("act").map_or(id.clone(), |rest| format!("act_{rest}"));
    see_other(&format!("/actions/{id}#why"))
}

/// What the action page shows besides the action: a problem to show at a
/// field after a form was refused.
#[derive(Debug, Default)]
struct Problems {
    /// `(field, message)`.
    field: Option<(&'static str, String)>,
    /// A problem with the whole form.
    form: Option<String>,
}

async fn action_page(
    state: &AppState,
    visitor: &Visitor,
    id: &str,
    status: StatusCode,
    problems: Problems,
) -> Result<Response, Shown> {
    let caller = &visitor.caller;
    let action = state.engine.action_of(&caller.account_id, id).await?;
    let filter = WorkFilter {
        account_id: &caller.account_id,
        state: WorkState::Any,
        action_id: Some(id),
        owner_id: None,
        company_ids: None,
        plugin_id: None,
        sequence_id: None,
        priority: None,
        due_before: None,
        sort: stepwise_store::WorkSort::Due,
    };
    let mut tx = state.engine.read().await?;
    let row = state.engine.work(&mut tx, &filter, None, 1).await?.into_iter().next();
    drop(tx);
    let explanation = state.engine.explain(&caller.account_id, id).await?;
    let logs = state.engine.action_logs(&caller.account_id, id).await?;
    let works = visitor.may(WORKERS)
        && (visitor.may(&[stepwise_domain::crm::Role::Admin])
            || action.owner_id.as_deref() == Some(caller.user.id.as_str()));
    let active = action.status == ActionStatus::Active;
    let changeable = action.current && matches!(action.status, ActionStatus::Active | ActionStatus::Future);
    let (item, results): (Result<EngageItem, String>, Vec<_>) = if active {
        match state.engine.engage_item_with_results(&caller.account_id, id).await {
            Ok((item, results)) => (Ok(item), results),
            Err(error) => (Err(error.to_string()), Vec::new()),
        }
    } else {
        (Err(String::new()), Vec::new())
    };
    let title = row.as_ref().map_or_else(|| format!("Action {id}"), |r| r.title.clone());
    let field_error = |field: &str| problems.field.as_ref().filter(|(f, _)| *f == field).map(|(_, m)| m.clone());
    let invalid = |field: &str| field_error(field).map(|_| "true");
    let tz = timezone(visitor);
    let due_value =
        action.due_at.map(|d| d.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string()).unwrap_or_default();
    let body = html! {
        @if let Some(problem) = &problems.form {
            p.error role="alert" { (problem) }
        }
        section.card aria-label="Action" {
            dl.facts {
                @if let Some(row) = &row {
                    dt { "Contact" } dd { (row.contact_name) @if let Some(email) = &row.contact_email { " · " (email) } }
                    dt { "Company" } dd {
                        @match (&row.company_id, &row.company_name) {
                            (Some(cid), Some(name)) => { a href=(format!("/companies/{cid}")) { (name) } }
                            _ => { "—" }
                        }
                    }
                    dt { "Sequence" } dd { (row.sequence_name) " · step " (action.step + 1) }
                }
                dt { "Type" } dd {
                    (action.plugin_id)
                    @if let Some(version) = &action.plugin_version { " " (version) }
                    " (" (action.activation) ")"
                }
                dt { "Status" } dd { (action.status) @if let Some(reason) = action.deferral_reason { " · held: " (reason) } }
                dt { "Priority" } dd { (priority_badge(action.priority)) }
                dt { "Due" } dd { (time(visitor, action.due_at)) }
            }
        }
        @if active {
            section.card aria-labelledby="todo" {
                h2 #todo { "To do" }
                @match &item {
                    Ok(item) => {
                        p { strong { (item.title) } }
                        @if !item.body.is_empty() { p style="white-space: pre-wrap" { (item.body) } }
                    }
                    Err(problem) => { p.error { "The step's plugin cannot prepare this item: " (problem) } }
                }
                @if works {
                    form method="post" action=(format!("/actions/{id}/complete")) aria-label="Complete" {
                        (csrf(visitor))
                        @if let Ok(EngageItem { draft: Some(draft), .. }) = &item {
                            (draft_editor(draft, &field_error("draft")))
                        }
                        label for="result" { "Result" }
                        select #result name="result" required aria-invalid=[invalid("result")] {
                            @for r in &results { option value=(r.code) { (r.title) } }
                        }
                        @if let Some(message) = field_error("result") { p.field-error role="alert" { (message) } }
                        p { button type="submit" { "Complete" } }
                    }
                }
            }
        }
        @if works && changeable {
            section.card aria-labelledby="change" {
                h2 #change { "Change" }
                div.actions {
                    form.inline method="post" action=(format!("/actions/{id}/reschedule")) aria-label="Reschedule" {
                        (csrf(visitor))
                        label for="due_at" { "New due date (" (tz.name()) ")" }
                        input #due_at type="datetime-local" name="due_at" value=(due_value) required
                            aria-invalid=[invalid("due_at")] aria-describedby=[field_error("due_at").map(|_| "due_at-error")];
                        " " button.secondary type="submit" { "Reschedule" }
                        @if let Some(message) = field_error("due_at") {
                            p.field-error #due_at-error role="alert" { (message) }
                        }
                    }
                }
                div.actions {
                    form.inline method="post" action=(format!("/actions/{id}/skip")) {
                        (csrf(visitor))
                        button.danger type="submit" { "Skip" }
                    }
                    @if active {
                        form.inline method="post" action=(format!("/actions/{id}/hide")) {
                            (csrf(visitor))
                            button.secondary type="submit" { "Hide from Engage" }
                        }
                    }
                }
            }
        }
        @if !logs.is_empty() {
            section.card aria-labelledby="log" {
                h2 #log { "Plugin log" }
                table {
                    thead { tr { th { "Attempt" } th { "Version" } th { "Level" } th { "Line" } } }
                    tbody {
                        @for line in &logs {
                            tr {
                                td { (line.attempt) }
                                td { (line.plugin_version) }
                                td { (line.level) @if line.source != "plugin" { " · " (line.source) } }
                                td style="white-space: pre-wrap; overflow-wrap: anywhere" { (line.message) }
                            }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="why" {
            h2 #why { "Why is this (not) on the Engage view?" }
            p { (explanation.summary) }
            ol.checks {
                @for check in &explanation.checks {
                    li {
                        span class=(if check.ok { "badge ok" } else { "badge no" }) { (if check.ok { "yes" } else { "no" }) }
                        " " (check.question) " — " span.muted { (check.answer) }
                    }
                }
            }
        }
        p { a href="/engage" { "Back to Engage" } }
    };
    Ok((status, page(visitor, &title, "engage", body)).into_response())
}

fn draft_editor(draft: &Draft, problem: &Option<String>) -> Markup {
    html! {
        fieldset {
            legend { "Message (edit before sending)" }
            @match draft {
                Draft::Email { to, subject, body } => {
                    input type="hidden" name="draft_kind" value="email";
                    label for="draft_to" { "To" }
                    input #draft_to type="text" name="draft_to" value=(to) readonly;
                    label for="draft_subject" { "Subject" }
                    input #draft_subject type="text" name="draft_subject" value=(subject);
                    label for="draft_body" { "Body" }
                    textarea #draft_body name="draft_body" { (body) }
                }
                Draft::Sms { to, body } => {
                    input type="hidden" name="draft_kind" value="sms";
                    label for="draft_to" { "To" }
                    input #draft_to type="text" name="draft_to" value=(to) readonly;
                    label for="draft_body" { "Text" }
                    textarea #draft_body name="draft_body" { (body) }
                }
            }
            @if let Some(problem) = problem { p.field-error role="alert" { (problem) } }
        }
    }
}

/// `GET /actions/{id}`.
pub async fn action(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, Shown> {
    action_page(&state, &visitor, &id, StatusCode::OK, Problems::default()).await
}

/// A completion, as the action page's form sends it.
#[derive(Debug, Deserialize)]
pub struct CompleteForm {
    result: String,
    draft_kind: Option<String>,
    draft_to: Option<String>,
    draft_subject: Option<String>,
    draft_body: Option<String>,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Checks that the visitor may work the action, as the API checks it: a
/// worker's role, and the action theirs unless they are an admin.
async fn may_work(state: &AppState, visitor: &Visitor, id: &str, csrf: Option<&str>) -> Result<(), Shown> {
    visitor.check_csrf(csrf)?;
    visitor.caller.require(WORKERS, "working an action")?;
    owned(state, &visitor.caller, id).await?;
    Ok(())
}

/// An engine refusal of a form: shown on the action page at `field` (or the
/// whole form), nothing changed; other errors as pages.
async fn refused(
    state: &AppState,
    visitor: &Visitor,
    id: &str,
    field: &'static str,
    error: EngineError,
) -> Result<Response, Shown> {
    match error {
        EngineError::Invalid(message) => {
            let problems = Problems { field: Some((field, message)), form: None };
            action_page(state, visitor, id, StatusCode::UNPROCESSABLE_ENTITY, problems).await
        }
        EngineError::InvalidState(message) | EngineError::Plugin { message, .. } => {
            let problems = Problems { field: None, form: Some(message) };
            action_page(state, visitor, id, StatusCode::CONFLICT, problems).await
        }
        other => Err(other.into()),
    }
}

/// `POST /actions/{id}/complete`.
pub async fn complete(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<CompleteForm>,
) -> Result<Response, Shown> {
    may_work(&state, &visitor, &id, form.csrf.as_deref()).await?;
    let draft = match form.draft_kind.as_deref() {
        Some("email") => Some(Draft::Email {
            to: form.draft_to.unwrap_or_default(),
            subject: form.draft_subject.unwrap_or_default(),
            body: form.draft_body.unwrap_or_default(),
        }),
        Some("sms") => {
            Some(Draft::Sms { to: form.draft_to.unwrap_or_default(), body: form.draft_body.unwrap_or_default() })
        }
        _ => None,
    };
    let caller = &visitor.caller;
    match state.engine.complete_action_with_draft(&caller.account_id, &id, &caller.user.id, &form.result, draft).await {
        Ok(_) => Ok(see_other("/engage?done=completed")),
        Err(EngineError::Plugin { message, .. }) => {
            let problems = Problems { field: Some(("draft", message)), form: None };
            action_page(&state, &visitor, &id, StatusCode::UNPROCESSABLE_ENTITY, problems).await
        }
        Err(error) => refused(&state, &visitor, &id, "result", error).await,
    }
}

/// `POST /actions/{id}/skip` and `POST /actions/{id}/hide`: as the API's
/// routes of the same names.
pub async fn act(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((id, verb)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Shown> {
    if !matches!(verb.as_str(), "skip" | "hide") {
        return Err(Shown(ApiError::NotFound(format!("no page /actions/{id}/{verb}"))));
    }
    may_work(&state, &visitor, &id, form.csrf.as_deref()).await?;
    let caller = &visitor.caller;
    let (account, user) = (&caller.account_id, &caller.user.id);
    let (done, outcome) = match verb.as_str() {
        "skip" => ("skipped", state.engine.skip_action(account, &id, user).await),
        _ => ("hidden", state.engine.hide_from_engage(account, &id, user).await),
    };
    match outcome {
        Ok(_) => Ok(see_other(&format!("/engage?done={done}"))),
        Err(error) => refused(&state, &visitor, &id, "form", error).await,
    }
}

/// A new due date, in the visitor's timezone.
#[derive(Debug, Deserialize)]
pub struct RescheduleForm {
    due_at: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /actions/{id}/reschedule`: a date that does not read is shown at
/// its field and nothing changes.
pub async fn reschedule(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<RescheduleForm>,
) -> Result<Response, Shown> {
    may_work(&state, &visitor, &id, form.csrf.as_deref()).await?;
    let tz = timezone(&visitor);
    let local = NaiveDateTime::parse_from_str(form.due_at.trim(), "%Y-%m-%dT%H:%M")
        .ok()
        .and_then(|local| tz.from_local_datetime(&local).earliest());
    let Some(due_at) = local.map(|d| d.with_timezone(&Utc)) else {
        let message = format!("`{}` is not a date and time such as 2025-01-31T09:30", form.due_at);
        let problems = Problems { field: Some(("due_at", message)), form: None };
        return action_page(&state, &visitor, &id, StatusCode::UNPROCESSABLE_ENTITY, problems).await;
    };
    let caller = &visitor.caller;
    match state.engine.reschedule_action(&caller.account_id, &id, &caller.user.id, due_at).await {
        Ok(_) => Ok(see_other("/engage?done=rescheduled")),
        Err(error) => refused(&state, &visitor, &id, "due_at", error).await,
    }
}
