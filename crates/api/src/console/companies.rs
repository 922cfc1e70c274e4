//! A company's page: its engagement overview ([E]) as the API answers it
//! (`GET /v1/companies/{id}/engagement`): hierarchy, health score with its
//! weekly chart and sortable indicators, upcoming touchpoints, open work
//! items with filters, and the timeline.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::chart::{Point, line};
use super::engage::{priority_filter, work_table};
use super::layout::{csrf, page, time};
use super::{CsrfForm, Form, Shown, Visitor, given, see_other};
use crate::AppState;
use crate::auth::WORKERS;
use crate::engagement::{Engagement, WorkItemState, WorkItemsQuery, overview as engagement};
use crate::json;
use stepwise_domain::engagement::Priority;
use stepwise_domain::health::{SortKey, sort};

/// The overview's filters, as its form sends them.
#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    children: Option<String>,
    state: Option<String>,
    #[serde(rename = "type")]
    plugin: Option<String>,
    priority: Option<String>,
    overdue: Option<String>,
    sort: Option<String>,
    /// The indicators' order: a column, `-` first for descending.
    hsort: Option<String>,
    done: Option<String>,
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") })
}

/// `GET /companies/{id}`.
pub async fn overview(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Query(q): Query<OverviewQuery>,
) -> Result<Response, Shown> {
    let work_state = match given(q.state.as_deref()) {
        Some("active") => Some(WorkItemState::Active),
        Some("held") => Some(WorkItemState::Held),
        _ => None,
    };
    let priority = given(q.priority.as_deref()).and_then(|p| p.parse::<Priority>().ok());
    let query = WorkItemsQuery {
        children: Some(q.children.as_deref() == Some("on")),
        state: work_state,
        plugin: given(q.plugin.as_deref()).map(str::to_owned),
        priority,
        overdue: Some(q.overdue.as_deref() == Some("on")),
        sort: given(q.sort.as_deref()).map(str::to_owned),
        after: None,
        limit: Some(100),
    };
    let axum::Json(mut view) =
        engagement(State(state.clone()), visitor.caller.clone(), json::Path(id.clone()), json::Query(query)).await?;
    if let Some(text) = given(q.hsort.as_deref()) {
        let (descending, key) = text.strip_prefix('-').map_or((false, text), |k| (true, k));
        if let Ok(key) = key.parse::<SortKey>() {
            sort(&mut view.health.score.indicators, key, descending);
        }
    }
    let title = view.company.name.clone();
    let body = body(&visitor, &id, &q, &view);
    Ok(page(&visitor, &title, "companies", body).into_response())
}

fn body(visitor: &Visitor, id: &str, q: &OverviewQuery, view: &Engagement) -> Markup {
    let selected = |value: &Option<String>, option: &str| value.as_deref() == Some(option);
    let hsort_link = |key: SortKey| {
        let current = q.hsort.as_deref().unwrap_or("");
        let next = if current == key.as_str() { format!("-{key}") } else { key.to_string() };
        format!("/companies/{id}?hsort={next}#health")
    };
    let points: Vec<Point> = view
        .health
        .history
        .iter()
        .map(|w| Point { label: w.week_start.format("%-d %b").to_string(), value: w.score })
        .collect();
    html! {
        @if let Some(done) = given(q.done.as_deref()) {
            p.flash role="status" { (done) }
        }
        nav aria-label="Hierarchy" .tree {
            @if !view.hierarchy.ancestors.is_empty() {
                p {
                    "Part of: "
                    @for (i, parent) in view.hierarchy.ancestors.iter().rev().enumerate() {
                        @if i > 0 { " › " }
                        a href=(format!("/companies/{}", parent.id)) { (parent.name) }
                    }
                }
            }
            @if !view.hierarchy.descendants.is_empty() {
                details open {
                    summary { "Companies below (" (view.hierarchy.descendants.len()) ")" }
                    ul {
                        @for d in &view.hierarchy.descendants {
                            li style=(format!("margin-left: {}rem", (d.depth - 1))) {
                                a href=(format!("/companies/{}", d.company.id)) { (d.company.name) }
                            }
                        }
                    }
                }
            }
        }
        div.grid {
            section.card #health aria-labelledby="health-title" {
                h2 #health-title { "Health" }
                p { span.score { (number(Some(view.health.score.score))) } span.muted { " / 100" } }
                p.muted {
                    "Counted over the last " (view.health.window_days) " days. "
                    @match view.health.snapshot_at {
                        Some(at) => { "This week's snapshot: " (time(visitor, Some(at))) "." }
                        None => { "No snapshot this week yet." }
                    }
                }
                @if visitor.may(WORKERS) {
                    form method="post" action=(format!("/companies/{id}/health/refresh")) {
                        (csrf(visitor))
                        button.secondary type="submit" { "Refresh now" }
                    }
                }
                (line("Health score by week, last 12 weeks", &points, 100.0))
            }
            section.card aria-labelledby="upcoming-title" {
                h2 #upcoming-title { "Upcoming touchpoints" }
                ol {
                    @for item in &view.upcoming {
                        li {
                            (time(visitor, item.action.due_at)) " — "
                            a href=(format!("/actions/{}", item.action.id)) { (item.title) }
                            " · " (item.contact_name) " · " span.muted { (item.sequence_name) }
                        }
                    }
                }
                @if view.upcoming.is_empty() { p.muted { "Nothing planned." } }
            }
        }
        section.card aria-labelledby="indicators-title" {
            h2 #indicators-title { "Indicators" }
            div.table-wrap {
                table.rows {
                    thead { tr {
                        @for (key, label) in [(SortKey::Indicator, "Indicator"), (SortKey::Value, "Value"), (SortKey::Target, "Target"), (SortKey::Weight, "Weight"), (SortKey::Gap, "Gap"), (SortKey::Points, "Points")] {
                            th scope="col" { a href=(hsort_link(key)) { (label) } }
                        }
                    } }
                    tbody {
                        @for i in &view.health.score.indicators {
                            tr {
                                td data-label="Indicator" { (i.label) }
                                td data-label="Value" { (number(i.value)) " " span.muted { (i.unit) } }
                                td data-label="Target" { (number(Some(i.target))) }
                                td data-label="Weight" { (number(Some(i.weight))) }
                                td data-label="Gap" { (number(i.gap)) }
                                td data-label="Points" { (format!("{:.1}", i.points)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="work-title" {
            h2 #work-title { "Open work items" }
            form.filters method="get" action=(format!("/companies/{id}")) aria-label="Filter work items" {
                div {
                    label for="sort" { "Sort by" }
                    select #sort name="sort" {
                        option value="priority" selected[selected(&q.sort, "priority")] { "Priority, highest first" }
                        option value="due" selected[selected(&q.sort, "due")] { "Due date, oldest first" }
                        option value="-due" selected[selected(&q.sort, "-due")] { "Due date, latest first" }
                    }
                }
                div {
                    label for="state" { "State" }
                    select #state name="state" {
                        option value="" { "Open" }
                        option value="active" selected[selected(&q.state, "active")] { "Active" }
                        option value="held" selected[selected(&q.state, "held")] { "Blocked or held" }
                    }
                }
                div {
                    label for="type" { "Type" }
                    input #type type="text" name="type" value=[q.plugin.as_deref()] size="10";
                }
                (priority_filter(q.priority.as_deref()))
                div { label for="overdue" { input #overdue type="checkbox" name="overdue" checked[q.overdue.as_deref() == Some("on")]; " Overdue only" } }
                div { label for="children" { input #children type="checkbox" name="children" checked[q.children.as_deref() == Some("on")]; " Include companies below" } }
                div { button type="submit" { "Apply" } }
            }
            (work_table(visitor, "Open work items", &view.work_items, true))
        }
        section.card aria-labelledby="timeline-title" {
            h2 #timeline-title { "Timeline" }
            ol {
                @for event in &view.timeline {
                    li { (time(visitor, Some(event.at))) " — " (event.kind) @if let Some(reason) = &event.reason { ": " (reason) } }
                }
            }
            @if view.timeline.is_empty() { p.muted { "Nothing yet." } }
        }
    }
}

/// `POST /companies/{id}/health/refresh`.
pub async fn refresh(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    visitor.caller.require(WORKERS, "refreshing a health score")?;
    state.engine.refresh_company_health(&visitor.caller.account_id, &id).await?;
    Ok(see_other(&format!("/companies/{id}?done=Health+score+refreshed#health")))
}
