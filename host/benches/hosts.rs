//! Benchmark of many hosts on one PostgreSQL database: actions a second
//! with one host (`stepwise serve`) and with three (`serve` and two
//! `stepwise scheduler` processes), on an I/O-bound sequence: two webhooks
//! to a receiver that takes 200 ms to answer, then an email, for each
//! contact. Needs `STEPWISE_TEST_POSTGRES_URL`.
//!
//! Run with `cargo bench -p stepwise --bench hosts` (options after `--`:
//! `--contacts N`, `--delay-ms N` (the receiver's), `--hosts N,M,…`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::{Db, Plan, run};

fn main() {
    let Ok(admin_url) = std::env::var("STEPWISE_TEST_POSTGRES_URL") else {
        eprintln!("the hosts benchmark needs STEPWISE_TEST_POSTGRES_URL");
        return;
    };
    let (mut contacts, mut delay, mut counts) = (2_000, 200, vec![1, 3]);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--contacts" => contacts = args.next().and_then(|v| v.parse().ok()).expect("--contacts N"),
            "--delay-ms" => delay = args.next().and_then(|v| v.parse().ok()).expect("--delay-ms N"),
            "--hosts" => {
                counts = args.next().expect("--hosts N,M").split(',').map(|n| n.parse().expect("a number")).collect();
            }
            // cargo bench passes --bench; anything else is ignored.
            _ => {}
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let mut first = None;
        for hosts in counts {
            let admin = Db::connect(&admin_url).await;
            let schema = format!("stepwise_hosts_bench_{}_{hosts}", std::process::id());
            admin.execute(&format!("CREATE SCHEMA {schema}")).await;
            let separator = if admin_url.contains('?') { '&' } else { '?' };
            let url = format!("{admin_url}{separator}options[search_path]={schema}");
            let plan = Plan {
                contacts,
                schedulers: hosts - 1,
                kills: 0,
                restart: None,
                receiver_delay: Duration::from_millis(delay),
            };
            let outcome = run(url, plan).await;
            admin.execute(&format!("DROP SCHEMA {schema} CASCADE")).await;
            admin.close().await;
            let rate = outcome.actions as f64 / outcome.took.as_secs_f64();
            let base = *first.get_or_insert(rate);
            println!(
                "hosts [{hosts}]: {} actions (webhooks to a {delay} ms receiver, then an email) in {:.1} s: {rate:.0} actions/s, {:.2}x one host",
                outcome.actions,
                outcome.took.as_secs_f64(),
                rate / base
            );
        }
    });
}
