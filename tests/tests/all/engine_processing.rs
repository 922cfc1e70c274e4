//! The processing order of SPEC §4: every deferral reason, opt-outs, hold
//! and skip criteria, business hours, manual and automatic activation, the
//! duplicate-attempt failsafe and explain, on both backends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use serde_json::json;
use stepwise::crm::{AttributeValue, User};
use stepwise::engagement::{
    ActionStatus, BusinessHours, DeferralReason, EnrollmentStatus, OnUnmet, PluginAccount, SequenceSettings, TimingMode,
};
use stepwise::engine::EngineConfig;
use stepwise_tests::db::{at, for_each_backend, t0};
use stepwise_tests::scenario::{MINUTE, World, even, scripted, settings, task, trivial};

/// Runs a one-step sequence for a contact and returns the step's action.
async fn one_step(
    w: &World,
    step: stepwise::engagement::Step,
    contact: &str,
) -> (String, stepwise::engagement::Action) {
    let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![step, task(0)]).await;
    let e = w.enroll(contact, &seq).await;
    w.run().await;
    let action = w.action(&e.id, 0).await;
    (e.id, action)
}

#[tokio::test]
async fn a_manual_step_goes_on_its_owners_engage_view_and_an_automatic_one_runs() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let contact = w.contact(|_| {}).await;
        let (e, action) = one_step(&w, task(0), &contact).await;
        assert_eq!(action.status, ActionStatus::Active);
        assert!(action.show_on_engage);
        assert_eq!(action.owner_id.as_deref(), Some(w.agent.as_str()));
        assert_eq!(w.engage(&w.agent).await.iter().map(|a| a.id.clone()).collect::<Vec<_>>(), vec![action.id.clone()]);
        assert_eq!(w.enrollment(&e).await.status, EnrollmentStatus::Running);

        let other = w.contact(|c| c.email = Some("bob@example.com".into())).await;
        let (_, action) = one_step(&w, scripted(json!({}), 0), &other).await;
        assert_eq!(action.status, ActionStatus::Completed);
        assert!(!action.show_on_engage, "automatic actions never show on Engage");
        assert_eq!(action.result.as_deref(), Some("sent"));
    })
    .await;
}

#[tokio::test]
async fn each_requirement_defers_with_its_reason_and_is_re_evaluated_later() {
    for_each_backend(|store| async move {
        let config = EngineConfig { recheck_after: Duration::from_secs(600), ..EngineConfig::default() };
        let w = World::with_config(store, config).await;

        // The owner is inactive, then reactivated.
        let sleeper = w
            .user(User { name: "Sam".into(), email: "sam@example.com".into(), active: false, ..User::default() })
            .await;
        let contact = w.contact(|c| c.owner_id = Some(sleeper.clone())).await;
        let (e, action) = one_step(&w, task(0), &contact).await;
        assert_eq!(
            (action.status, action.deferral_reason),
            (ActionStatus::Future, Some(DeferralReason::OwnerInactive))
        );
        assert_eq!(action.recheck_at, Some(at(10)), "looked at again after recheck_after");
        assert_eq!(action.due_at, Some(t0()), "its due date stays");
        w.update_user(&sleeper, |u| u.active = true).await;
        w.run_to(10).await;
        assert_eq!(w.action(&e, 0).await.status, ActionStatus::Active, "re-evaluated and activated");

        // A delegate may not own actions.
        let delegate = w
            .user(User { name: "Dee".into(), email: "dee@example.com".into(), delegate: true, ..User::default() })
            .await;
        let contact = w
            .contact(|c| {
                c.owner_id = Some(delegate.clone());
                c.email = Some("d@example.com".into());
            })
            .await;
        let (_, action) = one_step(&w, task(0), &contact).await;
        assert_eq!(action.deferral_reason, Some(DeferralReason::DelegatedOwner));

        // Email steps need an address; automatic email from the rep's own
        // address needs it verified.
        own_addresses(&w).await;
        let contact = w.contact(|c| c.email = None).await;
        let (_, action) = one_step(&w, scripted(json!({}), 0), &contact).await;
        assert_eq!(action.deferral_reason, Some(DeferralReason::MissingEmail));
        let offline = w.user(User { name: "Off".into(), email: "off@example.com".into(), ..User::default() }).await;
        let contact = w
            .contact(|c| {
                c.owner_id = Some(offline.clone());
                c.email = Some("e@example.com".into());
            })
            .await;
        let (_, action) = one_step(&w, scripted(json!({}), 0), &contact).await;
        assert_eq!(action.deferral_reason, Some(DeferralReason::SenderNotConnected));

        // Legacy merge syntax in the step's config.
        let contact = w.contact(|c| c.email = Some("f@example.com".into())).await;
        let legacy = stepwise_tests::scenario::step(
            "task",
            json!({"title": "Call {!Contact.FirstName}"}),
            stepwise::engagement::Activation::Manual,
            stepwise::engagement::StepTiming::Delay { ms: 0 },
        );
        let (_, action) = one_step(&w, legacy, &contact).await;
        assert_eq!(action.deferral_reason, Some(DeferralReason::LegacyMergeSyntax));

        // An admin disables the plugin for the account.
        let mut tx = w.store().begin().await.unwrap();
        let off = PluginAccount {
            account_id: w.account.clone(),
            plugin_id: "scripted".into(),
            enabled: false,
            grants: json!({}),
            approved_capabilities: vec![],
        };
        tx.set_plugin_account(&off, t0()).await.unwrap();
        tx.commit().await.unwrap();
        let contact = w.contact(|c| c.email = Some("g@example.com".into())).await;
        let (e, action) = one_step(&w, scripted(json!({}), 0), &contact).await;
        assert_eq!(action.deferral_reason, Some(DeferralReason::PluginDisabled));
        let explained = w.engine.explain(&w.account, &action.id).await.unwrap();
        let check = explained.checks.iter().find(|c| c.name == "plugin_enabled").unwrap();
        assert!(!check.ok && check.answer.contains("disabled"), "{check:?}");
        let events = w.events(&e).await;
        let deferred = events.iter().filter(|e| e.kind.as_str() == "action.deferred").count();
        w.run_to(30).await;
        assert_eq!(
            w.events(&e).await.iter().filter(|e| e.kind.as_str() == "action.deferred").count(),
            deferred,
            "no event per re-check"
        );
    })
    .await;
}

#[tokio::test]
async fn text_steps_need_a_phone_number_and_skip_on_the_sms_opt_out() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let text = || {
            stepwise_tests::scenario::step(
                "texter",
                json!({}),
                stepwise::engagement::Activation::Automatic,
                stepwise::engagement::StepTiming::Delay { ms: 0 },
            )
        };
        let contact = w.contact(|c| c.phone = None).await;
        let (e, action) = one_step(&w, text(), &contact).await;
        assert_eq!((action.status, action.deferral_reason), (ActionStatus::Future, Some(DeferralReason::MissingPhone)));
        w.update_contact(&contact, |c| c.phone = Some("+15550199".into())).await;
        w.engine.reschedule_action(&w.account, &action.id, &w.agent, at(1)).await.unwrap();
        w.run_to(1).await;
        assert_eq!(w.action(&e, 0).await.status, ActionStatus::Completed);
        let sms = w.transport.delivered();
        assert_eq!((sms.len(), sms[0].channel), (1, stepwise::engagement::OutboxChannel::Sms));
        assert_eq!(sms[0].payload["to"], "+15550199");

        let quiet = w
            .contact(|c| {
                c.email = Some("quiet@example.com".into());
                c.opt_outs.sms = true;
            })
            .await;
        let (_, action) = one_step(&w, text(), &quiet).await;
        assert_eq!((action.status, action.opt_out), (ActionStatus::Skipped, true));
        assert_eq!(w.transport.delivered().len(), 1, "nothing texted to an opted-out contact");
    })
    .await;
}

#[tokio::test]
async fn an_opted_out_channel_skips_the_step_at_once() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let contact = w.contact(|c| c.opt_outs.email = true).await;
        let (e, action) = one_step(&w, scripted(json!({"send": true}), 0), &contact).await;
        assert_eq!(action.status, ActionStatus::Skipped);
        assert!(action.opt_out);
        assert_eq!(action.deferral_reason, Some(DeferralReason::OptedOut));
        assert_eq!(w.action(&e, 1).await.status, ActionStatus::Active, "the sequence moves on");
        assert!(w.transport.delivered().is_empty());
    })
    .await;
}

#[tokio::test]
async fn hold_criteria_wait_and_skip_criteria_are_evaluated_once() {
    for_each_backend(|store| async move {
        let config = EngineConfig { recheck_after: Duration::from_secs(600), ..EngineConfig::default() };
        let w = World::with_config(store, config).await;
        let n = |v: f64| {
            move |c: &mut stepwise::crm::Contact| {
                c.attributes.insert("n".into(), AttributeValue::Number(v));
            }
        };

        // Hold: the sequence does not advance until the criterion holds.
        let mut held = task(0);
        held.criteria = vec![even(OnUnmet::Hold)];
        let contact = w.contact(n(1.0)).await;
        let (e, action) = one_step(&w, held, &contact).await;
        assert_eq!(
            (action.status, action.deferral_reason),
            (ActionStatus::Future, Some(DeferralReason::CriteriaUnmet))
        );
        assert!(!w.action(&e, 1).await.current);
        w.update_contact(&contact, n(2.0)).await;
        w.run_to(10).await;
        assert_eq!(w.action(&e, 0).await.status, ActionStatus::Active);

        // Skip: unmet at processing time, the step is skipped.
        let mut skipping = task(0);
        skipping.criteria = vec![even(OnUnmet::Skip)];
        let contact = w
            .contact(|c| {
                c.email = Some("s@example.com".into());
                c.attributes.insert("n".into(), AttributeValue::Number(3.0));
            })
            .await;
        let (e, action) = one_step(&w, skipping.clone(), &contact).await;
        assert_eq!((action.status, action.result.as_deref()), (ActionStatus::Skipped, Some("criteria_unmet")));
        assert_eq!(w.action(&e, 1).await.status, ActionStatus::Active);

        // Met once, the action stays on Engage even when it stops holding…
        let contact = w
            .contact(|c| {
                c.email = Some("t@example.com".into());
                c.attributes.insert("n".into(), AttributeValue::Number(4.0));
            })
            .await;
        let (e, action) = one_step(&w, skipping, &contact).await;
        assert_eq!(action.status, ActionStatus::Active);
        w.update_contact(&contact, n(5.0)).await;
        w.run_to(60).await;
        assert_eq!(w.action(&e, 0).await.status, ActionStatus::Active, "skip criteria are evaluated once");
        // …until show-on-Engage is set back to false: then it is evaluated again.
        let reset = w.engine.hide_from_engage(&w.account, &action.id, &w.agent).await.unwrap();
        assert!(!reset.show_on_engage && !reset.skip_criteria_evaluated);
        w.run().await;
        assert_eq!(w.action(&e, 0).await.status, ActionStatus::Skipped);
    })
    .await;
}

#[tokio::test]
async fn a_changed_contact_makes_its_criteria_holds_due_at_once_and_nothing_else() {
    for_each_backend(|store| async move {
        // The default re-check: 15 minutes.
        let w = World::new(store).await;
        let n = |v: f64| {
            move |c: &mut stepwise::crm::Contact| {
                c.attributes.insert("n".into(), AttributeValue::Number(v));
            }
        };
        let mut held = task(0);
        held.criteria = vec![even(OnUnmet::Hold)];
        let contact = w.contact(n(1.0)).await;
        let (e, action) = one_step(&w, held.clone(), &contact).await;
        assert_eq!((action.deferral_reason, action.recheck_at), (Some(DeferralReason::CriteriaUnmet), Some(at(15))));
        assert_eq!(action.due_at, Some(t0()), "a hold keeps the due date");
        // Held too, but for another contact.
        let other = w
            .contact(|c| {
                c.email = Some("bob@example.com".into());
                n(1.0)(c);
            })
            .await;
        let (held_elsewhere, _) = one_step(&w, held, &other).await;
        // The same contact, deferred for another reason: 04:00 in New York.
        let hours = BusinessHours {
            timezone: "America/New_York".into(),
            weekdays: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        };
        let business = SequenceSettings { business_hours: Some(hours), ..settings() };
        let seq = w.sequence(TimingMode::AfterPrevious, business, vec![trivial(0)]).await;
        let closed = w.enroll(&contact, &seq).await.id;
        w.run().await;
        let waiting = w.action(&closed, 0).await;
        assert_eq!(waiting.deferral_reason, Some(DeferralReason::OutsideBusinessHours));

        // A change that still does not meet the criterion releases the hold
        // all the same: the predicate, not the store, decides.
        w.clock.set(at(1));
        w.update_contact(&contact, n(3.0)).await;
        let released = w.action(&e, 0).await;
        assert_eq!(
            (released.status, released.deferral_reason, released.due_at, released.recheck_at),
            (ActionStatus::Future, Some(DeferralReason::CriteriaUnmet), Some(t0()), None)
        );
        assert_eq!(w.action(&held_elsewhere, 0).await.recheck_at, Some(at(15)), "another contact's hold waits");
        assert_eq!(w.action(&closed, 0).await.due_at, waiting.due_at, "other deferrals keep their due date");
        assert_eq!(w.run().await, 1, "only the released action is processed");
        let still = w.action(&e, 0).await;
        assert_eq!(
            (still.due_at, still.recheck_at),
            (Some(t0()), Some(at(16))),
            "still odd: held until the next re-check"
        );
        let explained = w.engine.explain(&w.account, &still.id).await.unwrap();
        assert_eq!(explained.recheck_at, Some(at(16)));
        assert!(explained.summary.contains("checked again at"), "{}", explained.summary);
        let due = explained.checks.iter().find(|c| c.name == "due").unwrap();
        assert!(due.ok && due.answer.contains("it was due at"), "{due:?}");

        // Met: the step goes on the Engage view with no time passing.
        w.update_contact(&contact, n(2.0)).await;
        w.run().await;
        assert_eq!(w.now(), at(1));
        assert_eq!(w.action(&e, 0).await.status, ActionStatus::Active);
        let elsewhere = w.action(&held_elsewhere, 0).await;
        assert_eq!((elsewhere.status, elsewhere.recheck_at), (ActionStatus::Future, Some(at(15))));
    })
    .await;
}

#[tokio::test]
async fn a_step_that_changes_the_contact_releases_the_contacts_holds_in_other_sequences() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let mut held = task(0);
        held.criteria = vec![even(OnUnmet::Hold)];
        let contact = w
            .contact(|c| {
                c.attributes.insert("n".into(), AttributeValue::Number(1.0));
            })
            .await;
        let (e, action) = one_step(&w, held, &contact).await;
        assert_eq!(action.recheck_at, Some(at(15)));
        let marks = scripted(json!({"set": {"stage": "won"}}), 5 * MINUTE);
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![marks]).await;
        let marking = w.enroll(&contact, &seq).await.id;
        w.run_to(5).await;
        assert_eq!(w.action(&marking, 0).await.status, ActionStatus::Completed);
        assert_eq!(w.get_contact(&contact).await.attributes["stage"], AttributeValue::Text("won".into()));
        // Re-checked at 5, when the step changed the contact, instead of at 15.
        assert_eq!(w.action(&e, 0).await.recheck_at, Some(at(20)));
    })
    .await;
}

#[tokio::test]
async fn automatic_steps_wait_for_business_hours_in_the_sequences_timezone() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let hours = BusinessHours {
            timezone: "America/New_York".into(),
            weekdays: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        };
        let settings = SequenceSettings { business_hours: Some(hours), ..settings() };
        let seq = w.sequence(TimingMode::AfterPrevious, settings, vec![scripted(json!({}), 0), task(0)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        w.run().await;
        // t0 is 09:00 UTC, 04:00 in New York: the step waits for 09:00 there.
        let action = w.action(&e.id, 0).await;
        assert_eq!(action.deferral_reason, Some(DeferralReason::OutsideBusinessHours));
        assert_eq!(action.due_at, Some(at(5 * 60)));
        w.run_to(5 * 60 - 1).await;
        assert_eq!(w.action(&e.id, 0).await.status, ActionStatus::Future);
        w.run_to(5 * 60).await;
        let action = w.action(&e.id, 0).await;
        assert_eq!((action.status, action.completed_at), (ActionStatus::Completed, Some(at(5 * 60))));
        // Manual steps are not bound by business hours.
        assert_eq!(w.action(&e.id, 1).await.status, ActionStatus::Active);
    })
    .await;
}

/// A send whose attempt is on record but was never confirmed is parked
/// for a person, who is told, and resolves it: sent again, or marked sent.
#[tokio::test]
async fn an_unconfirmed_send_attempt_is_never_repeated_and_waits_for_a_person() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq =
            w.sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"send": true}), 0), task(0)]).await;
        let mut enrollments = Vec::new();
        for i in 0..3 {
            let contact = w.contact(|c| c.email = Some(format!("p{i}@example.com"))).await;
            enrollments.push(w.enroll(&contact, &seq).await.id);
        }
        // A host claims the actions, records their attempts and dies before
        // the outcome is written.
        let claimed = w.store().claim_due_actions(t0(), 10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(claimed.len(), 3);
        let mut tx = w.store().begin().await.unwrap();
        for action in &claimed {
            tx.record_send_attempt(&action.id, &action.lease_token, t0()).await.unwrap();
        }
        tx.commit().await.unwrap();
        // Their leases expire; the next host holds them instead of sending
        // again.
        w.run_to(2).await;
        let mut parked = Vec::new();
        for e in &enrollments {
            let action = w.action(e, 0).await;
            assert_eq!(
                (action.status, action.deferral_reason),
                (ActionStatus::Future, Some(DeferralReason::DuplicateAttempt))
            );
            assert_eq!(action.due_at, None, "parked until a person decides");
            parked.push(action.id);
        }
        assert!(w.transport.delivered().is_empty());
        let explained = w.engine.explain(&w.account, &parked[0]).await.unwrap();
        assert!(explained.summary.contains("never confirmed"), "{}", explained.summary);

        // The owner and the admins are told, once per action.
        let notifications = || async {
            let mut tx = w.store().begin_read().await.unwrap();
            tx.events_of_kind(&w.account, stepwise::engagement::EventKind::Notification, 100).await.unwrap()
        };
        let told = notifications().await;
        assert_eq!(told.len(), 3, "{told:?}");
        for notice in &told {
            let to = notice.after.as_ref().unwrap();
            assert_eq!(to["user_id"], json!(w.agent));
            assert_eq!(to["roles"], json!(["admin"]));
            assert!(parked.contains(&to["action_id"].as_str().unwrap().to_owned()));
        }
        w.run_to(30).await;
        assert_eq!(notifications().await.len(), 3, "told once");

        // "Send again": the earlier attempt is forgotten and it runs now.
        let again = w.engine.send_again(&w.account, &parked[0], &w.agent).await.unwrap();
        assert_eq!((again.status, again.deferral_reason), (ActionStatus::Future, None));
        w.run().await;
        assert_eq!(w.action(&enrollments[0], 0).await.status, ActionStatus::Completed);
        assert_eq!(w.transport.delivered().len(), 1);

        // "Mark sent": completed with the step's result, nothing sent, and
        // the enrollment moves on.
        let marked = w.engine.mark_sent(&w.account, &parked[1], &w.agent, None).await.unwrap();
        assert_eq!((marked.status, marked.result.as_deref()), (ActionStatus::Completed, Some("sent")));
        w.run().await;
        assert_eq!(w.action(&enrollments[1], 1).await.status, ActionStatus::Active, "the next step is on Engage");
        assert_eq!(w.transport.delivered().len(), 1, "marking sends nothing");

        // A result the step does not have is named; an action not held as
        // a duplicate attempt cannot be resolved as one.
        let error = w.engine.mark_sent(&w.account, &parked[2], &w.agent, Some("posted")).await.unwrap_err();
        assert!(error.to_string().contains("`posted`") && error.to_string().contains("sent"), "{error}");
        let next = w.action(&enrollments[1], 1).await.id;
        let error = w.engine.send_again(&w.account, &next, &w.agent).await.unwrap_err();
        assert!(error.to_string().contains("duplicate_attempt"), "{error}");
        // Rescheduling is another way to try again.
        w.engine
            .reschedule_action(&w.account, &parked[2], &w.agent, w.now() + chrono::Duration::minutes(5))
            .await
            .unwrap();
        w.run_to(40).await;
        assert_eq!(w.action(&enrollments[2], 0).await.status, ActionStatus::Completed);
        assert_eq!(w.transport.delivered().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn explain_answers_each_check_of_the_troubleshooting_list() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let contact = w.contact(|c| c.email = None).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({}), 0), task(0)]).await;
        let e = w.enroll(&contact, &seq).await;
        w.run().await;
        let first = w.action(&e.id, 0).await;
        let x = w.engine.explain(&w.account, &first.id).await.unwrap();
        assert!(!x.on_engage);
        assert_eq!(x.deferral_reason, Some(DeferralReason::MissingEmail));
        let names: Vec<&str> = x.checks.iter().map(|c| c.name.as_str()).collect();
        for expected in [
            "previous_completed",
            "due",
            "processed",
            "sequence_active",
            "enrollment_active",
            "manual",
            "contact_email",
            "sender_connected",
            "plugin_enabled",
            "legacy_merge_syntax",
            "opt_out",
            "deferral_reason",
            "status",
        ] {
            assert!(names.contains(&expected), "missing check {expected} in {names:?}");
        }
        let email = x.checks.iter().find(|c| c.name == "contact_email").unwrap();
        assert!(!email.ok && email.answer.contains("no email"), "{email:?}");
        assert!(x.checks.iter().find(|c| c.name == "manual").is_some_and(|c| !c.ok), "automatic never shows on Engage");

        let second = w.action(&e.id, 1).await;
        let x = w.engine.explain(&w.account, &second.id).await.unwrap();
        let previous = x.checks.iter().find(|c| c.name == "previous_completed").unwrap();
        assert!(!previous.ok && previous.answer.contains("step 1"), "{previous:?}");

        // Another account's action is not found.
        let error = w.engine.explain("acc_other", &first.id).await.unwrap_err();
        assert!(matches!(error, stepwise::engine::EngineError::NotFound { .. }), "{error}");
    })
    .await;
}

#[tokio::test]
async fn a_queued_enrollments_actions_never_become_active() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let drip = SequenceSettings { drip_limit: Some(1), ..settings() };
        let seq = w.sequence(TimingMode::AfterPrevious, drip, vec![task(0)]).await;
        let first = w.contact(|_| {}).await;
        let second = w.contact(|c| c.email = Some("q@example.com".into())).await;
        w.enroll(&first, &seq).await;
        let queued = w.enroll(&second, &seq).await;
        assert_eq!(queued.status, EnrollmentStatus::Queued);
        w.run_to(60).await;
        let action = w.action(&queued.id, 0).await;
        assert_eq!((action.status, action.deferral_reason), (ActionStatus::Future, Some(DeferralReason::Queued)));
        assert_eq!(w.enrollment(&queued.id).await.status, EnrollmentStatus::Queued);
    })
    .await;
}

/// A receiver of the `host-caller` guest's requests that notes, as each
/// arrives, whether its action's attempt is on record, and moves the
/// world's clock on by `takes` (so that, as the engine sees it, each
/// request takes that long).
struct Witness {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A request as it arrived.
#[derive(Debug, Clone)]
struct Seen {
    action: String,
    method: String,
    keyed: bool,
    on_record: bool,
}

impl Witness {
    async fn start(w: &World, takes: chrono::Duration) -> Witness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (sink, store, clock) = (seen.clone(), w.store.clone(), w.clock.clone());
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (sink, store, clock) = (sink.clone(), store.clone(), clock.clone());
            let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let action = header("x-action").unwrap_or_default();
            let keyed = header("idempotency-key").is_some();
            let method = request.method().to_string();
            async move {
                let mut tx = store.begin_read().await.unwrap();
                let on_record = !action.is_empty() && tx.action(&action).await.unwrap().send_attempted_at.is_some();
                drop(tx);
                sink.lock().unwrap().push(Seen { action, method, keyed, on_record });
                clock.advance(takes);
                "ok"
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Witness { base, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A `host-caller` step making `call` to the witness.
fn calling(witness: &Witness, call: &str, keyed: bool) -> stepwise::engagement::Step {
    stepwise_tests::scenario::step(
        "host-caller",
        json!({ "call": call, "url": format!("{}/hook", witness.base), "keyed": keyed }),
        stepwise::engagement::Activation::Automatic,
        stepwise::engagement::StepTiming::Delay { ms: 0 },
    )
}

/// The attempt is recorded when a request that a retry would repeat is
/// about to leave, once per call, and not for requests a retry may repeat
/// safely: a GET, or a POST carrying the action's idempotency key.
#[tokio::test]
async fn an_attempt_is_on_record_before_a_request_that_may_not_be_repeated_leaves() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let witness = Witness::start(&w, chrono::Duration::zero()).await;
        for (call, keyed, recorded) in [("post", false, true), ("post", true, false), ("fetch", false, false)] {
            let contact = w.contact(|c| c.email = Some(format!("{call}{keyed}@example.com"))).await;
            let (_, action) = one_step(&w, calling(&witness, call, keyed), &contact).await;
            assert_eq!(action.status, ActionStatus::Completed, "{call} keyed {keyed}: {:?}", action.output);
            assert_eq!(action.attempts, 1, "counted once, recorded or not");
            let seen: Vec<Seen> = witness.seen().into_iter().filter(|s| s.action == action.id).collect();
            let expected = if call == "post" { 2 } else { 1 };
            assert_eq!(seen.len(), expected, "{seen:?}");
            for s in &seen {
                assert_eq!(s.keyed, keyed);
                assert_eq!(s.on_record, recorded, "{call} keyed {keyed}: {s:?}");
            }
        }
    })
    .await;
}

/// An action begins only while its lease covers its calls: with one call
/// at a time and each request taking a second of the engine's time, the
/// rest of a batch is given back unstarted (no attempt recorded) and run by
/// the next claims, each once.
#[tokio::test]
async fn actions_whose_lease_runs_short_are_given_back_unstarted_and_each_runs_once() {
    for_each_backend(|store| async move {
        let config = EngineConfig { concurrency: 1, lease: Duration::from_secs(7), ..EngineConfig::default() };
        let w = World::with_config(store, config).await;
        let witness = Witness::start(&w, chrono::Duration::seconds(1)).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![calling(&witness, "post", false)]).await;
        let mut enrollments = Vec::new();
        for i in 0..8 {
            let contact = w.contact(|c| c.email = Some(format!("c{i}@example.com"))).await;
            enrollments.push(w.enroll(&contact, &seq).await.id);
        }
        w.run().await;
        let seen = witness.seen();
        for e in &enrollments {
            let action = w.action(e, 0).await;
            assert_eq!((action.status, action.attempts), (ActionStatus::Completed, 1), "{e}: {:?}", action.output);
            let mine: Vec<&Seen> = seen.iter().filter(|s| s.action == action.id).collect();
            assert_eq!(mine.len(), 2, "each request once: {mine:?}");
            assert!(mine.iter().all(|s| s.on_record && s.method == "POST"));
        }
        // Each action's two requests take 2 s of a 7 s lease whose last
        // 3.5 s begin nothing: two actions a claim.
        assert!(w.engine.stage_metrics().totals().batches >= 4, "the rest were given back and claimed again");
    })
    .await;
}

/// A host that dies while a message step runs leaves nothing on record:
/// its messages go to the outbox only with the answer. The action is
/// simply run again when the lease expires, and the message leaves once.
#[tokio::test]
async fn a_message_step_interrupted_before_its_answer_is_run_again_not_held() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![scripted(json!({"send": true}), 0)]).await;
        let contact = w.contact(|_| {}).await;
        let e = w.enroll(&contact, &seq).await;
        let claimed = w.store().claim_due_actions(t0(), 10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(claimed.len(), 1, "a host claims it and dies");
        w.run_to(2).await;
        let action = w.action(&e.id, 0).await;
        assert_eq!((action.status, action.deferral_reason), (ActionStatus::Completed, None));
        w.run().await;
        assert_eq!(w.transport.delivered().len(), 1);
    })
    .await;
}

/// A held step is looked at again by the change that fixes it, at once,
/// not at the periodic re-check (15 minutes here): a phone number added,
/// an owner reactivated or no longer a delegate, a mailbox connected, a
/// plugin enabled.
#[tokio::test]
async fn each_hold_is_released_by_the_change_that_fixes_it() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let recheck = at(15);
        let held = |action: &stepwise::engagement::Action, reason| {
            assert_eq!((action.status, action.deferral_reason), (ActionStatus::Future, Some(reason)));
            assert_eq!(action.recheck_at, Some(recheck), "held until the re-check");
            assert_eq!(action.due_at, Some(w.now()), "its due date kept");
        };

        // A phone number added.
        let texter = stepwise_tests::scenario::step(
            "texter",
            json!({}),
            stepwise::engagement::Activation::Automatic,
            stepwise::engagement::StepTiming::Delay { ms: 0 },
        );
        let contact = w.contact(|c| c.phone = None).await;
        let (e, action) = one_step(&w, texter, &contact).await;
        held(&action, DeferralReason::MissingPhone);
        w.update_contact(&contact, |c| c.phone = Some("+15550111".into())).await;
        w.run().await;
        assert_eq!(w.action(&e, 0).await.status, ActionStatus::Completed, "sent now");

        // An owner reactivated, and a delegate made a full user.
        let sleeper = w
            .user(User { name: "Sam".into(), email: "sam@example.com".into(), active: false, ..User::default() })
            .await;
        let contact = w.contact(|c| c.owner_id = Some(sleeper.clone())).await;
        let (inactive, action) = one_step(&w, task(0), &contact).await;
        held(&action, DeferralReason::OwnerInactive);
        let dee = w
            .user(User { name: "Dee".into(), email: "dee@example.com".into(), delegate: true, ..User::default() })
            .await;
        let contact = w.contact(|c| c.owner_id = Some(dee.clone())).await;
        let (delegated, action) = one_step(&w, task(0), &contact).await;
        held(&action, DeferralReason::DelegatedOwner);
        for (user, change) in [(&sleeper, "active"), (&dee, "delegate")] {
            let mut tx = w.store().begin_read().await.unwrap();
            let mut u = tx.user(&w.account, user).await.unwrap();
            drop(tx);
            match change {
                "active" => u.active = true,
                _ => u.delegate = false,
            }
            w.engine.update_user(&w.account, &u, &w.editor()).await.unwrap();
        }
        w.run().await;
        assert_eq!(w.action(&inactive, 0).await.status, ActionStatus::Active, "on Sam's Engage view now");
        assert_eq!(w.action(&delegated, 0).await.status, ActionStatus::Active, "on Dee's Engage view now");

        // A sending address verified.
        own_addresses(&w).await;
        let offline = w.user(User { name: "Off".into(), email: "off@example.com".into(), ..User::default() }).await;
        let contact = w.contact(|c| c.owner_id = Some(offline.clone())).await;
        let (e, action) = one_step(&w, scripted(json!({}), 0), &contact).await;
        held(&action, DeferralReason::SenderNotConnected);
        let mut tx = w.store().begin_read().await.unwrap();
        let mut user = tx.user(&w.account, &offline).await.unwrap();
        drop(tx);
        user.name = "Off, renamed".into();
        w.engine.update_user(&w.account, &user, &w.editor()).await.unwrap();
        w.run().await;
        held(&w.action(&e, 0).await, DeferralReason::SenderNotConnected);
        user.sender_connected = true;
        w.engine.update_user(&w.account, &user, &w.editor()).await.unwrap();
        w.run().await;
        assert_eq!(w.action(&e, 0).await.status, ActionStatus::Completed, "sent now");

        // A plugin enabled again.
        let mut settings = PluginAccount {
            account_id: w.account.clone(),
            plugin_id: "scripted".into(),
            enabled: false,
            grants: json!({"capabilities": ["send-email", {"update-contact": ["attributes", "contact_type"]}]}),
            approved_capabilities: vec!["send-email".into(), "update-contact".into()],
        };
        w.engine.set_plugin_account(&settings, &w.editor()).await.unwrap();
        let contact = w.contact(|c| c.email = Some("p@example.com".into())).await;
        let (e, action) = one_step(&w, scripted(json!({}), 0), &contact).await;
        held(&action, DeferralReason::PluginDisabled);
        settings.enabled = true;
        w.engine.set_plugin_account(&settings, &w.editor()).await.unwrap();
        w.run().await;
        let after = w.action(&e, 0).await;
        assert_eq!(after.status, ActionStatus::Completed, "run now: {after:?}");
    })
    .await;
}

/// The world's account sends from its reps' own addresses, each once verified.
async fn own_addresses(w: &World) {
    let mut tx = w.store().begin().await.unwrap();
    tx.set_sender_mode(&w.account, stepwise::engagement::SenderMode::OwnAddress).await.unwrap();
    tx.commit().await.unwrap();
}
