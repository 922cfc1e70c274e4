//! The one error type of the API, answered as an RFC 9457
//! `application/problem+json` document with a stable `type`.

use axum::Json;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use stepwise_engine::EngineError;
use stepwise_store::StoreError;

/// A field of a request and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// JSON Pointer of the field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// What the API answers when it cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be read (broken JSON, a bad query string).
    #[error("{0}")]
    BadRequest(String),
    /// 408: the body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 413: the body is larger than the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: the body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 401: no key, or a key that authenticates nobody.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such record in the caller's account (another account's
    /// records are "not found" too, never "forbidden").
    #[error("{0}")]
    NotFound(String),
    /// 405: the route does not take this method (`Allow` lists those it
    /// takes).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request conflicts with the record's state.
    #[error("{0}")]
    Conflict(String),
    /// 422: the request is well-formed but its content is wrong.
    #[error("{detail}")]
    Validation {
        /// In words.
        detail: String,
        /// Each field and what is wrong with it.
        fields: Vec<FieldProblem>,
    },
    /// 429: over the rate limit.
    #[error("{0}")]
    TooMany(String),
    /// 503: a service the host needs (the database) does not answer.
    #[error("{0}")]
    Unavailable(String),
    /// 503: the request was not answered within its timeout.
    #[error("{0}")]
    Timeout(String),
    /// 500: a fault of the host; logged, never shown.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "<[FieldProblem]>::is_empty")]
    errors: &'a [FieldProblem],
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

impl ApiError {
    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request-timeout", "Request timeout"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Request too large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid request"),
            ApiError::TooMany(_) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            ApiError::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout", "Not answered in time"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, request_id = ?super::trace::current(), "request failed");
        }
        let fields: &[FieldProblem] = match &self {
            ApiError::Validation { fields, .. } => fields,
            _ => &[],
        };
        let body = Problem {
            kind: format!("urn:stepwise:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            errors: fields,
            request_id: super::trace::current(),
        };
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what, id } => ApiError::NotFound(format!("{what} {id} not found")),
            StoreError::Conflict { what, .. } => ApiError::Conflict(what),
            StoreError::Invalid(message) => ApiError::Validation { detail: message, fields: Vec::new() },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound { .. } => ApiError::NotFound(error.to_string()),
            EngineError::AlreadyEnrolled { .. }
            | EngineError::QueuedElsewhere { .. }
            | EngineError::InvalidState(_) => ApiError::Conflict(error.to_string()),
            EngineError::Invalid(message) => ApiError::Validation { detail: message, fields: Vec::new() },
            EngineError::InvalidField { field, message } => ApiError::Validation {
                detail: format!("{field} is invalid: {message}"),
                fields: vec![FieldProblem { field, message }],
            },
            EngineError::Plugin { .. } => ApiError::Conflict(error.to_string()),
            EngineError::Store(store) => store.into(),
        }
    }
}

impl ApiError {
    /// A 422 about one field.
    pub fn field(field: &str, message: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::Validation {
            detail: detail.into(),
            fields: vec![FieldProblem { field: field.to_owned(), message: message.into() }],
        }
    }
}

/// Refuses a client-chosen id in a new record's body.
///
/// # Errors
///
/// A 422 on `/id`.
pub fn no_client_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() { Ok(()) } else { Err(ApiError::field("/id", "leave it out", "ids are assigned by Stepwise")) }
}

/// Refuses a body whose id is not the path's.
///
/// # Errors
///
/// A 422 on `/id`.
pub fn same_id(body: &str, path: &str) -> Result<(), ApiError> {
    if body.is_empty() || body == path {
        return Ok(());
    }
    Err(ApiError::field(
        "/id",
        "must match the path or be left out",
        format!("the body's id {body} is not the path's {path}"),
    ))
}

pub use stepwise_domain::crm::is_email;

/// The answer to a route that does not exist.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route {}", uri.path()))
}

/// The answer to a method a route does not take (axum adds `Allow`).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {method}; `Allow` lists what it takes", uri.path()))
}
