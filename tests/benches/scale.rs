//! Benchmarks of Stepwise among a large database, on SQLite and (when
//! `STEPWISE_TEST_POSTGRES_URL` is set) PostgreSQL, through the API as
//! clients use it:
//!
//! - **Bulk enrollment**: `--bulk N` contacts (100,000) enrolled in a
//!   five-step sequence by `POST /v1/enrollments/bulk`, 10,000 a request.
//! - **Among a million**: `--background N` enrollments (1,000,000), each
//!   with its current action: nine in ten future-dated, one in ten on its
//!   owner's Engage view, spread over 1,000 reps. Then the Engage view of
//!   one rep (`GET /v1/engage`, `--engage-requests` times, p50 and p99),
//!   and the engine bench's throughput run among them: `--contacts N`
//!   contacts enrolled in five automatic trivial steps, run to the end.
//! - **Import**: `--import N` new leads (100,000) by
//!   `POST /v1/contacts/import`, 10,000 a request, half of them from a lead
//!   source an active five-step sequence names, so that they are enrolled
//!   there as they are created.
//! - **A mixed sequence**: `--mixed N` contacts (2,000) through three
//!   automatic steps as a sales team would set them up: an email rendering
//!   one of the account's templates into the outbox, a webhook to a local
//!   receiver, and a change of the contact's owner; run to the end (the
//!   emails are then queued; the outbox is delivered to an in-memory
//!   transport after the timing, to check every one was queued once).
//!
//! The large databases are made with SQL (`stepwise_tests::bench::Bulk`),
//! not through the API, so that they take seconds.
//!
//! Run with `cargo bench -p stepwise-tests --bench scale` (options after
//! `--`, also `--backend sqlite|postgres`, `--only bulk|import|million|mixed`).

use std::time::Instant;

use serde_json::json;
use stepwise::engagement::{SequenceSettings, TimingMode};
use stepwise_tests::app::TestApp;
use stepwise_tests::bench::{Bulk, backends, open};
use stepwise_tests::scenario::{DAY, settings, task, trivial};

struct Options {
    bulk: usize,
    import: usize,
    background: usize,
    contacts: usize,
    engage_requests: usize,
    mixed: usize,
    only: Option<String>,
    backends: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        bulk: 100_000,
        import: 100_000,
        background: 1_000_000,
        contacts: 4_000,
        engage_requests: 1_000,
        mixed: 2_000,
        only: None,
        backends: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    let number = |args: &mut std::iter::Skip<std::env::Args>, name: &str| -> usize {
        args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name} N"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bulk" => o.bulk = number(&mut args, "--bulk"),
            "--import" => o.import = number(&mut args, "--import"),
            "--background" => o.background = number(&mut args, "--background"),
            "--contacts" => o.contacts = number(&mut args, "--contacts"),
            "--engage-requests" => o.engage_requests = number(&mut args, "--engage-requests"),
            "--mixed" => o.mixed = number(&mut args, "--mixed"),
            "--only" => o.only = args.next(),
            "--backend" => o.backends.push(args.next().expect("--backend sqlite|postgres")),
            // cargo bench passes --bench; anything else is ignored.
            _ => {}
        }
    }
    o.backends = backends(std::mem::take(&mut o.backends));
    o
}

/// Most contacts one bulk request takes.
const PER_REQUEST: usize = 10_000;

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        for backend in &o.backends {
            if o.only.as_deref().is_none_or(|only| only == "bulk") {
                bulk(backend, o.bulk).await;
            }
            if o.only.as_deref().is_none_or(|only| only == "import") {
                import(backend, o.import).await;
            }
            if o.only.as_deref().is_none_or(|only| only == "million") {
                among_many(backend, &o).await;
            }
            if o.only.as_deref().is_none_or(|only| only == "mixed") {
                mixed(backend, o.mixed).await;
            }
        }
    });
}

/// Enrolls the contacts `{prefix}c_0 .. n` in `sequence` through the bulk
/// route, as `key`; returns how many were enrolled.
async fn enroll_all(app: &TestApp, key: &str, sequence: &str, prefix: &str, n: usize) -> usize {
    let mut enrolled = 0;
    for start in (0..n).step_by(PER_REQUEST) {
        let ids: Vec<String> = (start..(start + PER_REQUEST).min(n)).map(|i| format!("{prefix}c_{i}")).collect();
        let body = json!({ "sequence_id": sequence, "contact_ids": ids });
        let answer = app.call(reqwest::Method::POST, "/v1/enrollments/bulk", Some(key), Some(&body)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        enrolled += usize::try_from(answer.json["enrolled"].as_u64().unwrap_or(0)).unwrap_or(0);
    }
    enrolled
}

async fn app(backend: &str, dir: &tempfile::TempDir) -> (TestApp, Bulk, stepwise_tests::bench::Cleanup) {
    let (store, url, cleanup) = open(backend, dir).await;
    let app = TestApp::spawn_with_rate(store, (1_000_000, 1_000_000)).await;
    let bulk = Bulk::connect(&url).await;
    (app, bulk, cleanup)
}

async fn bulk(backend: &str, n: usize) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (app, bulk, cleanup) = app(backend, &dir).await;
    let world = &app.world;
    let now = world.now();
    bulk.users(&world.account, "b", 100, now).await;
    // Not analyzed: statistics taken while the enrollments table is empty
    // would tell PostgreSQL it stays empty (until autovacuum analyzes it
    // again, a minute later) and it would scan it for every chunk.
    bulk.contacts(&world.account, "b", n, ("b", 100), now).await;
    let steps = (0..5).map(|_| task(DAY)).collect();
    let sequence = world.sequence(TimingMode::AfterPrevious, settings(), steps).await;
    let started = Instant::now();
    let enrolled = enroll_all(&app, &app.agent_key, &sequence, "b", n).await;
    let took = started.elapsed();
    assert_eq!(enrolled, n, "every contact was enrolled");
    println!("{backend}: bulk enrollment, {n} contacts in a five-step sequence, {PER_REQUEST} a request");
    println!("  enroll          {:>10.0} enrollments/s ({:.2} s)", n as f64 / took.as_secs_f64(), took.as_secs_f64());
    close(world, bulk, cleanup).await;
}

async fn import(backend: &str, n: usize) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (app, bulk, cleanup) = app(backend, &dir).await;
    let world = &app.world;
    let by_source = SequenceSettings { lead_source: Some("webinar".into()), ..settings() };
    let steps = (0..5).map(|_| task(DAY)).collect();
    world.sequence(TimingMode::AfterPrevious, by_source, steps).await;
    let started = Instant::now();
    let (mut created, mut enrolled) = (0, 0);
    for start in (0..n).step_by(PER_REQUEST) {
        let rows: Vec<_> = (start..(start + PER_REQUEST).min(n))
            .map(|i| {
                let source = if i % 2 == 0 { "webinar" } else { "referral" };
                json!({
                    "first_name": format!("Lead {i}"),
                    "email": format!("lead{i}@example.com"),
                    "owner_id": world.agent,
                    "lead_source": source,
                })
            })
            .collect();
        let body = json!({ "contacts": rows });
        let answer = app.call(reqwest::Method::POST, "/v1/contacts/import", Some(&app.agent_key), Some(&body)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        created += answer.json["created"].as_u64().unwrap_or(0);
        let results = answer.json["results"].as_array().map_or(&[][..], Vec::as_slice);
        enrolled += results.iter().filter(|r| r["enrollments"].as_array().is_some_and(|e| !e.is_empty())).count();
    }
    let took = started.elapsed();
    assert_eq!((created, enrolled), (n as u64, n.div_ceil(2)), "every lead was created, half of them enrolled");
    println!("{backend}: import, {n} leads, half of them enrolled by lead source in a five-step sequence");
    println!("  import          {:>10.0} contacts/s ({:.2} s)", n as f64 / took.as_secs_f64(), took.as_secs_f64());
    close(world, bulk, cleanup).await;
}

async fn among_many(backend: &str, o: &Options) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (app, bulk, cleanup) = app(backend, &dir).await;
    let world = &app.world;
    let now = world.now();
    let making = Instant::now();
    let background = world.sequence(TimingMode::AfterPrevious, settings(), vec![task(DAY)]).await;
    bulk.users(&world.account, "m", 1_000, now).await;
    bulk.contacts(&world.account, "m", o.background, ("m", 1_000), now).await;
    bulk.enrollments(&world.account, "m", &background, o.background, now).await;
    bulk.contacts(&world.account, "f", o.contacts, ("m", 1_000), now).await;
    bulk.analyze().await;
    assert_eq!(bulk.due(now).await, 0, "nothing of the background is due");
    println!(
        "{backend}: among {} enrollments, each with its current action (nine in ten future-dated, one in ten on \
         Engage views), made in {:.1} s",
        o.background,
        making.elapsed().as_secs_f64()
    );

    // One rep's Engage view: about a hundred actions of theirs among all.
    let mut tx = world.store.begin().await.unwrap();
    let (_, key) = tx.create_api_key(&world.account, "mu_7", "bench", now).await.unwrap();
    tx.commit().await.unwrap();
    let mut took = Vec::with_capacity(o.engage_requests);
    for _ in 0..o.engage_requests {
        let started = Instant::now();
        let answer = app.get("/v1/engage?limit=50", Some(&key)).await;
        took.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert!(!answer.json["actions"].as_array().is_none_or(Vec::is_empty), "the rep has actions on Engage");
    }
    took.sort_by(f64::total_cmp);
    let pick = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    println!("  GET /v1/engage  p50 {:>6.1} ms   p99 {:>6.1} ms   max {:>6.1} ms", pick(0.5), pick(0.99), pick(1.0));

    // The engine bench's throughput run, among them.
    let sequence = world.sequence(TimingMode::AfterPrevious, settings(), (0..5).map(|_| trivial(0)).collect()).await;
    let started = Instant::now();
    let enrolled = enroll_all(&app, &app.agent_key, &sequence, "f", o.contacts).await;
    let enrolling = started.elapsed();
    assert_eq!(enrolled, o.contacts, "every contact was enrolled");
    let running = Instant::now();
    let handled = world.engine.run_until_idle().await.expect("the scheduler runs");
    let ran = running.elapsed();
    assert_eq!(handled, o.contacts * 5, "every action ran");
    println!(
        "  enroll          {:>10.0} enrollments/s ({} in {:.2} s)",
        o.contacts as f64 / enrolling.as_secs_f64(),
        o.contacts,
        enrolling.as_secs_f64()
    );
    print_run(handled, ran, "");
    close(world, bulk, cleanup).await;
}

async fn mixed(backend: &str, n: usize) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (app, bulk, cleanup) = app(backend, &dir).await;
    let world = &app.world;
    let now = world.now();
    let hook = stepwise_tests::Recorder::start(204, "").await;
    let post = |path: &str, body: serde_json::Value| {
        let (app, path) = (&app, path.to_owned());
        async move {
            let answer = app.call(reqwest::Method::POST, &path, Some(&app.admin_key), Some(&body)).await;
            assert!(answer.status < 300, "{path}: {}", answer.text);
            answer
        }
    };
    let grant = json!({"enabled": true, "grant": {"capabilities": ["render-template", "http-fetch"], "http_allow": [hook.base.clone()]}});
    let granted =
        app.call(reqwest::Method::PUT, "/v1/plugins/webhook/account", Some(&app.admin_key), Some(&grant)).await;
    assert_eq!(granted.status, 200, "{}", granted.text);
    let template = post(
        "/v1/templates",
        json!({"name": "Welcome", "subject": "Hello {{contact.first_name}}", "body": "Dear {{contact.first_name}},\n\nthanks for your interest."}),
    )
    .await
    .string("/template/id");
    bulk.users(&world.account, "x", 10, now).await;
    bulk.contacts(&world.account, "x", n, ("x", 10), now).await;
    let step = |name: &str, plugin: &str, config: serde_json::Value| {
        json!({"name": name, "plugin": {"id": plugin, "version": "*"}, "config": config,
               "timing": {"kind": "delay", "ms": 0}, "activation": "automatic", "owner": {"rule": "contact_owner"}})
    };
    let steps = [
        step("Welcome email", "email", json!({"template_id": template})),
        step(
            "Tell the CRM",
            "webhook",
            json!({"url": format!("{}/hooks/{{{{contact.id}}}}", hook.base),
                   "payload": {"mode": "fields", "fields": [{"key": "name", "value": "{{contact.first_name}}"}]}}),
        ),
        step("Hand over", "assign-user", json!({"user_id": world.agent})),
    ];
    let steps: Vec<serde_json::Value> = steps
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            s["position"] = json!(i);
            s
        })
        .collect();
    let sequence = post("/v1/sequences", json!({"name": "Inbound", "steps": steps})).await.string("/sequence/id");
    post(&format!("/v1/sequences/{sequence}/state"), json!({"state": "active"})).await;
    assert_eq!(enroll_all(&app, &app.admin_key, &sequence, "x", n).await, n, "every contact was enrolled");
    let running = Instant::now();
    let handled = world.engine.run_until_idle().await.expect("the scheduler runs");
    let ran = running.elapsed();
    assert_eq!(handled, n * 3, "every action ran");
    assert_eq!(hook.received().len(), n, "every webhook arrived once");
    // The run delivers one round of the outbox; the rest, untimed here.
    for _ in 0..n {
        if world.transport.delivered().len() >= n {
            break;
        }
        world.engine.run_until_idle().await.expect("the outbox is delivered");
    }
    assert_eq!(world.transport.delivered().len(), n, "every email was delivered once");
    println!("{backend}: a mixed sequence (template email, webhook, owner change), {n} contacts");
    print_run(handled, ran, &format!(", {n} emails queued,"));
    close(world, bulk, cleanup).await;
}

/// Prints the rate of a run of the scheduler: `handled` actions in `took`.
fn print_run(handled: usize, took: std::time::Duration, detail: &str) {
    let seconds = took.as_secs_f64();
    println!(
        "  run to the end  {:>10.0} actions/s ({handled} actions{detail} in {seconds:.2} s)",
        handled as f64 / seconds
    );
}

/// Closes what a scenario opened and drops its database.
async fn close(world: &stepwise_tests::scenario::World, bulk: Bulk, cleanup: stepwise_tests::bench::Cleanup) {
    bulk.close().await;
    world.store.close().await;
    cleanup.await;
}
