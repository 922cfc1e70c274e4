//! Request bodies: JSON only, every rejection a problem document naming what
//! is wrong (400 for broken JSON, 415 for another media type, 413 for a body
//! over the limit, 422 for JSON of the wrong shape, with the field).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldProblem};

/// A JSON body of type `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(rejected(rejection)),
        }
    }
}

fn rejected(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            // axum's text is "Failed to deserialize the JSON body into the
            // target type: FIELD: WHAT at line L column C".
            let detail = text.split_once(": ").map_or(text.clone(), |(_, rest)| rest.to_owned());
            let field = detail.split_once(": ").map(|(path, _)| path.to_owned()).filter(|p| !p.contains(' '));
            let fields = field
                .map(|path| {
                    vec![FieldProblem { field: format!("/{}", path.replace('.', "/")), message: detail.clone() }]
                })
                .unwrap_or_default();
            ApiError::Validation { detail, fields }
        }
        JsonRejection::JsonSyntaxError(_) => ApiError::BadRequest(format!("the body is not valid JSON: {text}")),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("send the body as JSON with `Content-Type: application/json`".into())
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(text),
        _ => ApiError::BadRequest(text),
    }
}
