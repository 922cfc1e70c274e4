//! Timing modes (SPEC §3) and the continuous scheduler, on both backends.

use serde_json::json;
use stepwise::engagement::{
    ActionStatus, Activation, EnrollmentOutcome, EnrollmentStatus, Relative, StepTiming, TimingMode,
};
use stepwise::engine::EnrollRequest;
use stepwise_tests::db::{at, for_each_backend, t0};
use stepwise_tests::scenario::{DAY, HOUR, MINUTE, World, settings, step, task, trivial};

#[tokio::test]
async fn after_previous_recomputes_the_following_due_dates_when_an_action_completes() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0), task(DAY), task(2 * DAY)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        let projected: Vec<_> = w.actions(&e.id).await.iter().map(|a| a.due_at).collect();
        assert_eq!(projected, vec![Some(t0()), Some(at(24 * 60)), Some(at(72 * 60))], "projected from enrollment");
        w.run().await;
        let first = w.action(&e.id, 0).await;
        assert_eq!(first.status, ActionStatus::Active);

        // The rep completes step 1 two days late; steps 2 and 3 move with it.
        w.run_to(48 * 60).await;
        assert_eq!(w.action(&e.id, 1).await.status, ActionStatus::Future, "never due before step 1 is done");
        w.engine.complete_action(&w.account, &first.id, &w.agent, "none").await.unwrap();
        let dues: Vec<_> = w.actions(&e.id).await.iter().skip(1).map(|a| a.due_at).collect();
        assert_eq!(dues, vec![Some(at(72 * 60)), Some(at(120 * 60))]);
        let enrollment = w.enrollment(&e.id).await;
        assert_eq!((enrollment.status, enrollment.current_step), (EnrollmentStatus::Running, 1));
        assert_eq!(enrollment.next_action_at, Some(at(72 * 60)));
        assert_eq!(enrollment.last_action_completed_at, Some(at(48 * 60)));
        w.run_to(72 * 60 - 1).await;
        assert_eq!(w.action(&e.id, 1).await.status, ActionStatus::Future);
        w.run_to(72 * 60).await;
        assert_eq!(w.action(&e.id, 1).await.status, ActionStatus::Active);
    })
    .await;
}

#[tokio::test]
async fn from_start_steps_with_the_same_offset_run_one_at_a_time_in_displayed_order() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let offset = |ms| step("trivial", json!({}), Activation::Automatic, StepTiming::Offset { ms });
        let seq =
            w.sequence(TimingMode::FromStart, settings(), vec![offset(HOUR), offset(HOUR), offset(30 * MINUTE)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        let dues: Vec<_> = w.actions(&e.id).await.iter().map(|a| a.due_at).collect();
        assert_eq!(dues, vec![Some(at(60)), Some(at(60)), Some(at(30))]);
        // The third step's date passes first, but it waits its turn.
        w.run_to(45).await;
        assert!(w.actions(&e.id).await.iter().all(|a| a.status == ActionStatus::Future));
        w.run_to(60).await;
        let actions = w.actions(&e.id).await;
        assert!(actions.iter().all(|a| a.status == ActionStatus::Completed), "{actions:?}");
        let order: Vec<_> = actions.iter().map(|a| (a.step, a.completed_at)).collect();
        assert_eq!(order, vec![(0, Some(at(60))), (1, Some(at(60))), (2, Some(at(60)))]);
        let enrollment = w.enrollment(&e.id).await;
        assert_eq!(
            (enrollment.status, enrollment.outcome),
            (EnrollmentStatus::Completed, Some(EnrollmentOutcome::Neutral))
        );
    })
    .await;
}

#[tokio::test]
async fn from_event_skips_late_before_steps_and_clearing_the_date_cancels_the_rest() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let event = |ms, relative| {
            step("task", json!({"title": "prepare"}), Activation::Manual, StepTiming::Event { ms, relative })
        };
        let steps = vec![event(7 * DAY, Relative::Before), event(DAY, Relative::Before), event(HOUR, Relative::After)];
        let seq = w.sequence(TimingMode::FromEvent, settings(), steps).await;
        let contact = w.contact(|_| {}).await;

        let missing = w.engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap_err();
        assert!(missing.to_string().contains("event_date"), "{missing}");

        let request = EnrollRequest { event_date: Some(at(3 * 24 * 60)), ..w.request(&contact, &seq) };
        let e = w.engine.enroll(&w.account, &request).await.unwrap();
        let actions = w.actions(&e.id).await;
        assert_eq!(actions[0].status, ActionStatus::Skipped, "seven days before is already past");
        assert_eq!(actions[0].result.as_deref(), Some("event_date_passed"));
        assert!(actions[1].current);
        assert_eq!(actions[1].due_at, Some(at(2 * 24 * 60)));
        assert_eq!(actions[2].due_at, Some(at(3 * 24 * 60 + 60)));

        w.run_to(2 * 24 * 60).await;
        assert_eq!(w.action(&e.id, 1).await.status, ActionStatus::Active);
        let cleared = w.engine.set_event_date(&w.account, &e.id, None, &w.agent).await.unwrap();
        assert_eq!(cleared.status, EnrollmentStatus::Cancelled);
        let actions = w.actions(&e.id).await;
        assert!(actions[1..].iter().all(|a| a.status == ActionStatus::Skipped && !a.current), "{actions:?}");
        assert!(w.engage(&w.agent).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn weeks_of_automatic_steps_run_in_virtual_time() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), (0..6).map(|_| trivial(3 * DAY)).collect()).await;
        let mut enrollments = Vec::new();
        for i in 0..5 {
            let contact = w.contact(|c| c.email = Some(format!("c{i}@example.com"))).await;
            enrollments.push(w.enroll(&contact, &seq).await.id);
        }
        let handled = w.run_to(18 * 24 * 60).await;
        assert_eq!(handled, 30, "five enrollments of six steps");
        for e in enrollments {
            let enrollment = w.enrollment(&e).await;
            assert_eq!(enrollment.status, EnrollmentStatus::Completed);
            let done: Vec<_> = w.actions(&e).await.iter().map(|a| a.completed_at).collect();
            let expected: Vec<_> = (1..=6).map(|k| Some(at(k * 3 * 24 * 60))).collect();
            assert_eq!(done, expected, "each step exactly on its due time");
        }
    })
    .await;
}
