//! A sequence's settings in the console ([P], SPEC §2): name, description,
//! plan type, what a reply does, the drip limit, business hours, the
//! unsubscribe link, the next sequence, the sales cycle and lead source,
//! and sharing with sub-accounts. Saved through `PATCH /v1/sequences/{id}`'s
//! handler, so its checks are the API's; a refused form is shown again as
//! it was typed, with what is wrong at its field.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveTime, Weekday};
use maud::{Markup, html};
use serde_json::Value;

use super::layout::csrf;
use super::schema_form::{Posted, last, posted};
use super::{Form, Shown, Visitor, see_other, text};
use crate::AppState;
use crate::auth::ADMINS;
use crate::error::ApiError;
use crate::json;
use crate::sequences::{self as api, EditBody};
use stepwise_domain::engagement::{BusinessHours, OnReply, PlanType, SequenceSettings};

const WEEKDAYS: [Weekday; 7] =
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

/// The form's fields as a sequence's stored settings fill them.
pub(super) fn stored(sequence: &Value) -> Posted {
    let settings: SequenceSettings = serde_json::from_value(sequence["settings"].clone()).unwrap_or_default();
    let mut pairs: Vec<(String, String)> = vec![
        ("name".into(), text(sequence, "name").into()),
        ("description".into(), text(sequence, "description").into()),
        ("plan_type".into(), text(sequence, "plan_type").into()),
        ("on_reply".into(), settings.on_reply.to_string()),
        ("drip_limit".into(), settings.drip_limit.map(|n| n.to_string()).unwrap_or_default()),
        ("unsubscribe_link".into(), settings.unsubscribe_link.to_string()),
        ("next_sequence_id".into(), settings.next_sequence_id.unwrap_or_default()),
        ("sales_cycle".into(), settings.sales_cycle.unwrap_or_default()),
        ("lead_source".into(), settings.lead_source.unwrap_or_default()),
        ("shared_locked".into(), settings.shared_locked.to_string()),
    ];
    if let Some(hours) = settings.business_hours {
        pairs.push(("hours".into(), "true".into()));
        pairs.push(("timezone".into(), hours.timezone));
        pairs.push(("start".into(), hours.start.format("%H:%M").to_string()));
        pairs.push(("end".into(), hours.end.format("%H:%M").to_string()));
        pairs.extend(hours.weekdays.iter().map(|d| ("weekdays".to_owned(), d.to_string())));
    }
    posted(pairs)
}

/// A problem of the form: the field it belongs to and what is wrong.
pub(super) type Problem = (&'static str, String);

/// The settings card: the form filled from `values`, `problem` at its
/// field; `sequences` are those a completed enrollment may move on to.
pub(super) fn card(
    visitor: &Visitor,
    id: &str,
    values: &Posted,
    sequences: &[(String, String)],
    problem: Option<&Problem>,
) -> Markup {
    let value = |name: &str| last(values, name).unwrap_or("").to_owned();
    let checked = |name: &str| last(values, name) == Some("true");
    let error = |field: &str| problem.filter(|(f, _)| *f == field).map(|(_, message)| message.as_str());
    let invalid = |field: &str| error(field).map(|_| "true");
    let described = |field: &str| error(field).map(|_| format!("settings-{field}-error"));
    let shown_error = |field: &str| {
        html! { @if let Some(message) = error(field) { p.field-error id=(format!("settings-{field}-error")) role="alert" { (message) } } }
    };
    let days: Vec<&str> = values.get("weekdays").map(|d| d.iter().map(String::as_str).collect()).unwrap_or_default();
    html! {
        section.card aria-labelledby="settings-title" {
            h2 #settings-title { "Settings" }
            form method="post" action=(format!("/sequences/{id}/settings")) {
                (csrf(visitor))
                div.row {
                    div.field {
                        label for="settings-name" { "Name" }
                        input #settings-name type="text" name="name" value=(value("name")) aria-invalid=[invalid("name")]
                            aria-describedby=[described("name")];
                        (shown_error("name"))
                    }
                    div.field {
                        label for="settings-plan-type" { "For" }
                        select #settings-plan-type name="plan_type" {
                            @for plan in PlanType::ALL { option value=(plan) selected[plan.as_str() == value("plan_type")] { (plan) } }
                        }
                    }
                }
                label for="settings-description" { "Description" }
                input #settings-description type="text" name="description" value=(value("description"));
                div.row {
                    div.field {
                        label for="settings-on-reply" { "When the contact replies" }
                        select #settings-on-reply name="on_reply" {
                            option value="stop" selected[value("on_reply") == "stop"] { "End the enrollment as replied" }
                            option value="continue" selected[value("on_reply") == "continue"] { "Go on with the steps" }
                        }
                    }
                    div.field {
                        label for="settings-drip-limit" { "Drip limit (running at once; blank for none)" }
                        input #settings-drip-limit type="text" inputmode="numeric" name="drip_limit" value=(value("drip_limit"))
                            aria-invalid=[invalid("drip_limit")] aria-describedby=[described("drip_limit")];
                        (shown_error("drip_limit"))
                    }
                }
                fieldset {
                    legend { "Business hours for automatic sends" }
                    div.field.check {
                        input type="hidden" name="hours" value="false";
                        input #settings-hours type="checkbox" name="hours" value="true" checked[checked("hours")];
                        label for="settings-hours" { "Only send during business hours" }
                    }
                    div.row {
                        div.field {
                            label for="settings-timezone" { "Timezone (IANA, such as Europe/Paris)" }
                            input #settings-timezone type="text" name="timezone" value=(value("timezone"))
                                aria-invalid=[invalid("business_hours")] aria-describedby=[described("business_hours")];
                        }
                        div.field {
                            label for="settings-start" { "Opens" }
                            input #settings-start type="time" name="start" value=(value("start"));
                        }
                        div.field {
                            label for="settings-end" { "Closes" }
                            input #settings-end type="time" name="end" value=(value("end"));
                        }
                    }
                    fieldset.choices {
                        legend { "Open on" }
                        @for day in WEEKDAYS {
                            @let day_id = format!("settings-day-{day}");
                            span.check {
                                input type="checkbox" id=(day_id) name="weekdays" value=(day.to_string()) checked[days.contains(&day.to_string().as_str())];
                                label for=(day_id) { (day.to_string()) }
                            }
                        }
                    }
                    (shown_error("business_hours"))
                }
                div.row {
                    div.field {
                        label for="settings-next" { "Then enroll into" }
                        select #settings-next name="next_sequence_id" aria-invalid=[invalid("next_sequence_id")]
                            aria-describedby=[described("next_sequence_id")] {
                            option value="" { "Nothing: the enrollment ends" }
                            @for (other, name) in sequences.iter().filter(|(other, _)| other != id) {
                                option value=(other) selected[*other == value("next_sequence_id")] { (name) }
                            }
                        }
                        (shown_error("next_sequence_id"))
                    }
                    div.field {
                        label for="settings-sales-cycle" { "Sales cycle set on enrollment" }
                        input #settings-sales-cycle type="text" name="sales_cycle" value=(value("sales_cycle"));
                    }
                    div.field {
                        label for="settings-lead-source" { "Enroll new leads from source" }
                        input #settings-lead-source type="text" name="lead_source" value=(value("lead_source"));
                    }
                }
                @for (name, label) in [("unsubscribe_link", "Emails carry an unsubscribe link"), ("shared_locked", "Share with sub-accounts, read-only")] {
                    div.field.check {
                        input type="hidden" name=(name) value="false";
                        input type="checkbox" id=(format!("settings-{name}")) name=(name) value="true" checked[checked(name)];
                        label for=(format!("settings-{name}")) { (label) }
                    }
                }
                @if let Some((field, message)) = problem.filter(|(f, _)| f.is_empty()) {
                    p.field-error role="alert" data-field=(field) { (message) }
                }
                p { button #save-settings type="submit" { "Save settings" } }
            }
        }
    }
}

/// The edit the form asks for, or its first problem.
fn read(values: &Posted) -> Result<EditBody, Problem> {
    let value = |name: &str| last(values, name).unwrap_or("").trim().to_owned();
    let optional = |name: &str| Some(value(name)).filter(|v| !v.is_empty());
    let drip_limit = match optional("drip_limit") {
        None => None,
        Some(n) => Some(n.parse::<u32>().map_err(|_| ("drip_limit", format!("`{n}` is not a whole number")))?),
    };
    let business_hours = if last(values, "hours") == Some("true") {
        let time = |name: &str| {
            NaiveTime::parse_from_str(&value(name), "%H:%M")
                .map_err(|_| ("business_hours", format!("`{}` is not a time of day (HH:MM)", value(name))))
        };
        let weekdays = values.get("weekdays").into_iter().flatten().filter_map(|d| d.parse::<Weekday>().ok()).collect();
        Some(BusinessHours { timezone: value("timezone"), weekdays, start: time("start")?, end: time("end")? })
    } else {
        None
    };
    let settings = SequenceSettings {
        on_reply: value("on_reply").parse().unwrap_or(OnReply::Stop),
        drip_limit,
        business_hours,
        unsubscribe_link: last(values, "unsubscribe_link") == Some("true"),
        next_sequence_id: optional("next_sequence_id"),
        sales_cycle: optional("sales_cycle"),
        lead_source: optional("lead_source"),
        shared_locked: last(values, "shared_locked") == Some("true"),
    };
    Ok(EditBody {
        name: Some(value("name")),
        description: Some(value("description")),
        plan_type: value("plan_type").parse().ok(),
        settings: Some(settings),
    })
}

/// The field of the form an API problem's pointer names.
fn field_of(pointer: &str) -> &'static str {
    ["name", "drip_limit", "business_hours", "next_sequence_id"]
        .into_iter()
        .find(|f| pointer.trim_start_matches("/settings").trim_start_matches('/').starts_with(f))
        .unwrap_or("")
}

/// `POST /sequences/{id}/settings`: as `PATCH /v1/sequences/{id}`.
pub async fn save(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, Shown> {
    let values = posted(pairs);
    visitor.check_csrf(last(&values, super::CSRF_FIELD))?;
    visitor.caller.require(ADMINS, "changing a sequence's settings")?;
    let problem = match read(&values) {
        Ok(edit) => {
            match api::edit(State(state.clone()), visitor.caller.clone(), json::Path(id.clone()), json::Body(edit))
                .await
            {
                Ok(_) => return Ok(see_other(&format!("/sequences/{id}?done=saved"))),
                Err(ApiError::Validation { detail, fields }) => match fields.first() {
                    Some(first) => (field_of(&first.field), first.message.clone()),
                    None => ("", detail),
                },
                Err(error @ (ApiError::BadRequest(_) | ApiError::Conflict(_))) => ("", super::describe(&error)),
                Err(error) => return Err(error.into()),
            }
        }
        Err(problem) => problem,
    };
    let page = super::sequences::page_of(&state, &visitor, &id, None, Some((values, problem))).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_settings_fill_the_form_and_read_back_the_same() {
        let sequence = json!({
            "name": "Welcome", "description": "", "plan_type": "connection",
            "settings": {
                "on_reply": "continue", "drip_limit": 5, "unsubscribe_link": true,
                "business_hours": { "timezone": "Europe/Paris", "weekdays": ["Mon", "Fri"], "start": "09:00:00", "end": "17:30:00" },
                "next_sequence_id": "seq_2", "sales_cycle": null, "lead_source": "webinar", "shared_locked": false
            }
        });
        let edit = read(&stored(&sequence)).unwrap();
        let settings: SequenceSettings = serde_json::from_value(sequence["settings"].clone()).unwrap();
        assert_eq!(edit.settings, Some(settings));
        assert_eq!(edit.plan_type, Some(PlanType::Connection));
        assert_eq!(edit.name.as_deref(), Some("Welcome"));
    }

    #[test]
    fn what_does_not_read_names_its_field() {
        let values = posted(vec![("drip_limit".into(), "many".into())]);
        assert_eq!(read(&values).err(), Some(("drip_limit", "`many` is not a whole number".to_owned())));
        let values = posted(vec![("hours".into(), "true".into()), ("start".into(), "9am".into())]);
        assert_eq!(read(&values).err().map(|p| p.0), Some("business_hours"));
        assert_eq!(field_of("/settings/business_hours"), "business_hours");
        assert_eq!(field_of("/name"), "name");
        assert_eq!(field_of("/settings/other"), "");
    }
}
