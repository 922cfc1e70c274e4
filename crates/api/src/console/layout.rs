//! The console's page shell (header, navigation by role, main), the bare
//! page of errors and sign-in, the stylesheet, and the small helpers every
//! page uses: times in the user's timezone, the CSRF field, labels.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::{CSRF_FIELD, Visitor};
use stepwise_domain::crm::Role;

const STYLESHEET: &str = include_str!("console.css");

/// `GET /assets/console.css`.
pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], STYLESHEET)
        .into_response()
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Stepwise" }
            link rel="stylesheet" href="/assets/console.css";
        }
    }
}

/// A page of the console for a signed-in visitor: `current` names the
/// navigation entry it belongs to.
pub fn page(visitor: &Visitor, title: &str, current: &str, body: Markup) -> Html<String> {
    let user = &visitor.caller.user;
    let entries: &[(&str, &str, &str)] = &[
        ("engage", "/engage", "Engage"),
        ("contacts", "/contacts", "Contacts"),
        ("companies", "/companies", "Companies"),
        ("enrollments", "/enrollments", "Enrollments"),
        ("sequences", "/sequences", "Sequences"),
        ("notifications", "/notifications", "Notifications"),
        ("account", "/account", "Account"),
    ];
    let admin: &[(&str, &str, &str)] = &[
        ("admin", "/admin/plugins", "Plugins"),
        ("admin", "/admin/users", "Users"),
        ("admin", "/admin/webhooks", "Webhooks"),
        ("admin", "/admin/outbox", "Outbox"),
    ];
    let admins = user.role == Role::Admin;
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        a.brand href="/engage" { "Stepwise" }
                        nav aria-label="Main" {
                            ul {
                                @for (key, href, label) in entries {
                                    li {
                                        a href=(href) aria-current=[(*key == current).then_some("page")] { (label) }
                                    }
                                }
                                @if admins {
                                    @for (_, href, label) in admin {
                                        li { a href=(href) { (label) } }
                                    }
                                }
                            }
                        }
                        div.who {
                            span { (user.name) " · " (role_name(user.role)) }
                            form method="post" action="/sign-out" {
                                (csrf(visitor))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                    main #main {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
        .into_string(),
    )
}

/// A page without navigation: sign-in, set-password, errors.
pub fn bare(title: &str, message: &str) -> Html<String> {
    bare_with(title, html! { p.message { (message) } p { a href="/engage" { "Go to your Engage view" } } })
}

/// [`bare`] with a body of its own.
pub fn bare_with(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body.bare {
                    main #main {
                        p.brand { "Stepwise" }
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
        .into_string(),
    )
}

/// The hidden field with the session's CSRF token.
pub fn csrf(visitor: &Visitor) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(visitor.session.csrf); }
}

/// A role as people read it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Agent => "agent",
        Role::Viewer => "viewer",
    }
}

/// The visitor's timezone (UTC when theirs is unknown).
pub fn timezone(visitor: &Visitor) -> chrono_tz::Tz {
    visitor.caller.user.timezone.parse().unwrap_or(chrono_tz::UTC)
}

/// A time as the visitor reads it: their timezone, day and minute.
pub fn when(visitor: &Visitor, at: Option<DateTime<Utc>>) -> String {
    match at {
        Some(at) => at.with_timezone(&timezone(visitor)).format("%a %-d %b %Y, %H:%M").to_string(),
        None => "—".to_owned(),
    }
}

/// A `<time>` element of a time, in the visitor's timezone.
pub fn time(visitor: &Visitor, at: Option<DateTime<Utc>>) -> Markup {
    html! {
        @if let Some(at) = at {
            time datetime=(at.to_rfc3339()) { (when(visitor, Some(at))) }
        } @else {
            "—"
        }
    }
}
