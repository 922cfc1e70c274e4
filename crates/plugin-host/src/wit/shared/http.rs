//! `stepwise:plugin/http`, as every contract version since 0.1.0 has it: outbound HTTP through the host's guarded
//! client.

#![allow(clippy::duplicate_mod, reason = "a module of every contract version, each against its own types")]

use std::time::Duration;

use super::action_world::stepwise::plugin::http::{Host, Method, Request, Response};
use super::convert::{code_name, host_error};
use super::wit::{ErrorCode, HostError};
use crate::capability::Need;
use crate::net::{NetErrorKind, OutboundRequest};
use crate::report::HostCallResult;
use crate::state::HostCtx;
use crate::types::Capability;

impl Host for HostCtx {
    async fn fetch(&mut self, request: Request) -> wasmtime::Result<Result<Response, HostError>> {
        self.count_call()?;
        let size = request.url.len()
            + request.body.len()
            + request.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
        self.charge(size)?;
        let method = match request.method {
            Method::Get => http::Method::GET,
            Method::Head => http::Method::HEAD,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Patch => http::Method::PATCH,
            Method::Delete => http::Method::DELETE,
        };
        // The URL alone describes the call: headers may hold secrets.
        let detail = format!("{method} {}", request.url);
        if let Err(denial) = self.authorize("http.fetch", &detail, Need::Plain(Capability::HttpFetch)) {
            return Ok(Err(host_error(ErrorCode::Denied, denial.to_string())));
        }
        // A request that may change something elsewhere and that a retry
        // would repeat leaves only once the engine has noted that it may.
        let repeatable = matches!(method, http::Method::GET | http::Method::HEAD) || self.keyed(&request.headers);
        if !repeatable && let Err(why) = self.open_effects().await {
            let message = format!("the request was not sent: {why}");
            let result =
                HostCallResult::Error { code: code_name(ErrorCode::Denied).to_owned(), message: message.clone() };
            self.record("http.fetch", &detail, result);
            return Ok(Err(host_error(ErrorCode::Denied, message)));
        }
        let outbound = OutboundRequest {
            method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout: request.timeout_ms.map(|ms| Duration::from_millis(u64::from(ms))),
        };
        let http = self.http.clone();
        match http.fetch(self.allowlist(), outbound).await {
            Ok(response) => {
                let size = response.body.len() + response.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
                self.charge(size)?;
                self.record("http.fetch", &detail, HostCallResult::Ok);
                Ok(Ok(Response { status: response.status, headers: response.headers, body: response.body }))
            }
            Err(error) => {
                let code = match error.kind() {
                    NetErrorKind::Denied => ErrorCode::Denied,
                    NetErrorKind::Blocked => ErrorCode::Blocked,
                    NetErrorKind::Invalid => ErrorCode::Invalid,
                    NetErrorKind::Timeout => ErrorCode::Timeout,
                    NetErrorKind::Transport => ErrorCode::Transport,
                    NetErrorKind::TooLarge => ErrorCode::TooLarge,
                };
                let message = error.to_string();
                let result = HostCallResult::Error { code: code_name(code).to_owned(), message: message.clone() };
                self.record("http.fetch", &detail, result);
                Ok(Err(host_error(code, message)))
            }
        }
    }
}
