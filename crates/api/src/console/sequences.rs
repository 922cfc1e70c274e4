//! Sequences ([P]): the list with import, and a sequence's page with its
//! steps, its state (activate, pause, archive), export and its report with
//! charts. Each goes through the API's own handlers
//! (`GET /v1/sequences/{id}/report`, `POST …/state`, export, import), so
//! their rules are the API's.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::chart::{Point, bars, columns, line};
use super::layout::{csrf, page};
use super::schema_form::Posted;
use super::{Form, Shown, Visitor, describe, see_other, settings, text};
use crate::AppState;
use crate::auth::ADMINS;
use crate::error::ApiError;
use crate::json;
use crate::sequences::{self as api, ExportQuery, Exported, StateBody};
use crate::sync::ListQuery;
use stepwise_domain::engagement::{SequenceState, StepTiming};

fn import_form(visitor: &Visitor, problem: Option<&str>, given: &str) -> Markup {
    html! {
        section.card aria-labelledby="import-title" {
            h2 #import-title { "Import a sequence" }
            p.muted { "Paste a sequence's JSON export; it becomes a new draft, its steps checked by their plugins." }
            form method="post" action="/sequences/import" {
                (csrf(visitor))
                label for="exported" { "Exported JSON" }
                textarea #exported name="exported" required aria-invalid=[problem.map(|_| "true")]
                    aria-describedby=[problem.map(|_| "import-error")] { (given) }
                @if let Some(problem) = problem { p.field-error #import-error role="alert" { (problem) } }
                p { button type="submit" { "Import" } }
            }
        }
    }
}

/// The list, with the import form's problem and what was pasted, or the
/// new-sequence form's problem, when one was refused.
pub(super) async fn list_with(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    import: Option<(&str, &str)>,
    new: Option<&str>,
) -> Result<Response, Shown> {
    let query = ListQuery { after: None, limit: Some(500), created_since: None, updated_since: None };
    let axum::Json(listed) = api::list(State(state.clone()), visitor.caller.clone(), json::Query(query)).await?;
    let empty = Vec::new();
    let sequences = listed["sequences"].as_array().unwrap_or(&empty);
    let body = html! {
        div.table-wrap {
            table.rows {
                caption.muted { "Sequences" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "State" } th scope="col" { "For" } th scope="col" { "Timing" } } }
                tbody {
                    @for listed in sequences {
                        @let s = &listed["sequence"];
                        tr {
                            td data-label="Name" {
                                a href=(format!("/sequences/{}", text(s, "id"))) { (text(s, "name")) }
                                @if listed["locked"] == Value::Bool(true) { " " span.badge { "shared, read-only" } }
                            }
                            td data-label="State" { span.badge { (text(s, "state")) } }
                            td data-label="For" { (text(s, "plan_type")) }
                            td data-label="Timing" { (text(s, "timing_mode")) }
                        }
                    }
                    @if sequences.is_empty() { tr { td colspan="4" { span.muted { "No sequences yet." } } } }
                }
            }
        }
        @if visitor.may(ADMINS) {
            div.grid {
                (super::builder::new_form(visitor, new))
                (import_form(visitor, import.map(|i| i.0), import.map_or("", |i| i.1)))
            }
        }
    };
    Ok((status, page(visitor, "Sequences", "sequences", body)).into_response())
}

/// `GET /sequences`.
pub async fn list(State(state): State<AppState>, visitor: Visitor) -> Result<Response, Shown> {
    list_with(&state, &visitor, StatusCode::OK, None, None).await
}

/// The import form.
#[derive(Debug, Deserialize)]
pub struct ImportForm {
    exported: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /sequences/import`: as `POST /v1/sequences/import`; what is wrong
/// with the export is shown at the field, and nothing is made.
pub async fn import(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<ImportForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    visitor.caller.require(ADMINS, "importing a sequence")?;
    let exported: Exported = match serde_json::from_str(&form.exported) {
        Ok(exported) => exported,
        Err(e) => {
            let problem = format!("the export does not read: {e}");
            let import = Some((problem.as_str(), form.exported.as_str()));
            return list_with(&state, &visitor, StatusCode::UNPROCESSABLE_ENTITY, import, None).await;
        }
    };
    match api::import(State(state.clone()), visitor.caller.clone(), json::Body(exported)).await {
        Ok((_, axum::Json(made))) => {
            Ok(see_other(&format!("/sequences/{}?done=imported", text(&made["sequence"], "id"))))
        }
        Err(error @ (ApiError::Validation { .. } | ApiError::BadRequest(_) | ApiError::Conflict(_))) => {
            let problem = describe(&error);
            let import = Some((problem.as_str(), form.exported.as_str()));
            list_with(&state, &visitor, StatusCode::UNPROCESSABLE_ENTITY, import, None).await
        }
        Err(error) => Err(error.into()),
    }
}

/// `?done=` after a change.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /sequences/{id}`: steps, state, settings, export and the report.
pub async fn sequence(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, Shown> {
    Ok(page_of(&state, &visitor, &id, done.done.as_deref(), None).await?.into_response())
}

/// The sequences a completed enrollment may move on to, by id and name.
async fn names(state: &AppState, visitor: &Visitor) -> Result<Vec<(String, String)>, Shown> {
    let query = ListQuery { after: None, limit: Some(500), created_since: None, updated_since: None };
    let axum::Json(listed) = api::list(State(state.clone()), visitor.caller.clone(), json::Query(query)).await?;
    Ok(listed["sequences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| (text(&l["sequence"], "id").to_owned(), text(&l["sequence"], "name").to_owned()))
        .collect())
}

/// A sequence's page; `refused` is a settings form shown again with its
/// problem.
pub(super) async fn page_of(
    state: &AppState,
    visitor: &Visitor,
    id: &str,
    done: Option<&str>,
    refused: Option<(Posted, settings::Problem)>,
) -> Result<Html<String>, Shown> {
    let (state, visitor, id) = (state.clone(), visitor.clone(), id.to_owned());
    let axum::Json(got) = api::get(State(state.clone()), visitor.caller.clone(), json::Path(id.clone())).await?;
    let axum::Json(report) = api::report(State(state.clone()), visitor.caller.clone(), json::Path(id.clone())).await?;
    let sequence = &got["sequence"];
    let locked = got["locked"] == Value::Bool(true);
    let empty = Vec::new();
    let steps = got["version"]["steps"].as_array().unwrap_or(&empty);
    let current = text(sequence, "state");
    let weekly: Vec<Point> = report["weeks"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|w| Point {
            label: text(w, "week_start").get(5..).unwrap_or("").to_owned(),
            value: w["enrolled"].as_f64(),
        })
        .collect();
    let max_week = weekly.iter().filter_map(|p| p.value).fold(0.0_f64, f64::max).max(4.0);
    let weeks = report["weeks"].as_array().unwrap_or(&empty);
    let week_labels: Vec<String> = weekly.iter().map(|p| p.label.clone()).collect();
    let mut ended_statuses: Vec<String> =
        weeks.iter().filter_map(|w| w["ended"].as_object()).flat_map(|e| e.keys().cloned()).collect();
    ended_statuses.sort();
    ended_statuses.dedup();
    let ended: Vec<(String, Vec<f64>)> = ended_statuses
        .into_iter()
        .map(|status| {
            let values = weeks.iter().map(|w| w["ended"][&status].as_f64().unwrap_or(0.0)).collect();
            (status, values)
        })
        .collect();
    let step_name = |n: i64| {
        steps
            .iter()
            .find(|s| s["position"].as_i64() == Some(n))
            .map_or_else(|| format!("Step {}", n + 1), |s| text(s, "name").to_owned())
    };
    let funnel: Vec<(String, f64)> = report["steps"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|s| (step_name(s["step"].as_i64().unwrap_or(0)), s["completed"].as_f64().unwrap_or(0.0)))
        .collect();
    let outcomes: Vec<(String, f64)> = report["outcomes"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0))).collect())
        .unwrap_or_default();
    let by_status: BTreeMap<String, i64> = report["by_status"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(0))).collect())
        .unwrap_or_default();
    let body = html! {
        @if let Some(done) = done { p.flash role="status" { "Sequence " (done) "." } }
        section.card aria-label="Sequence" {
            dl.facts {
                dt { "State" } dd { span.badge { (current) } @if locked { " shared by the parent account, read-only" } }
                dt { "For" } dd { (text(sequence, "plan_type")) }
                dt { "Timing" } dd { (text(sequence, "timing_mode")) }
                dt { "Version" } dd { (got["version"]["version"].as_i64().map_or_else(|| "none yet".to_owned(), |v| v.to_string())) }
                @if !text(sequence, "description").is_empty() { dt { "Description" } dd { (text(sequence, "description")) } }
            }
            div.actions {
                @if visitor.may(ADMINS) && !locked {
                    @for (to, label) in [("active", "Activate"), ("paused", "Pause"), ("archived", "Archive")] {
                        @if to != current && current != "archived" {
                            form.inline method="post" action=(format!("/sequences/{id}/state")) {
                                (csrf(&visitor))
                                input type="hidden" name="state" value=(to);
                                button.secondary type="submit" { (label) }
                            }
                        }
                    }
                }
                @if visitor.may(ADMINS) && !locked && current != "archived" {
                    a.button #edit-steps href=(format!("/sequences/{id}/builder")) { "Edit steps" }
                }
                a.button href=(format!("/sequences/{id}/export?format=json")) { "Export JSON" }
                a.button href=(format!("/sequences/{id}/export?format=csv")) { "Export CSV" }
            }
        }
        section aria-labelledby="steps-title" {
            h2 #steps-title { "Steps" }
            div.table-wrap {
                table.rows {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Activation" } th scope="col" { "When" } th scope="col" { "Owner" } th scope="col" { "Criteria" } } }
                    tbody {
                        @for (n, s) in steps.iter().enumerate() {
                            tr {
                                td data-label="#" { (s["position"].as_i64().unwrap_or(0) + 1) }
                                td data-label="Name" { (text(s, "name")) }
                                td data-label="Type" { (text(&s["plugin"], "id")) }
                                td data-label="Activation" { (text(s, "activation")) }
                                td data-label="When" {
                                    @match serde_json::from_value::<StepTiming>(s["timing"].clone()) {
                                        Ok(timing) => { (super::builder::timing_text(timing, n == 0)) }
                                        Err(_) => { (s["timing"].to_string()) }
                                    }
                                }
                                td data-label="Owner" { (text(&s["owner"], "rule").replace('_', " ")) }
                                td data-label="Criteria" {
                                    @for c in s["criteria"].as_array().unwrap_or(&empty) {
                                        span.badge { (text(&c["plugin"], "id")) ", " (text(c, "on_unmet")) } " "
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="report-title" {
            h2 #report-title { "Report" }
            div.grid {
                section.card {
                    h3 { "Enrolled" }
                    p { span.score { (report["enrolled"].as_i64().unwrap_or(0)) } }
                    dl.facts {
                        @for (status, n) in &by_status { dt { (status) } dd { (n) } }
                        dt { "Replies" } dd { (report["replies"].as_i64().unwrap_or(0)) }
                        dt { "Bounces" } dd { (report["bounces"].as_i64().unwrap_or(0)) }
                    }
                }
                section.card {
                    h3 { "Enrolled by week" }
                    (line("Enrollments started by week, last 12 weeks", &weekly, max_week))
                }
                section.card {
                    h3 { "Ended by week, by status" }
                    @if ended.is_empty() { p.muted { "No enrollment has ended yet." } }
                    @else { (columns("Enrollments ended by week and final status, last 12 weeks", &week_labels, &ended)) }
                }
                section.card {
                    h3 { "Completed by step" }
                    (bars("Actions completed by step", &funnel))
                }
                section.card {
                    h3 { "Outcomes" }
                    @if outcomes.is_empty() { p.muted { "No outcomes yet." } } @else { (bars("Completed enrollments by outcome", &outcomes)) }
                }
            }
            div.table-wrap {
                table.rows {
                    caption.muted { "By week: enrollments started, and ended by final status" }
                    thead { tr { th scope="col" { "Week of" } th scope="col" { "Started" } th scope="col" { "Ended" } } }
                    tbody {
                        @for w in report["weeks"].as_array().unwrap_or(&empty) {
                            tr {
                                td data-label="Week of" { (text(w, "week_start")) }
                                td data-label="Started" { (w["enrolled"].as_i64().unwrap_or(0)) }
                                td data-label="Ended" {
                                    @match w["ended"].as_object().filter(|e| !e.is_empty()) {
                                        Some(ended) => { @for (status, n) in ended { (status) ": " (n.as_i64().unwrap_or(0)) " " } }
                                        None => { "—" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            div.table-wrap {
                table.rows {
                    caption.muted { "Per step: completed, skipped by reason, failed" }
                    thead { tr { th scope="col" { "Step" } th scope="col" { "Completed" } th scope="col" { "Skipped" } th scope="col" { "Failed" } } }
                    tbody {
                        @for s in report["steps"].as_array().unwrap_or(&empty) {
                            tr {
                                td data-label="Step" { (step_name(s["step"].as_i64().unwrap_or(0))) }
                                td data-label="Completed" { (s["completed"].as_i64().unwrap_or(0)) }
                                td data-label="Skipped" {
                                    @if let Some(skipped) = s["skipped"].as_object() {
                                        @for (reason, n) in skipped { (reason) ": " (n.as_i64().unwrap_or(0)) " " }
                                    }
                                }
                                td data-label="Failed" { (s["failed"].as_i64().unwrap_or(0)) }
                            }
                        }
                    }
                }
            }
        }
    };
    let settings = match (visitor.may(ADMINS) && !locked, refused) {
        (false, _) => html! {},
        (true, Some((values, problem))) => {
            settings::card(&visitor, &id, &values, &names(&state, &visitor).await?, Some(&problem))
        }
        (true, None) => {
            settings::card(&visitor, &id, &settings::stored(sequence), &names(&state, &visitor).await?, None)
        }
    };
    let body = html! { (body) (settings) };
    let title = text(sequence, "name").to_owned();
    Ok(page(&visitor, &title, "sequences", body))
}

/// A new state.
#[derive(Debug, Deserialize)]
pub struct StateForm {
    state: SequenceState,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /sequences/{id}/state`: as `POST /v1/sequences/{id}/state`.
pub async fn set_state(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<StateForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    visitor.caller.require(ADMINS, "changing a sequence's state")?;
    let body = json::Body(StateBody { state: form.state });
    let _ = api::set_state(State(state.clone()), visitor.caller.clone(), json::Path(id.clone()), body).await?;
    Ok(see_other(&format!("/sequences/{id}?done={}", form.state)))
}

/// `GET /sequences/{id}/export?format=`: the API's export, as a download.
pub async fn export(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, Shown> {
    let extension = if q.format.as_deref() == Some("csv") { "csv" } else { "json" };
    let mut response =
        api::export(State(state.clone()), visitor.caller.clone(), json::Path(id.clone()), json::Query(q)).await?;
    let disposition = format!("attachment; filename=\"sequence-{id}.{extension}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
