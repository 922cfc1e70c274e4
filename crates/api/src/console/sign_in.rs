//! Signing in and out, setting a password through a one-time link, and
//! the visitor's own account page (change password).

use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{bare_with, csrf, page, role_name};
use super::{
    CSRF_FIELD, CsrfForm, Form, SESSION_COOKIE, SIGN_IN_COOKIE, Shown, Visitor, cookie, same, see_other, set_cookie,
};
use crate::AppState;
use crate::error::ApiError;
use stepwise_engine::{EngineError, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};

/// Where to go after signing in: a path of this site only.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") => next,
        _ => "/engage",
    }
}

/// `?next=` of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// A new random token for the sign-in form.
fn token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn sign_in_page(state: &AppState, status: StatusCode, next: &str, email: &str, problem: Option<&str>) -> Response {
    let token = token();
    let body = html! {
        @if let Some(problem) = problem {
            p.error role="alert" #problem { (problem) }
        }
        form method="post" action="/sign-in" {
            input type="hidden" name=(CSRF_FIELD) value=(token);
            input type="hidden" name="next" value=(next);
            label for="email" { "Email" }
            input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            p { button type="submit" { "Sign in" } }
        }
        p.muted { "No password yet? Ask an admin for a link to set one." }
    };
    let mut response = (status, bare_with("Sign in", body)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, set_cookie(state, SIGN_IN_COOKIE, &token, Some(3600)));
    response.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().expect("a header value"));
    response
}

/// `GET /sign-in`.
pub async fn form(State(state): State<AppState>, Query(q): Query<Next>) -> Response {
    sign_in_page(&state, StatusCode::OK, safe_next(q.next.as_deref()), "", None)
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
    next: Option<String>,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /sign-in`: a session and its cookie, or the form again with why.
pub async fn submit(State(state): State<AppState>, parts: Parts, Form(form): Form<SignInForm>) -> Response {
    let next = safe_next(form.next.as_deref()).to_owned();
    let expected = cookie(&parts.headers, SIGN_IN_COOKIE);
    if !form.csrf.as_deref().zip(expected).is_some_and(|(sent, kept)| same(sent, kept)) {
        let problem = "the sign-in form was out of date; please sign in again";
        return sign_in_page(&state, StatusCode::FORBIDDEN, &next, &form.email, Some(problem));
    }
    if let Err(wait) = state.sign_ins.attempt(&form.email, super::client_address(&parts)) {
        let problem = format!("too many sign-in attempts; try again in {wait} seconds");
        let mut response = sign_in_page(&state, StatusCode::TOO_MANY_REQUESTS, &next, &form.email, Some(&problem));
        response.headers_mut().insert(header::RETRY_AFTER, wait.into());
        return response;
    }
    match state.engine.sign_in(&form.email, &form.password).await {
        Ok(Some((session, secret))) => {
            let age = (session.ends_at - session.last_seen_at).num_seconds();
            let mut response = see_other(&next);
            response.headers_mut().append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, &secret, Some(age)));
            response.headers_mut().append(header::SET_COOKIE, set_cookie(&state, SIGN_IN_COOKIE, "", Some(0)));
            response
        }
        Ok(None) => {
            let problem = "that email and password do not match an active user";
            sign_in_page(&state, StatusCode::UNAUTHORIZED, &next, &form.email, Some(problem))
        }
        Err(error) => Shown::from(error).into_response(),
    }
}

/// `POST /sign-out`: the session ends and its cookie is cleared.
pub async fn sign_out(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    state.engine.sign_out(&visitor.session.id).await?;
    let mut response = see_other("/sign-in");
    response.headers_mut().insert(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, "", Some(0)));
    Ok(response)
}

fn password_fields(current: bool, problem: Option<&str>) -> Markup {
    let invalid = problem.map(|_| "true");
    html! {
        @if current {
            label for="current" { "Current password" }
            input #current type="password" name="current" autocomplete="current-password" required;
        }
        label for="password" { "New password" }
        input #password type="password" name="password" autocomplete="new-password" required
            minlength=(MIN_PASSWORD_CHARS) maxlength=(MAX_PASSWORD_CHARS) aria-invalid=[invalid]
            aria-describedby="password-rule";
        p #password-rule .muted { (MIN_PASSWORD_CHARS) " to " (MAX_PASSWORD_CHARS) " characters." }
        @if let Some(problem) = problem {
            p.field-error #password-error role="alert" { (problem) }
        }
    }
}

fn link_page(status: StatusCode, token: &str, name: &str, problem: Option<&str>) -> Response {
    let body = html! {
        p { "Choose a password for " strong { (name) } "." }
        form method="post" action=(format!("/set-password/{token}")) {
            (password_fields(false, problem))
            p { button type="submit" { "Set password" } }
        }
    };
    let mut response = (status, bare_with("Set your password", body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().expect("a header value"));
    response
}

fn link_gone() -> Response {
    let body = html! {
        p.error { "This link to set a password is unknown, used or expired. Ask an admin for a new one." }
        p { a href="/sign-in" { "Sign in" } }
    };
    (StatusCode::NOT_FOUND, bare_with("Set your password", body)).into_response()
}

/// `GET /set-password/{token}`.
pub async fn link_form(State(state): State<AppState>, Path(token): Path<String>) -> Result<Response, Shown> {
    Ok(match state.engine.password_link_user(&token).await? {
        Some(link) => link_page(StatusCode::OK, &token, &link.user.email, None),
        None => link_gone(),
    })
}

/// A new password.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    password: String,
    current: Option<String>,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /set-password/{token}`: the password is set, the link used up.
/// The link's secret is its own CSRF protection: only its holder can post.
pub async fn link_submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    _headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Result<Response, Shown> {
    match state.engine.use_password_link(&token, &form.password).await {
        Ok(_) => {
            let body = html! {
                p.flash role="status" { "Your password is set." }
                p { a.button href="/sign-in" { "Sign in" } }
            };
            Ok((StatusCode::OK, bare_with("Password set", body)).into_response())
        }
        Err(EngineError::Invalid(problem)) => {
            let email = state.engine.password_link_user(&token).await?.map(|l| l.user.email).unwrap_or_default();
            Ok(link_page(StatusCode::UNPROCESSABLE_ENTITY, &token, &email, Some(&problem)))
        }
        Err(EngineError::InvalidState(_)) => Ok(link_gone()),
        Err(error) => Err(error.into()),
    }
}

/// The profile form's fields.
#[derive(Debug, Deserialize)]
pub struct ProfileForm {
    name: String,
    timezone: String,
    #[serde(default)]
    signature: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// The account page; `profile` is a refused profile form, shown again as
/// typed with its problem.
fn account_page(
    visitor: &Visitor,
    status: StatusCode,
    flash: Option<&str>,
    problem: Option<&str>,
    profile: Option<(&ProfileForm, &str)>,
) -> Response {
    let user = &visitor.caller.user;
    let (name, timezone, signature) = match profile {
        Some((form, _)) => (form.name.as_str(), form.timezone.as_str(), form.signature.as_str()),
        None => (user.name.as_str(), user.timezone.as_str(), user.signature.as_str()),
    };
    let profile_problem = profile.map(|(_, problem)| problem);
    let body = html! {
        @if let Some(flash) = flash {
            p.flash role="status" { (flash) }
        }
        section.card {
            dl.facts {
                dt { "Email" } dd { (user.email) }
                dt { "Role" } dd { (role_name(user.role)) }
            }
            p { a href="/account/keys" { "Your API keys" } }
        }
        section.card aria-labelledby="profile-title" {
            h2 #profile-title { "Your profile" }
            form method="post" action="/account/profile" {
                (csrf(visitor))
                @if let Some(problem) = profile_problem { p.field-error #profile-error role="alert" { (problem) } }
                label for="profile-name" { "Name" }
                input #profile-name type="text" name="name" value=(name) required;
                label for="profile-timezone" { "Timezone (IANA, such as Europe/Paris)" }
                input #profile-timezone type="text" name="timezone" value=(timezone) required;
                label for="profile-signature" { "Email signature" }
                textarea #profile-signature name="signature" { (signature) }
                p { button #save-profile type="submit" { "Save profile" } }
            }
        }
        section.card aria-labelledby="change-password" {
            h2 #change-password { "Change your password" }
            p.muted { "Changing it signs you out everywhere." }
            form method="post" action="/account/password" {
                (csrf(visitor))
                (password_fields(true, problem))
                p { button type="submit" { "Change password" } }
            }
        }
    };
    (status, page(visitor, "Your account", "account", body)).into_response()
}

/// `GET /account`.
pub async fn account(visitor: Visitor, Query(done): Query<Saved>) -> Response {
    let flash = done.saved.is_some().then_some("Your profile is saved.");
    account_page(&visitor, StatusCode::OK, flash, None, None)
}

/// `?saved` after the profile is saved.
#[derive(Debug, Default, Deserialize)]
pub struct Saved {
    saved: Option<String>,
}

/// `POST /account/profile`: as `PATCH /v1/me`.
pub async fn save_profile(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<ProfileForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    let body = crate::me::ProfileBody {
        name: Some(form.name.clone()),
        timezone: Some(form.timezone.trim().to_owned()),
        signature: Some(form.signature.clone()),
    };
    match crate::me::update(State(state.clone()), visitor.caller.clone(), crate::json::Body(body)).await {
        Ok(_) => Ok(see_other("/account?saved=1")),
        Err(error @ ApiError::Validation { .. }) => {
            let problem = super::describe(&error);
            Ok(account_page(&visitor, StatusCode::UNPROCESSABLE_ENTITY, None, None, Some((&form, &problem))))
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /account/password`: the visitor changes their own password; their
/// sessions end, this one included.
pub async fn change_password(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<PasswordForm>,
) -> Result<Response, Shown> {
    visitor.check_csrf(form.csrf.as_deref())?;
    let current = form.current.as_deref().unwrap_or("");
    let caller = &visitor.caller;
    match state
        .engine
        .change_password(&caller.account_id, &caller.user.id, current, &form.password, &caller.editor())
        .await
    {
        Ok(()) => {
            let body = html! {
                p.flash role="status" { "Your password is changed. Sign in again with it." }
                p { a.button href="/sign-in" { "Sign in" } }
            };
            let mut response = (StatusCode::OK, bare_with("Password changed", body)).into_response();
            response.headers_mut().insert(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, "", Some(0)));
            Ok(response)
        }
        Err(EngineError::Invalid(problem)) => {
            Ok(account_page(&visitor, StatusCode::UNPROCESSABLE_ENTITY, None, Some(&problem), None))
        }
        Err(error) => Err(error.into()),
    }
}
