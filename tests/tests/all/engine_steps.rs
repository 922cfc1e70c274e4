//! The built-in contact steps through the engine, on both backends: `sms`
//! (automatic, manual with the rep's edited draft, opt-outs, segment limits),
//! `call` (results that continue or end, opt-outs, automatic calls failing
//! without a voice provider),
//! `contact-reminder` (on a set day and after a delay), `assign-user` and
//! `change-contact-type` (changes written with the action, failures that
//! pause the enrollment, grants an admin withheld).

use chrono::Duration;
use serde_json::{Value, json};
use stepwise::crm::{AttributeValue, User};
use stepwise::engagement::{
    ActionStatus, Activation, DeferralReason, EnrollmentOutcome, EnrollmentStatus, PauseReason, PluginAccount,
    Relative, Step, StepTiming, TimingMode,
};
use stepwise::engine::{EngineError, EnrollRequest};
use stepwise::plugins::types::Draft;
use stepwise_tests::db::{for_each_backend, t0};
use stepwise_tests::scenario::{DAY, MINUTE, World, settings, step, task};

fn sms(config: Value, activation: Activation) -> Step {
    step("sms", config, activation, StepTiming::Delay { ms: 0 })
}

fn call(config: Value) -> Step {
    step("call", config, Activation::Manual, StepTiming::Delay { ms: 0 })
}

fn automatic(plugin: &str, config: Value) -> Step {
    step(plugin, config, Activation::Automatic, StepTiming::Delay { ms: 0 })
}

/// Enrolls `contact` in a new sequence of `steps` and runs what is due.
async fn start(w: &World, steps: Vec<Step>, contact: &str) -> String {
    let seq = w.sequence(TimingMode::AfterPrevious, settings(), steps).await;
    let e = w.enroll(contact, &seq).await;
    w.run().await;
    e.id
}

/// The SMS texts the transport delivered, as `(to, body)`.
fn texts(w: &World) -> Vec<(String, String)> {
    w.transport
        .delivered()
        .iter()
        .filter(|m| m.channel == stepwise::engagement::OutboxChannel::Sms)
        .map(|m| (m.payload["to"].as_str().unwrap().to_owned(), m.payload["body"].as_str().unwrap().to_owned()))
        .collect()
}

/// The reason of the enrollment's `action.failed` event.
async fn failure(w: &World, enrollment: &str) -> String {
    let events = w.events(enrollment).await;
    let failed = events.iter().find(|e| e.kind.as_str() == "action.failed").expect("an action.failed event");
    failed.reason.clone().unwrap_or_default()
}

/// Asserts the enrollment paused on an error of its first step.
async fn paused_by_error(w: &World, enrollment: &str) {
    let e = w.enrollment(enrollment).await;
    assert_eq!((e.status, e.pause_reason), (EnrollmentStatus::Paused, Some(PauseReason::Error)));
    assert_eq!(w.action(enrollment, 0).await.status, ActionStatus::Failed);
}

#[tokio::test]
async fn an_automatic_sms_texts_the_contact_and_moves_on() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let contact = w.contact(|_| {}).await;
        let config = json!({"text": "Hi {{contact.first_name}}, it's {{owner.name}}."});
        let e = start(&w, vec![sms(config, Activation::Automatic), task(0)], &contact).await;
        let action = w.action(&e, 0).await;
        assert_eq!((action.status, action.result.as_deref()), (ActionStatus::Completed, Some("sent")));
        assert_eq!(action.output.as_ref().unwrap()["segments"], 1);
        assert_eq!(texts(&w), [("+15550100".to_owned(), "Hi Ada, it's Grace.".to_owned())]);
        assert_eq!(w.action(&e, 1).await.status, ActionStatus::Active, "the sequence moves on");
        assert!(w.get_contact(&contact).await.last_contacted.is_some(), "texting contacts the contact");
    })
    .await;
}

#[tokio::test]
async fn an_sms_skips_an_opted_out_contact_and_waits_for_a_phone_number() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let config = json!({"text": "Hi"});
        let quiet = w.contact(|c| c.opt_outs.sms = true).await;
        let e = start(&w, vec![sms(config.clone(), Activation::Automatic), task(0)], &quiet).await;
        let action = w.action(&e, 0).await;
        assert_eq!((action.status, action.opt_out), (ActionStatus::Skipped, true));
        assert_eq!(action.deferral_reason, Some(DeferralReason::OptedOut));
        assert_eq!(w.action(&e, 1).await.status, ActionStatus::Active);

        // A manual text is skipped the same way, before it reaches Engage.
        let quiet = w.contact(|c| c.opt_outs.sms = true).await;
        let e = start(&w, vec![sms(config.clone(), Activation::Manual)], &quiet).await;
        assert_eq!(w.action(&e, 0).await.status, ActionStatus::Skipped);

        let phoneless = w.contact(|c| c.phone = None).await;
        let e = start(&w, vec![sms(config, Activation::Automatic)], &phoneless).await;
        let action = w.action(&e, 0).await;
        assert_eq!((action.status, action.deferral_reason), (ActionStatus::Future, Some(DeferralReason::MissingPhone)));
        assert!(texts(&w).is_empty(), "nothing texted");
    })
    .await;
}

#[tokio::test]
async fn an_sms_that_renders_past_its_segments_fails_and_pauses_the_enrollment() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let contact = w
            .contact(|c| {
                c.attributes.insert("note".into(), AttributeValue::Text("x".repeat(200)));
            })
            .await;
        let config = json!({"text": "{{contact.attributes.note}}", "max_segments": 1});
        let e = start(&w, vec![sms(config, Activation::Automatic), task(0)], &contact).await;
        paused_by_error(&w, &e).await;
        assert_eq!(
            failure(&w, &e).await,
            "the rendered text takes 2 SMS segments (GSM-7, 200 characters), over max_segments 1"
        );
        assert!(texts(&w).is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_manual_sms_goes_out_as_the_rep_edited_it() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let contact = w.contact(|_| {}).await;
        let config = json!({"text": "Hi {{contact.first_name}}, still on for 3pm?", "max_segments": 1});
        let e = start(&w, vec![sms(config, Activation::Manual), task(0)], &contact).await;
        let action = w.action(&e, 0).await;
        assert_eq!(action.status, ActionStatus::Active);
        assert!(texts(&w).is_empty(), "a manual text waits for the rep");

        let item = w.engine.engage_item(&w.account, &action.id).await.unwrap();
        assert_eq!(item.title, "Text Ada Lovelace");
        let Some(Draft::Sms { to, body }) = item.draft else { panic!("{item:?}") };
        assert_eq!((to.as_str(), body.as_str()), ("+15550100", "Hi Ada, still on for 3pm?"));

        // A draft the plugin refuses changes nothing.
        let long = Draft::Sms { to: to.clone(), body: "x".repeat(161) };
        let refused = w.engine.complete_action_with_draft(&w.account, &action.id, &w.agent, "sent", Some(long)).await;
        let Err(EngineError::Plugin { message, .. }) = refused else { panic!("{refused:?}") };
        assert_eq!(message, "the edited text takes 2 SMS segments (GSM-7, 161 characters), over max_segments 1");
        assert_eq!(w.action(&e, 0).await.status, ActionStatus::Active, "still on Engage");

        let edited = Draft::Sms { to, body: "Hi Ada, can we make it 4pm?".into() };
        let done = w.engine.complete_action_with_draft(&w.account, &action.id, &w.agent, "sent", Some(edited)).await;
        let done = done.unwrap();
        assert_eq!((done.status, done.result.as_deref()), (ActionStatus::Completed, Some("sent")));
        assert_eq!(done.completed_by.as_deref(), Some(w.agent.as_str()));
        w.run().await;
        assert_eq!(texts(&w), [("+15550100".to_owned(), "Hi Ada, can we make it 4pm?".to_owned())]);
        assert_eq!(w.action(&e, 1).await.status, ActionStatus::Active);
    })
    .await;
}

#[tokio::test]
async fn call_results_continue_or_end_the_enrollment() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let script = json!({"script": "Hi {{contact.first_name}}, this is {{owner.name}}."});
        let steps = || vec![call(script.clone()), task(0)];
        for (result, status, outcome, next) in [
            ("no_answer", EnrollmentStatus::Running, None, true),
            ("left_voicemail", EnrollmentStatus::Running, None, true),
            ("interested", EnrollmentStatus::Completed, Some(EnrollmentOutcome::Positive), false),
            ("not_interested", EnrollmentStatus::Completed, Some(EnrollmentOutcome::Negative), false),
        ] {
            let contact = w.contact(|c| c.email = Some(format!("{result}@example.com"))).await;
            let e = start(&w, steps(), &contact).await;
            let action = w.action(&e, 0).await;
            assert_eq!(action.status, ActionStatus::Active, "{result}");
            let item = w.engine.engage_item(&w.account, &action.id).await.unwrap();
            assert_eq!((item.title.as_str(), item.body.as_str()), ("Call Ada Lovelace", "Hi Ada, this is Grace."));
            w.engine.complete_action(&w.account, &action.id, &w.agent, result).await.unwrap();
            let enrollment = w.enrollment(&e).await;
            assert_eq!((enrollment.status, enrollment.outcome), (status, outcome), "{result}");
            w.run().await;
            assert_eq!(w.action(&e, 1).await.status == ActionStatus::Active, next, "{result}: the next step");
        }
        let contact = w.contact(|c| c.email = Some("busy@example.com".into())).await;
        let e = start(&w, steps(), &contact).await;
        let refused = w.engine.complete_action(&w.account, &w.action(&e, 0).await.id, &w.agent, "busy").await;
        assert!(matches!(refused, Err(EngineError::Invalid(_))), "{refused:?}");
    })
    .await;
}

#[tokio::test]
async fn a_call_skips_a_contact_who_opted_out_of_calls_and_fails_automatic_without_a_voice_provider() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let quiet = w.contact(|c| c.opt_outs.phone = true).await;
        let e = start(&w, vec![call(json!({})), task(0)], &quiet).await;
        let action = w.action(&e, 0).await;
        assert_eq!((action.status, action.opt_out), (ActionStatus::Skipped, true));
        assert_eq!(action.deferral_reason, Some(DeferralReason::OptedOut));
        assert!(w.engage(&w.agent).await.iter().all(|a| a.id != action.id), "never on Engage");

        // Only SMS opt-outs skip texts; calls still go ahead.
        let texts_only = w.contact(|c| c.opt_outs.sms = true).await;
        let e = start(&w, vec![call(json!({}))], &texts_only).await;
        assert_eq!(w.action(&e, 0).await.status, ActionStatus::Active);

        let contact = w.contact(|_| {}).await;
        let e = start(&w, vec![automatic("call", json!({})), task(0)], &contact).await;
        paused_by_error(&w, &e).await;
        assert!(failure(&w, &e).await.starts_with("automatic calls need a voice provider"));
    })
    .await;
}

#[tokio::test]
async fn a_contact_reminder_shows_on_the_event_date_and_after_a_delay() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let reminder = |ms: i64, relative: Relative| {
            step(
                "contact-reminder",
                json!({"title": "Wish {{contact.first_name}} luck", "notes": "The demo is today."}),
                Activation::Manual,
                StepTiming::Event { ms, relative },
            )
        };
        let seq = w
            .sequence(
                TimingMode::FromEvent,
                settings(),
                vec![reminder(DAY, Relative::Before), reminder(0, Relative::After)],
            )
            .await;
        let contact = w.contact(|_| {}).await;
        let event = t0() + Duration::days(3);
        let request = EnrollRequest { event_date: Some(event), ..w.request(&contact, &seq) };
        let e = w.engine.enroll(&w.account, &request).await.unwrap().id;
        w.run_to(2 * DAY / MINUTE - 1).await;
        assert_eq!(w.action(&e, 0).await.status, ActionStatus::Future, "not before the day before the event");
        w.run_to(2 * DAY / MINUTE).await;
        let eve = w.action(&e, 0).await;
        assert_eq!(eve.status, ActionStatus::Active, "on the day before the event");
        w.engine.complete_action(&w.account, &eve.id, &w.agent, "done").await.unwrap();
        w.run_to(3 * DAY / MINUTE - 1).await;
        assert_eq!(w.action(&e, 1).await.status, ActionStatus::Future, "not before the event date");
        w.run_to(3 * DAY / MINUTE).await;
        let day = w.action(&e, 1).await;
        assert_eq!((day.status, day.due_at), (ActionStatus::Active, Some(event)));
        let item = w.engine.engage_item(&w.account, &day.id).await.unwrap();
        assert_eq!((item.title.as_str(), item.body.as_str()), ("Wish Ada luck", "The demo is today."));
        w.engine.complete_action(&w.account, &day.id, &w.agent, "done").await.unwrap();
        assert_eq!(w.enrollment(&e).await.status, EnrollmentStatus::Completed);

        // After a delay: two days after the previous step was done.
        let later = step("contact-reminder", json!({}), Activation::Manual, StepTiming::Delay { ms: 2 * DAY });
        let contact = w.contact(|c| c.email = Some("later@example.com".into())).await;
        let start_at = w.now();
        let e = start(&w, vec![task(0), later], &contact).await;
        w.engine.complete_action(&w.account, &w.action(&e, 0).await.id, &w.agent, "none").await.unwrap();
        let reminder = w.action(&e, 1).await;
        assert_eq!(reminder.due_at, Some(start_at + Duration::days(2)));
        w.run_to((start_at + Duration::days(2) - t0()).num_minutes()).await;
        let reminder = w.action(&e, 1).await;
        assert_eq!(reminder.status, ActionStatus::Active);
        let item = w.engine.engage_item(&w.account, &reminder.id).await.unwrap();
        assert_eq!(item.title, "Contact Ada Lovelace");
    })
    .await;
}

#[tokio::test]
async fn assign_user_hands_the_contact_and_its_next_steps_to_another_user() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let alan = w.user(User { name: "Alan".into(), email: "alan@example.com".into(), ..User::default() }).await;
        let contact = w.contact(|_| {}).await;
        let e =
            start(&w, vec![automatic("assign-user", json!({"email": "ALAN@example.com"})), task(0)], &contact).await;
        let action = w.action(&e, 0).await;
        assert_eq!((action.status, action.result.as_deref()), (ActionStatus::Completed, Some("done")));
        assert_eq!(w.get_contact(&contact).await.owner_id.as_deref(), Some(alan.as_str()));
        let next = w.action(&e, 1).await;
        assert_eq!((next.status, next.owner_id.as_deref()), (ActionStatus::Active, Some(alan.as_str())));
        let events = w.events(&e).await;
        let updated =
            events.iter().find(|e| e.kind.as_str() == "contact.updated").expect("the change is on the timeline");
        assert_eq!(updated.before.as_ref().unwrap()["owner_id"], json!(w.agent));
        assert_eq!(updated.after.as_ref().unwrap()["owner_id"], json!(alan));

        let e = start(&w, vec![automatic("assign-user", json!({"unassign": true}))], &contact).await;
        assert_eq!(w.enrollment(&e).await.status, EnrollmentStatus::Completed);
        assert_eq!(w.get_contact(&contact).await.owner_id, None);
    })
    .await;
}

#[tokio::test]
async fn assign_user_fails_naming_an_unknown_or_inactive_user() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let kurt = User { name: "Kurt".into(), email: "kurt@example.com".into(), active: false, ..User::default() };
        let kurt = w.user(kurt).await;
        for (i, (config, expected)) in [
            (
                json!({"email": "nobody@example.com"}),
                "no user with email `nobody@example.com` in this account".to_owned(),
            ),
            (json!({"user_id": "usr_nobody"}), "no user `usr_nobody` in this account".to_owned()),
            (
                json!({"user_id": kurt}),
                format!("user Kurt <kurt@example.com> ({kurt}) is inactive and cannot own contacts"),
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let contact = w.contact(|c| c.email = Some(format!("c{i}@example.com"))).await;
            let e = start(&w, vec![automatic("assign-user", config), task(0)], &contact).await;
            paused_by_error(&w, &e).await;
            assert_eq!(failure(&w, &e).await, expected);
            assert_eq!(w.get_contact(&contact).await.owner_id.as_deref(), Some(w.agent.as_str()), "unchanged");
        }
    })
    .await;
}

#[tokio::test]
async fn steps_fail_on_a_grant_an_admin_withheld() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let mut tx = w.store().begin().await.unwrap();
        for (plugin, capabilities) in
            [("assign-user", json!(["lookup-user"])), ("change-contact-type", json!([{"update-contact": ["owner"]}]))]
        {
            let settings = PluginAccount {
                account_id: w.account.clone(),
                plugin_id: plugin.into(),
                enabled: true,
                grants: json!({"capabilities": capabilities}),
                approved_capabilities: vec![],
            };
            tx.set_plugin_account(&settings, t0()).await.unwrap();
        }
        tx.commit().await.unwrap();
        let alan = w.user(User { name: "Alan".into(), email: "alan@example.com".into(), ..User::default() }).await;

        let contact = w.contact(|_| {}).await;
        let e = start(&w, vec![automatic("assign-user", json!({"user_id": alan})), task(0)], &contact).await;
        paused_by_error(&w, &e).await;
        let reason = failure(&w, &e).await;
        assert!(reason.starts_with("cannot make Alan <alan@example.com>"), "{reason}");
        let output = w.action(&e, 0).await.output.unwrap();
        assert_eq!(output["details"]["error"]["code"], "denied", "{output}");

        let e = start(&w, vec![automatic("change-contact-type", json!({"contact_type": "Partners"}))], &contact).await;
        paused_by_error(&w, &e).await;
        assert!(failure(&w, &e).await.starts_with("cannot change the contact type to `Partners`"));
        let contact = w.get_contact(&contact).await;
        assert_eq!((contact.owner_id.as_deref(), contact.contact_type.as_str()), (Some(w.agent.as_str()), "Clients"));
    })
    .await;
}

#[tokio::test]
async fn change_contact_type_sets_a_type_of_the_account_and_fails_on_any_other() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let contact = w.contact(|_| {}).await;
        let e =
            start(&w, vec![automatic("change-contact-type", json!({"contact_type": "Partners"})), task(0)], &contact)
                .await;
        assert_eq!(w.action(&e, 0).await.result.as_deref(), Some("done"));
        assert_eq!(w.get_contact(&contact).await.contact_type, "Partners");
        assert_eq!(w.action(&e, 1).await.status, ActionStatus::Active);
        assert!(w.event_kinds(&e).await.contains(&"contact.updated".to_owned()));

        let e = start(&w, vec![automatic("change-contact-type", json!({"contact_type": "Prospects"}))], &contact).await;
        paused_by_error(&w, &e).await;
        assert_eq!(failure(&w, &e).await, "the account has no contact type named `Prospects`");
        assert_eq!(w.get_contact(&contact).await.contact_type, "Partners", "unchanged");

        // Renamed, a type is set by its new name.
        let mut tx = w.store().begin().await.unwrap();
        let vendors = tx.contact_types(&w.account).await.unwrap().into_iter().find(|t| t.name == "Vendors").unwrap();
        tx.rename_contact_type(&w.account, &vendors.id, "Suppliers", w.now()).await.unwrap();
        tx.commit().await.unwrap();
        let e = start(&w, vec![automatic("change-contact-type", json!({"contact_type": "Suppliers"}))], &contact).await;
        assert_eq!(w.enrollment(&e).await.status, EnrollmentStatus::Completed);
        assert_eq!(w.get_contact(&contact).await.contact_type, "Suppliers");
    })
    .await;
}

#[tokio::test]
async fn changes_and_messages_of_one_batch_are_written_together_and_one_bad_change_fails_alone() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let alan = w.user(User { name: "Alan".into(), email: "alan@example.com".into(), ..User::default() }).await;
        let ada = w.contact(|_| {}).await;
        let bo = w.contact(|c| c.phone = Some("+15550111".into())).await;
        // Four steps due at once, three of them on Ada: one batch.
        let steps = [
            automatic("change-contact-type", json!({"contact_type": "Partners"})),
            automatic("assign-user", json!({"user_id": alan})),
            sms(json!({"text": "Hi {{contact.first_name}}"}), Activation::Automatic),
            automatic("change-contact-type", json!({"contact_type": "Prospects"})),
        ];
        let mut enrollments = Vec::new();
        for (contact, step) in [&ada, &ada, &ada, &bo].into_iter().zip(steps) {
            let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![step]).await;
            enrollments.push(w.enroll(contact, &seq).await.id);
        }
        w.run().await;

        for e in &enrollments[..3] {
            assert_eq!(w.enrollment(e).await.status, EnrollmentStatus::Completed, "{e}");
        }
        let contact = w.get_contact(&ada).await;
        assert_eq!(contact.contact_type, "Partners");
        assert_eq!(contact.owner_id.as_deref(), Some(alan.as_str()));
        assert!(contact.last_contacted.is_some(), "texting contacts the contact");
        assert_eq!(texts(&w), [("+15550100".to_owned(), "Hi Ada".to_owned())]);
        // Each change is on the timeline of its own enrollment, once.
        for e in &enrollments[..2] {
            let kinds = w.event_kinds(e).await;
            assert_eq!(kinds.iter().filter(|k| *k == "contact.updated").count(), 1, "{kinds:?}");
        }

        // The type the account does not have fails its own step only.
        paused_by_error(&w, &enrollments[3]).await;
        assert_eq!(failure(&w, &enrollments[3]).await, "the account has no contact type named `Prospects`");
        assert_eq!(w.get_contact(&bo).await.contact_type, "Clients", "unchanged");
    })
    .await;
}
