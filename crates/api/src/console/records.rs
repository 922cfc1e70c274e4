//! Contacts, companies and enrollments: search and lists; a contact with
//! its sequences, timeline and the enroll form; an enrollment ([I]) with
//! its actions and what people do to it (pause, resume, stop with a
//! disposition, cancel, remove, migrate).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{csrf, page, time};
use super::{Form, Shown, Visitor, given, see_other};
use crate::AppState;
use crate::auth::{ADMINS, WORKERS};
use crate::page::{Page, cursor};
use stepwise_domain::crm::{Company, Contact};
use stepwise_domain::engagement::{EnrollmentItem, EnrollmentStatus, SequenceState};
use stepwise_engine::{Disposition, EngineError, EnrollRequest};
use stepwise_store::{EnrollmentFilter, ReadTx, StoreError, SyncPage, Timeline};

/// How many rows a page of these lists shows.
const ROWS: u32 = 50;

/// A search box's query, and where its page starts: `from` matches
/// skipped (a search), or `after` a listing's cursor.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    after: Option<String>,
    from: Option<u32>,
}

/// The most matches a search pages through; past them, search more
/// narrowly.
const MAX_SKIP: u32 = 10_000;

/// A page of a search or a listing: the rows, and the link to the next
/// page when this one is full.
struct Found<T> {
    rows: Vec<T>,
    next: Option<String>,
}

/// Searches with `search`, or lists in creation order with `list`, one
/// page of [`ROWS`] at the place `q` names, in one read; `at` reads a
/// row's position.
async fn found<T>(
    state: &AppState,
    path: &str,
    q: &SearchQuery,
    search: impl AsyncFnOnce(&mut ReadTx, &str, u32) -> Result<Vec<T>, StoreError>,
    list: impl AsyncFnOnce(&mut ReadTx, &SyncPage<'_>) -> Result<Vec<T>, StoreError>,
    at: impl Fn(&T) -> (i64, &str),
) -> Result<Found<T>, Shown> {
    let query = |pairs: &[(&str, &str)]| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(pairs);
        format!("{path}?{}", query.finish())
    };
    let mut tx = state.engine.read().await?;
    if let Some(text) = given(q.q.as_deref()) {
        let from = q.from.unwrap_or(0).min(MAX_SKIP);
        let rows = search(&mut tx, text, from).await?;
        let next = (rows.len() == ROWS as usize && from + ROWS <= MAX_SKIP)
            .then(|| query(&[("q", text), ("from", &(from + ROWS).to_string())]));
        return Ok(Found { rows, next });
    }
    let after = given(q.after.as_deref()).map(cursor).transpose()?;
    let rows = list(&mut tx, &SyncPage { after, ..SyncPage::first(ROWS) }).await?;
    let next = Page { after: None, limit: Some(ROWS) }.next_at(&rows, at).map(|cursor| query(&[("after", &cursor)]));
    Ok(Found { rows, next })
}

/// Where a contact or company stands in creation order.
fn made(created_at: Option<chrono::DateTime<chrono::Utc>>, id: &str) -> (i64, &str) {
    (created_at.unwrap_or_default().timestamp_millis(), id)
}

fn search_form(action: &str, label: &str, q: Option<&str>) -> Markup {
    html! {
        form.filters method="get" action=(action) role="search" {
            div {
                label for="q" { (label) }
                input #q type="search" name="q" value=[q] size="30";
            }
            div { button type="submit" { "Search" } }
        }
    }
}

fn pager(next: Option<&str>) -> Markup {
    html! { @if let Some(next) = next { p.pager { a #next-page href=(next) { "Next page" } } } }
}

/// `GET /contacts`: search by name or email, or every contact, oldest
/// first, a page at a time.
pub async fn contacts(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(q): Query<SearchQuery>,
) -> Result<Response, Shown> {
    let account = &visitor.caller.account_id;
    let found = found(
        &state,
        "/contacts",
        &q,
        async |tx: &mut ReadTx, text: &str, from| tx.search_contacts(account, text, from, ROWS).await,
        async |tx: &mut ReadTx, page: &SyncPage<'_>| tx.contacts(account, page).await,
        |c: &Contact| made(c.created_at, &c.id),
    )
    .await?;
    let contacts = &found.rows;
    let body = html! {
        (search_form("/contacts", "Name or email", q.q.as_deref()))
        div.table-wrap {
            table.rows {
                caption.muted { (if q.q.is_some() { "Matching contacts" } else { "Contacts" }) }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Type" } th scope="col" { "Last engaged" } } }
                tbody {
                    @for c in contacts {
                        tr {
                            td data-label="Name" { a href=(format!("/contacts/{}", c.id)) { (c.first_name) " " (c.last_name) } }
                            td data-label="Email" { (c.email.as_deref().unwrap_or("—")) }
                            td data-label="Type" { (c.contact_type) }
                            td data-label="Last engaged" { (time(&visitor, c.last_engaged)) }
                        }
                    }
                    @if contacts.is_empty() { tr { td colspan="4" { span.muted { "No contacts." } } } }
                }
            }
        }
        (pager(found.next.as_deref()))
    };
    Ok(page(&visitor, "Contacts", "contacts", body).into_response())
}

/// `GET /companies`: search by name, or every company, oldest first, a
/// page at a time.
pub async fn companies(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(q): Query<SearchQuery>,
) -> Result<Response, Shown> {
    let account = &visitor.caller.account_id;
    let found = found(
        &state,
        "/companies",
        &q,
        async |tx: &mut ReadTx, text: &str, from| tx.search_companies(account, text, from, ROWS).await,
        async |tx: &mut ReadTx, page: &SyncPage<'_>| tx.companies_page(account, page).await,
        |c: &Company| made(c.created_at, &c.id),
    )
    .await?;
    let body = html! {
        (search_form("/companies", "Company name", q.q.as_deref()))
        ul {
            @for c in &found.rows { li { a href=(format!("/companies/{}", c.id)) { (c.name) } } }
        }
        @if found.rows.is_empty() { p.muted { "No companies." } }
        (pager(found.next.as_deref()))
    };
    Ok(page(&visitor, "Companies", "companies", body).into_response())
}

fn status_badge(status: EnrollmentStatus) -> Markup {
    html! { span.badge { (status) } }
}

/// The [I] columns of a list of enrollments.
fn enrollment_table(visitor: &Visitor, caption: &str, items: &[EnrollmentItem], with_contact: bool) -> Markup {
    html! {
        div.table-wrap {
            table.rows {
                caption.muted { (caption) }
                thead { tr {
                    @if with_contact { th scope="col" { "Contact" } }
                    th scope="col" { "Sequence" } th scope="col" { "Status" } th scope="col" { "Step" }
                    th scope="col" { "Started" } th scope="col" { "Last completed" } th scope="col" { "Next action on" }
                    th scope="col" { "Last engaged" } th scope="col" { "Last contacted" }
                } }
                tbody {
                    @for i in items {
                        tr {
                            @if with_contact {
                                td data-label="Contact" { a href=(format!("/contacts/{}", i.enrollment.contact_id)) { (i.contact_name) } }
                            }
                            td data-label="Sequence" { a href=(format!("/enrollments/{}", i.enrollment.id)) { (i.sequence_name) } }
                            td data-label="Status" { (status_badge(i.enrollment.status)) }
                            td data-label="Step" { (i.step_name.as_deref().unwrap_or("—")) }
                            td data-label="Started" { (time(visitor, Some(i.enrollment.started_at))) }
                            td data-label="Last completed" { (time(visitor, i.enrollment.last_action_completed_at)) }
                            td data-label="Next action on" { (time(visitor, i.enrollment.next_action_at)) }
                            td data-label="Last engaged" { (time(visitor, i.last_engaged)) }
                            td data-label="Last contacted" { (time(visitor, i.last_contacted)) }
                        }
                    }
                    @if items.is_empty() { tr { td colspan="9" { span.muted { "No enrollments." } } } }
                }
            }
        }
    }
}

/// A problem to show on the contact page's enroll form.
async fn contact_page(
    state: &AppState,
    visitor: &Visitor,
    id: &str,
    status: StatusCode,
    problem: Option<String>,
) -> Result<Response, Shown> {
    let account = &visitor.caller.account_id;
    let mut tx = state.engine.read().await?;
    let contact = tx.contact(account, id).await?;
    let company = match &contact.company_id {
        Some(company) => Some(tx.company(account, company).await?),
        None => None,
    };
    let filter = EnrollmentFilter { account_id: account, status: None, sequence_id: None, contact_id: Some(id) };
    let enrollments = state.engine.enrollment_items(&mut tx, &filter, None, 100).await?;
    let timeline = tx.recent_events(Timeline::Contact(id), 50).await?;
    let sequences: Vec<_> = tx
        .sequences_page(account, &SyncPage::first(500))
        .await?
        .into_iter()
        .filter(|s| s.state == SequenceState::Active)
        .collect();
    drop(tx);
    let name = format!("{} {}", contact.first_name, contact.last_name);
    let body = html! {
        section.card aria-label="Contact" {
            dl.facts {
                dt { "Email" } dd { (contact.email.as_deref().unwrap_or("—")) }
                dt { "Phone" } dd { (contact.phone.as_deref().unwrap_or("—")) }
                dt { "Company" } dd {
                    @match &company { Some(c) => { a href=(format!("/companies/{}", c.id)) { (c.name) } } None => { "—" } }
                }
                dt { "Type" } dd { (contact.contact_type) }
                dt { "Opted out of" } dd {
                    @let outs = [("email", contact.opt_outs.email), ("SMS", contact.opt_outs.sms), ("calls", contact.opt_outs.phone)];
                    @let names: Vec<&str> = outs.iter().filter(|(_, out)| *out).map(|(n, _)| *n).collect();
                    (if names.is_empty() { "nothing".to_owned() } else { names.join(", ") })
                }
                dt { "Last engaged" } dd { (time(visitor, contact.last_engaged)) }
                dt { "Last contacted" } dd { (time(visitor, contact.last_contacted)) }
            }
        }
        section aria-labelledby="sequences-title" {
            h2 #sequences-title { "Sequences" }
            (enrollment_table(visitor, "This contact's sequences", &enrollments, false))
        }
        @if visitor.may(WORKERS) {
            section.card aria-labelledby="enroll-title" {
                h2 #enroll-title { "Enroll in a sequence" }
                form method="post" action=(format!("/contacts/{id}/enroll")) {
                    (csrf(visitor))
                    label for="sequence_id" { "Sequence" }
                    select #sequence_id name="sequence_id" required aria-invalid=[problem.as_ref().map(|_| "true")] {
                        @for s in &sequences { option value=(s.id) { (s.name) } }
                    }
                    @if let Some(problem) = &problem { p.field-error role="alert" #enroll-error { (problem) } }
                    @if sequences.is_empty() { p.muted { "No sequence is active." } }
                    p { button type="submit" disabled[sequences.is_empty()] { "Enroll" } }
                }
            }
        }
        section.card aria-labelledby="timeline-title" {
            h2 #timeline-title { "Timeline" }
            ol {
                @for event in &timeline {
                    li { (time(visitor, Some(event.at))) " — " (event.kind) @if let Some(reason) = &event.reason { ": " (reason) } }
                }
            }
            @if timeline.is_empty() { p.muted { "Nothing yet." } }
        }
    };
    Ok((status, page(visitor, &name, "contacts", body)).into_response())
}

/// `GET /contacts/{id}`.
pub async fn contact(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, Shown> {
    contact_page(&state, &visitor, &id, StatusCode::OK, None).await
}

/// The enroll form.
#[derive(Debug, Deserialize)]
pub struct EnrollForm {
    sequence_id: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /contacts/{id}/enroll`: the visitor enrolls the contact, as
/// `POST /v1/enrollments` does; a refusal is shown at the form.
pub async fn enroll(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<EnrollForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    visitor.caller.require(WORKERS, "enrolling a contact")?;
    let request = EnrollRequest {
        contact_id: id.clone(),
        sequence_id: form.sequence_id,
        initiated_by: Some(visitor.caller.user.id.clone()),
        event_date: None,
    };
    match state.engine.enroll(&visitor.caller.account_id, &request).await {
        Ok(enrollment) => Ok(see_other(&format!("/enrollments/{}?done=enrolled", enrollment.id))),
        Err(
            error @ (EngineError::AlreadyEnrolled { .. }
            | EngineError::QueuedElsewhere { .. }
            | EngineError::Invalid(_)
            | EngineError::InvalidState(_)),
        ) => contact_page(&state, &visitor, &id, StatusCode::UNPROCESSABLE_ENTITY, Some(error.to_string())).await,
        Err(EngineError::NotFound { what: "sequence", id: sequence }) => {
            let problem = format!("sequence {sequence} not found");
            contact_page(&state, &visitor, &id, StatusCode::UNPROCESSABLE_ENTITY, Some(problem)).await
        }
        Err(error) => Err(error.into()),
    }
}

/// The enrollment list's filters.
#[derive(Debug, Default, Deserialize)]
pub struct EnrollmentsQuery {
    status: Option<String>,
    sequence: Option<String>,
    after: Option<String>,
}

/// `GET /enrollments`: the account's enrollments with the [I] columns.
pub async fn enrollments(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(q): Query<EnrollmentsQuery>,
) -> Result<Response, Shown> {
    let account = &visitor.caller.account_id;
    let status = match given(q.status.as_deref()) {
        Some(s) => Some(s.parse::<EnrollmentStatus>().map_err(|_| {
            crate::error::ApiError::field(
                "/status",
                "an enrollment status",
                format!("status `{s}` is not an enrollment status"),
            )
        })?),
        None => None,
    };
    let filter =
        EnrollmentFilter { account_id: account, status, sequence_id: given(q.sequence.as_deref()), contact_id: None };
    let after = given(q.after.as_deref()).map(cursor).transpose()?;
    let mut tx = state.engine.read().await?;
    let items = state.engine.enrollment_items(&mut tx, &filter, after, ROWS).await?;
    let sequences = tx.sequences_page(account, &SyncPage::first(500)).await?;
    drop(tx);
    let paging = Page { after: None, limit: Some(ROWS) };
    let next = paging.next_at(&items, |i| (i.enrollment.created_at.timestamp_millis(), &i.enrollment.id));
    let selected = |value: &Option<String>, option: &str| value.as_deref() == Some(option);
    let next_link = next.map(|cursor| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("status", &q.status), ("sequence", &q.sequence)] {
            if let Some(value) = given(value.as_deref()) {
                query.append_pair(key, value);
            }
        }
        query.append_pair("after", &cursor);
        format!("/enrollments?{}", query.finish())
    });
    let body = html! {
        form.filters method="get" action="/enrollments" aria-label="Filter enrollments" {
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "Any" }
                    @for s in EnrollmentStatus::ALL { option value=(s) selected[selected(&q.status, s.as_str())] { (s) } }
                }
            }
            div {
                label for="sequence" { "Sequence" }
                select #sequence name="sequence" {
                    option value="" { "Any" }
                    @for s in &sequences { option value=(s.id) selected[selected(&q.sequence, &s.id)] { (s.name) } }
                }
            }
            div { button type="submit" { "Apply" } }
        }
        (enrollment_table(&visitor, "Enrollments, newest first", &items, true))
        (pager(next_link.as_deref()))
    };
    Ok(page(&visitor, "Enrollments", "enrollments", body).into_response())
}

/// `?done=` after a change.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /enrollments/{id}`: the record with its actions, and what may be
/// done to it.
pub async fn enrollment(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, Shown> {
    let account = &visitor.caller.account_id;
    let mut tx = state.engine.read().await?;
    let record = tx.enrollment(&id).await?;
    if record.account_id != *account {
        return Err(Shown(crate::error::ApiError::NotFound(format!("enrollment {id} not found"))));
    }
    let filter = EnrollmentFilter {
        account_id: account,
        status: None,
        sequence_id: Some(&record.sequence_id),
        contact_id: Some(&record.contact_id),
    };
    let item = state
        .engine
        .enrollment_items(&mut tx, &filter, None, 100)
        .await?
        .into_iter()
        .find(|i| i.enrollment.id == id)
        .ok_or_else(|| Shown(crate::error::ApiError::NotFound(format!("enrollment {id} not found"))))?;
    let actions = tx.actions_of_enrollment(&id).await?;
    let version = tx.sequence_version(&record.sequence_id, record.version).await?;
    let latest = tx.latest_version(&record.sequence_id).await?.map_or(record.version, |v| v.version);
    drop(tx);
    let e = &item.enrollment;
    let unfinished = matches!(
        e.status,
        EnrollmentStatus::Pending | EnrollmentStatus::Queued | EnrollmentStatus::Running | EnrollmentStatus::Paused
    );
    let workers = visitor.may(WORKERS);
    let admins = visitor.may(ADMINS);
    let title = format!("{} in {}", item.contact_name, item.sequence_name);
    let body = html! {
        @if let Some(done) = given(done.done.as_deref()) { p.flash role="status" { "Enrollment " (done) "." } }
        section.card aria-label="Enrollment" {
            dl.facts {
                dt { "Contact" } dd { a href=(format!("/contacts/{}", e.contact_id)) { (item.contact_name) } }
                dt { "Sequence" } dd { (item.sequence_name) " · version " (e.version) }
                dt { "Status" } dd { (status_badge(e.status)) @if let Some(reason) = e.pause_reason { " (" (reason) ")" } @if let Some(outcome) = e.outcome { " · " (outcome) } }
                dt { "Step" } dd { (item.step_name.as_deref().unwrap_or("—")) }
                dt { "Started" } dd { (time(&visitor, Some(e.started_at))) }
                dt { "Last completed" } dd { (time(&visitor, e.last_action_completed_at)) }
                dt { "Next action on" } dd { (time(&visitor, e.next_action_at)) }
                dt { "Last engaged" } dd { (time(&visitor, item.last_engaged)) }
                dt { "Last contacted" } dd { (time(&visitor, item.last_contacted)) }
            }
        }
        section aria-labelledby="actions-title" {
            h2 #actions-title { "Actions" }
            div.table-wrap {
                table.rows {
                    thead { tr { th scope="col" { "Step" } th scope="col" { "Type" } th scope="col" { "Status" } th scope="col" { "Due" } th scope="col" { "Result" } } }
                    tbody {
                        @for a in &actions {
                            tr {
                                td data-label="Step" {
                                    a href=(format!("/actions/{}", a.id)) {
                                        (usize::try_from(a.step).ok().and_then(|i| version.steps.get(i)).map_or_else(|| format!("step {}", a.step + 1), |s| s.name.clone()))
                                    }
                                }
                                td data-label="Type" { (a.plugin_id) }
                                td data-label="Status" { (a.status) @if let Some(reason) = a.deferral_reason { " · " (reason) } }
                                td data-label="Due" { (time(&visitor, a.due_at)) }
                                td data-label="Result" { (a.result.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
            }
        }
        @if unfinished && workers {
            section.card aria-labelledby="change-title" {
                h2 #change-title { "Change" }
                div.actions {
                    @if e.status == EnrollmentStatus::Paused {
                        (button(&visitor, &id, "resume", "Resume", "secondary"))
                    } @else {
                        (button(&visitor, &id, "pause", "Pause", "secondary"))
                    }
                    form.inline method="post" action=(format!("/enrollments/{id}/stop")) aria-label="Stop" {
                        (csrf(&visitor))
                        label for="disposition" { "Open action on stop" }
                        select #disposition name="disposition" {
                            option value="keep" { "Keep it" }
                            option value="complete" { "Complete it" }
                            option value="skip" { "Skip it" }
                        }
                        " " button.secondary type="submit" { "Stop" }
                    }
                    (button(&visitor, &id, "cancel", "Cancel", "danger"))
                }
                @if admins && latest > 1 {
                    form method="post" action=(format!("/enrollments/{id}/migrate")) aria-label="Migrate" {
                        (csrf(&visitor))
                        label for="version" { "Move to version" }
                        select #version name="version" {
                            @for v in 1..=latest { option value=(v) selected[v == e.version] { "Version " (v) } }
                        }
                        " " button.secondary type="submit" { "Migrate" }
                    }
                }
            }
        }
        @if admins {
            section.card aria-labelledby="remove-title" {
                h2 #remove-title { "Remove" }
                p.muted { "Removes the enrollment with all its history." }
                (button(&visitor, &id, "remove", "Remove", "danger"))
            }
        }
    };
    Ok(page(&visitor, &title, "enrollments", body).into_response())
}

fn button(visitor: &Visitor, id: &str, verb: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("/enrollments/{id}/{verb}")) {
            (csrf(visitor))
            button class=(class) type="submit" { (label) }
        }
    }
}

/// A stop's disposition, or a migration's version.
#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    disposition: Option<Disposition>,
    version: Option<i64>,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /enrollments/{id}/{verb}`: what people do to an enrollment, as the
/// API's routes do it, with the same roles.
pub async fn change(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((id, verb)): Path<(String, String)>,
    Form(form): Form<ChangeForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    let caller = &visitor.caller;
    let (account, actor) = (&caller.account_id, &caller.user.id);
    let engine = &state.engine;
    let outcome = match verb.as_str() {
        "pause" | "resume" | "stop" | "cancel" => {
            caller.require(WORKERS, "changing an enrollment")?;
            match verb.as_str() {
                "pause" => engine.stop(account, &id, actor, Disposition::Keep).await.map(|_| "paused"),
                "resume" => engine.resume(account, &id, actor).await.map(|_| "resumed"),
                "stop" => engine
                    .stop(account, &id, actor, form.disposition.unwrap_or(Disposition::Keep))
                    .await
                    .map(|_| "stopped"),
                _ => engine.cancel(account, &id, actor).await.map(|_| "cancelled"),
            }
        }
        "migrate" => {
            caller.require(ADMINS, "migrating an enrollment")?;
            let version = form
                .version
                .ok_or_else(|| crate::error::ApiError::field("/version", "a version", "name the version to move to"))?;
            engine.migrate(account, &id, version, actor).await.map(|_| "migrated")
        }
        "remove" => {
            caller.require(ADMINS, "removing an enrollment")?;
            engine.remove(account, &id, actor).await?;
            return Ok(see_other("/enrollments"));
        }
        _ => return Err(Shown(crate::error::ApiError::NotFound(format!("no page /enrollments/{id}/{verb}")))),
    };
    match outcome {
        Ok(done) => Ok(see_other(&format!("/enrollments/{id}?done={done}"))),
        Err(EngineError::InvalidState(message) | EngineError::Invalid(message)) => {
            Err(Shown(crate::error::ApiError::Conflict(message)))
        }
        Err(error) => Err(error.into()),
    }
}
