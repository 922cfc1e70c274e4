//! Who is calling: `Authorization: Bearer <key>`, checked on every request
//! that names a caller.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use stepwise_domain::crm::{Role, User};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's account: everything they see is scoped to it.
    pub account_id: String,
    /// The caller.
    pub user: User,
    /// The key used.
    pub key_id: String,
}

/// Roles that may change contacts, enroll and work actions.
pub const WORKERS: &[Role] = &[Role::Admin, Role::Agent];
/// Roles that may manage sequences, users and plugins, and remove records.
pub const ADMINS: &[Role] = &[Role::Admin];

impl Caller {
    /// The caller's role.
    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Allows the request only to `roles` (the matrix in the README).
    ///
    /// # Errors
    ///
    /// [`ApiError::Forbidden`] naming what needs which role.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), ApiError> {
        if roles.contains(&self.user.role) {
            return Ok(());
        }
        let names: Vec<String> = roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect();
        Err(ApiError::Forbidden(format!("{what} needs the role {}", names.join(" or "))))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // The route's role check authenticated the request already.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("send an API key as `Authorization: Bearer <key>`".into()))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be `Bearer <key>`".into()))?;
        let holder =
            state.engine.authenticate(secret).await?.ok_or_else(|| {
                ApiError::Unauthorized("the API key is unknown, revoked, or its user is inactive".into())
            })?;
        Ok(Caller { account_id: holder.account_id, user: holder.user, key_id: holder.key_id })
    }
}
