//! Liveness, readiness and Prometheus metrics: unauthenticated, for the
//! operator's probes and scrapers.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use super::error::ApiError;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// The database answers.
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.engine.ping().await.map(|()| "ready\n").map_err(|error| {
        tracing::warn!(%error, "not ready");
        ApiError::Unavailable("the database does not answer".into())
    })
}

/// Prometheus text format: due backlog, actions by plugin and status,
/// deferrals by reason, outbox depth by state, and this host's plugin call
/// latency by plugin.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let m = state.engine.store_metrics().await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP stepwise_due_actions Current actions whose due time has passed and that wait to be processed."
    );
    let _ = writeln!(out, "# TYPE stepwise_due_actions gauge");
    let _ = writeln!(out, "stepwise_due_actions {}", m.due_backlog);
    let _ = writeln!(
        out,
        "# HELP stepwise_expired_leases Actions a host claimed and left under an expired lease, not yet claimed again."
    );
    let _ = writeln!(out, "# TYPE stepwise_expired_leases gauge");
    let _ = writeln!(out, "stepwise_expired_leases {}", m.expired_leases);
    let _ = writeln!(
        out,
        "# HELP stepwise_expired_lease_age_seconds How long past its lease's expiry the oldest of those has waited."
    );
    let _ = writeln!(out, "# TYPE stepwise_expired_lease_age_seconds gauge");
    let _ = writeln!(out, "stepwise_expired_lease_age_seconds {:.3}", m.expired_lease_age.as_secs_f64());
    let _ = writeln!(out, "# HELP stepwise_actions Actions by plugin and status.");
    let _ = writeln!(out, "# TYPE stepwise_actions gauge");
    for (plugin, status, n) in &m.actions {
        let _ = writeln!(out, "stepwise_actions{{plugin=\"{}\",status=\"{status}\"}} {n}", escape(plugin));
    }
    let _ = writeln!(out, "# HELP stepwise_deferred_actions Unperformed actions held back, by deferral reason.");
    let _ = writeln!(out, "# TYPE stepwise_deferred_actions gauge");
    for (reason, n) in &m.deferrals {
        let _ = writeln!(out, "stepwise_deferred_actions{{reason=\"{reason}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP stepwise_outbox_messages Outbox messages by state.");
    let _ = writeln!(out, "# TYPE stepwise_outbox_messages gauge");
    for (state, n) in &m.outbox {
        let _ = writeln!(out, "stepwise_outbox_messages{{state=\"{state}\"}} {n}");
    }
    state.engine.call_metrics().render(&mut out);
    state.engine.stage_metrics().render(&mut out);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
