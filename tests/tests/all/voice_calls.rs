//! Automatic `call` steps placed by the host through the voice provider (the
//! Twilio-style provider that also sends texts), on both backends.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use stepwise::delivery::sms::{SmsConfig, SmsProvider};
use stepwise::delivery::{Channels, Secret};
use stepwise::engagement::{ActionStatus, Activation, StepTiming, TimingMode};
use stepwise::engine::{Engine, EngineConfig};
use stepwise_tests::db::{at, for_each_backend};
use stepwise_tests::delivery::Provider;
use stepwise_tests::scenario::{World, registry, settings, step};

/// The engine of `w`'s store, with `provider` as its SMS and voice provider.
async fn engine(w: &World, provider: &Provider) -> Engine {
    let config = SmsConfig {
        url: format!("{}/2010-04-01", provider.base).parse().unwrap(),
        account_sid: "AC123".into(),
        auth_token: Secret::new("tok3n"),
        from: "+15550199".into(),
        timeout: Duration::from_secs(5),
    };
    let client = SmsProvider::new(config).unwrap();
    let transport = Arc::new(Channels::new(None, Some(client.clone())));
    Engine::new(w.store().clone(), registry().await, w.clock.clone(), transport, EngineConfig::default())
        .with_voice(Arc::new(client))
}

async fn calling(w: &World, config: Value) -> String {
    let call = step("call", config, Activation::Automatic, StepTiming::Delay { ms: 0 });
    w.sequence(TimingMode::AfterPrevious, settings(), vec![call]).await
}

async fn ada(w: &World) -> String {
    w.contact(|c| {
        c.first_name = "Ada".into();
        c.phone = Some("+15550100".into());
        c.owner_id = Some(w.agent.clone());
    })
    .await
}

#[tokio::test]
async fn an_automatic_call_says_its_script_through_the_provider_once() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let provider = Provider::start(&[(503, "{}"), (201, r#"{"sid": "CA0001", "status": "queued"}"#)]).await;
        let engine = engine(&w, &provider).await;
        let seq = calling(&w, json!({"script": "Hello {{contact.first_name}}, this is Acme & co."})).await;
        let contact = ada(&w).await;
        let enrolled = w.enroll(&contact, &seq).await;

        // The provider cannot take it now: tried again a minute later.
        engine.run_until_idle().await.unwrap();
        let action = w.action(&enrolled.id, 0).await;
        assert_eq!(action.status, ActionStatus::Future, "{action:?}");
        engine.run_until(&w.clock, at(2)).await.unwrap();
        let action = w.action(&enrolled.id, 0).await;
        assert_eq!((action.status, action.result.as_deref()), (ActionStatus::Completed, Some("placed")));
        assert_eq!(action.output.as_ref().unwrap()["call_id"], "CA0001");

        let received = provider.received();
        assert_eq!(received.len(), 2);
        for request in &received {
            assert_eq!(request.path, "/2010-04-01/Accounts/AC123/Calls.json");
            assert_eq!(request.header("idempotency-key"), Some(action.id.as_str()), "one key for every attempt");
            assert_eq!((request.field("To"), request.field("From")), (Some("+15550100"), Some("+15550199")));
        }
        let twiml = received[1].field("Twiml").unwrap();
        assert!(twiml.contains("<Say>Hello Ada, this is Acme &amp; co.</Say>"), "{twiml}");
        // A placed call is contact ([I]): when it was placed.
        assert_eq!(w.get_contact(&contact).await.last_contacted, action.completed_at);
        assert!(action.completed_at.is_some());
    })
    .await;
}

#[tokio::test]
async fn a_call_without_a_script_a_refusal_or_an_opt_out_places_nothing() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let provider = Provider::start(&[(400, r#"{"code": 21211, "message": "Invalid 'To' Phone Number"}"#)]).await;
        let engine = engine(&w, &provider).await;

        let silent = calling(&w, json!({})).await;
        let first = w.enroll(&ada(&w).await, &silent).await;
        let scripted = calling(&w, json!({"script": "Hi {{contact.first_name}}"})).await;
        let second = w.enroll(&ada(&w).await, &scripted).await;
        let opted_out = ada(&w).await;
        w.update_contact(&opted_out, |c| c.opt_outs.phone = true).await;
        let third = w.enroll(&opted_out, &scripted).await;
        engine.run_until_idle().await.unwrap();

        let failed = w.action(&first.id, 0).await;
        assert_eq!(failed.status, ActionStatus::Failed);
        assert_eq!(failed.output.as_ref().unwrap()["error"], "an automatic call needs a script to say");
        let refused = w.action(&second.id, 0).await;
        assert_eq!(refused.status, ActionStatus::Failed);
        let error = refused.output.as_ref().unwrap()["error"].as_str().unwrap();
        assert!(error.starts_with("the voice provider refused the call") && error.contains("21211"), "{error}");
        for unplaced in [&first, &second, &third] {
            let contact = w.get_contact(&unplaced.contact_id).await;
            assert_eq!(contact.last_contacted, None, "a call not placed is no contact");
        }
        let skipped = w.action(&third.id, 0).await;
        assert_eq!(skipped.deferral_reason.map(|r| r.as_str()), Some("opted_out"));
        assert_eq!(provider.received().len(), 1, "only the scripted call reached the provider");
    })
    .await;
}

#[tokio::test]
async fn without_a_voice_provider_an_automatic_call_fails_with_the_reason() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let seq = calling(&w, json!({"script": "Hi"})).await;
        let enrolled = w.enroll(&ada(&w).await, &seq).await;
        w.run().await;
        let action = w.action(&enrolled.id, 0).await;
        assert_eq!(action.status, ActionStatus::Failed);
        let error = action.output.as_ref().unwrap()["error"].as_str().unwrap();
        assert!(error.starts_with("automatic calls need a voice provider"), "{error}");
    })
    .await;
}

#[tokio::test]
async fn a_reps_logged_call_is_contact_whatever_its_result() {
    for_each_backend(|store| async move {
        let w = World::new(store).await;
        let call =
            step("call", json!({"script": "Ask about the demo"}), Activation::Manual, StepTiming::Delay { ms: 0 });
        let task = step("task", json!({"title": "Note it"}), Activation::Manual, StepTiming::Delay { ms: 0 });
        let seq = w.sequence(TimingMode::AfterPrevious, settings(), vec![task, call]).await;
        let contact = ada(&w).await;
        let enrolled = w.enroll(&contact, &seq).await;
        w.run().await;
        // A task is no contact.
        let first = w.action(&enrolled.id, 0).await;
        w.engine.complete_action(&w.account, &first.id, &w.agent, "none").await.unwrap();
        w.run().await;
        assert_eq!(w.get_contact(&contact).await.last_contacted, None);
        // A call is, even unanswered.
        w.run_to(5).await;
        let call = w.action(&enrolled.id, 1).await;
        w.engine.complete_action(&w.account, &call.id, &w.agent, "no_answer").await.unwrap();
        w.run().await;
        assert_eq!(w.get_contact(&contact).await.last_contacted, Some(w.now()));
    })
    .await;
}
