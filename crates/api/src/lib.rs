//! The HTTP API (axum): the only module that knows HTTP. Handlers turn
//! requests into engine and store calls and their answers into JSON; errors
//! are RFC 9457 problem documents ([`error::ApiError`]).

mod accounts;
mod actions;
mod audit;
pub mod auth;
mod companies;
pub mod console;
mod contact_types;
mod contacts;
mod engagement;
mod enrollments;
pub mod error;
mod health;
mod idempotency;
pub mod json;
pub mod limit;
mod me;
mod openapi;
mod outbox;
mod page;
mod plugins;
mod sender;
mod sequences;
pub mod server;
mod signals;
mod sync;
pub mod task;
mod templates;
pub mod trace;
mod unsubscribe;
mod users;
mod webhook_failures;
mod webhook_subscriptions;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;

use stepwise_engine::Engine;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine (and through it the store and the plugins).
    pub engine: Engine,
    /// The rate limit of `/v1` routes.
    pub limiter: std::sync::Arc<limit::RateLimiter>,
    /// The requests being answered, each on its own task.
    pub in_flight: task::InFlight,
    /// How slow clients are treated.
    pub http: server::HttpConfig,
    /// The console's sign-in attempts.
    pub sign_ins: std::sync::Arc<console::SignInLimiter>,
}

/// Requests per second each API key may make by default, and its burst.
pub const DEFAULT_RATE: (u32, u32) = (100, 200);

/// The API bound to its listener, ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    in_flight: task::InFlight,
    http: server::HttpConfig,
}

/// How long a stopping server waits for the requests in flight before it
/// returns anyway.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl Application {
    /// Binds `addr` (port 0 picks a free port) and builds the routes.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn build(engine: Engine, addr: SocketAddr) -> std::io::Result<Application> {
        Self::build_with_rate(engine, addr, DEFAULT_RATE).await
    }

    /// [`Application::build`] with a rate limit of `(per second, burst)`
    /// requests per API key.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn build_with_rate(engine: Engine, addr: SocketAddr, rate: (u32, u32)) -> std::io::Result<Application> {
        Self::build_with(engine, addr, server::HttpConfig { rate, ..server::HttpConfig::default() }).await
    }

    /// [`Application::build`] with `http`'s limits.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn build_with(
        engine: Engine,
        addr: SocketAddr,
        http: server::HttpConfig,
    ) -> std::io::Result<Application> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let limiter = std::sync::Arc::new(limit::RateLimiter::new(http.rate.0, http.rate.1));
        let in_flight = task::InFlight::new(http.max_in_flight, http.request_timeout);
        let sign_ins = std::sync::Arc::new(console::SignInLimiter::default());
        let state = AppState { engine, limiter, in_flight: in_flight.clone(), http, sign_ins };
        Ok(Application { listener, router: router(state), in_flight, http })
    }

    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// When the socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes the requests in
    /// flight, waiting at most [`SHUTDOWN_GRACE`] for them.
    ///
    /// # Errors
    ///
    /// When accepting connections fails.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        // Connections that keep a request open past the grace (a client
        // that never reads its answer) do not hold the process.
        server::serve(self.listener, self.router, self.http, shutdown, SHUTDOWN_GRACE).await?;
        let tasks = self.in_flight.tasks();
        tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait()).await.is_err() {
            tracing::warn!("request handlers still running after the shutdown grace were abandoned");
        }
        Ok(())
    }
}

/// The body limit of bulk routes (10,000 rows); other bodies keep axum's
/// 2 MiB.
const BULK_BODY_BYTES: usize = 16 << 20;

/// Every route, from the table that also makes the OpenAPI document.
pub fn router(state: AppState) -> Router {
    table(state.clone())
        .merge(console::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), task::run_to_completion))
        .layer(axum::middleware::from_fn(trace::traced))
        .with_state(state)
}

/// An unknown path: a problem document under the API, a page elsewhere.
async fn not_found(uri: http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if console::is_console_path(uri.path()) {
        console::Shown(error::ApiError::NotFound(format!("no page {}", uri.path()))).into_response()
    } else {
        error::not_found(uri).await.into_response()
    }
}

/// The route table: each route's ops, who may call them, what they read and
/// answer. `/v1` routes are rate-limited per key and honour
/// `Idempotency-Key`; the probes and the document are open.
fn table(state: AppState) -> Router<AppState> {
    use auth::{ADMINS, WORKERS};
    use openapi::{delete, get, patch, post, put};
    use stepwise_domain::crm::{Company, Contact, User};
    use stepwise_domain::engagement::{Action, Event};
    use stepwise_engine::Signal;

    let work = "Only the action's owner, or an admin, may work it.";
    let routes = openapi::Routes::new(state.clone())
        .at("/healthz", [get(health::healthz, "Liveness: the process answers").open().media("text/plain")])
        .at(
            "/readyz",
            [get(health::readyz, "Readiness: the database answers (503 when it does not)").open().media("text/plain")],
        )
        .at("/metrics", [get(health::metrics, "Prometheus metrics").open().media("text/plain")]);
    let limited = openapi::Routes::new(state.clone())
        .at("/u/{token}", [
            get(unsubscribe::unsubscribe, "The signed unsubscribe link of an email: opts the contact out of email")
                .open()
                .media("text/html"),
            post(unsubscribe::unsubscribe, "One-click unsubscribe (RFC 8058)").open().media("text/html"),
        ])
        .at("/sender/{token}", [get(sender::confirm, "The link that confirms a rep's sending address")
            .open()
            .media("text/html")])
        .at("/v1/me/password", [put(me::change_password, "Change your own console password")
            .describe("The current password must match (a 422 at `/current_password` when not); the new one is 10 to 256 characters. Your console sessions end.")
            .body::<me::PasswordChange>()
            .empty(204)])
        .at("/v1/me/sender", [
            get(sender::get_identity, "Your sending identity: address, name, whether it is verified, your own server")
                .answers::<sender::SenderView>(200),
            put(sender::set_identity, "Set the address and name your emails come from")
                .describe("A new address is not verified until the link emailed to it is followed (or an admin approves it with `sender_connected`); while the account sends from reps' own addresses, your automatic emails wait until then.")
                .body::<sender::SenderBody>()
                .answers::<sender::SenderAnswer>(200),
        ])
        .at("/v1/me/sender/smtp", [
            put(sender::set_smtp, "Your own SMTP server and login, for your emails from your own address")
                .describe("The password is kept for sending alone: never shown again, never in the audit trail, never given to plugins. Used while the account sends from reps' own addresses and yours is verified.")
                .body::<sender::SmtpBody>()
                .answers::<stepwise_store::SenderSmtp>(200),
            delete(sender::delete_smtp, "Forget your own SMTP server: your emails go through the relay").empty(204),
        ])
        .at("/v1/me/sender/confirmation", [post(sender::request_confirmation, "Email a new link confirming your sending address")
            .answers::<sender::Sent>(202)])
        .at("/v1/accounts/{id}", [patch(sender::edit_account, "Change your account: where its emails come from")
            .describe("`sender_mode`: `relay` (the host's address, `Reply-To` the rep) or `own_address` (each rep's verified address).")
            .roles(ADMINS)
            .body::<sender::AccountPatch>()
            .answers::<stepwise_domain::engagement::Account>(200)])
        .at("/v1/me", [
            get(me::me, "The key's user and account"),
            patch(me::update, "Change your own name, timezone and signature")
                .describe("Role, active flag and email address are an admin's to change (`PUT /v1/users/{id}`); naming them is a 422.")
                .body::<me::ProfileBody>()
                .answers::<User>(200),
        ])
        .at("/v1/accounts", [
            get(accounts::get, "The caller's account, its parent and its sub-accounts"),
            post(accounts::create, "Create a sub-account with its own admin (whose key is shown once)")
                .roles(ADMINS)
                .body::<accounts::NewSubAccount>()
                .status(201),
        ])
        .at("/v1/notifications", [get(me::notifications, "The caller's newest notifications")])
        .at("/v1/users", [
            get(users::list, "The account's users").query::<sync::ListQuery>().pages::<User>("users"),
            post(users::create, "Create a user").roles(ADMINS).body::<User>().answers::<User>(201),
        ])
        .at("/v1/users/{id}", [
            get(users::get, "A user").answers::<User>(200),
            put(users::replace, "Replace a user")
                .describe("`\"active\": false` deactivates the user: their keys stop working. An admin cannot demote themselves.")
                .roles(ADMINS)
                .body::<User>()
                .answers::<User>(200),
        ])
        .at("/v1/keys", [
            get(users::keys, "The caller's API keys, never their secrets"),
            post(users::create_key, "Create an API key: its secret is in this answer only")
                .body::<users::NewKey>()
                .guarded("Anyone may create their own key; only an admin may create another user's.")
                .status(201),
        ])
        .at("/v1/users/{id}/password", [put(users::set_password, "Set a user's console password")
            .describe("10 to 256 characters, kept as an argon2id hash; the user's console sessions end. API keys are unaffected.")
            .roles(ADMINS)
            .body::<users::PasswordBody>()
            .empty(204)])
        .at("/v1/users/{id}/password-link", [post(users::password_link, "Make a one-time link for a user to set their console password")
            .describe("The link (`path`, and `url` under the public URL when one is set) is in this answer only and works once, for 72 hours; an earlier unused link stops working.")
            .roles(ADMINS)
            .status(201)])
        .at("/v1/keys/{id}", [delete(users::revoke, "Revoke an API key")
            .guarded("Anyone may revoke their own key; only an admin may revoke another user's.")
            .empty(204)])
        .at("/v1/contacts", [
            get(contacts::list, "The account's contacts").query::<sync::ListQuery>().pages::<Contact>("contacts"),
            post(contacts::create, "Create a contact; a new lead is enrolled by its lead source")
                .roles(WORKERS)
                .body::<Contact>()
                .wraps::<Contact>(201, "contact"),
        ])
        .at("/v1/contacts/import", [post(contacts::import, "Import up to 10,000 contacts, with a result per row")
            .roles(WORKERS)
            .body::<contacts::ImportBody>()
            .body_limit(BULK_BODY_BYTES)])
        .at("/v1/contacts/{id}", [
            get(contacts::get, "A contact").answers::<Contact>(200),
            put(contacts::replace, "Replace a contact").roles(WORKERS).body::<Contact>().answers::<Contact>(200),
            delete(contacts::delete, "Delete a contact with its enrollments and history").roles(ADMINS).empty(204),
        ])
        .at("/v1/contacts/{id}/enrollments", [get(contacts::enrollments, "A contact's enrollments")
            .describe("Each with its sequence's name, the name of the step it is at and the contact's name, last engaged and last contacted times; filter by status.")
            .query::<sync::EnrollmentsQuery>()
            .pages::<stepwise_domain::engagement::EnrollmentItem>("enrollments")])
        .at("/v1/contacts/{id}/timeline", [get(contacts::timeline, "A contact's events, oldest first")
            .query::<page::Page>()
            .pages::<Event>("events")])
        .at("/v1/contact-types", [get(contact_types::list, "The account's contact types, in display order")
            .wraps::<Vec<stepwise_domain::engagement::ContactType>>(200, "contact_types")])
        .at("/v1/contact-types/{id}", [put(contact_types::rename, "Rename a contact type; its contacts follow")
            .describe("Steps that set a contact type (`change-contact-type`) name it: update them after a rename.")
            .roles(ADMINS)
            .body::<contact_types::RenameBody>()
            .answers::<stepwise_domain::engagement::ContactType>(200)])
        .at("/v1/companies", [
            get(companies::list, "The account's companies").query::<sync::ListQuery>().pages::<Company>("companies"),
            post(companies::create, "Create a company; a parent that would make a cycle is a 422")
                .roles(WORKERS)
                .body::<Company>()
                .answers::<Company>(201),
        ])
        .at("/v1/companies/{id}", [
            get(companies::get, "A company").answers::<Company>(200),
            put(companies::replace, "Replace a company's name, owner and parent")
                .roles(WORKERS)
                .body::<Company>()
                .answers::<Company>(200),
        ])
        .at("/v1/companies/{id}/timeline", [get(companies::timeline, "The events of a company's contacts, oldest first")
            .query::<page::Page>()
            .pages::<Event>("events")])
        .at("/v1/companies/{id}/engagement", [get(engagement::overview, "A company's engagement overview")
            .describe("Upcoming touchpoints (the next due actions of its contacts), open work items (as `…/work-items` lists them), its parents and children, its newest events and its health score with twelve weeks of history, in one answer. `children=true` takes in the contacts of every company below it.")
            .query::<engagement::WorkItemsQuery>()
            .answers::<engagement::Engagement>(200)])
        .at("/v1/companies/{id}/work-items", [get(engagement::work_items, "A company's open work items")
            .describe("Active and held actions of its contacts (or of every company below it with `children=true`), each with what its row shows; by priority (the default) or due date; filter by state, step type, priority and overdue.")
            .query::<engagement::WorkItemsQuery>()
            .pages::<stepwise_domain::engagement::WorkItem>("work_items")])
        .at("/v1/companies/{id}/health", [get(engagement::health, "A company's health score")
            .describe("The score now from the account's weighted indicators, each indicator's value, target, weight, gap and points (sortable by each), and the weekly snapshots of the last twelve weeks.")
            .query::<engagement::HealthQuery>()
            .answers::<stepwise_engine::CompanyHealth>(200)])
        .at("/v1/companies/{id}/health/refresh", [post(engagement::refresh, "Recompute a company's health score now")
            .describe("Scores the company now and keeps it as this week's snapshot.")
            .roles(WORKERS)
            .answers::<stepwise_engine::CompanyHealth>(200)])
        .at("/v1/health-settings", [
            get(engagement::settings, "How the account scores its companies' health")
                .answers::<stepwise_domain::health::HealthConfig>(200),
            put(engagement::replace_settings, "Replace the health score's indicators, targets, weights and window")
                .describe("Each indicator at most once, weights and targets at least 0 and summing above 0, a window of 1 to 365 days; every problem is named at its field.")
                .roles(ADMINS)
                .body::<stepwise_domain::health::HealthConfig>()
                .answers::<stepwise_domain::health::HealthConfig>(200),
        ])
        .at("/v1/templates", [
            get(templates::list, "The account's message templates")
                .query::<sync::ListQuery>()
                .pages::<stepwise_store::Template>("templates"),
            post(templates::create, "Create a template; an unknown token is a 422")
                .describe("The answer's `warnings` name legacy merge fields, which hold the steps that use them.")
                .roles(WORKERS)
                .body::<templates::TemplateBody>()
                .wraps::<stepwise_store::Template>(201, "template"),
        ])
        .at("/v1/templates/{id}", [
            get(templates::get, "A template").wraps::<stepwise_store::Template>(200, "template"),
            put(templates::replace, "Replace a template; steps using it send the new text from then on")
                .roles(WORKERS)
                .body::<templates::TemplateBody>()
                .wraps::<stepwise_store::Template>(200, "template"),
            delete(templates::delete, "Delete a template").roles(ADMINS).empty(204),
        ])
        .at("/v1/deletions", [get(sync::deletions, "Deleted contacts, enrollments and templates, oldest first")
            .describe("The tombstones a client that syncs reads after the lists: each record's collection, id and when it was deleted.")
            .query::<sync::DeletionsQuery>()
            .pages::<stepwise_store::Deletion>("deletions")])
        .at("/v1/audit", [get(audit::trail, "The audit trail: every edit of the account's records, oldest first")
            .describe("Who changed which contact, company, user, key, template, plugin setting, sequence or contact type, through which key and request, with the record before and after. Entries outlive the records they describe.")
            .roles(ADMINS)
            .query::<audit::AuditQuery>()
            .pages::<stepwise_domain::engagement::AuditEntry>("entries")])
        .at("/v1/webhook-failures", [get(
            webhook_failures::failures,
            "The webhook monitor: steps whose request failed for good, newest first",
        )
        .describe("Each entry has the request as sent (secrets masked) and the response or the error.")
        .query::<webhook_failures::FailureQuery>()
        .pages::<stepwise_store::WebhookFailure>("failures")])
        .at("/v1/webhook-subscriptions", [
            get(webhook_subscriptions::list, "The account's webhook subscriptions, oldest first")
                .roles(ADMINS)
                .query::<page::Page>()
                .pages::<stepwise_store::WebhookSubscription>("subscriptions"),
            post(webhook_subscriptions::create, "Subscribe a URL to event types; the signing secret is in this answer only")
                .describe("Every state change of a type it names is written with the change and posted to the URL, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), retried with backoff, in order per enrollment. Private, loopback and metadata addresses are refused unless the operator allows them.")
                .roles(ADMINS)
                .body::<webhook_subscriptions::SubscriptionBody>()
                .answers::<webhook_subscriptions::Created>(201),
        ])
        .at("/v1/webhook-subscriptions/{id}", [
            get(webhook_subscriptions::get, "A webhook subscription")
                .roles(ADMINS)
                .answers::<stepwise_store::WebhookSubscription>(200),
            patch(webhook_subscriptions::edit, "Change a subscription's URL, event types or description, or enable or disable it")
                .describe("Enabling a disabled subscription forgets its run of failures and sends its pending deliveries at once.")
                .roles(ADMINS)
                .body::<webhook_subscriptions::SubscriptionPatch>()
                .answers::<stepwise_store::WebhookSubscription>(200),
            delete(webhook_subscriptions::delete, "Delete a subscription and its delivery log").roles(ADMINS).empty(204),
        ])
        .at("/v1/webhook-subscriptions/{id}/secret", [post(webhook_subscriptions::rotate, "A new signing secret, in this answer only")
            .roles(ADMINS)
            .answers::<webhook_subscriptions::Rotated>(200)])
        .at("/v1/webhook-subscriptions/{id}/deliveries", [get(
            webhook_subscriptions::deliveries,
            "A subscription's deliveries, newest first, with the receiver's answer",
        )
        .roles(ADMINS)
        .query::<webhook_subscriptions::DeliveriesQuery>()
        .pages::<stepwise_store::WebhookDelivery>("deliveries")])
        .at("/v1/webhook-subscriptions/{id}/deliveries/{delivery_id}", [get(
            webhook_subscriptions::delivery,
            "One delivery",
        )
        .roles(ADMINS)
        .answers::<stepwise_store::WebhookDelivery>(200)])
        .at("/v1/webhook-subscriptions/{id}/deliveries/{delivery_id}/replay", [post(
            webhook_subscriptions::replay,
            "Send a delivery's event again under the same `webhook-id`",
        )
        .roles(ADMINS)
        .answers::<stepwise_store::WebhookDelivery>(201)])
        .at("/v1/sequences", [
            get(sequences::list, "The account's sequences, and those its parent shares locked")
                .query::<sync::ListQuery>()
                .pages::<sequences::Listed>("sequences"),
            post(sequences::create, "Create a draft sequence, with version 1 of its steps when given")
                .roles(ADMINS)
                .body::<sequences::NewSequenceBody>()
                .status(201),
        ])
        .at("/v1/sequences/import", [post(sequences::import, "Import an exported sequence as a draft")
            .roles(ADMINS)
            .body::<sequences::Exported>()
            .status(201)])
        .at("/v1/sequences/{id}", [
            get(sequences::get, "A sequence and its newest version"),
            patch(sequences::edit, "Edit a sequence's name, description, plan type and settings")
                .roles(ADMINS)
                .body::<sequences::EditBody>(),
        ])
        .at("/v1/sequences/{id}/report", [get(
            sequences::report,
            "Enrolled, by status, outcomes, replies and bounces; per step completed, skipped by reason and failed",
        )])
        .at("/v1/sequences/{id}/export", [get(sequences::export, "Export as JSON (imports again) or CSV")
            .query::<sequences::ExportQuery>()
            .media("application/json, text/csv")])
        .at("/v1/sequences/{id}/versions", [post(
            sequences::publish,
            "Publish new steps as a new version; running enrollments keep theirs",
        )
        .roles(ADMINS)
        .body::<sequences::StepsBody>()
        .status(201)])
        .at("/v1/sequences/{id}/versions/{n}", [get(sequences::version, "One version of a sequence's steps")])
        .at("/v1/sequences/{id}/state", [post(
            sequences::set_state,
            "Activate, pause (its unperformed actions are disabled) or archive",
        )
        .roles(ADMINS)
        .body::<sequences::StateBody>()])
        .at("/v1/sequences/{id}/enrollments", [get(sequences::enrollments, "A sequence's enrollments")
            .describe("Each with its contact's name, last engaged and last contacted times and the name of the step it is at; filter by status.")
            .query::<sync::EnrollmentsQuery>()
            .pages::<stepwise_domain::engagement::EnrollmentItem>("enrollments")])
        .at("/v1/enrollments", [
            get(enrollments::list, "The account's enrollments, newest first")
                .describe("Each with its contact's and sequence's names, the name of the step it is at and the contact's last engaged and last contacted times; filter by status, sequence and contact.")
                .query::<enrollments::ListQuery>()
                .pages::<stepwise_domain::engagement::EnrollmentItem>("enrollments"),
            post(enrollments::enroll, "Enroll a contact; the caller initiates")
                .roles(WORKERS)
                .body::<enrollments::EnrollBody>()
                .status(201),
        ])
        .at("/v1/enrollments/bulk", [post(enrollments::enroll_many, "Enroll many contacts, with a result per contact")
            .roles(WORKERS)
            .body::<enrollments::EnrollManyBody>()
            .body_limit(BULK_BODY_BYTES)])
        .at("/v1/enrollments/{id}", [
            get(enrollments::get, "An enrollment with its actions"),
            delete(enrollments::remove, "Remove an enrollment with all its history").roles(ADMINS).empty(204),
        ])
        .at("/v1/enrollments/{id}/stop", [post(enrollments::stop, "Stop, with a disposition for the open action")
            .roles(WORKERS)
            .body::<enrollments::StopBody>()])
        .at("/v1/enrollments/{id}/pause", [post(enrollments::pause, "Pause, keeping the open action").roles(WORKERS)])
        .at("/v1/enrollments/{id}/resume", [post(enrollments::resume, "Resume a paused enrollment").roles(WORKERS)])
        .at("/v1/enrollments/{id}/cancel", [post(enrollments::cancel, "Cancel an enrollment").roles(WORKERS)])
        .at("/v1/enrollments/{id}/migrate", [post(enrollments::migrate, "Move an enrollment to another version")
            .roles(ADMINS)
            .body::<enrollments::MigrateBody>()])
        .at("/v1/enrollments/{id}/event-date", [put(enrollments::event_date, "Change the event date of an event plan")
            .roles(WORKERS)
            .body::<enrollments::EventDateBody>()])
        .at("/v1/engage", [get(actions::engage, "A user's Engage view: the actions they should work")
            .describe("Manual actions that are due, and automatic ones held for review, each with what its row shows (title, contact, company, sequence); by due date or priority; filter by step type, sequence, priority, overdue and due date.")
            .query::<actions::EngageQuery>()
            .guarded("Only an admin may read another user's view (`?user=`).")
            .pages::<stepwise_domain::engagement::WorkItem>("actions")])
        .at("/v1/actions", [get(actions::held, "The actions held for a reason")
            .describe("Current actions waiting with the deferral reason named (or any, without `deferral`), by id: `duplicate_attempt` lists the sends that may have left and wait for a person. An admin sees the account's, anyone else their own.")
            .query::<actions::HeldQuery>()
            .guarded("Only an admin may list another user's (`?owner=`).")
            .pages::<Action>("actions")])
        .at("/v1/actions/{id}", [get(actions::get, "An action, with its plugin's log").answers::<actions::ActionDetail>(200)])
        .at("/v1/actions/{id}/explain", [get(actions::explain, "Why an action is, or is not, on the Engage view")])
        .at("/v1/actions/{id}/item", [get(actions::item, "The to-do item as the step's plugin prepares it now")
            .describe("The title, the instructions (a call script, say) and the message draft the rep may edit and send back with `complete`.")
            .answers::<stepwise_plugin_host::types::EngageItem>(200)])
        .at("/v1/actions/{id}/complete", [post(actions::complete, "Complete an action with one of its results")
            .roles(WORKERS)
            .guarded(work)
            .body::<actions::CompleteBody>()
            .answers::<Action>(200)])
        .at("/v1/actions/{id}/skip", [post(actions::skip, "Skip an action").roles(WORKERS).guarded(work).answers::<Action>(200)])
        .at("/v1/actions/{id}/reschedule", [post(actions::reschedule, "Move an action's due date")
            .roles(WORKERS)
            .guarded(work)
            .body::<actions::RescheduleBody>()
            .answers::<Action>(200)])
        .at("/v1/actions/{id}/mark-sent", [post(actions::mark_sent, "Resolve a send held as a duplicate attempt: it did leave")
            .describe("The action is completed with `result` (by default the step type's first result that does not end the enrollment), nothing is sent, and the enrollment moves on.")
            .roles(WORKERS)
            .guarded(work)
            .body::<actions::MarkSentBody>()
            .answers::<Action>(200)])
        .at("/v1/actions/{id}/send-again", [post(actions::send_again, "Resolve a send held as a duplicate attempt: it did not leave")
            .describe("The earlier attempt is forgotten and the action is processed again now.")
            .roles(WORKERS)
            .guarded(work)
            .answers::<Action>(200)])
        .at("/v1/actions/{id}/hide", [post(actions::hide, "Take an action off the Engage view (show-on-Engage false)")
            .roles(WORKERS)
            .guarded(work)
            .answers::<Action>(200)])
        .at("/v1/signals", [post(signals::signal, "Apply a reply, bounce, out-of-office, unsubscribe, click or open")
            .describe("Replies, bounces and unsubscribes end the contact's enrollments as their sequences' settings say; an out-of-office pauses them until its `return_date`.")
            .roles(WORKERS)
            .body::<Signal>()])
        .at("/v1/outbox", [get(outbox::list, "The account's outgoing messages: queued, sent and failed, oldest first")
            .describe("A message of a channel without a transport stays `queued`; a failed one keeps the reason in `last_error` (an SMTP server's reply, a provider's error).")
            .roles(ADMINS)
            .query::<outbox::OutboxQuery>()
            .pages::<stepwise_domain::engagement::OutboxMessage>("messages")])
        .at("/v1/plugins", [
            get(plugins::list, "The built-in plugins and the account's add-ons, with manifests and settings"),
            post(plugins::upload, "Upload an add-on component: checked, stored and usable at once")
                .roles(ADMINS)
                .wasm()
                .body_limit(plugins::MAX_COMPONENT_BYTES)
                .status(201),
        ])
        .at("/v1/plugins/{id}/account", [put(plugins::set_account, "Enable or disable a plugin and grant what it may touch")
            .describe("Granting approves what the newest version asks for; a version that asks for more stays off until granted again. Another account's add-on is a 404.")
            .roles(ADMINS)
            .body::<plugins::AccountBody>()]);
    let limited =
        limited.layered(|router| router.route_layer(axum::middleware::from_fn_with_state(state.clone(), limit::limit)));
    routes.merge(limited).finish()
}
