//! The end-to-end suite as one test binary (one link of wasmtime, sqlx and
//! lettre instead of one per file): each module is one area, named
//! `area_topic`. The memory test stays a binary of its own, since it
//! installs a counting global allocator.

mod api_addon;
mod api_audit;
mod api_basics;
mod api_clients;
mod api_contract;
mod api_engagement;
mod api_flow;
mod api_isolation;
mod api_journey;
mod api_plugins;
mod api_report;
mod api_sender;
mod api_steps;
mod api_sync;
mod api_templates;
mod api_webhooks;
mod artifact_cache;
mod builtin_email;
mod builtin_plugins;
mod builtin_predicates;
mod builtin_steps;
mod console_admin;
mod console_auth;
mod console_builder;
mod console_engage;
mod console_records;
mod console_sequences;
mod delivery_outbox;
mod delivery_sms;
mod delivery_smtp;
mod engine_fairness;
mod engine_hosts;
mod engine_lifecycle;
mod engine_processing;
mod engine_signals;
mod engine_steps;
mod engine_timing;
mod guests;
mod registry;
mod runner;
mod sandbox_timing;
mod ssrf;
mod store_aggregates;
mod store_invariants;
mod store_lease;
mod store_webhooks;
mod tidy;
mod voice_calls;
