//! The route table, and the OpenAPI 3.1 document made from it.
//!
//! Every route is declared once, as an [`Op`]: its method and handler, the
//! roles that may call it, the JSON body and query it reads (their schemas
//! derived from the very types the handler deserializes) and its answer.
//! [`Routes`] turns the table into the axum router *and* into the document
//! served at `GET /openapi.json`, so the two cannot drift apart. The roles an
//! op declares are enforced here, before its body is read: a viewer's write
//! is a 403 whatever it sends. Handlers check what a role alone cannot
//! decide (whose action, whose key).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use super::AppState;
use super::auth::Caller;
use stepwise_domain::crm::Role;

/// Makes the schema of a type in a generator (a `$ref` to a component, or
/// the schema itself for a simple type).
type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn reference<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

fn inline<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    T::json_schema(generator)
}

/// Who may call an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Anyone, without a key.
    Anyone,
    /// A caller with a key and one of these roles.
    Roles(&'static [Role]),
}

/// What an op reads from its body.
#[derive(Debug, Clone, Copy)]
enum Input {
    Json(SchemaFn),
    Wasm,
}

/// What an op answers on success.
#[derive(Debug, Clone, Copy)]
enum Output {
    /// A JSON document of this schema.
    Json(SchemaFn),
    /// A JSON object `{key: T, …}`.
    Wrapped(&'static str, SchemaFn),
    /// A page `{key: [T], next_after}`.
    Page(&'static str, SchemaFn),
    /// A JSON object described in words only.
    Object,
    /// Another media type.
    Media(&'static str),
    /// No body.
    Empty,
}

/// The documentation of one operation.
#[derive(Debug, Clone)]
struct OpDoc {
    method: Method,
    summary: &'static str,
    description: Option<&'static str>,
    guard: Option<&'static str>,
    who: Who,
    input: Option<Input>,
    query: Option<SchemaFn>,
    status: u16,
    output: Output,
    body_limit: Option<usize>,
}

/// One operation of the table: a method, its handler and its documentation.
#[must_use = "an op does nothing until a route holds it"]
pub(super) struct Op {
    route: MethodRouter<AppState>,
    doc: OpDoc,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Op").field("doc", &self.doc).finish_non_exhaustive()
    }
}

/// axum's body limit, kept by ops that do not set their own.
const DEFAULT_BODY_BYTES: usize = 2 << 20;

/// Every role: the default of an op with a key.
pub(super) const ALL: &[Role] = &[Role::Admin, Role::Agent, Role::Viewer];

fn op<H, T>(method: Method, filter: MethodFilter, handler: H, summary: &'static str) -> Op
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Op {
        route: on(filter, handler),
        doc: OpDoc {
            method,
            summary,
            description: None,
            guard: None,
            who: Who::Roles(ALL),
            input: None,
            query: None,
            status: 200,
            output: Output::Object,
            body_limit: None,
        },
    }
}

/// `GET` answered by `handler`.
pub(super) fn get<H: Handler<T, AppState>, T: 'static>(handler: H, summary: &'static str) -> Op {
    op(Method::GET, MethodFilter::GET, handler, summary)
}

/// `POST` answered by `handler`.
pub(super) fn post<H: Handler<T, AppState>, T: 'static>(handler: H, summary: &'static str) -> Op {
    op(Method::POST, MethodFilter::POST, handler, summary)
}

/// `PUT` answered by `handler`.
pub(super) fn put<H: Handler<T, AppState>, T: 'static>(handler: H, summary: &'static str) -> Op {
    op(Method::PUT, MethodFilter::PUT, handler, summary)
}

/// `PATCH` answered by `handler`.
pub(super) fn patch<H: Handler<T, AppState>, T: 'static>(handler: H, summary: &'static str) -> Op {
    op(Method::PATCH, MethodFilter::PATCH, handler, summary)
}

/// `DELETE` answered by `handler`.
pub(super) fn delete<H: Handler<T, AppState>, T: 'static>(handler: H, summary: &'static str) -> Op {
    op(Method::DELETE, MethodFilter::DELETE, handler, summary)
}

impl Op {
    /// Longer words than the summary.
    pub(super) fn describe(mut self, description: &'static str) -> Op {
        self.doc.description = Some(description);
        self
    }

    /// The handler refuses some callers its roles let through (another
    /// user's action, another user's key): `rule` says whom.
    pub(super) fn guarded(mut self, rule: &'static str) -> Op {
        self.doc.guard = Some(rule);
        self
    }

    /// Callable without a key.
    pub(super) fn open(mut self) -> Op {
        self.doc.who = Who::Anyone;
        self
    }

    /// Callable only by these roles (every role by default).
    pub(super) fn roles(mut self, roles: &'static [Role]) -> Op {
        self.doc.who = Who::Roles(roles);
        self
    }

    /// Reads a JSON body of type `T`.
    pub(super) fn body<T: JsonSchema>(mut self) -> Op {
        self.doc.input = Some(Input::Json(reference::<T>));
        self
    }

    /// Reads a WebAssembly component.
    pub(super) fn wasm(mut self) -> Op {
        self.doc.input = Some(Input::Wasm);
        self
    }

    /// Reads a query string of type `T`.
    pub(super) fn query<T: JsonSchema>(mut self) -> Op {
        self.doc.query = Some(inline::<T>);
        self
    }

    /// Accepts bodies up to `bytes` (axum's 2 MiB otherwise).
    pub(super) fn body_limit(mut self, bytes: usize) -> Op {
        self.doc.body_limit = Some(bytes);
        self.route = self.route.layer(DefaultBodyLimit::max(bytes));
        self
    }

    /// Answers `status` with a `T`.
    pub(super) fn answers<T: JsonSchema>(mut self, status: u16) -> Op {
        (self.doc.status, self.doc.output) = (status, Output::Json(reference::<T>));
        self
    }

    /// Answers `status` with an object holding a `T` under `key`.
    pub(super) fn wraps<T: JsonSchema>(mut self, status: u16, key: &'static str) -> Op {
        (self.doc.status, self.doc.output) = (status, Output::Wrapped(key, reference::<T>));
        self
    }

    /// Answers a page of `T` under `key`, with the cursor `next_after`.
    pub(super) fn pages<T: JsonSchema>(mut self, key: &'static str) -> Op {
        self.doc.output = Output::Page(key, reference::<T>);
        self
    }

    /// Answers `status` with a JSON object.
    pub(super) fn status(mut self, status: u16) -> Op {
        self.doc.status = status;
        self
    }

    /// Answers another media type.
    pub(super) fn media(mut self, media: &'static str) -> Op {
        self.doc.output = Output::Media(media);
        self
    }

    /// Answers with no body.
    pub(super) fn empty(mut self, status: u16) -> Op {
        (self.doc.status, self.doc.output) = (status, Output::Empty);
        self
    }
}

/// Reads the body of an op that takes one, at most `limit` bytes within the
/// server's body timeout, before anything else looks at it: a
/// `Content-Length` over the limit is a 413 at once, a body that does not
/// come in time a 408. The handler then reads it from memory.
async fn read_body(state: AppState, limit: usize, request: Request, next: Next) -> Response {
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return super::error::ApiError::TooLarge(format!("the body is over this route's limit of {limit} bytes"))
            .into_response();
    }
    let (parts, body) = request.into_parts();
    let timeout = state.http.body_timeout;
    let bytes = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => {
            let too_large =
                std::error::Error::source(&error).is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            return if too_large {
                super::error::ApiError::TooLarge(format!("the body is over this route's limit of {limit} bytes"))
                    .into_response()
            } else {
                super::error::ApiError::BadRequest(format!("the body could not be read: {error}")).into_response()
            };
        }
        Err(_) => {
            let detail = format!("the body did not arrive within {} s", timeout.as_secs());
            return super::error::ApiError::RequestTimeout(detail).into_response();
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// Lets a request through only when its caller has one of `roles`. The
/// caller is kept for the handler, which then does not authenticate again.
async fn require(roles: &'static [Role], caller: Caller, mut request: Request, next: Next) -> Response {
    let what = format!("`{} {}`", request.method(), request.uri().path());
    if let Err(forbidden) = caller.require(roles, &what) {
        return forbidden.into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The table under construction: the router and the documentation of every
/// op in it.
#[derive(Debug)]
pub(super) struct Routes {
    router: Router<AppState>,
    state: AppState,
    ops: BTreeMap<&'static str, Vec<OpDoc>>,
}

impl Routes {
    pub(super) fn new(state: AppState) -> Routes {
        Routes { router: Router::new(), state, ops: BTreeMap::new() }
    }

    /// Serves `ops` at `path`.
    ///
    /// # Panics
    ///
    /// When `path` is already in the table, or two ops share a method: the
    /// table is written once, in code.
    pub(super) fn at(mut self, path: &'static str, ops: impl IntoIterator<Item = Op>) -> Routes {
        assert!(!self.ops.contains_key(path), "{path} is in the route table twice");
        let mut methods = MethodRouter::new();
        let mut docs = Vec::new();
        for Op { mut route, doc } in ops {
            if let Who::Roles(roles) = doc.who {
                // Outermost first: authentication and the role check, then
                // reading the body, then `Idempotency-Key`, then the handler.
                let state = self.state.clone();
                let limit = doc.body_limit.unwrap_or(DEFAULT_BODY_BYTES);
                route = route.route_layer(axum::middleware::from_fn({
                    let state = state.clone();
                    move |request: Request, next: Next| {
                        super::idempotency::idempotency(state.clone(), limit, request, next)
                    }
                }));
                if doc.input.is_some() {
                    route = route.route_layer(axum::middleware::from_fn(move |request: Request, next: Next| {
                        read_body(state.clone(), limit, request, next)
                    }));
                }
                route = route.route_layer(axum::middleware::from_fn_with_state(
                    self.state.clone(),
                    move |caller: Caller, request: Request, next: Next| require(roles, caller, request, next),
                ));
            }
            methods = methods.merge(route);
            docs.push(doc);
        }
        self.router = self.router.route(path, methods);
        self.ops.insert(path, docs);
        self
    }

    /// Applies `layers` to the routes so far.
    pub(super) fn layered(mut self, layers: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Routes {
        self.router = layers(self.router);
        self
    }

    /// Both tables in one.
    ///
    /// # Panics
    ///
    /// When both hold a path.
    pub(super) fn merge(mut self, other: Routes) -> Routes {
        for path in other.ops.keys() {
            assert!(!self.ops.contains_key(path), "{path} is in the route table twice");
        }
        self.ops.extend(other.ops);
        self.router = self.router.merge(other.router);
        self
    }

    /// The router of every op, with `GET /openapi.json` added to serve their
    /// document.
    pub(super) fn finish(mut self) -> Router<AppState> {
        let serve = get(openapi_json, "This document: the OpenAPI 3.1 description of every route")
            .open()
            .media("application/json");
        self.ops.insert("/openapi.json", vec![serve.doc]);
        let document = document(&self.ops);
        let bytes = bytes::Bytes::from(serde_json::to_vec(&document).expect("a JSON value serializes"));
        self.router.route(
            "/openapi.json",
            axum::routing::get(move || {
                let bytes = bytes.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], bytes) }
            }),
        )
    }
}

/// Stands in for the handler of `/openapi.json` in its documentation; the
/// route itself serves the finished document.
async fn openapi_json() {}

fn role_names(roles: &[Role]) -> Vec<&'static str> {
    roles
        .iter()
        .map(|role| match role {
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Viewer => "viewer",
        })
        .collect()
}

/// The problem answers an op may give, by what it reads and who calls it.
fn problems(doc: &OpDoc, path: &str) -> Vec<(u16, &'static str)> {
    let mut answers = Vec::new();
    let keyed = matches!(doc.who, Who::Roles(_));
    if doc.query.is_some() || doc.input.is_some() || path.contains('{') || keyed {
        answers.push((
            400,
            "The request cannot be read: broken JSON, a bad query string or path parameter, a bad `Idempotency-Key`",
        ));
    }
    if let Who::Roles(roles) = doc.who {
        answers.push((401, "No API key, or one that authenticates nobody"));
        if roles != ALL || doc.guard.is_some() {
            answers.push((403, "The caller's role does not allow it"));
        }
    }
    if keyed || path.starts_with("/u/") {
        answers.push((429, "Over the rate limit; see `Retry-After`"));
    }
    if path.contains('{') || doc.query.is_some() || doc.input.is_some() {
        answers.push((404, "No such record in the caller's account, named in the path, the query or the body"));
    }
    if path == "/readyz" {
        answers.push((503, "The database does not answer"));
    }
    if doc.method != Method::GET {
        answers.push((409, "The request conflicts with the record's state"));
    }
    if doc.input.is_some() {
        answers.push((408, "The body did not arrive within the server's body timeout"));
        answers.push((413, "The body is over the limit"));
        answers.push((415, "The body is not of the media type the route reads"));
    }
    if doc.input.is_some() || doc.query.is_some() || doc.method != Method::GET {
        answers.push((422, "Well-formed, but wrong: `errors` names each field and what is wrong with it"));
    }
    answers
}

fn parameters(doc: &OpDoc, path: &str, generator: &mut SchemaGenerator) -> Vec<Value> {
    let mut parameters: Vec<Value> = path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let kind = if name == "n" { "integer" } else { "string" };
            json!({ "name": name, "in": "path", "required": true, "schema": { "type": kind } })
        })
        .collect();
    if let Some(query) = doc.query {
        let schema = query(generator);
        let required: Vec<&str> =
            schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let properties = schema.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        for (name, property) in properties {
            let mut parameter = json!({ "name": name, "in": "query", "required": required.contains(&name.as_str()) });
            if let Some(description) = property.get("description") {
                parameter["description"] = description.clone();
            }
            parameter["schema"] = property;
            parameters.push(parameter);
        }
    }
    parameters
}

fn success(doc: &OpDoc, generator: &mut SchemaGenerator) -> Value {
    let json_of = |schema: Value| json!({ "application/json": { "schema": schema } });
    let content = match doc.output {
        Output::Json(schema) => Some(json_of(schema(generator).to_value())),
        Output::Wrapped(key, schema) => Some(json_of(json!({
            "type": "object", "required": [key], "properties": { key: schema(generator).to_value() }
        }))),
        Output::Page(key, schema) => Some(json_of(json!({
            "type": "object",
            "required": [key, "next_after"],
            "properties": {
                key: { "type": "array", "items": schema(generator).to_value() },
                "next_after": {
                    "type": ["string", "null"],
                    "description": "The cursor of the next page (`?after=`); null on the last page"
                }
            }
        }))),
        Output::Object => Some(json_of(json!({ "type": "object" }))),
        Output::Media(media) => Some(json!({ media: {} })),
        Output::Empty => None,
    };
    let mut answer = json!({ "description": doc.summary });
    if let Some(content) = content {
        answer["content"] = content;
    }
    answer
}

fn operation(path: &str, doc: &OpDoc, generator: &mut SchemaGenerator) -> Value {
    let mut operation = Map::new();
    operation.insert("summary".into(), doc.summary.into());
    operation.insert("operationId".into(), operation_id(&doc.method, path).into());
    let description: Vec<&str> = doc.description.into_iter().chain(doc.guard).collect();
    if !description.is_empty() {
        operation.insert("description".into(), description.join("\n\n").into());
    }
    let tag = path.trim_start_matches("/v1").split('/').nth(1).unwrap_or_default();
    operation.insert("tags".into(), json!([tag]));
    match doc.who {
        Who::Anyone => {
            operation.insert("security".into(), json!([]));
            operation.insert("x-stepwise-roles".into(), json!([]));
        }
        Who::Roles(roles) => {
            operation.insert("x-stepwise-roles".into(), json!(role_names(roles)));
        }
    }
    let parameters = parameters(doc, path, generator);
    if !parameters.is_empty() {
        operation.insert("parameters".into(), parameters.into());
    }
    if let Some(input) = doc.input {
        let content = match input {
            Input::Json(schema) => json!({ "application/json": { "schema": schema(generator).to_value() } }),
            Input::Wasm => {
                json!({ "application/wasm": { "schema": { "type": "string", "contentMediaType": "application/wasm" } } })
            }
        };
        let limit = doc.body_limit.unwrap_or(DEFAULT_BODY_BYTES);
        let body = json!({
            "required": true,
            "content": content,
            "description": format!("At most {limit} bytes"),
            "x-stepwise-max-body-bytes": limit,
        });
        operation.insert("requestBody".into(), body);
    }
    let mut responses = Map::new();
    responses.insert(doc.status.to_string(), success(doc, generator));
    // Pages for people (the unsubscribe link) answer their problems as
    // pages too; everything else as problem documents.
    let content = match doc.output {
        Output::Media(media) if media.starts_with("text/html") => json!({ media: {} }),
        _ => json!({ "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }),
    };
    for (status, description) in problems(doc, path) {
        responses.insert(status.to_string(), json!({ "description": description, "content": content }));
    }
    operation.insert("responses".into(), responses.into());
    operation.into()
}

/// `getV1ContactsIdTimeline` for `GET /v1/contacts/{id}/timeline`.
fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_lowercase();
    for word in path.split(['/', '-', '.', '{', '}']).filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            id.extend(first.to_uppercase());
            id.push_str(chars.as_str());
        }
    }
    id
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "An RFC 9457 problem document",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": { "type": "string", "description": "Stable: `urn:stepwise:problem:<slug>`" },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "detail": { "type": "string", "description": "What is wrong, in words" },
            "request_id": {
                "type": "string",
                "description": "The request's id, as in the `Request-Id` header: quote it when asking about the request"
            },
            "errors": {
                "type": "array",
                "description": "For validation: each field and what is wrong with it",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": { "type": "string", "description": "A JSON Pointer into the request" },
                        "message": { "type": "string" }
                    }
                }
            }
        }
    })
}

fn document(ops: &BTreeMap<&'static str, Vec<OpDoc>>) -> Value {
    let settings = SchemaSettings::draft2020_12().with(|settings| {
        settings.definitions_path = "/components/schemas".into();
        settings.meta_schema = None;
    });
    let mut generator = settings.into_generator();
    let mut paths = Map::new();
    for (path, docs) in ops {
        let mut item = Map::new();
        for doc in docs {
            item.insert(doc.method.as_str().to_lowercase(), operation(path, doc, &mut generator));
        }
        paths.insert((*path).to_owned(), item.into());
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert("Problem".into(), problem_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Stepwise",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Sales-engagement sequences whose every step is a sandboxed WebAssembly component. \
                Every `/v1` route takes `Authorization: Bearer <key>`; `x-stepwise-roles` lists the roles \
                that may call each operation. Errors are RFC 9457 problem documents. A POST with an \
                `Idempotency-Key` is answered once. Lists page by cursor: `?limit=` (1-500, default 100) \
                and `?after=` the previous page's `next_after`.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" }
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API key, `sw_…`" }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_camel_case_of_method_and_path() {
        assert_eq!(operation_id(&Method::GET, "/v1/contacts/{id}/timeline"), "getV1ContactsIdTimeline");
        assert_eq!(operation_id(&Method::PUT, "/v1/enrollments/{id}/event-date"), "putV1EnrollmentsIdEventDate");
        assert_eq!(operation_id(&Method::GET, "/openapi.json"), "getOpenapiJson");
    }
}
