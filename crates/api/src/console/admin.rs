//! What admins manage: the plugin catalog (built-ins and add-ons with their
//! manifests; upload; enable; grant capabilities and the HTTP allowlist,
//! showing what a new version asks for beyond what was approved), users
//! (roles, active, passwords), API keys (everyone's own), and what to look
//! at: the webhook monitor, the outbox and notifications. Every form calls
//! the API's own handler for the same change.

use std::collections::HashMap;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{csrf, page};
use super::{CSRF_FIELD, CsrfForm, Form, Shown, Visitor, describe, see_other, text};
use crate::AppState;
use crate::auth::ADMINS;
use crate::error::ApiError;
use crate::json;
use crate::{me, outbox, plugins, users, webhook_failures};
use stepwise_domain::crm::{Role, User};
use stepwise_plugin_host::Grant;
use stepwise_plugin_host::types::Capability;

fn admin_only(visitor: &Visitor, what: &str) -> Result<(), Shown> {
    visitor.caller.require(ADMINS, what).map_err(Shown)
}

/// `?done=` and `?problem=` after a change.
#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    done: Option<String>,
    problem: Option<String>,
}

fn notice(n: &Notice) -> Markup {
    html! {
        @if let Some(done) = &n.done { p.flash role="status" { (done) } }
        @if let Some(problem) = &n.problem { p.error role="alert" #problem { (problem) } }
    }
}

fn back(to: &str, key: &str, message: &str) -> Response {
    let message: String = form_urlencoded::byte_serialize(message.as_bytes()).collect();
    see_other(&format!("{to}?{key}={message}"))
}

/// `GET /admin/plugins`: the catalog with each plugin's settings form.
pub async fn plugins(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(n): Query<Notice>,
) -> Result<Response, Shown> {
    admin_only(&visitor, "managing plugins")?;
    let axum::Json(listed) = plugins::list(State(state.clone()), visitor.caller.clone()).await?;
    let empty = Vec::new();
    let all = listed["plugins"].as_array().unwrap_or(&empty);
    let body = html! {
        (notice(&n))
        section.card aria-labelledby="upload-title" {
            h2 #upload-title { "Upload an add-on" }
            form method="post" action="/admin/plugins/upload" enctype="multipart/form-data" {
                (csrf(&visitor))
                label for="component" { "Component (.wasm)" }
                input #component type="file" name="component" accept=".wasm,application/wasm" required;
                p { button type="submit" { "Upload" } }
            }
        }
        @for (i, p) in all.iter().enumerate() {
            @let manifest = &p["manifest"];
            @let account = &p["account"];
            @let requested: Vec<Capability> = serde_json::from_value(manifest["capabilities"].clone()).unwrap_or_default();
            @let granted: Grant = serde_json::from_value(account["grants"].clone()).unwrap_or_default();
            @let approved: Vec<String> = serde_json::from_value(account["approved_capabilities"].clone()).unwrap_or_default();
            @let asks_more: Vec<&str> = requested.iter().map(Capability::name).filter(|c| !account.is_null() && !approved.iter().any(|a| a == c)).collect();
            section.card aria-labelledby=(format!("plugin-{i}")) {
                h2 #(format!("plugin-{i}")) { (text(p, "id")) " " span.muted { (text(p, "version")) } " " span.badge { (text(p, "origin")) } " " span.badge { (text(manifest, "kind")) } }
                p { (text(manifest, "description")) }
                @if !asks_more.is_empty() {
                    p.error role="alert" { "This version asks for more than was approved: " strong { (asks_more.join(", ")) } ". It stays off until granted again." }
                }
                dl.facts {
                    dt { "Enabled" } dd { (if account["enabled"] == Value::Bool(true) { "yes" } else { "no" }) }
                    dt { "Built for" } dd { "contract " code { "stepwise:plugin@" (text(p, "wit_version")) } }
                    dt { "Asks for" } dd { @if requested.is_empty() { "nothing" } @else { (requested.iter().map(|c| serde_json::to_string(c).unwrap_or_default()).collect::<Vec<_>>().join(", ")) } }
                    dt { "Results" } dd { (manifest["results"].as_array().map(|r| r.iter().map(|r| text(r, "code")).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                }
                form method="post" action=(format!("/admin/plugins/{}", text(p, "id"))) aria-label=(format!("Settings of {}", text(p, "id"))) {
                    (csrf(&visitor))
                    label for=(format!("enabled-{i}")) {
                        input #(format!("enabled-{i}")) type="checkbox" name="enabled" checked[account["enabled"] == Value::Bool(true)];
                        " Enabled for this account"
                    }
                    @if !requested.is_empty() {
                        fieldset {
                            legend { "Grant" }
                            @for (j, capability) in requested.iter().enumerate() {
                                @let value = serde_json::to_string(capability).unwrap_or_default();
                                label for=(format!("cap-{i}-{j}")) {
                                    input #(format!("cap-{i}-{j}")) type="checkbox" name=(format!("cap_{j}")) value=(value) checked[granted.capabilities.contains(capability)];
                                    " " (value)
                                }
                            }
                        }
                    }
                    @if requested.iter().any(|c| matches!(c, Capability::HttpFetch)) {
                        label for=(format!("allow-{i}")) { "HTTP allowlist (one origin or prefix per line)" }
                        textarea #(format!("allow-{i}")) name="http_allow" { (granted.http_allow.join("\n")) }
                    }
                    p { button type="submit" { "Save" } }
                }
            }
        }
    };
    Ok(page(&visitor, "Plugins", "admin", body).into_response())
}

/// `POST /admin/plugins/{id}`: as `PUT /v1/plugins/{id}/account`.
pub async fn plugin_settings(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.get(CSRF_FIELD).map(String::as_str))?;
    admin_only(&visitor, "managing plugins")?;
    let mut capabilities = Vec::new();
    for (key, value) in &form {
        if key.starts_with("cap_") {
            let capability: Capability = serde_json::from_str(value).map_err(|e| {
                ApiError::field("/grant/capabilities", "a capability", format!("`{value}` is not a capability: {e}"))
            })?;
            capabilities.push(capability);
        }
    }
    let http_allow: Vec<String> = form
        .get("http_allow")
        .map(|text| text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let body =
        plugins::AccountBody { enabled: form.contains_key("enabled"), grant: Grant { capabilities, http_allow } };
    match plugins::set_account(State(state.clone()), visitor.caller.clone(), json::Path(id.clone()), json::Body(body))
        .await
    {
        Ok(_) => Ok(back("/admin/plugins", "done", &format!("Settings of {id} saved."))),
        Err(error @ (ApiError::Validation { .. } | ApiError::BadRequest(_))) => {
            Ok(back("/admin/plugins", "problem", &format!("{id}: {}", describe(&error))))
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /admin/plugins/upload`: the file as `POST /v1/plugins` takes it.
pub async fn upload(
    State(state): State<AppState>,
    visitor: Visitor,
    mut multipart: Multipart,
) -> Result<Response, Shown> {
    let mut token = None;
    let mut bytes = None;
    while let Some(field) =
        multipart.next_field().await.map_err(|e| ApiError::BadRequest(format!("the upload cannot be read: {e}")))?
    {
        match field.name() {
            Some(CSRF_FIELD) => token = field.text().await.ok(),
            Some("component") => {
                bytes = Some(
                    field.bytes().await.map_err(|e| ApiError::BadRequest(format!("the file cannot be read: {e}")))?,
                );
            }
            _ => {}
        }
    }
    visitor.check_csrf(token.as_deref())?;
    admin_only(&visitor, "uploading an add-on")?;
    let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
        return Ok(back("/admin/plugins", "problem", "choose a component file to upload"));
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/wasm"));
    match plugins::upload(State(state.clone()), visitor.caller.clone(), headers, Ok(bytes)).await {
        Ok((_, axum::Json(made))) => Ok(back(
            "/admin/plugins",
            "done",
            &format!(
                "Uploaded {} {}: enable it and grant what it asks for below.",
                text(&made, "id"),
                text(&made, "version")
            ),
        )),
        Err(
            error @ (ApiError::Validation { .. }
            | ApiError::Conflict(_)
            | ApiError::TooLarge(_)
            | ApiError::BadRequest(_)),
        ) => Ok(back("/admin/plugins", "problem", &format!("the upload was refused: {}", describe(&error)))),
        Err(error) => Err(error.into()),
    }
}

/// `GET /admin/users`: users with their role, state and password links.
pub async fn users(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(n): Query<Notice>,
) -> Result<Response, Shown> {
    admin_only(&visitor, "managing users")?;
    let mut tx = state.engine.read().await?;
    let all = tx.users(&visitor.caller.account_id).await?;
    drop(tx);
    let roles = [Role::Admin, Role::Agent, Role::Viewer];
    let body = html! {
        (notice(&n))
        div.table-wrap {
            table.rows {
                caption.muted { "Users" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Role and state" } th scope="col" { "Password" } } }
                tbody {
                    @for (i, u) in all.iter().enumerate() {
                        tr {
                            td data-label="Name" { (u.name) }
                            td data-label="Email" { (u.email) }
                            td data-label="Role and state" {
                                form method="post" action=(format!("/admin/users/{}", u.id)) aria-label=(format!("Role of {}", u.name)) {
                                    (csrf(&visitor))
                                    label for=(format!("role-{i}")) { "Role" }
                                    select #(format!("role-{i}")) name="role" {
                                        @for r in roles { option value=(super::layout::role_name(r)) selected[r == u.role] { (super::layout::role_name(r)) } }
                                    }
                                    label for=(format!("active-{i}")) { input #(format!("active-{i}")) type="checkbox" name="active" checked[u.active]; " Active" }
                                    button.secondary type="submit" { "Save" }
                                }
                            }
                            td data-label="Password" {
                                form method="post" action=(format!("/admin/users/{}/password-link", u.id)) {
                                    (csrf(&visitor))
                                    button.secondary type="submit" { "Make a set-password link" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="new-user" {
            h2 #new-user { "Add a user" }
            form method="post" action="/admin/users" {
                (csrf(&visitor))
                label for="name" { "Name" }
                input #name type="text" name="name" required;
                label for="email" { "Email" }
                input #email type="email" name="email" required;
                label for="role" { "Role" }
                select #role name="role" { @for r in roles { option value=(super::layout::role_name(r)) selected[r == Role::Agent] { (super::layout::role_name(r)) } } }
                p { button type="submit" { "Add user" } }
            }
        }
    };
    Ok(page(&visitor, "Users", "admin", body).into_response())
}

/// A user's name, email and role, or role and active.
#[derive(Debug, Deserialize)]
pub struct UserForm {
    name: Option<String>,
    email: Option<String>,
    role: Role,
    active: Option<String>,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /admin/users`: as `POST /v1/users`.
pub async fn create_user(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<UserForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    admin_only(&visitor, "adding a user")?;
    let user = User {
        name: form.name.unwrap_or_default(),
        email: form.email.unwrap_or_default(),
        role: form.role,
        ..User::default()
    };
    match users::create(State(state.clone()), visitor.caller.clone(), json::Body(user)).await {
        Ok(_) => Ok(back("/admin/users", "done", "User added: make them a set-password link.")),
        Err(error @ (ApiError::Validation { .. } | ApiError::Conflict(_))) => {
            Ok(back("/admin/users", "problem", &describe(&error)))
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /admin/users/{id}`: a new role or active state, as
/// `PUT /v1/users/{id}` (an admin cannot demote themselves).
pub async fn update_user(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<UserForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    admin_only(&visitor, "changing a user")?;
    let mut user = state.engine.read().await?.user(&visitor.caller.account_id, &id).await?;
    user.role = form.role;
    user.active = form.active.is_some();
    match users::replace(State(state.clone()), visitor.caller.clone(), json::Path(id), json::Body(user)).await {
        Ok(_) => Ok(back("/admin/users", "done", "User saved.")),
        Err(error @ (ApiError::Validation { .. } | ApiError::Conflict(_) | ApiError::Forbidden(_))) => {
            Ok(back("/admin/users", "problem", &describe(&error)))
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /admin/users/{id}/password-link`: the link, shown once on this
/// page.
pub async fn password_link(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    admin_only(&visitor, "making a set-password link")?;
    let (_, axum::Json(made)) =
        users::password_link(State(state.clone()), visitor.caller.clone(), json::Path(id)).await?;
    let link = made["url"].as_str().map_or_else(|| text(&made, "path").to_owned(), str::to_owned);
    let body = html! {
        p.flash role="status" { "Send this link to the user. It is shown once, works once and expires in 72 hours." }
        p { code #link { (link) } }
        p { a href="/admin/users" { "Back to users" } }
    };
    let mut response = (StatusCode::CREATED, page(&visitor, "Set-password link", "admin", body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET /account/keys`: the visitor's own API keys.
pub async fn keys(State(state): State<AppState>, visitor: Visitor, Query(n): Query<Notice>) -> Result<Response, Shown> {
    let axum::Json(listed) = users::keys(State(state.clone()), visitor.caller.clone()).await?;
    let empty = Vec::new();
    let all = listed["keys"].as_array().unwrap_or(&empty);
    let body = html! {
        (notice(&n))
        div.table-wrap {
            table.rows {
                caption.muted { "Your API keys" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Starts with" } th scope="col" { "Made" } th scope="col" { "Last used" } th scope="col" { "" } } }
                tbody {
                    @for k in all {
                        tr {
                            td data-label="Name" { (text(k, "name")) }
                            td data-label="Starts with" { code { (text(k, "prefix")) } }
                            td data-label="Made" { (text(k, "created_at")) }
                            td data-label="Last used" { (k["last_used_at"].as_str().unwrap_or("never")) }
                            td {
                                @if k["revoked_at"].is_null() {
                                    form method="post" action=(format!("/account/keys/{}/revoke", text(k, "id"))) {
                                        (csrf(&visitor))
                                        button.danger type="submit" { "Revoke" }
                                    }
                                } @else { span.badge { "revoked" } }
                            }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="new-key" {
            h2 #new-key { "Make a key" }
            form method="post" action="/account/keys" {
                (csrf(&visitor))
                label for="key-name" { "What it is for" }
                input #key-name type="text" name="name" required;
                p { button type="submit" { "Make key" } }
            }
        }
    };
    Ok(page(&visitor, "API keys", "account", body).into_response())
}

/// A new key's name.
#[derive(Debug, Deserialize)]
pub struct KeyForm {
    name: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /account/keys`: as `POST /v1/keys`; the secret is shown once.
pub async fn create_key(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<KeyForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    let body = users::NewKey { name: form.name, user_id: None };
    match users::create_key(State(state.clone()), visitor.caller.clone(), json::Body(body)).await {
        Ok((_, axum::Json(made))) => {
            let body = html! {
                p.flash role="status" { "Copy the key now: it is shown once and never again." }
                p { code #secret { (text(&made, "secret")) } }
                p { a href="/account/keys" { "Back to your keys" } }
            };
            let mut response = (StatusCode::CREATED, page(&visitor, "New API key", "account", body)).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
        Err(error @ ApiError::Validation { .. }) => Ok(back("/account/keys", "problem", &describe(&error))),
        Err(error) => Err(error.into()),
    }
}

/// `POST /account/keys/{id}/revoke`: as `DELETE /v1/keys/{id}`.
pub async fn revoke_key(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    users::revoke(State(state.clone()), visitor.caller.clone(), json::Path(id)).await?;
    Ok(back("/account/keys", "done", "Key revoked."))
}

/// A table of JSON rows: `columns` are `(heading, field)`.
fn rows_table(caption: &str, rows: &[Value], columns: &[(&str, &str)]) -> Markup {
    html! {
        div.table-wrap {
            table.rows {
                caption.muted { (caption) }
                thead { tr { @for (heading, _) in columns { th scope="col" { (heading) } } } }
                tbody {
                    @for row in rows {
                        tr {
                            @for (heading, field) in columns {
                                td data-label=(heading) {
                                    @match &row[*field] {
                                        Value::String(s) => { (s) }
                                        Value::Null => { "—" }
                                        other => { (other.to_string()) }
                                    }
                                }
                            }
                        }
                    }
                    @if rows.is_empty() { tr { td colspan=(columns.len()) { span.muted { "Nothing here." } } } }
                }
            }
        }
    }
}

/// `GET /admin/webhooks`: the webhook monitor.
pub async fn webhooks(State(state): State<AppState>, visitor: Visitor) -> Result<Response, Shown> {
    let query = webhook_failures::FailureQuery {
        sequence: None,
        contact: None,
        since: None,
        until: None,
        after: None,
        limit: Some(100),
    };
    let axum::Json(listed) =
        webhook_failures::failures(State(state.clone()), visitor.caller.clone(), json::Query(query)).await?;
    let empty = Vec::new();
    let rows = listed["failures"].as_array().unwrap_or(&empty);
    let body = rows_table(
        "Webhook steps that failed for good, newest first",
        rows,
        &[
            ("Failed", "failed_at"),
            ("Sequence", "sequence_id"),
            ("Contact", "contact_id"),
            ("Step type", "plugin_id"),
            ("Attempts", "attempts"),
            ("What went wrong", "message"),
        ],
    );
    Ok(page(&visitor, "Webhook monitor", "admin", body).into_response())
}

/// `GET /admin/outbox`: the account's outgoing messages.
pub async fn outbox(State(state): State<AppState>, visitor: Visitor) -> Result<Response, Shown> {
    admin_only(&visitor, "reading the outbox")?;
    let query = outbox::OutboxQuery { state: None, channel: None, after: None, limit: Some(100) };
    let axum::Json(listed) = outbox::list(State(state.clone()), visitor.caller.clone(), json::Query(query)).await?;
    let empty = Vec::new();
    let rows = listed["messages"].as_array().unwrap_or(&empty);
    let body = rows_table(
        "Outgoing messages, oldest first",
        rows,
        &[
            ("Made", "created_at"),
            ("Channel", "channel"),
            ("State", "state"),
            ("Attempts", "attempts"),
            ("Last error", "last_error"),
            ("Sent", "sent_at"),
        ],
    );
    Ok(page(&visitor, "Outbox", "admin", body).into_response())
}

/// `GET /notifications`: the visitor's newest notifications.
pub async fn notifications(State(state): State<AppState>, visitor: Visitor) -> Result<Response, Shown> {
    let axum::Json(listed) = me::notifications(State(state.clone()), visitor.caller.clone()).await?;
    let empty = Vec::new();
    let rows = listed["notifications"].as_array().unwrap_or(&empty);
    let body = rows_table("Your notifications, newest first", rows, &[("When", "at"), ("What", "reason")]);
    Ok(page(&visitor, "Notifications", "notifications", body).into_response())
}
