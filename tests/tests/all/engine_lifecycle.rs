//! Results, failures, stop and resume, remove, drip queues, chaining,
//! auto-enrolment, ownership rules, versions and sequence states (SPEC §2,
//! §5), on both backends.

use serde_json::json;
use stepwise::crm::{Company, ContactKind, User};
use stepwise::engagement::{
    ActionStatus, Editor, EnrollmentOutcome, EnrollmentStatus, Level, OwnerRule, PauseReason, SequenceSettings,
    SequenceState, TimingMode,
};
use stepwise::engine::{Disposition, EngineError, EnrollMany};
use stepwise::store::Timeline;
use stepwise_tests::db::{at, for_each_backend};
use stepwise_tests::scenario::{DAY, HOUR, World, scripted, settings, task, trivial};

#[tokio::test]
async fn results_continue_or_end_the_enrollment_with_their_outcome() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0), task(0), task(0)]).await;
        for (result, outcome) in [("positive", EnrollmentOutcome::Positive), ("negative", EnrollmentOutcome::Negative)]
        {
            let contact = w.contact(|c| c.email = Some(format!("{result}@example.com"))).await;
            let e = w.enroll(&contact, &seq).await;
            w.run().await;
            let first = w.action(&e.id, 0).await;
            let bad = w.engine.complete_action(&w.account, &first.id, &w.agent, "maybe").await.unwrap_err();
            assert!(matches!(bad, EngineError::Invalid(ref m) if m.contains("none, positive, negative")), "{bad}");
            let done = w.engine.complete_action(&w.account, &first.id, &w.agent, "none").await.unwrap();
            assert_eq!((done.status, done.completed_by.as_deref()), (ActionStatus::Completed, Some(w.agent.as_str())));
            w.run().await;
            let second = w.action(&e.id, 1).await;
            w.engine.complete_action(&w.account, &second.id, &w.agent, result).await.unwrap();
            let enrollment = w.enrollment(&e.id).await;
            assert_eq!((enrollment.status, enrollment.outcome), (EnrollmentStatus::Completed, Some(outcome)));
            assert_eq!(w.action(&e.id, 2).await.status, ActionStatus::Skipped, "no unperformed action outlives it");
            let again = w.engine.complete_action(&w.account, &second.id, &w.agent, "none").await.unwrap_err();
            assert!(matches!(again, EngineError::InvalidState(_)), "{again}");
        }
        // A plugin's own ending result.
        let won = w
            .sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"result": "won"}), 0), task(0)])
            .await;
        let contact = w.contact(|c| c.email = Some("won@example.com".into())).await;
        let e = w.enroll(&contact, &won).await;
        w.run().await;
        let enrollment = w.enrollment(&e.id).await;
        assert_eq!(
            (enrollment.status, enrollment.outcome),
            (EnrollmentStatus::Completed, Some(EnrollmentOutcome::Positive))
        );
    })
    .await;
}

#[tokio::test]
async fn a_failed_automatic_step_pauses_the_enrollment_and_resuming_tries_again() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w
            .sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"outcome": "fail"}), 0), task(0)])
            .await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        w.run().await;
        let enrollment = w.enrollment(&e.id).await;
        assert_eq!((enrollment.status, enrollment.pause_reason), (EnrollmentStatus::Paused, Some(PauseReason::Error)));
        let action = w.action(&e.id, 0).await;
        assert_eq!(action.status, ActionStatus::Failed);
        assert_eq!(action.output.as_ref().unwrap()["error"], "scripted failure");
        let events = w.events(&e.id).await;
        let failure = events.iter().find(|e| e.kind.as_str() == "action.failed").expect("an error event");
        assert_eq!(failure.level, Level::Error);
        w.run_to(60).await;
        assert_eq!(w.action(&e.id, 0).await.status, ActionStatus::Failed, "nothing runs while paused");

        w.engine.resume(&w.account, &e.id, &w.agent).await.unwrap();
        w.run().await;
        assert_eq!(w.action(&e.id, 0).await.attempts, 2, "tried again, failed again");
        assert_eq!(w.enrollment(&e.id).await.pause_reason, Some(PauseReason::Error));
    })
    .await;
}

#[tokio::test]
async fn a_step_asking_to_retry_is_rescheduled_until_attempts_run_out() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq =
            w.sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"outcome": "retry"}), 0)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        w.run().await;
        let action = w.action(&e.id, 0).await;
        assert_eq!((action.status, action.attempts, action.due_at), (ActionStatus::Future, 1, Some(at(1))));
        w.run_to(10).await;
        let action = w.action(&e.id, 0).await;
        assert_eq!((action.status, action.attempts), (ActionStatus::Failed, 5), "the default allows five attempts");
        assert_eq!(w.enrollment(&e.id).await.pause_reason, Some(PauseReason::Error));
    })
    .await;
}

#[tokio::test]
async fn stop_disposes_of_the_open_action_and_resume_continues() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0), task(HOUR), task(HOUR)]).await;
        for (i, disposition) in [Disposition::Complete, Disposition::Skip, Disposition::Keep].into_iter().enumerate() {
            let contact = w.contact(|c| c.email = Some(format!("s{i}@example.com"))).await;
            let e = w.enroll(&contact, &seq).await;
            w.run().await;
            let stopped = w.engine.stop(&w.account, &e.id, &w.agent, disposition).await.unwrap();
            assert_eq!((stopped.status, stopped.pause_reason), (EnrollmentStatus::Paused, Some(PauseReason::Manual)));
            let first = w.action(&e.id, 0).await;
            let expected = match disposition {
                Disposition::Complete => ActionStatus::Completed,
                Disposition::Skip => ActionStatus::Skipped,
                Disposition::Keep => ActionStatus::Disabled,
            };
            assert_eq!(first.status, expected);
            assert!(w.engage(&w.agent).await.iter().all(|a| a.enrollment_id != e.id), "off Engage while stopped");
            let again = w.engine.stop(&w.account, &e.id, &w.agent, disposition).await.unwrap_err();
            assert!(matches!(again, EngineError::InvalidState(_)));

            let resumed = w.engine.resume(&w.account, &e.id, &w.agent).await.unwrap();
            assert_eq!(resumed.status, EnrollmentStatus::Running);
            w.run_to(i64::try_from(i).unwrap() * 200 + 60).await;
            let current = if disposition == Disposition::Keep { 0 } else { 1 };
            assert_eq!(w.action(&e.id, current).await.status, ActionStatus::Active, "{disposition:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn remove_deletes_the_enrollment_and_its_history_and_cancel_ends_it() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq =
            w.sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"send": true}), 0), task(0)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        w.run().await;
        w.engine.remove(&w.account, &e.id, &w.agent).await.unwrap();
        let mut tx = w.store().begin_read().await.unwrap();
        assert!(tx.enrollment(&e.id).await.is_err());
        assert!(tx.actions_of_enrollment(&e.id).await.unwrap().is_empty());
        assert!(tx.events(Timeline::Enrollment(&e.id)).await.unwrap().is_empty());
        drop(tx);
        let missing = w.engine.remove(&w.account, &e.id, &w.agent).await.unwrap_err();
        assert!(matches!(missing, EngineError::NotFound { .. }));

        let e = w.enroll(&contact, &seq).await;
        let cancelled = w.engine.cancel(&w.account, &e.id, &w.agent).await.unwrap();
        assert_eq!(cancelled.status, EnrollmentStatus::Cancelled);
        assert!(matches!(w.engine.cancel(&w.account, &e.id, &w.agent).await, Err(EngineError::InvalidState(_))));
        assert!(matches!(w.engine.cancel("acc_other", &e.id, &w.agent).await, Err(EngineError::NotFound { .. })));
    })
    .await;
}

#[tokio::test]
async fn drip_sequences_queue_enrollments_and_start_the_oldest_first() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let drip = SequenceSettings { drip_limit: Some(1), ..settings() };
        let seq = w.sequence(TimingMode::AfterPrevious, drip, vec![task(0)]).await;
        let other = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0)]).await;
        let mut enrollments = Vec::new();
        for i in 0..3 {
            let contact = w.contact(|c| c.email = Some(format!("d{i}@example.com"))).await;
            w.clock.advance(chrono::Duration::minutes(1));
            enrollments.push((contact.clone(), w.enroll(&contact, &seq).await));
        }
        let statuses: Vec<_> = enrollments.iter().map(|(_, e)| e.status).collect();
        assert_eq!(statuses, vec![EnrollmentStatus::Pending, EnrollmentStatus::Queued, EnrollmentStatus::Queued]);
        // A queued contact cannot be enrolled anywhere.
        let error = w.engine.enroll(&w.account, &w.request(&enrollments[1].0, &other)).await.unwrap_err();
        assert!(matches!(error, EngineError::QueuedElsewhere { .. }), "{error}");

        w.run().await;
        let first = w.action(&enrollments[0].1.id, 0).await;
        w.engine.complete_action(&w.account, &first.id, &w.agent, "positive").await.unwrap();
        assert_eq!(w.enrollment(&enrollments[1].1.id).await.status, EnrollmentStatus::Pending, "the oldest starts");
        assert_eq!(w.enrollment(&enrollments[2].1.id).await.status, EnrollmentStatus::Queued);
        w.run().await;
        assert_eq!(w.action(&enrollments[1].1.id, 0).await.status, ActionStatus::Active);
        w.engine.cancel(&w.account, &enrollments[1].1.id, &w.agent).await.unwrap();
        assert_eq!(w.enrollment(&enrollments[2].1.id).await.status, EnrollmentStatus::Pending);
    })
    .await;
}

#[tokio::test]
async fn a_completed_enrollment_chains_into_the_next_sequence() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let next = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0)]).await;
        let chained = SequenceSettings { next_sequence_id: Some(next.clone()), ..settings() };
        let first = w.sequence(TimingMode::AfterPrevious, chained, vec![trivial(0)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &first).await;
        w.run().await;
        assert_eq!(w.enrollment(&e.id).await.status, EnrollmentStatus::Completed);
        let mut tx = w.store().begin_read().await.unwrap();
        let all = tx.enrollments_of_contact(&contact).await.unwrap();
        let there = all.iter().find(|x| x.sequence_id == next).expect("enrolled in the next sequence");
        assert_eq!(there.initiated_by.as_deref(), Some(w.agent.as_str()));
        assert!(w.event_kinds(&e.id).await.contains(&"enrollment.chained".to_owned()));
    })
    .await;
}

#[tokio::test]
async fn new_leads_are_enrolled_by_lead_source_and_get_the_sales_cycle() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let auto =
            SequenceSettings { lead_source: Some("webinar".into()), sales_cycle: Some("nurture".into()), ..settings() };
        let seq = w.sequence(TimingMode::AfterPrevious, auto, vec![task(0)]).await;
        let lead = w.contact(|c| c.lead_source = Some("webinar".into())).await;
        let mut tx = w.store().begin_read().await.unwrap();
        let enrolled = tx.enrollments_of_contact(&lead).await.unwrap();
        drop(tx);
        assert_eq!(enrolled.len(), 1);
        assert_eq!(enrolled[0].sequence_id, seq);
        assert_eq!(w.get_contact(&lead).await.sales_cycle.as_deref(), Some("nurture"));

        // Contacts (not leads) and other sources are not.
        let contact = w
            .contact(|c| {
                c.kind = ContactKind::Contact;
                c.lead_source = Some("webinar".into());
                c.email = Some("c@example.com".into());
            })
            .await;
        let other = w
            .contact(|c| {
                c.lead_source = Some("trade show".into());
                c.email = Some("o@example.com".into());
            })
            .await;
        let mut tx = w.store().begin_read().await.unwrap();
        assert!(tx.enrollments_of_contact(&contact).await.unwrap().is_empty());
        assert!(tx.enrollments_of_contact(&other).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn owner_rules_pick_the_initiator_a_user_the_contact_owner_or_the_company_owner() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let named = w.user(User { name: "Nia".into(), email: "nia@example.com".into(), ..User::default() }).await;
        let boss = w.user(User { name: "Bo".into(), email: "bo@example.com".into(), ..User::default() }).await;
        let initiator = w.user(User { name: "Ian".into(), email: "ian@example.com".into(), ..User::default() }).await;
        let mut tx = w.store().begin().await.unwrap();
        let company = Company { name: "Initech".into(), owner_id: Some(boss.clone()), ..Company::default() };
        let company = tx.create_company(&w.account, &company, w.now()).await.unwrap().id;
        tx.commit().await.unwrap();
        let rules = [
            (OwnerRule::Initiator, initiator.clone()),
            (OwnerRule::SpecificUser { user_id: named.clone() }, named.clone()),
            (OwnerRule::ContactOwner, w.agent.clone()),
            (OwnerRule::CompanyOwner, boss.clone()),
        ];
        let steps = rules
            .iter()
            .map(|(rule, _)| {
                let mut s = task(0);
                s.owner = rule.clone();
                s
            })
            .collect();
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), steps).await;
        let contact = w.contact(|c| c.company_id = Some(company.clone())).await;
        let request =
            stepwise::engine::EnrollRequest { initiated_by: Some(initiator.clone()), ..w.request(&contact, &seq) };
        let e = w.engine.enroll(&w.account, &request).await.unwrap();
        for (step, (rule, owner)) in rules.iter().enumerate() {
            w.run().await;
            let action = w.action(&e.id, i64::try_from(step).unwrap()).await;
            assert_eq!(action.owner_id.as_deref(), Some(owner.as_str()), "{rule:?}");
            assert_eq!(w.engage(owner).await.len(), 1, "{rule:?}");
            w.engine.complete_action(&w.account, &action.id, owner, "none").await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn running_enrollments_keep_their_version_until_migrated() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0), task(DAY)]).await;
        let contact = w.contact(|_| {}).await;
        let old = w.enroll(&contact, &seq).await;
        w.run().await;
        let v2 = w.publish(&seq, vec![task(0), trivial(HOUR), task(HOUR)]).await;
        assert_eq!(v2, 2);
        assert_eq!(w.enrollment(&old.id).await.version, 1);
        assert_eq!(w.actions(&old.id).await.len(), 2, "its steps did not change underneath it");

        let newcomer = w.contact(|c| c.email = Some("n@example.com".into())).await;
        let fresh = w.enroll(&newcomer, &seq).await;
        assert_eq!((fresh.version, w.actions(&fresh.id).await.len()), (2, 3));

        let first = w.action(&old.id, 0).await;
        w.engine.complete_action(&w.account, &first.id, &w.agent, "none").await.unwrap();
        let moved = w.engine.migrate(&w.account, &old.id, 2, &w.agent).await.unwrap();
        assert_eq!((moved.version, moved.current_step), (2, 1));
        let actions = w.actions(&old.id).await;
        let plugins: Vec<_> = actions.iter().map(|a| (a.step, a.plugin_id.as_str(), a.status)).collect();
        assert_eq!(
            plugins,
            vec![
                (0, "task", ActionStatus::Completed),
                (1, "trivial", ActionStatus::Future),
                (2, "task", ActionStatus::Future)
            ]
        );
        assert!(actions[1].current);
        w.run_to(60).await;
        assert_eq!(w.action(&old.id, 2).await.status, ActionStatus::Future, "an hour after the migrated step ran");
        w.run_to(120).await;
        assert_eq!(w.action(&old.id, 2).await.status, ActionStatus::Active);
        let error = w.engine.migrate(&w.account, &old.id, 9, &w.agent).await.unwrap_err();
        assert!(matches!(error, EngineError::NotFound { .. }), "{error}");
    })
    .await;
}

#[tokio::test]
async fn pausing_a_sequence_disables_its_unperformed_actions_until_resumed() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0), task(0)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        w.run().await;
        w.engine.set_sequence_state(&w.account, &seq, SequenceState::Paused, &Editor::user(&w.agent)).await.unwrap();
        assert!(w.actions(&e.id).await.iter().all(|a| a.status == ActionStatus::Disabled));
        assert!(w.engage(&w.agent).await.is_empty());
        let other = w.contact(|c| c.email = Some("p@example.com".into())).await;
        assert!(matches!(
            w.engine.enroll(&w.account, &w.request(&other, &seq)).await,
            Err(EngineError::InvalidState(_))
        ));
        w.engine.set_sequence_state(&w.account, &seq, SequenceState::Active, &Editor::user(&w.agent)).await.unwrap();
        w.run().await;
        assert_eq!(w.action(&e.id, 0).await.status, ActionStatus::Active);
        let archived = w
            .engine
            .set_sequence_state(&w.account, &seq, SequenceState::Archived, &Editor::user(&w.agent))
            .await
            .unwrap_err();
        assert!(archived.to_string().contains("unfinished"), "{archived}");
        let back = w
            .engine
            .set_sequence_state(&w.account, &seq, SequenceState::Draft, &Editor::user(&w.agent))
            .await
            .unwrap_err();
        assert!(back.to_string().contains("cannot go from active to draft"), "{back}");
    })
    .await;
}

#[tokio::test]
async fn a_contact_is_never_enrolled_twice_in_a_sequence_at_once() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        let error = w.engine.enroll(&w.account, &w.request(&contact, &seq)).await.unwrap_err();
        assert!(matches!(error, EngineError::AlreadyEnrolled { .. }), "{error}");
        assert!(error.to_string().contains("already enrolled"));
        w.engine.cancel(&w.account, &e.id, &w.agent).await.unwrap();
        w.enroll(&contact, &seq).await;
    })
    .await;
}

#[tokio::test]
async fn many_contacts_are_enrolled_at_once_under_the_same_rules_as_one() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let drip = SequenceSettings { drip_limit: Some(2), sales_cycle: Some("nurture".into()), ..settings() };
        let seq = w.sequence(TimingMode::AfterPrevious, drip, vec![task(HOUR), task(DAY)]).await;
        let other = w.sequence(TimingMode::AfterPrevious, settings(), vec![task(0)]).await;
        let mut contacts = Vec::new();
        for i in 0..5 {
            contacts.push(w.contact(|c| c.email = Some(format!("m{i}@example.com"))).await);
        }
        // Already in the sequence, and waiting in another drip queue.
        w.enroll(&contacts[0], &seq).await;
        let elsewhere = w
            .sequence(TimingMode::AfterPrevious, SequenceSettings { drip_limit: Some(1), ..settings() }, vec![task(0)])
            .await;
        w.enroll(&contacts[1], &elsewhere).await;
        w.enroll(&contacts[4], &elsewhere).await;
        let ids = vec![
            contacts[0].clone(),
            contacts[2].clone(),
            "con_missing".to_owned(),
            contacts[3].clone(),
            contacts[2].clone(),
            contacts[4].clone(),
            contacts[1].clone(),
        ];
        let request = EnrollMany {
            sequence_id: seq.clone(),
            contact_ids: ids,
            initiated_by: Some(w.agent.clone()),
            event_date: None,
        };
        let results = w.engine.enroll_many(&w.account, &request).await.unwrap();
        let described: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(e) => e.status.to_string(),
                Err(EngineError::AlreadyEnrolled { .. }) => "already enrolled".into(),
                Err(EngineError::QueuedElsewhere { .. }) => "queued elsewhere".into(),
                Err(EngineError::NotFound { what, .. }) => format!("{what} not found"),
                Err(other) => other.to_string(),
            })
            .collect();
        // One slot of two is taken by the first contact: the next one
        // enrolled takes the other, the one after waits its turn; a
        // contact named twice is enrolled once; one running elsewhere (not
        // queued) may be enrolled.
        assert_eq!(
            described,
            [
                "already enrolled",
                "pending",
                "contact not found",
                "queued",
                "already enrolled",
                "queued elsewhere",
                "queued"
            ],
        );
        let made = results[1].as_ref().unwrap();
        assert_eq!(made.current_step, 0);
        assert_eq!(made.next_action_at, Some(w.now() + chrono::Duration::milliseconds(HOUR)));
        assert_eq!(w.enrollment(&made.id).await, *made, "the enrollment answered is the one stored");
        let first = w.action(&made.id, 0).await;
        assert_eq!((first.status, first.due_at), (ActionStatus::Future, made.next_action_at));
        assert_eq!(w.action(&made.id, 1).await.due_at, Some(w.now() + chrono::Duration::milliseconds(HOUR + DAY)));
        assert_eq!(w.get_contact(&contacts[2]).await.sales_cycle.as_deref(), Some("nurture"));
        assert!(w.event_kinds(&made.id).await.contains(&"enrollment.created".to_owned()));
        let queued = results[3].as_ref().unwrap();
        assert_eq!((queued.status, queued.queued_at), (EnrollmentStatus::Queued, Some(w.now())));

        // A sequence that takes no enrollments is every contact's error.
        w.engine.set_sequence_state(&w.account, &other, SequenceState::Paused, &w.editor()).await.unwrap();
        let request = EnrollMany {
            sequence_id: other,
            contact_ids: contacts[2..4].to_vec(),
            initiated_by: None,
            event_date: None,
        };
        let results = w.engine.enroll_many(&w.account, &request).await.unwrap();
        assert_eq!(results.len(), 2);
        for result in results {
            let error = result.unwrap_err();
            assert!(matches!(error, EngineError::InvalidState(_)), "{error}");
        }
    })
    .await;
}

#[tokio::test]
async fn an_import_creates_contacts_set_wise_under_the_same_rules_as_one() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let drip = SequenceSettings { lead_source: Some("webinar".into()), drip_limit: Some(2), ..settings() };
        let seq = w.sequence(TimingMode::AfterPrevious, drip, vec![task(HOUR)]).await;
        let alan = w.user(User { name: "Alan".into(), email: "alan@example.com".into(), ..User::default() }).await;
        let lead = |name: &str, owner: &str| stepwise::crm::Contact {
            first_name: name.into(),
            owner_id: Some(owner.to_owned()),
            lead_source: Some("webinar".into()),
            ..Default::default()
        };
        let rows = vec![
            lead("Ann", &w.agent),
            stepwise::crm::Contact { contact_type: "Prospects".into(), ..lead("Bad type", &w.agent) },
            lead("Bad owner", "usr_missing"),
            stepwise::crm::Contact { company_id: Some("cmp_missing".into()), ..lead("Bad company", &w.agent) },
            lead("Ben", &alan),
            stepwise::crm::Contact { kind: ContactKind::Contact, ..lead("Cy", &w.agent) },
            lead("Di", &alan),
        ];
        let made = w.engine.create_contacts(&w.account, &rows, &w.editor()).await.unwrap();
        assert_eq!(made.len(), rows.len(), "a result per row, in order");
        let error = |row: usize| made[row].as_ref().err().map(ToString::to_string).unwrap_or_default();
        assert_eq!(error(1), "the account has no contact type named `Prospects`");
        assert!(error(2).contains("no user `usr_missing`"), "{}", error(2));
        assert!(error(3).contains("no company `cmp_missing`"), "{}", error(3));

        let ok = |row: usize| made[row].as_ref().unwrap();
        for row in [0, 4, 5, 6] {
            assert_eq!(ok(row).0.first_name, rows[row].first_name);
            assert_eq!(w.get_contact(&ok(row).0.id).await.contact_type, "Other", "the default type");
        }
        // Leads are enrolled, each initiated by its owner; the third waits
        // for a drip slot; a contact (not a lead) is not enrolled.
        let statuses: Vec<(EnrollmentStatus, Option<String>)> = [0, 4, 6]
            .iter()
            .map(|row| {
                let e = &ok(*row).1;
                assert_eq!(e.len(), 1, "row {row}");
                assert_eq!(e[0].sequence_id, seq);
                (e[0].status, e[0].initiated_by.clone())
            })
            .collect();
        assert_eq!(
            statuses,
            [
                (EnrollmentStatus::Pending, Some(w.agent.clone())),
                (EnrollmentStatus::Pending, Some(alan.clone())),
                (EnrollmentStatus::Queued, Some(alan.clone())),
            ]
        );
        assert!(ok(5).1.is_empty());

        // Each created contact has its event and its audit entry.
        let mut tx = w.store().begin_read().await.unwrap();
        for row in [0, 4, 5, 6] {
            let id = &ok(row).0.id;
            let events = tx.events(Timeline::Contact(id)).await.unwrap();
            assert!(events.iter().any(|e| e.kind.as_str() == "contact.created"), "row {row}");
            let filter = stepwise::store::AuditFilter { target_id: Some(id), ..Default::default() };
            let trail = tx.audit_trail(&w.account, &filter, None, 10).await.unwrap();
            assert_eq!(trail.len(), 1, "row {row}");
        }
    })
    .await;
}
