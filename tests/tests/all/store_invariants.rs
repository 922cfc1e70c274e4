//! The invariants the schema enforces, each on both backends: one current
//! action per enrollment, one unfinished enrollment per contact and sequence,
//! unique outbox keys, foreign keys, enum CHECKs, acyclic hierarchies and
//! immutable versions.

use stepwise::crm::Company;
use stepwise::engagement::{Enrollment, EnrollmentStatus, OutboxChannel, PauseReason};
use stepwise::store::{NewEnrollment, NewOutboxMessage, StoreError};
use stepwise_tests::db::{action, at, fixture, for_each_backend, t0, two_steps};

fn conflict(result: Result<impl std::fmt::Debug, StoreError>, constraint: &str) {
    match result {
        Err(StoreError::Conflict { constraint: c, what }) => {
            assert_eq!(c, constraint, "{what}");
            assert!(!what.is_empty());
        }
        other => panic!("expected a conflict on {constraint}, got {other:?}"),
    }
}

#[tokio::test]
async fn two_current_actions_in_one_enrollment_are_refused() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        action(&mut tx, &f.enrollment, 0, t0(), true).await.unwrap();
        tx.commit().await.unwrap();
        // A failed statement aborts a PostgreSQL transaction, so each
        // refusal below ends its transaction.
        let mut tx = store.begin().await.unwrap();
        conflict(action(&mut tx, &f.enrollment, 1, t0(), true).await, "actions_one_current_per_enrollment");
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        // Not current: any number may be projected.
        let next = action(&mut tx, &f.enrollment, 1, t0(), false).await.unwrap();
        // Making the next one current clears the previous first.
        tx.set_current_action(&f.enrollment, Some(&next.id), at(1)).await.unwrap();
        let actions = tx.actions_of_enrollment(&f.enrollment).await.unwrap();
        assert_eq!(actions.iter().filter(|a| a.current).count(), 1);
        assert!(actions[1].current);
        conflict(action(&mut tx, &f.enrollment, 1, t0(), false).await, "actions_enrollment_id_step_key");
    })
    .await;
}

#[tokio::test]
async fn a_contact_is_never_enrolled_twice_in_a_sequence_while_unfinished() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        let again = NewEnrollment {
            contact_id: f.contact.clone(),
            sequence_id: f.sequence.clone(),
            version: 1,
            initiated_by: None,
            status: EnrollmentStatus::Pending,
            event_date: None,
        };
        conflict(tx.create_enrollment(&f.account, &again, at(1)).await, "enrollments_one_open_per_contact");
        drop(tx);

        // Once the first has ended, the contact may be enrolled again.
        let mut tx = store.begin().await.unwrap();
        let mut first: Enrollment = tx.enrollment(&f.enrollment).await.unwrap();
        first.status = EnrollmentStatus::Cancelled;
        first.ended_at = Some(at(2));
        tx.save_enrollment(&first, t0()).await.unwrap();
        let second = tx.create_enrollment(&f.account, &again, at(3)).await.unwrap();
        assert_eq!(second.status, EnrollmentStatus::Pending);
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        // And reopening the first would make two unfinished ones.
        first.status = EnrollmentStatus::Running;
        conflict(tx.save_enrollment(&first, t0()).await, "enrollments_one_open_per_contact");
    })
    .await;
}

#[tokio::test]
async fn an_outbox_idempotency_key_is_queued_once() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        let message = NewOutboxMessage {
            account_id: f.account.clone(),
            action_id: None,
            channel: OutboxChannel::Email,
            payload: serde_json::json!({"to": "ada@example.com"}),
            idempotency_key: "act_1:0".into(),
        };
        tx.enqueue_message(&message, t0()).await.unwrap();
        conflict(tx.enqueue_message(&message, at(1)).await, "outbox_idempotency_key_key");
    })
    .await;
}

#[tokio::test]
async fn references_to_missing_or_foreign_records_are_refused() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        let other = tx.create_account("Other", None, t0()).await.unwrap().id;
        // The fixture's user belongs to another account: the account-scoped
        // foreign key refuses it as owner.
        let company = Company { name: "Initech".into(), owner_id: Some(f.user.clone()), ..Company::default() };
        let error = tx.create_company(&other, &company, t0()).await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid(_)), "{error}");
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        let error = action(&mut tx, "enr_missing", 0, t0(), true).await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid(_)), "{error}");
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        let error = tx.create_account("Orphan", Some("acc_missing"), t0()).await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid(_)), "{error}");
    })
    .await;
}

#[tokio::test]
async fn enum_columns_refuse_unknown_values_and_inconsistent_states() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        let mut enrollment = tx.enrollment(&f.enrollment).await.unwrap();
        // A paused enrollment must say why.
        enrollment.status = EnrollmentStatus::Paused;
        let error = tx.save_enrollment(&enrollment, t0()).await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid(_)), "{error}");
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        enrollment.pause_reason = Some(PauseReason::OutOfOffice);
        tx.save_enrollment(&enrollment, t0()).await.unwrap();
        tx.commit().await.unwrap();
        // Values outside the CHECK lists, written behind the store's back.
        let mut tx = store.begin().await.unwrap();
        action(&mut tx, &f.enrollment, 0, t0(), true).await.unwrap();
        tx.commit().await.unwrap();
        for sql in [
            "UPDATE actions SET status = 'done'",
            "UPDATE actions SET deferral_reason = 'because'",
            "UPDATE actions SET activation = 'sometimes'",
            "UPDATE enrollments SET status = 'finished'",
            "UPDATE enrollments SET outcome = 'positive'",
            "UPDATE users SET role = 'owner'",
            "UPDATE sequences SET timing_mode = 'whenever'",
            "UPDATE actions SET lease_token = 'lse_1'",
        ] {
            let error = store.execute_unchecked(sql).await.unwrap_err();
            assert!(matches!(error, StoreError::Invalid(_)), "{sql}: {error}");
        }
        // Every variant the code knows is accepted by the CHECK lists.
        for status in stepwise::engagement::ActionStatus::ALL {
            store.execute_unchecked(&format!("UPDATE actions SET status = '{status}'")).await.unwrap();
        }
        for reason in stepwise::engagement::DeferralReason::ALL {
            store.execute_unchecked(&format!("UPDATE actions SET deferral_reason = '{reason}'")).await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn account_and_company_hierarchies_refuse_cycles() {
    for_each_backend(|store| async move {
        let mut tx = store.begin().await.unwrap();
        let top = tx.create_account("Top", None, t0()).await.unwrap().id;
        let mid = tx.create_account("Mid", Some(&top), t0()).await.unwrap().id;
        let leaf = tx.create_account("Leaf", Some(&mid), t0()).await.unwrap().id;
        tx.commit().await.unwrap();
        for (id, parent) in [(&top, &leaf), (&top, &mid), (&mid, &mid)] {
            let mut tx = store.begin().await.unwrap();
            let error = tx.set_account_parent(id, Some(parent)).await.unwrap_err();
            assert!(matches!(error, StoreError::Invalid(_)), "{error}");
        }
        let mut tx = store.begin().await.unwrap();
        tx.set_account_parent(&leaf, Some(&top)).await.unwrap();
        assert_eq!(tx.sub_accounts(&top).await.unwrap().len(), 2);

        let a = tx.create_company(&top, &Company { name: "A".into(), ..Company::default() }, t0()).await.unwrap();
        let b = Company { name: "B".into(), parent_id: Some(a.id.clone()), ..Company::default() };
        let b = tx.create_company(&top, &b, t0()).await.unwrap();
        let c = Company { name: "C".into(), parent_id: Some(b.id.clone()), ..Company::default() };
        let c = tx.create_company(&top, &c, t0()).await.unwrap();
        let cyclic = Company { parent_id: Some(c.id.clone()), ..a.clone() };
        let error = tx.update_company(&top, &cyclic, t0()).await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid(_)), "{error}");
        let moved = Company { parent_id: Some(a.id.clone()), ..c.clone() };
        tx.update_company(&top, &moved, t0()).await.unwrap();
        assert_eq!(tx.company(&top, &c.id).await.unwrap().parent_id.as_deref(), Some(a.id.as_str()));
    })
    .await;
}

#[tokio::test]
async fn a_published_version_is_immutable() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        let second = tx.publish_version(&f.account, &f.sequence, &two_steps()[..1], None, at(1)).await.unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(tx.latest_version(&f.sequence).await.unwrap().unwrap().steps.len(), 1);
        assert_eq!(tx.sequence_version(&f.sequence, 1).await.unwrap().steps, two_steps());
        tx.commit().await.unwrap();
        let error = store.execute_unchecked("UPDATE sequence_versions SET steps = '[]'").await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid(ref m) if m.contains("immutable")), "{error}");
    })
    .await;
}
