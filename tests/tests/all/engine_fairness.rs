//! Fairness between accounts, on both backends: while one account has a
//! backlog, every claim takes a share of each account with due work, so
//! another account's due action does not wait for the backlog to clear.

use std::time::Duration;

use stepwise::engagement::{ActionStatus, TimingMode};
use stepwise::engine::EngineConfig;
use stepwise_tests::db::for_each_backend;
use stepwise_tests::scenario::{MINUTE, World, settings, trivial};

/// Enrolls `n` new contacts of `w`'s account in `sequence`, a millisecond
/// apart, and returns the enrollments' ids.
async fn enroll_many(w: &World, sequence: &str, n: usize) -> Vec<String> {
    let mut enrollments = Vec::with_capacity(n);
    for i in 0..n {
        let contact = w.contact(|c| c.email = Some(format!("c{i}@{}.example.com", w.account))).await;
        enrollments.push(w.enroll(&contact, sequence).await.id);
        w.clock.advance(chrono::Duration::milliseconds(1));
    }
    enrollments
}

async fn completed(w: &World, enrollments: &[String]) -> usize {
    let mut done = 0;
    for e in enrollments {
        if w.action(e, 0).await.status == ActionStatus::Completed {
            done += 1;
        }
    }
    done
}

#[tokio::test]
async fn another_accounts_due_action_is_claimed_while_one_account_has_a_backlog() {
    for_each_backend(|store| async move {
        // Claims of four actions at first, then of up to eight.
        let config = EngineConfig { batch_size: 8, concurrency: 4, ..EngineConfig::default() };
        let busy = World::with_config(store.clone(), config.clone()).await;
        let other = World::with_config(store.clone(), config).await;
        let burst = busy.sequence(TimingMode::AfterPrevious, settings(), vec![trivial(0)]).await;
        let burst = enroll_many(&busy, &burst, 40).await;
        // The other account's action falls due a minute after the burst's.
        other.clock.set(busy.now() + chrono::Duration::milliseconds(MINUTE));
        let one = other.sequence(TimingMode::AfterPrevious, settings(), vec![trivial(0)]).await;
        let one = enroll_many(&other, &one, 1).await;
        busy.clock.set(other.now());

        // The first claim is everything due as far as it knows: the oldest.
        assert_eq!(busy.engine.tick().await.unwrap(), 4);
        assert_eq!(completed(&busy, &burst).await, 4);
        assert_eq!(completed(&other, &one).await, 0);

        // It was full: the next claim is shared, and the other account's
        // action is in it although 36 older ones wait.
        busy.engine.tick().await.unwrap();
        assert_eq!(completed(&other, &one).await, 1, "the other account's action ran in the second claim");
        assert!(completed(&busy, &burst).await <= 12);

        // The backlog is worked off as before.
        busy.run().await;
        assert_eq!(completed(&busy, &burst).await, 40);
    })
    .await;
}

#[tokio::test]
async fn a_shared_claim_takes_each_accounts_oldest_in_turns() {
    for_each_backend(|store| async move {
        let a = World::new(store.clone()).await;
        let b = World::new(store.clone()).await;
        let later = World::new(store.clone()).await;
        let sequence = a.sequence(TimingMode::AfterPrevious, settings(), vec![trivial(0)]).await;
        let oldest = enroll_many(&a, &sequence, 3).await;
        b.clock.set(a.now() + chrono::Duration::milliseconds(MINUTE));
        let sequence = b.sequence(TimingMode::AfterPrevious, settings(), vec![trivial(0)]).await;
        let newer = enroll_many(&b, &sequence, 2).await;
        // An account whose work is not due yet has no share.
        let sequence = later.sequence(TimingMode::AfterPrevious, settings(), vec![trivial(60 * MINUTE)]).await;
        enroll_many(&later, &sequence, 2).await;

        let now = b.now();
        let accounts = store.accounts_with_due_actions(now, 10).await.unwrap();
        assert_eq!(accounts, vec![a.account.clone(), b.account.clone()], "oldest waiting first");
        assert_eq!(store.accounts_with_due_actions(now, 1).await.unwrap(), vec![a.account.clone()]);

        let claimed = store.claim_shares(now, &accounts, 4, Duration::from_secs(60)).await.unwrap();
        let order: Vec<(String, String)> =
            claimed.iter().map(|c| (c.account_id.clone(), c.enrollment_id.clone())).collect();
        assert_eq!(
            order,
            vec![
                (a.account.clone(), oldest[0].clone()),
                (b.account.clone(), newer[0].clone()),
                (a.account.clone(), oldest[1].clone()),
                (b.account.clone(), newer[1].clone()),
            ],
            "two each, each account's oldest first, in turns"
        );
        // What a share took is leased: the next shared claim takes the rest.
        let rest = store.claim_shares(now, &accounts, 4, Duration::from_secs(60)).await.unwrap();
        assert_eq!(rest.iter().map(|c| c.enrollment_id.clone()).collect::<Vec<_>>(), vec![oldest[2].clone()]);
    })
    .await;
}
