//! What a hostile guest costs the host's own memory, measured by a counting
//! allocator: data over a budget is refused from its length before it is
//! copied, a call's store is dropped with the call, and after a refused
//! call the host's heap is back at its baseline. The allocator counts the
//! whole process, so these tests run one at a time, in a binary of their own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use stepwise::plugins::{Limits, NetPolicy, Plugin, PluginError, Runtime};
use stepwise_tests::{ada, guests, invocation, runtime_with, test_limits};

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed to `System` unchanged; only counts are added.
#[expect(unsafe_code, reason = "a global allocator implements an unsafe trait; each call goes to `System` as it came")]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test at a time: the counts are the whole process's.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: usize = 1 << 20;

/// Host heap growth a refused call may cause: its report, its store's
/// bookkeeping, the error. A copy of what was refused would be tens of MiB.
const CALL_OVERHEAD: usize = 4 * MIB;

/// What may stay allocated after a call, such as caches warmed by it.
const LEFT_OVER: usize = MIB;

/// A runtime whose guests may grow to `memory` bytes, so that they can
/// build answers far over the output and host-call data limits.
fn runtime(memory: usize) -> Runtime {
    let limits = Limits { memory_bytes: memory, call_timeout: Duration::from_secs(20), ..test_limits() };
    runtime_with(limits, NetPolicy::default())
}

/// The host's heap: what is live now, and a fresh peak from here.
fn baseline() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// Runs `plugin` with `config` three times (the first warms what a call
/// caches), checking each failure with `check`; asserts that no call grew
/// the heap by more than [`CALL_OVERHEAD`] at its peak and that the heap is
/// back at its baseline once each failure is dropped.
async fn refused_within_budget(
    runtime: &Runtime,
    plugin: &Plugin,
    config: &str,
    grants: &[&str],
    check: impl Fn(&PluginError),
) {
    let failure = runtime.execute(plugin, invocation(ada(), grants), config).await.unwrap_err();
    check(&failure.error);
    drop(failure);
    for round in 1..=2 {
        let before = baseline();
        let failure = runtime.execute(plugin, invocation(ada(), grants), config).await.unwrap_err();
        let peak = PEAK.load(Ordering::Relaxed) - before;
        check(&failure.error);
        drop(failure);
        let after = LIVE.load(Ordering::Relaxed).saturating_sub(before);
        assert!(peak < CALL_OVERHEAD, "round {round}: the call grew the host's heap by {} KiB at its peak", peak >> 10);
        assert!(after < LEFT_OVER, "round {round}: {} KiB stayed allocated after the call", after >> 10);
    }
}

/// Regression: a 50 MB answer was lifted into the host (+130 MiB) before
/// the output limit refused it. The limit is now the lifting budget: the
/// answer is refused from its length, and nothing of it is copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_output_is_refused_from_its_length_before_it_is_copied() {
    let _alone = ALONE.lock().await;
    let runtime = runtime(96 * MIB);
    let plugin = runtime.load(guests::OVERSIZED_OUTPUT).await.unwrap();
    let config = json!({"bytes": 50_000_000}).to_string();
    refused_within_budget(&runtime, &plugin, &config, &[], |error| {
        assert!(matches!(error, PluginError::OutputTooLarge { size: None, limit } if *limit == MIB), "{error:?}");
        assert!(error.to_string().contains("before it was copied"), "{error}");
    })
    .await;
}

/// A host call's arguments are held to what is left of the host-call data
/// budget the same way: a 40 MiB template is refused from its length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_40_mib_host_call_is_refused_from_its_length_before_it_is_copied() {
    let _alone = ALONE.lock().await;
    let runtime = runtime(128 * MIB);
    let plugin = runtime.load(guests::HOST_CALLER).await.unwrap();
    let config = json!({"call": "render-large", "count": 40 * MIB}).to_string();
    let limit = runtime.limits().host_data_bytes;
    refused_within_budget(&runtime, &plugin, &config, &["render-template"], |error| {
        assert!(matches!(error, PluginError::HostDataLimit { limit: l } if *l == limit), "{error:?}");
    })
    .await;
}

/// Regression: a million empty host calls grew serve from 101 to 299 MiB
/// and were never given back. The count is capped: the report holds at most
/// the limit's calls, and the heap is back at its baseline after the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_host_calls_leaves_a_capped_report_and_the_heap_at_its_baseline() {
    let _alone = ALONE.lock().await;
    let runtime = runtime(32 * MIB);
    let plugin = runtime.load(guests::CALL_FLOOD).await.unwrap();
    let limit = runtime.limits().host_calls;
    let failure = runtime.execute(&plugin, invocation(ada(), &["render-template"]), "{}").await.unwrap_err();
    assert!(matches!(failure.error, PluginError::HostCallLimit { limit: l } if l == limit), "{:?}", failure.error);
    assert!(failure.report.host_calls.len() <= limit, "{} host calls in the report", failure.report.host_calls.len());
    drop(failure);
    refused_within_budget(&runtime, &plugin, "{}", &["render-template"], |error| {
        assert!(matches!(error, PluginError::HostCallLimit { .. }), "{error:?}");
    })
    .await;
}
