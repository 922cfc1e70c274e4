//! How fast the console's pages render among a large account: `--contacts
//! N` contacts (100,000) in `--companies N` companies (1,000), each contact
//! enrolled in `--sequences N` sequences (10), so N × sequences actions
//! (1,000,000), one in ten on its owner's Engage view, spread over 1,000
//! reps. Then, signed in as one rep through the sign-in form, each page
//! `--requests N` times (200), p50 / p99 / max: the Engage view, a
//! contact, a company's engagement overview and a sequence's report. On
//! SQLite and (with `STEPWISE_TEST_POSTGRES_URL`) PostgreSQL, vacuumed and
//! analyzed after the load as autovacuum would.
//!
//! Run with `cargo bench -p stepwise-tests --bench console` (options after
//! `--`, also `--backend sqlite|postgres`).

use std::time::Instant;

use stepwise_tests::app::TestApp;
use stepwise_tests::bench::{Bulk, arguments, backends, open, value};
use stepwise_tests::console::Person;
use stepwise_tests::scenario::{DAY, settings, task};

struct Options {
    contacts: usize,
    companies: usize,
    sequences: usize,
    requests: usize,
    backends: Vec<String>,
}

fn options() -> Options {
    let mut o = Options { contacts: 100_000, companies: 1_000, sequences: 10, requests: 200, backends: Vec::new() };
    let mut named = Vec::new();
    arguments(|flag, args| match flag {
        "--contacts" => o.contacts = value(args, flag),
        "--companies" => o.companies = value(args, flag),
        "--sequences" => o.sequences = value(args, flag),
        "--requests" => o.requests = value(args, flag),
        "--backend" => named.push(value(args, flag)),
        _ => {}
    });
    o.backends = backends(named);
    o
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        for backend in &o.backends {
            pages(backend, &o).await;
        }
    });
}

async fn pages(backend: &str, o: &Options) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (store, url, cleanup) = open(backend, &dir).await;
    let app = TestApp::spawn_with_rate(store, (1_000_000, 1_000_000)).await;
    let bulk = Bulk::connect(&url).await;
    let world = &app.world;
    let now = world.now();
    let making = Instant::now();
    bulk.users(&world.account, "m", 1_000, now).await;
    bulk.contacts(&world.account, "m", o.contacts, ("m", 1_000), now).await;
    bulk.companies(&world.account, "m", o.companies, "m", now).await;
    let mut sequences = Vec::new();
    for i in 0..o.sequences {
        let sequence =
            world.sequence(stepwise::engagement::TimingMode::AfterPrevious, settings(), vec![task(DAY)]).await;
        bulk.more_enrollments(&world.account, ("m", &format!("s{i}")), &sequence, o.contacts, now).await;
        sequences.push(sequence);
    }
    bulk.vacuum_analyze().await;
    println!(
        "{backend}: {} contacts in {} companies, {} enrollments and actions ({} sequences), made in {:.1} s",
        o.contacts,
        o.companies,
        o.contacts * o.sequences,
        o.sequences,
        making.elapsed().as_secs_f64()
    );

    // Rep 7 owns contacts 7, 1007, 2007, …: a hundred contacts, a thousand
    // actions, a hundred of them on the Engage view.
    let password = "a long enough password";
    world.engine.set_password(&world.account, "mu_7", password, &world.editor()).await.expect("a password");
    let mut rep = Person::new(&app.base);
    let signed_in = rep.sign_in("mrep7@example.com", password).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text);
    let pages = [
        ("Engage view", "/engage".to_owned()),
        ("contact", "/contacts/mc_7".to_owned()),
        ("company overview", "/companies/mco_7".to_owned()),
        ("sequence report", format!("/sequences/{}", sequences[0])),
    ];
    for (name, path) in &pages {
        let mut took = Vec::with_capacity(o.requests);
        for _ in 0..o.requests {
            let started = Instant::now();
            let page = rep.get(path).await;
            took.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(page.status, 200, "{path}: {}", page.text);
        }
        took.sort_by(f64::total_cmp);
        let pick = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
        println!(
            "  {name:<17} {path:<40} p50 {:>6.1} ms   p99 {:>6.1} ms   max {:>6.1} ms",
            pick(0.5),
            pick(0.99),
            pick(1.0)
        );
    }
    bulk.close().await;
    world.store.close().await;
    cleanup.await;
}
