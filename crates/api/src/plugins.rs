//! `/v1/plugins`: the step types and predicates the account can use; admins
//! upload add-on components (usable at once, no restart), enable or disable
//! them, and grant their capabilities. A new version asking for more than
//! was approved stays off until an admin grants again.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, FieldProblem};
use super::json::Body;
use super::json::Path;
use stepwise_domain::engagement::{PluginAccount, PluginRecord};
use stepwise_plugin_host::types::Capability;
use stepwise_plugin_host::{AccountGrant, Grant, Origin, RegistryError};

/// The largest component an admin may upload.
pub const MAX_COMPONENT_BYTES: usize = stepwise_plugin_host::MAX_COMPONENT_BYTES;

/// The add-on versions an account uploaded, as the store has them: with the
/// built-ins, the only plugins it sees, enables and saves steps with.
async fn own_add_ons(state: &AppState, account_id: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut tx = state.engine.read().await?;
    Ok(tx.add_ons_of(account_id).await?)
}

/// `GET /v1/plugins`: the built-in plugins and the account's own add-ons,
/// each version with its manifest and the account's settings for it.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let own = own_add_ons(&state, &caller.account_id).await?;
    let mut tx = state.engine.read().await?;
    let settings = tx.plugin_accounts(&caller.account_id).await?;
    drop(tx);
    let plugins: Vec<Value> = state
        .engine
        .registry()
        .list()
        .into_iter()
        .filter(|r| {
            let m = r.plugin.manifest();
            r.origin == Origin::Builtin
                || (r.usable_by(&caller.account_id)
                    && own.iter().any(|(id, version)| *id == m.id && *version == m.version))
        })
        .map(|r| {
            let manifest = r.plugin.manifest();
            let account = settings.iter().find(|s| s.plugin_id == manifest.id);
            json!({
                "id": manifest.id,
                "version": manifest.version,
                "origin": match r.origin { Origin::Builtin => "builtin", Origin::AddOn => "add-on" },
                "wit_version": r.plugin.wit_version(),
                "digest": r.plugin.digest(),
                "size": r.plugin.size(),
                "manifest": manifest,
                "account": account,
            })
        })
        .collect();
    Ok(Json(json!({ "plugins": plugins })))
}

/// `POST /v1/plugins`: uploads an add-on (`Content-Type: application/wasm`).
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type != "application/wasm" {
        return Err(ApiError::UnsupportedMediaType("send the component with `Content-Type: application/wasm`".into()));
    }
    let bytes = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::TooLarge(format!("a component may be at most {MAX_COMPONENT_BYTES} bytes"))
        }
        _ => ApiError::BadRequest(rejection.body_text()),
    })?;
    let plugin = state
        .engine
        .registry()
        .runtime()
        .load(&bytes)
        .await
        .map_err(|load| ApiError::Validation { detail: load.to_string(), fields: Vec::new() })?;
    let manifest = plugin.manifest();
    let record = PluginRecord {
        id: manifest.id.clone(),
        version: manifest.version.clone(),
        kind: manifest.kind,
        manifest: serde_json::to_string(manifest).map_err(|e| ApiError::Internal(e.to_string()))?,
        wasm_digest: plugin.digest().to_owned(),
        wasm: Some(bytes.to_vec()),
        builtin: false,
        uploaded_by: Some(caller.account_id.clone()),
    };
    // Stored first: the store gives the id to its first uploader, and only
    // an upload it took is registered.
    let uploaded =
        json!({ "id": record.id, "version": record.version, "wasm_digest": record.wasm_digest, "manifest": manifest });
    state.engine.save_add_on(&record, &uploaded, &caller.editor()).await?;
    state.engine.registry().register_for(&caller.account_id, plugin.clone()).map_err(|error| match error {
        RegistryError::Load(load) => ApiError::Validation { detail: load.to_string(), fields: Vec::new() },
        other => ApiError::Conflict(other.to_string()),
    })?;
    Ok((StatusCode::CREATED, Json(json!({ "id": manifest.id, "version": manifest.version, "manifest": manifest }))))
}

/// An account's settings for a plugin.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountBody {
    /// Whether the account may use it.
    pub enabled: bool,
    /// What it may do; nothing unless named.
    #[serde(default)]
    pub grant: Grant,
}

/// `PUT /v1/plugins/{id}/account`: enable or disable a plugin for the
/// account and grant its capabilities. Granting approves what the newest
/// version asks for.
pub async fn set_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<AccountBody>,
) -> Result<Json<Value>, ApiError> {
    let builtin =
        state.engine.registry().list().iter().any(|r| r.origin == Origin::Builtin && r.plugin.manifest().id == id);
    if !builtin && !own_add_ons(&state, &caller.account_id).await?.iter().any(|(own, _)| *own == id) {
        return Err(ApiError::NotFound(format!("plugin {id} not found")));
    }
    state.engine.sync_if_missing(&caller.account_id, &id, "*").await;
    let newest = state
        .engine
        .registry()
        .get(&caller.account_id, &id, "*")
        .map_err(|e| ApiError::BadRequest(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("plugin {id} not found")))?;
    AccountGrant::new(body.grant.clone()).map_err(|error| ApiError::Validation {
        detail: error.to_string(),
        fields: vec![FieldProblem { field: "/grant/http_allow".into(), message: error.to_string() }],
    })?;
    let settings = PluginAccount {
        account_id: caller.account_id.clone(),
        plugin_id: id.clone(),
        enabled: body.enabled,
        grants: serde_json::to_value(&body.grant).map_err(|e| ApiError::Internal(e.to_string()))?,
        approved_capabilities: newest.manifest().capabilities.iter().map(|c| Capability::name(c).to_owned()).collect(),
    };
    state.engine.set_plugin_account(&settings, &caller.editor()).await?;
    Ok(Json(json!({ "account": settings })))
}
