//! What the scheduler claims, and how much: claims sized to what this host
//! can begin soon, and shared fairly between accounts while a backlog lasts.
//!
//! Without a backlog a claim takes every due action, oldest first, and
//! nobody waits. With one (the last claim was full), oldest first would
//! make every other account wait behind one account's burst: a
//! 100k-contact enrollment would hold back another account's due action
//! until the whole burst was done. So while a backlog lasts, each claim
//! takes a share of every account with due work ([`Store::claim_shares`]),
//! each account's oldest first, and fills what is left oldest first.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use stepwise_domain::engagement::ClaimedAction;
use stepwise_store::{Result, Store};

/// How far ahead a host claims work: what it can begin within this long.
/// A host holds about two claims at once (the batch running and the next,
/// claimed while it runs), so a host that dies leaves about twice this much
/// of its own work for the others to take up once its lease expires.
pub const CLAIM_HORIZON: Duration = Duration::from_millis(250);

/// How long the list of accounts with due work is used before it is read
/// again: an account whose work falls due meanwhile waits this long at most
/// for its first share (the fill may take it sooner).
const ACCOUNTS_FRESH: Duration = Duration::from_millis(100);

/// The scheduler's claim state.
#[derive(Debug)]
pub(crate) struct Claims {
    /// Actions the next claim takes ([`Claims::fit`]).
    size: AtomicU32,
    /// The most a claim takes, however fast the steps.
    max: u32,
    /// Whether the last claim was full: more was due than it took.
    backlog: AtomicBool,
    /// The accounts with due work, oldest waiting first, and when they
    /// were read.
    accounts: Mutex<Option<(Instant, Vec<String>)>>,
}

impl Claims {
    /// Claims of at most `max` actions, the first one `first`.
    pub(crate) fn new(first: u32, max: u32) -> Claims {
        Claims {
            size: AtomicU32::new(first.clamp(1, max.max(1))),
            max: max.max(1),
            backlog: AtomicBool::new(false),
            accounts: Mutex::new(None),
        }
    }

    /// Leases the next claim's worth of due actions at `now` for `lease`:
    /// all oldest first when that is everything due, else a share of each
    /// account with due work first, in turns, and the rest oldest first.
    pub(crate) async fn claim(&self, store: &Store, now: DateTime<Utc>, lease: Duration) -> Result<Vec<ClaimedAction>> {
        let size = self.size.load(Ordering::Relaxed);
        let accounts =
            if self.backlog.load(Ordering::Relaxed) { self.accounts_due(store, now).await? } else { Vec::new() };
        let mut claimed = if accounts.len() < 2 {
            Vec::new()
        } else {
            store.claim_shares(now, &accounts[..accounts.len().min(size as usize)], size, lease).await?
        };
        let room = size.saturating_sub(u32::try_from(claimed.len()).unwrap_or(u32::MAX));
        if room > 0 {
            claimed.extend(store.claim_due_actions(now, room, lease).await?);
        }
        let full = claimed.len() >= size as usize;
        if full && !self.backlog.swap(true, Ordering::Relaxed) {
            // A backlog begins: the accounts are read afresh for it.
            *self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        } else if !full {
            self.backlog.store(false, Ordering::Relaxed);
        }
        Ok(claimed)
    }

    /// The accounts with due work, read at most every [`ACCOUNTS_FRESH`].
    async fn accounts_due(&self, store: &Store, now: DateTime<Utc>) -> Result<Vec<String>> {
        {
            let cached = self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((read, accounts)) = cached.as_ref()
                && read.elapsed() < ACCOUNTS_FRESH
            {
                return Ok(accounts.clone());
            }
        }
        let accounts = store.accounts_with_due_actions(now, self.max).await?;
        *self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), accounts.clone()));
        Ok(accounts)
    }

    /// Sizes the next claims to what this host can begin within about
    /// [`CLAIM_HORIZON`], from how long a wave of `concurrency` actions took
    /// in a batch of `claimed` that took `took`: fast steps are claimed a
    /// full batch at a time (one claim for many), slow ones (webhooks to a
    /// slow receiver) a few waves at a time, so that work this host cannot
    /// begin soon is left for other hosts to claim.
    pub(crate) fn fit(&self, concurrency: usize, claimed: usize, took: Duration) {
        let concurrency = concurrency.max(1);
        let waves = claimed.div_ceil(concurrency).max(1);
        let wave = took / u32::try_from(waves).unwrap_or(u32::MAX);
        let fit = if wave.is_zero() { usize::MAX } else { (CLAIM_HORIZON.as_nanos() / wave.as_nanos()) as usize };
        let size = u32::try_from(fit.max(1).saturating_mul(concurrency)).unwrap_or(u32::MAX).min(self.max).max(1);
        self.size.store(size, Ordering::Relaxed);
    }
}
