//! The built-in contact steps — `sms`, `call`, `contact-reminder`,
//! `assign-user`, `change-contact-type` — through the runtime with the
//! recording host: manifests, config validation, the Engage item, results,
//! and host calls denied when a grant is missing.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use stepwise::crm::{Subject, User};
use stepwise::plugins::builtin::BUILTIN;
use stepwise::plugins::report::QueuedMessage;
use stepwise::plugins::types::{
    Activation, Capability, Channel, Completion, ContactField, Draft, EngageItem, EnrollmentOutcome, Outcome,
};
use stepwise::plugins::{AccountGrant, Invocation, Plugin, Runtime, StaticDirectory};
use stepwise_tests::{ada, grace, invocation, runtime};

async fn builtin(runtime: &Runtime, name: &str) -> Arc<Plugin> {
    let (_, bytes) = BUILTIN.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name} is built in"));
    runtime.load(bytes).await.expect("built-in plugin loads")
}

/// The problems `config` gets when saved, as `field: message` lines, in an
/// account of a new account's contact types whose one user is Grace:
/// granted what the engine grants validation.
async fn problems(runtime: &Runtime, plugin: &Plugin, config: Value) -> Vec<String> {
    let grant = Arc::new(AccountGrant::for_validation(plugin.manifest()));
    let directory = Arc::new(StaticDirectory::new(vec![grace()]));
    let invocation = Invocation::validating(grant, "acc_1", directory);
    let call = runtime.validate_config(plugin, invocation, &config.to_string()).await.expect("validate-config answers");
    call.value.iter().map(|p| format!("{}: {}", p.field, p.message)).collect()
}

/// `inv` completed by a rep with `result` and, maybe, an edited draft.
fn completed(mut inv: Invocation, result: &str, draft: Option<Draft>) -> Invocation {
    inv.step.activation = Activation::Manual;
    inv.step.completion = Some(Completion { result: result.into(), draft, user_id: "usr_grace".into() });
    inv
}

fn failed(outcome: &Outcome) -> (&str, &Value) {
    match outcome {
        Outcome::Failed { message, details } => (message, details),
        other => panic!("not failed: {other:?}"),
    }
}

fn sms_sent(messages: &[QueuedMessage]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| match m {
            QueuedMessage::Sms { to, body, .. } => (to.clone(), body.clone()),
            QueuedMessage::Email { .. } => panic!("an email from an SMS step: {m:?}"),
        })
        .collect()
}

#[tokio::test]
async fn sms_is_automatic_on_the_sms_channel_and_asks_for_what_it_uses() {
    let runtime = runtime(false);
    let manifest = builtin(&runtime, "sms").await.manifest().clone();
    assert_eq!((manifest.channel, manifest.default_activation), (Some(Channel::Sms), Activation::Automatic));
    assert_eq!(manifest.capabilities, [Capability::RenderTemplate, Capability::SendSms]);
    let codes: Vec<_> = manifest.results.iter().map(|r| (r.code.as_str(), r.ends_enrollment)).collect();
    assert_eq!(codes, [("sent", false)]);
    assert_eq!(manifest.config_schema["properties"]["max_segments"]["default"], 3);
}

#[tokio::test]
async fn sms_config_problems_name_the_field_and_the_segment_count() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "sms").await;
    assert!(problems(&runtime, &plugin, json!({"text": "Hi {{contact.first_name}}"})).await.is_empty());
    assert_eq!(
        problems(&runtime, &plugin, json!({"text": "Hi {{contact.nickname}}"})).await,
        [r#"/text: unknown token "contact.nickname" at byte 3 (did you mean "contact.first_name"?)"#]
    );
    assert_eq!(
        problems(&runtime, &plugin, json!({"text": "a".repeat(307), "max_segments": 2})).await,
        ["/text: the text takes 3 SMS segments (GSM-7, 307 characters), over max_segments 2"]
    );
    assert_eq!(
        problems(&runtime, &plugin, json!({"text": "Cześć! ".repeat(10)})).await,
        Vec::<String>::new(),
        "70 UCS-2 characters fit one segment"
    );
    assert_eq!(
        problems(&runtime, &plugin, json!({"text": "Cześć! ".repeat(30), "max_segments": 3})).await,
        ["/text: the text takes 4 SMS segments (UCS-2, 210 characters), over max_segments 3"]
    );
    assert_eq!(
        problems(&runtime, &plugin, json!({"text": " ", "max_segments": 0})).await,
        ["/max_segments: must be between 1 and 10", "/text: must not be empty"]
    );
    let unknown = problems(&runtime, &plugin, json!({"text": "x", "sender": "+1555"})).await;
    assert!(unknown[0].contains("unknown field `sender`"), "{unknown:?}");
}

#[tokio::test]
async fn sms_queues_the_rendered_text_for_the_contacts_phone() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "sms").await;
    let config = json!({"text": "Hi {{contact.first_name}}, {{owner.name}} here."}).to_string();
    let call = runtime.execute(&plugin, invocation(ada(), &["render-template", "send-sms"]), &config).await.unwrap();
    let Outcome::Done { result, output } = &call.value else { panic!("{:?}", call.value) };
    assert_eq!(result, "sent");
    assert_eq!(output["segments"], 1);
    assert_eq!(output["encoding"], "gsm-7");
    let QueuedMessage::Sms { id, .. } = &call.report.messages[0] else { panic!("{:?}", call.report.messages) };
    assert_eq!(output["message_id"], id.as_str(), "the output names the queued message");
    assert_eq!(sms_sent(&call.report.messages), [("+15550100".to_owned(), "Hi Ada, Grace Hopper here.".to_owned())]);
}

#[tokio::test]
async fn sms_without_the_send_grant_fails_and_queues_nothing() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "sms").await;
    let config = json!({"text": "Hi"}).to_string();
    let call = runtime.execute(&plugin, invocation(ada(), &["render-template"]), &config).await.unwrap();
    let (message, details) = failed(&call.value);
    assert!(message.starts_with("cannot queue the text: "), "{message}");
    assert_eq!(details["error"]["code"], "denied");
    assert!(call.report.messages.is_empty());
    assert_eq!(call.report.denials().count(), 1);
}

#[tokio::test]
async fn sms_to_a_contact_without_a_phone_is_skipped() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "sms").await;
    let mut subject = ada();
    subject.contact.phone = None;
    let config = json!({"text": "Hi"}).to_string();
    let call = runtime.execute(&plugin, invocation(subject, &["render-template", "send-sms"]), &config).await.unwrap();
    assert_eq!(call.value, Outcome::Skipped { reason: "the contact has no phone number".into() });
    assert!(call.report.host_calls.is_empty(), "nothing rendered, nothing queued");
}

#[tokio::test]
async fn sms_made_manual_offers_a_draft_and_sends_it_as_the_rep_edited_it() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "sms").await;
    let config = json!({"text": "Hi {{contact.first_name}}, still on for 3pm?", "max_segments": 1}).to_string();
    let grants = ["render-template", "send-sms"];
    let item: EngageItem =
        runtime.prepare(&plugin, invocation(ada(), &grants), &config).await.unwrap().value.expect("an item");
    assert_eq!(item.title, "Text Ada Lovelace");
    let Some(Draft::Sms { to, body }) = item.draft.clone() else { panic!("{item:?}") };
    assert_eq!((to.as_str(), body.as_str()), ("+15550100", "Hi Ada, still on for 3pm?"));

    let edited = Draft::Sms { to: to.clone(), body: "Hi Ada, can we make it 4pm instead?".into() };
    let call = runtime.execute(&plugin, completed(invocation(ada(), &grants), "sent", Some(edited)), &config);
    let call = call.await.unwrap();
    assert!(matches!(&call.value, Outcome::Done { result, .. } if result == "sent"), "{:?}", call.value);
    assert_eq!(sms_sent(&call.report.messages), [(to.clone(), "Hi Ada, can we make it 4pm instead?".to_owned())]);
    assert!(call.report.host_calls.iter().all(|c| c.function != "templates.render"), "the draft is not re-rendered");

    // An edit past max_segments, or to another number, is refused whole.
    for (draft, expected) in [
        (
            Draft::Sms { to: to.clone(), body: "x".repeat(161) },
            "the edited text takes 2 SMS segments (GSM-7, 161 characters), over max_segments 1",
        ),
        (
            Draft::Sms { to: "+15550199".into(), body: "Hi".into() },
            "the draft is addressed to +15550199, not to the contact's phone +15550100",
        ),
    ] {
        let call = runtime.execute(&plugin, completed(invocation(ada(), &grants), "sent", Some(draft)), &config);
        let call = call.await.unwrap();
        assert_eq!(failed(&call.value).0, expected);
        assert!(call.report.messages.is_empty());
    }
}

#[tokio::test]
async fn call_is_manual_on_the_phone_channel_with_the_results_of_the_spec() {
    let runtime = runtime(false);
    let manifest = builtin(&runtime, "call").await.manifest().clone();
    assert_eq!((manifest.channel, manifest.default_activation), (Some(Channel::Phone), Activation::Manual));
    assert_eq!(manifest.capabilities, [Capability::RenderTemplate]);
    let results: Vec<_> = manifest.results.iter().map(|r| (r.code.as_str(), r.ends_enrollment, r.outcome)).collect();
    assert_eq!(
        results,
        [
            ("no_answer", false, None),
            ("left_voicemail", false, None),
            ("interested", true, Some(EnrollmentOutcome::Positive)),
            ("not_interested", true, Some(EnrollmentOutcome::Negative)),
            ("placed", false, None),
        ]
    );
}

#[tokio::test]
async fn call_renders_its_script_into_the_item_and_completes_with_the_reps_result() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "call").await;
    let config = json!({"script": "Hi {{contact.first_name}}, this is {{owner.name}}."}).to_string();
    let item = runtime.prepare(&plugin, invocation(ada(), &["render-template"]), &config).await.unwrap().value.unwrap();
    assert_eq!((item.title.as_str(), item.body.as_str()), ("Call Ada Lovelace", "Hi Ada, this is Grace Hopper."));
    assert!(item.draft.is_none());

    // Without render-template the script cannot be rendered: prepare says so.
    let call = runtime.prepare(&plugin, invocation(ada(), &[]), &config).await.unwrap();
    let why = call.value.unwrap_err();
    assert!(why.starts_with("cannot render /script: "), "{why}");
    assert_eq!(call.report.denials().count(), 1);

    for result in ["no_answer", "left_voicemail", "interested", "not_interested"] {
        let call = runtime.execute(&plugin, completed(invocation(ada(), &[]), result, None), &config).await.unwrap();
        assert_eq!(call.value, Outcome::Done { result: result.into(), output: Value::Null });
    }
    let call = runtime.execute(&plugin, completed(invocation(ada(), &[]), "placed", None), &config).await.unwrap();
    assert!(failed(&call.value).0.starts_with("`placed` is for calls the voice provider placed"), "{:?}", call.value);
    // Run by a host without a voice provider, an automatic call fails.
    let call = runtime.execute(&plugin, invocation(ada(), &["render-template"]), &config).await.unwrap();
    assert!(failed(&call.value).0.starts_with("automatic calls need a voice provider"), "{:?}", call.value);
    assert_eq!(
        problems(&runtime, &plugin, json!({"title": "", "script": "{{owner.phone}}"})).await,
        [
            "/title: must not be empty; leave it out for `Call <name>`",
            r#"/script: unknown token "owner.phone" at byte 0"#
        ]
    );
}

#[tokio::test]
async fn contact_reminder_is_a_manual_item_done_by_the_owner() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "contact-reminder").await;
    let manifest = plugin.manifest();
    assert_eq!((manifest.channel, manifest.default_activation), (None, Activation::Manual));
    assert_eq!(manifest.results.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(), ["done"]);
    let config = json!({"notes": "Ask {{contact.first_name}} about the renewal."}).to_string();
    let item = runtime.prepare(&plugin, invocation(ada(), &["render-template"]), &config).await.unwrap().value.unwrap();
    assert_eq!((item.title.as_str(), item.body.as_str()), ("Contact Ada Lovelace", "Ask Ada about the renewal."));
    let call = runtime.execute(&plugin, completed(invocation(ada(), &[]), "done", None), &config).await.unwrap();
    assert_eq!(call.value, Outcome::Done { result: "done".into(), output: Value::Null });
    let call = runtime.execute(&plugin, invocation(ada(), &[]), &config).await.unwrap();
    assert_eq!(failed(&call.value).0, "a contact reminder is for the owner to act on: make the step manual");
    assert_eq!(
        problems(&runtime, &plugin, json!({"title": "Call {{contact.nope}}"})).await,
        [r#"/title: unknown token "contact.nope" at byte 5 (did you mean "contact.phone"?)"#]
    );
}

/// An invocation whose directory knows Grace, Alan, inactive Kurt and
/// delegate Dee.
fn with_directory(grants: &[&str]) -> Invocation {
    let mut inv = invocation(ada(), grants);
    let user = |id: &str, name: &str, email: &str| User {
        id: id.into(),
        name: name.into(),
        email: email.into(),
        ..User::default()
    };
    inv.directory = Arc::new(StaticDirectory::new(vec![
        grace(),
        user("usr_alan", "Alan Turing", "alan@example.com"),
        User { active: false, ..user("usr_kurt", "Kurt Gödel", "kurt@example.com") },
        User { delegate: true, ..user("usr_dee", "Dee Legate", "dee@example.com") },
    ]));
    inv
}

#[tokio::test]
async fn assign_user_asks_only_for_the_owner_field() {
    let runtime = runtime(false);
    let manifest = builtin(&runtime, "assign-user").await.manifest().clone();
    assert_eq!(manifest.default_activation, Activation::Automatic);
    assert_eq!(
        manifest.capabilities,
        [Capability::LookupUser, Capability::UpdateContact(BTreeSet::from([ContactField::Owner]))]
    );
}

#[tokio::test]
async fn assign_user_sets_the_owner_by_email_or_id_and_unassigns() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "assign-user").await;
    let grants = ["lookup-user", "update-contact=owner"];
    let call = runtime.execute(&plugin, with_directory(&grants), r#"{"email": "ALAN@example.com"}"#).await.unwrap();
    let Outcome::Done { output, .. } = &call.value else { panic!("{:?}", call.value) };
    assert_eq!(
        (output["owner_id"].clone(), output["previous_owner_id"].clone()),
        (json!("usr_alan"), json!("usr_grace"))
    );
    assert_eq!(call.report.contact_changes.len(), 1);
    assert_eq!(call.report.contact_changes[0].owner, Some(Some("usr_alan".into())));

    let call = runtime.execute(&plugin, with_directory(&grants), r#"{"user_id": "usr_alan"}"#).await.unwrap();
    assert_eq!(call.report.contact_changes[0].owner, Some(Some("usr_alan".into())));

    let call = runtime.execute(&plugin, with_directory(&grants), r#"{"user_id": "usr_grace"}"#).await.unwrap();
    let Outcome::Done { output, .. } = &call.value else { panic!("{:?}", call.value) };
    assert_eq!(output["changed"], false, "Grace owns Ada already");
    assert!(call.report.contact_changes.is_empty());

    let call = runtime.execute(&plugin, with_directory(&grants), r#"{"unassign": true}"#).await.unwrap();
    assert!(matches!(call.value, Outcome::Done { .. }), "{:?}", call.value);
    assert_eq!(call.report.contact_changes[0].owner, Some(None));
}

#[tokio::test]
async fn assign_user_fails_naming_an_unknown_inactive_or_delegate_user() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "assign-user").await;
    let grants = ["lookup-user", "update-contact=owner"];
    for (config, expected) in [
        (json!({"email": "nobody@example.com"}), "no user with email `nobody@example.com` in this account"),
        (json!({"user_id": "usr_nobody"}), "no user `usr_nobody` in this account"),
        (
            json!({"email": "kurt@example.com"}),
            "user Kurt Gödel <kurt@example.com> (usr_kurt) is inactive and cannot own contacts",
        ),
        (
            json!({"user_id": "usr_dee"}),
            "user Dee Legate <dee@example.com> (usr_dee) is a delegate, who may not own contacts",
        ),
    ] {
        let call = runtime.execute(&plugin, with_directory(&grants), &config.to_string()).await.unwrap();
        assert_eq!(failed(&call.value).0, expected);
        // Saving such a step is refused the same way, at the field.
        let field = if config.get("email").is_some() { "/email" } else { "/user_id" };
        let grant = Arc::new(AccountGrant::for_validation(plugin.manifest()));
        let saving = with_directory(&[]).directory;
        let invocation = Invocation::validating(grant, "acc_1", saving);
        let call = runtime.validate_config(&plugin, invocation, &config.to_string()).await.unwrap();
        let found: Vec<String> = call.value.iter().map(|p| format!("{}: {}", p.field, p.message)).collect();
        assert_eq!(found, [format!("{field}: {expected}")]);
        assert!(call.report.contact_changes.is_empty());
    }
    assert_eq!(
        problems(&runtime, &plugin, json!({"user_id": "usr_alan", "email": "alan@example.com"})).await,
        ["/email: `user_id` is set already: choose one"]
    );
    assert_eq!(problems(&runtime, &plugin, json!({})).await, [": set one of `user_id`, `email` or `unassign: true`"]);
}

#[tokio::test]
async fn assign_user_without_its_grants_is_denied() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "assign-user").await;
    let config = r#"{"email": "alan@example.com"}"#;
    let call = runtime.execute(&plugin, with_directory(&["update-contact=owner"]), config).await.unwrap();
    let (message, details) = failed(&call.value);
    assert!(message.starts_with("cannot look up the user with email `alan@example.com`: "), "{message}");
    assert_eq!(details["error"]["code"], "denied");

    // Another field of the contact is no grant of its owner.
    let call = runtime
        .execute(&plugin, with_directory(&["lookup-user", "update-contact=contact_type"]), config)
        .await
        .unwrap();
    let (message, details) = failed(&call.value);
    assert!(
        message.starts_with("cannot make Alan Turing <alan@example.com> (usr_alan) the contact's owner: "),
        "{message}"
    );
    assert_eq!(details["error"]["code"], "denied");
    assert!(call.report.contact_changes.is_empty());
    assert_eq!(call.report.denials().count(), 1);
}

#[tokio::test]
async fn change_contact_type_sets_the_type_with_its_one_grant() {
    let runtime = runtime(false);
    let plugin = builtin(&runtime, "change-contact-type").await;
    assert_eq!(
        plugin.manifest().capabilities,
        [Capability::UpdateContact(BTreeSet::from([ContactField::ContactType])), Capability::ReadContactTypes]
    );
    let config = r#"{"contact_type": "Partners"}"#;
    let call = runtime.execute(&plugin, invocation(ada(), &["update-contact=contact_type"]), config).await.unwrap();
    let Outcome::Done { output, .. } = &call.value else { panic!("{:?}", call.value) };
    assert_eq!(output, &json!({"contact_type": "Partners", "previous_contact_type": "Clients", "changed": true}));
    assert_eq!(call.report.contact_changes[0].contact_type.as_deref(), Some("Partners"));

    let call = runtime.execute(&plugin, invocation(ada(), &["update-contact=owner"]), config).await.unwrap();
    let (message, details) = failed(&call.value);
    assert!(message.starts_with("cannot change the contact type to `Partners`: "), "{message}");
    assert_eq!(details["error"]["code"], "denied");
    assert!(call.report.contact_changes.is_empty());

    assert_eq!(
        problems(&runtime, &plugin, json!({"contact_type": " Partners"})).await,
        ["/contact_type: must not start or end with spaces"]
    );
    let missing = problems(&runtime, &plugin, json!({})).await;
    assert!(missing[0].contains("missing field `contact_type`"), "{missing:?}");
    // Saved, the name is checked against the account's types.
    assert!(problems(&runtime, &plugin, json!({"contact_type": "Vendors"})).await.is_empty());
    assert_eq!(
        problems(&runtime, &plugin, json!({"contact_type": "Vendor"})).await,
        [
            "/contact_type: no contact type `Vendor` in this account (it has Clients, Employees, Partners, Vendors, Other)"
        ]
    );
}

/// A subject with no owner still gets a to-do item from each manual step.
#[tokio::test]
async fn manual_items_need_no_owner() {
    let runtime = runtime(false);
    let subject = Subject { owner: None, ..ada() };
    for (name, config) in [("call", json!({})), ("contact-reminder", json!({}))] {
        let plugin = builtin(&runtime, name).await;
        let inv = invocation(subject.clone(), &["render-template"]);
        let item = runtime.prepare(&plugin, inv, &config.to_string()).await.unwrap().value.unwrap();
        assert!(item.title.ends_with("Ada Lovelace"), "{name}: {item:?}");
    }
}
