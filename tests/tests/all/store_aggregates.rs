//! Reading back what was written, for every aggregate, and removing an
//! enrollment with all its history, on both backends.

use stepwise::crm::{AttributeValue, Company, Contact, OptOuts, Role, User};
use stepwise::engagement::{
    EventKind, Level, OutboxChannel, OutboxState, PluginAccount, PluginKind, PluginRecord, SequenceSettings,
    SequenceState,
};
use stepwise::store::{NewEvent, NewOutboxMessage, StoreError, Timeline};
use stepwise_tests::db::{action, at, fixture, for_each_backend, t0};

#[tokio::test]
async fn accounts_users_contact_types_companies_and_contacts_round_trip() {
    for_each_backend(|store| async move {
        let mut tx = store.begin().await.unwrap();
        let account = tx.create_account("Acme", None, t0()).await.unwrap();
        assert_eq!(tx.account(&account.id).await.unwrap(), account);
        let types = tx.contact_types(&account.id).await.unwrap();
        let names: Vec<_> = types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["Clients", "Employees", "Partners", "Vendors", "Other"]);

        let user = User {
            name: "Grace".into(),
            email: "grace@example.com".into(),
            role: Role::Admin,
            delegate: true,
            sender_connected: true,
            timezone: "Europe/Paris".into(),
            signature: "G.".into(),
            ..User::default()
        };
        let user = tx.create_user(&account.id, &user, t0()).await.unwrap();
        assert!(user.id.starts_with("usr_"));
        assert_eq!(tx.user(&account.id, &user.id).await.unwrap(), user);
        let inactive = User { active: false, ..user.clone() };
        tx.update_user(&account.id, &inactive, at(1)).await.unwrap();
        let inactive = User { updated_at: Some(at(1)), ..inactive };
        assert_eq!(tx.users(&account.id).await.unwrap(), [inactive]);

        let company = Company { name: "Initech".into(), owner_id: Some(user.id.clone()), ..Company::default() };
        let company = tx.create_company(&account.id, &company, t0()).await.unwrap();
        assert_eq!(tx.company(&account.id, &company.id).await.unwrap(), company);

        let contact = Contact {
            kind: stepwise::crm::ContactKind::Contact,
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: Some("ada@example.com".into()),
            phone: Some("+15550100".into()),
            owner_id: Some(user.id.clone()),
            company_id: Some(company.id.clone()),
            contact_type: "Partners".into(),
            lead_source: Some("web".into()),
            sales_cycle: Some("q1".into()),
            timezone: Some("Europe/London".into()),
            opt_outs: OptOuts { email: true, sms: false, phone: true },
            attributes: [("score".to_owned(), AttributeValue::Number(4.5))].into(),
            last_engaged: Some(at(1)),
            last_contacted: Some(at(2)),
            ..Contact::default()
        };
        let contact = tx.create_contact(&account.id, &contact, t0()).await.unwrap();
        assert_eq!(tx.contact(&account.id, &contact.id).await.unwrap(), contact);
        // Renaming a type renames it for its contacts.
        let partners = types.iter().find(|t| t.name == "Partners").unwrap();
        tx.rename_contact_type(&account.id, &partners.id, "Allies", t0()).await.unwrap();
        assert_eq!(tx.contact(&account.id, &contact.id).await.unwrap().contact_type, "Allies");
        let moved = Contact { contact_type: "Other".into(), ..contact.clone() };
        tx.update_contact(&account.id, &moved, t0()).await.unwrap();
        assert_eq!(tx.contact(&account.id, &contact.id).await.unwrap(), moved);
        // Another account sees none of it.
        let other = tx.create_account("Other", None, t0()).await.unwrap();
        let error = tx.contact(&other.id, &contact.id).await.unwrap_err();
        assert!(matches!(error, StoreError::NotFound { what: "contact", .. }), "{error}");
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        let unknown = Contact { contact_type: "Partners".into(), ..Contact::default() };
        let error = tx.create_contact(&account.id, &unknown, t0()).await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid(_)), "{error}");
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        let twin = User { id: String::new(), ..user.clone() };
        let error = tx.create_user(&account.id, &twin, t0()).await.unwrap_err();
        assert!(
            matches!(error, StoreError::Conflict { ref constraint, .. } if constraint == "users_account_id_email_key")
        );
    })
    .await;
}

#[tokio::test]
async fn sequences_versions_and_enrollments_round_trip() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        let mut sequence = tx.sequence(&f.account, &f.sequence).await.unwrap();
        assert_eq!(sequence.state, SequenceState::Active);
        sequence.settings = SequenceSettings {
            drip_limit: Some(2),
            lead_source: Some("web".into()),
            next_sequence_id: Some(f.sequence.clone()),
            shared_locked: true,
            ..SequenceSettings::default()
        };
        tx.update_sequence(&sequence, at(1)).await.unwrap();
        let read = tx.sequence(&f.account, &f.sequence).await.unwrap();
        assert_eq!((read.settings, read.updated_at), (sequence.settings.clone(), at(1)));
        assert_eq!(tx.sequences_for_lead_source(&f.account, "web").await.unwrap().len(), 1);

        let enrollment = tx.enrollment(&f.enrollment).await.unwrap();
        assert_eq!((enrollment.version, enrollment.current_step, enrollment.started_at), (1, 0, t0()));
        assert_eq!(tx.enrollments_of_contact(&f.contact).await.unwrap(), std::slice::from_ref(&enrollment));
        assert_eq!(tx.drip_slots_held(&f.sequence).await.unwrap(), 1);
        assert_eq!(tx.oldest_queued(&f.sequence).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn events_outbox_and_plugins_round_trip() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        let event = NewEvent {
            account_id: f.account.clone(),
            contact_id: Some(f.contact.clone()),
            company_id: None,
            enrollment_id: Some(f.enrollment.clone()),
            action_id: None,
            kind: EventKind::EnrollmentCreated,
            actor: f.user.clone(),
            reason: Some("enrolled by hand".into()),
            before: None,
            after: Some(serde_json::json!({"status": "running"})),
            level: Level::Info,
        };
        let written = tx.record_event(&event, at(1)).await.unwrap();
        assert_eq!(tx.events(Timeline::Contact(&f.contact)).await.unwrap(), [written]);

        let message = NewOutboxMessage {
            account_id: f.account.clone(),
            action_id: None,
            channel: OutboxChannel::Sms,
            payload: serde_json::json!({"to": "+15550100"}),
            idempotency_key: "k1".into(),
        };
        let queued = tx.enqueue_message(&message, t0()).await.unwrap();
        assert_eq!(tx.queued_messages(10).await.unwrap(), std::slice::from_ref(&queued));
        tx.commit().await.unwrap();
        let claimed = store.claim_messages(at(1), 10, std::time::Duration::from_secs(60)).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(
            store.claim_messages(at(1), 10, std::time::Duration::from_secs(60)).await.unwrap().is_empty(),
            "leased"
        );
        let mut tx = store.begin().await.unwrap();
        let token = &claimed[0].lease_token;
        tx.record_delivery(&queued.id, token, Err("timeout"), Some(at(5)), at(1)).await.unwrap();
        let stale = tx.record_delivery(&queued.id, token, Ok(()), None, at(1)).await.unwrap_err();
        assert!(matches!(stale, StoreError::LeaseLost(_)), "the lease was released: {stale}");
        tx.commit().await.unwrap();
        assert!(
            store.claim_messages(at(4), 10, std::time::Duration::from_secs(60)).await.unwrap().is_empty(),
            "backing off"
        );
        let claimed = store.claim_messages(at(5), 10, std::time::Duration::from_secs(60)).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.record_delivery(&queued.id, &claimed[0].lease_token, Ok(()), Some(at(2)), at(2)).await.unwrap();
        let sent = tx.message(&queued.id).await.unwrap();
        assert_eq!((sent.state, sent.attempts, sent.sent_at), (OutboxState::Sent, 2, Some(at(2))));
        assert_eq!(sent.last_error.as_deref(), Some("timeout"));
        assert!(tx.queued_messages(10).await.unwrap().is_empty());

        let plugin = PluginRecord {
            uploaded_by: None,
            id: "invoice-paid".into(),
            version: "0.1.0".into(),
            kind: PluginKind::Predicate,
            manifest: "{}".into(),
            wasm_digest: "ab".into(),
            wasm: Some(vec![0, 97, 115, 109]),
            builtin: false,
        };
        tx.save_plugin(&plugin, t0()).await.unwrap();
        tx.save_plugin(&plugin, t0()).await.unwrap();
        assert_eq!(tx.plugin("invoice-paid", "0.1.0").await.unwrap(), plugin);
        assert_eq!(tx.plugins().await.unwrap().len(), 1);
        assert_eq!(tx.plugin_account(&f.account, "invoice-paid").await.unwrap(), None);
        let mut grant = PluginAccount {
            account_id: f.account.clone(),
            plugin_id: "invoice-paid".into(),
            enabled: true,
            grants: serde_json::json!({"http": ["api.example.com"]}),
            approved_capabilities: vec!["http-fetch".into()],
        };
        tx.set_plugin_account(&grant, t0()).await.unwrap();
        grant.enabled = false;
        tx.set_plugin_account(&grant, at(1)).await.unwrap();
        assert_eq!(tx.plugin_account(&f.account, "invoice-paid").await.unwrap(), Some(grant));
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        let changed = PluginRecord { wasm_digest: "cd".into(), ..plugin };
        let error = tx.save_plugin(&changed, t0()).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict { ref constraint, .. } if constraint == "plugins_pkey"));
    })
    .await;
}

#[tokio::test]
async fn removing_an_enrollment_removes_its_actions_events_and_messages() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut tx = store.begin().await.unwrap();
        let a = action(&mut tx, &f.enrollment, 0, t0(), true).await.unwrap();
        action(&mut tx, &f.enrollment, 1, at(1), false).await.unwrap();
        let event = NewEvent {
            account_id: f.account.clone(),
            contact_id: Some(f.contact.clone()),
            company_id: None,
            enrollment_id: Some(f.enrollment.clone()),
            action_id: Some(a.id.clone()),
            kind: EventKind::ActionCompleted,
            actor: "system".into(),
            reason: None,
            before: None,
            after: None,
            level: Level::Info,
        };
        tx.record_event(&event, at(1)).await.unwrap();
        let message = NewOutboxMessage {
            account_id: f.account.clone(),
            action_id: Some(a.id.clone()),
            channel: OutboxChannel::Email,
            payload: serde_json::json!({}),
            idempotency_key: a.id.clone(),
        };
        let message = tx.enqueue_message(&message, at(1)).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        tx.delete_enrollment(&f.account, &f.enrollment, at(2)).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert!(matches!(tx.enrollment(&f.enrollment).await, Err(StoreError::NotFound { .. })));
        assert!(tx.actions_of_enrollment(&f.enrollment).await.unwrap().is_empty());
        assert!(matches!(tx.action(&a.id).await, Err(StoreError::NotFound { .. })));
        assert!(tx.events(Timeline::Contact(&f.contact)).await.unwrap().is_empty());
        assert!(matches!(tx.message(&message.id).await, Err(StoreError::NotFound { .. })));
        // The contact and the sequence stay.
        tx.contact(&f.account, &f.contact).await.unwrap();
        tx.sequence(&f.account, &f.sequence).await.unwrap();
    })
    .await;
}
