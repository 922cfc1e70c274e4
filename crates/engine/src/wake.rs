//! Wake-ups across hosts. A host that made work due, queued messages or
//! stored an add-on announces it (PostgreSQL `NOTIFY`, at most one per kind
//! of news every [`DEBOUNCE`] however many changes it made; work only when
//! something falls due before the hosts' next poll), and every other host
//! listening wakes at once: its scheduler claims, its dispatcher
//! delivers, it loads the add-on. The poll every `max_idle` stays as the
//! fallback: a host whose listening connection is lost looks at the
//! database at once when it listens again (what was announced meanwhile is
//! gone) and reconnects after a growing, jittered pause, so that hosts cut
//! off together do not all come back in the same instant. On SQLite there
//! is no channel and hosts poll.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Engine;
use stepwise_store::new_id;

/// How long announcements of one kind are gathered into one.
const DEBOUNCE: Duration = Duration::from_millis(10);

/// The longest pause before listening again.
const MAX_RECONNECT: Duration = Duration::from_secs(10);

/// What a host announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum News {
    /// Actions may be due sooner than other hosts think.
    Due = 0,
    /// Messages were queued.
    Outbox = 1,
    /// An add-on was stored.
    AddOns = 2,
}

impl News {
    const ALL: [News; 3] = [News::Due, News::Outbox, News::AddOns];

    fn as_str(self) -> &'static str {
        match self {
            News::Due => "due",
            News::Outbox => "outbox",
            News::AddOns => "add-ons",
        }
    }
}

/// This host's name in announcements, the kinds of news waiting for their
/// announcement, and whether it hears the other hosts.
#[derive(Debug)]
pub(crate) struct Announcer {
    host: String,
    pending: [AtomicBool; 3],
    hearing: AtomicBool,
}

impl Default for Announcer {
    fn default() -> Self {
        Self { host: new_id("hst"), pending: Default::default(), hearing: AtomicBool::new(false) }
    }
}

impl Engine {
    /// Tells the other hosts `news`, gathered with what else this host has
    /// to say of its kind within [`DEBOUNCE`].
    pub(crate) fn announce(&self, news: News) {
        let announcer = &self.inner.announcer;
        // Nobody hears on SQLite: no task, no look at the next due time.
        if !self.store().announces() || announcer.pending[news as usize].swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            announcer.pending[news as usize].store(false, Ordering::Release);
            return;
        };
        let engine = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(DEBOUNCE).await;
            let announcer = &engine.inner.announcer;
            announcer.pending[news as usize].store(false, Ordering::Release);
            if news == News::Due && !engine.due_within_horizon().await {
                return;
            }
            let payload = format!("{} {}", news.as_str(), announcer.host);
            if let Err(error) = engine.store().announce(&payload).await {
                tracing::debug!(%error, "could not tell the other hosts; they find the work when they poll");
            }
        });
    }

    /// Whether work falls due before every host looks anyway: the earliest
    /// due time (or out-of-office return) is within `max_idle`, the longest any scheduler sleeps. A
    /// change that made work due only later (an enrollment whose first step
    /// is days away, a contact edit that released nothing) needs no
    /// announcement; when unsure, it is made.
    async fn due_within_horizon(&self) -> bool {
        let horizon = chrono::Duration::from_std(self.inner.config.max_idle).unwrap_or(chrono::Duration::MAX);
        match self.next_wakeup().await {
            Ok(Some(next)) => next <= self.now().checked_add_signed(horizon).unwrap_or(next),
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// Listens for other hosts' announcements until the task is dropped.
    /// Returns at once on SQLite.
    pub(crate) async fn listen_forever(&self) {
        let mut failures = 0;
        loop {
            match self.store().listen().await {
                Ok(None) => return,
                Ok(Some(mut listener)) => {
                    if failures > 0 {
                        tracing::info!("listening to the other hosts again");
                    }
                    failures = 0;
                    self.inner.announcer.hearing.store(true, Ordering::Release);
                    // What was announced while nobody listened is gone.
                    self.heard_everything();
                    loop {
                        match listener.next().await {
                            Ok(payload) => self.heard(&payload),
                            Err(error) => {
                                self.inner.announcer.hearing.store(false, Ordering::Release);
                                tracing::warn!(%error, "stopped hearing the other hosts; polling until listening again");
                                break;
                            }
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot listen to the other hosts; polling meanwhile"),
            }
            failures += 1;
            tokio::time::sleep(reconnect_pause(failures)).await;
        }
    }

    /// Whether this host hears the other hosts' announcements now.
    pub(crate) fn hears_other_hosts(&self) -> bool {
        self.inner.announcer.hearing.load(Ordering::Acquire)
    }

    /// Acts on another host's announcement; its own are ignored.
    fn heard(&self, payload: &str) {
        let Some((kind, host)) = payload.split_once(' ') else { return };
        if host == self.inner.announcer.host {
            return;
        }
        match News::ALL.into_iter().find(|n| n.as_str() == kind) {
            Some(news) => self.act_on(news),
            None => tracing::debug!(payload, "an announcement of another kind"),
        }
    }

    fn heard_everything(&self) {
        for news in News::ALL {
            self.act_on(news);
        }
    }

    fn act_on(&self, news: News) {
        match news {
            News::Due => self.inner.wake.notify_one(),
            News::Outbox => self.inner.outbox_wake.notify_one(),
            News::AddOns => {
                let engine = self.clone();
                tokio::spawn(async move {
                    if let Err(error) = engine.sync_add_ons().await {
                        tracing::warn!(%error, "could not load the add-ons another host stored");
                    }
                });
            }
        }
    }
}

/// The pause before listening again after `failures` failures in a row:
/// 100 ms doubling up to [`MAX_RECONNECT`], jittered.
fn reconnect_pause(failures: u32) -> Duration {
    jittered(Duration::from_millis(100).saturating_mul(1 << failures.clamp(1, 10).saturating_sub(1)).min(MAX_RECONNECT))
}

/// Between half and all of `full`, at random, so that hosts doing the same
/// thing on the same schedule spread out.
pub(crate) fn jittered(full: Duration) -> Duration {
    // The standard library's hasher keys are random per process and call.
    let random = std::collections::hash_map::RandomState::new().hash_one(full);
    full.mul_f64(0.5 + 0.5 * (random % 1_000) as f64 / 1_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_pauses_grow_to_a_bound_and_are_jittered() {
        for failures in 1..20 {
            let full = Duration::from_millis(100).saturating_mul(1 << (failures.clamp(1, 10) - 1)).min(MAX_RECONNECT);
            let pause = reconnect_pause(failures);
            assert!(pause >= full / 2 && pause <= full, "{failures}: {pause:?} of {full:?}");
        }
        let pauses: std::collections::HashSet<Duration> = (0..20).map(|_| reconnect_pause(5)).collect();
        assert!(pauses.len() > 1, "jittered");
    }
}
