//! The lease-based claim of due actions, on both backends.

use std::collections::HashSet;
use std::time::Duration;

use stepwise::engagement::{ActionStatus, DeferralReason};
use stepwise::store::{ActionCompletion, StoreError};
use stepwise_tests::db::{action, at, fixture, for_each_backend, t0};

const LEASE: Duration = Duration::from_secs(60);

fn done() -> ActionCompletion {
    ActionCompletion {
        status: ActionStatus::Completed,
        result: Some("done".into()),
        output: Some(serde_json::json!({"ok": true})),
        completed_by: None,
        opt_out: false,
        deferral_reason: None,
        counts_attempt: false,
        plugin_version: Some("1.0.0".into()),
    }
}

#[tokio::test]
async fn only_current_due_unleased_future_actions_are_claimed() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        let first = action(&mut tx, &f.enrollment, 0, at(5), true).await.unwrap();
        action(&mut tx, &f.enrollment, 1, at(1), false).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.next_due_at().await.unwrap(), Some(at(5)));
        assert!(store.claim_due_actions(at(4), 10, LEASE).await.unwrap().is_empty(), "not yet due");
        let claimed = store.claim_due_actions(at(5), 10, LEASE).await.unwrap();
        assert_eq!(claimed.len(), 1, "the projected step is not current");
        assert_eq!(claimed[0].id, first.id);
        assert_eq!(claimed[0].lease_expires_at, at(6));
        assert!(store.claim_due_actions(at(5), 10, LEASE).await.unwrap().is_empty(), "leased");
        // The scheduler's next wake-up is the lease expiry.
        assert_eq!(store.next_due_at().await.unwrap(), Some(at(6)));
    })
    .await;
}

#[tokio::test]
async fn an_expired_lease_makes_the_action_claimable_again_and_the_stale_token_loses() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        let a = action(&mut tx, &f.enrollment, 0, t0(), true).await.unwrap();
        tx.commit().await.unwrap();
        let crashed = store.claim_due_actions(t0(), 1, LEASE).await.unwrap().remove(0);
        let second = store.claim_due_actions(at(2), 1, LEASE).await.unwrap().remove(0);
        assert_eq!(second.id, a.id);
        assert_ne!(second.lease_token, crashed.lease_token);

        let mut tx = store.begin().await.unwrap();
        let error = tx.complete_action(&a.id, Some(&crashed.lease_token), &done(), at(2)).await.unwrap_err();
        assert!(matches!(error, StoreError::LeaseLost(ref id) if *id == a.id), "{error}");
        let error = tx
            .reschedule_action(&a.id, Some(&crashed.lease_token), Some(at(9)), None, None, false, at(2))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::LeaseLost(_)), "{error}");
        // A user cannot act on it while a live lease exists either.
        let error = tx.complete_action(&a.id, None, &done(), at(2)).await.unwrap_err();
        assert!(matches!(error, StoreError::LeaseLost(_)), "{error}");

        let completed = tx.complete_action(&a.id, Some(&second.lease_token), &done(), at(2)).await.unwrap();
        assert_eq!(completed.status, ActionStatus::Completed);
        assert_eq!(completed.completed_at, Some(at(2)));
        assert!(!completed.current && completed.lease_token.is_none());
        assert_eq!(completed.output, Some(serde_json::json!({"ok": true})));
        // Completing twice with the same token fails too: the lease is gone.
        let error = tx.complete_action(&a.id, Some(&second.lease_token), &done(), at(2)).await.unwrap_err();
        assert!(matches!(error, StoreError::LeaseLost(_)), "{error}");
    })
    .await;
}

#[tokio::test]
async fn reschedule_activate_and_send_attempts_check_the_lease() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        let a = action(&mut tx, &f.enrollment, 0, t0(), true).await.unwrap();
        tx.commit().await.unwrap();
        let claim = store.claim_due_actions(t0(), 1, LEASE).await.unwrap().remove(0);
        let mut tx = store.begin().await.unwrap();
        let attempted = tx.record_send_attempt(&a.id, &claim.lease_token, at(0)).await.unwrap();
        assert_eq!((attempted.attempts, attempted.send_attempted_at), (1, Some(t0())));
        let later = tx
            .reschedule_action(
                &a.id,
                Some(&claim.lease_token),
                Some(at(30)),
                None,
                Some(DeferralReason::OutsideBusinessHours),
                false,
                t0(),
            )
            .await
            .unwrap();
        assert_eq!(later.due_at, Some(at(30)));
        assert_eq!(later.deferral_reason, Some(DeferralReason::OutsideBusinessHours));
        assert!(later.lease_token.is_none());
        assert_eq!(later.send_attempted_at, Some(t0()), "an unconfirmed attempt is kept");
        tx.commit().await.unwrap();
        assert_eq!(store.next_due_at().await.unwrap(), Some(at(30)));

        let claim = store.claim_due_actions(at(30), 1, LEASE).await.unwrap().remove(0);
        let mut tx = store.begin().await.unwrap();
        let active = tx.activate_action(&a.id, Some(&claim.lease_token), true, at(30)).await.unwrap();
        assert_eq!(active.status, ActionStatus::Active);
        assert!(active.show_on_engage && active.skip_criteria_evaluated && active.deferral_reason.is_none());
        assert_eq!(tx.engage_actions("usr_nobody").await.unwrap().len(), 0);
        // From the Engage view, a user completes it without a lease.
        tx.complete_action(&a.id, None, &done(), at(31)).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.next_due_at().await.unwrap(), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_get_the_same_action() {
    for_each_backend(|store| async move {
        // 40 enrollments with one due current action each.
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        for i in 0..40 {
            let contact = stepwise::crm::Contact {
                first_name: format!("c{i}"),
                contact_type: "Clients".into(),
                ..Default::default()
            };
            let contact = tx.create_contact(&f.account, &contact, t0()).await.unwrap();
            let new = stepwise::store::NewEnrollment {
                contact_id: contact.id,
                sequence_id: f.sequence.clone(),
                version: 1,
                initiated_by: None,
                status: stepwise::engagement::EnrollmentStatus::Running,
                event_date: None,
            };
            let enrollment = tx.create_enrollment(&f.account, &new, t0()).await.unwrap();
            action(&mut tx, &enrollment.id, 0, t0(), true).await.unwrap();
        }
        tx.commit().await.unwrap();
        let claimers: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let batch = store.claim_due_actions(at(1), 3, LEASE).await.unwrap();
                        if batch.is_empty() {
                            return mine;
                        }
                        mine.extend(batch.into_iter().map(|c| c.id));
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for claimer in claimers {
            all.extend(claimer.await.unwrap());
        }
        let distinct: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 40, "every action claimed once");
        assert_eq!(distinct.len(), 40, "no action claimed twice");
    })
    .await;
}

#[tokio::test]
async fn a_lease_given_back_makes_the_action_claimable_at_once_and_a_stale_token_gives_nothing_back() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        let a = action(&mut tx, &f.enrollment, 0, t0(), true).await.unwrap();
        tx.commit().await.unwrap();
        let first = store.claim_due_actions(t0(), 1, LEASE).await.unwrap().remove(0);

        let mut tx = store.begin().await.unwrap();
        let given = tx.release_leases(&[(&a.id, "lse_stale")], at(1)).await.unwrap();
        assert!(given.is_empty(), "a token that does not hold the lease gives nothing back");
        let given = tx.release_leases(&[(&a.id, &first.lease_token)], at(1)).await.unwrap();
        assert_eq!(given, HashSet::from([a.id.clone()]));
        tx.commit().await.unwrap();

        let again = store.claim_due_actions(at(1), 1, LEASE).await.unwrap();
        assert_eq!(again.len(), 1, "claimable before the first lease would have expired");
        assert_ne!(again[0].lease_token, first.lease_token);
        let mut tx = store.begin().await.unwrap();
        let error = tx.complete_action(&a.id, Some(&first.lease_token), &done(), at(1)).await.unwrap_err();
        assert!(matches!(error, StoreError::LeaseLost(_)), "{error}");
    })
    .await;
}
