//! `GET /v1/outbox`: an admin sees the account's messages, filtered by
//! state and channel and paged by cursor; nobody else's; agents not at
//! all. On both backends.

use serde_json::{Value, json};
use stepwise::engagement::OutboxChannel;
use stepwise::store::{DeliveryOutcome, NewOutboxMessage, Store};
use stepwise_tests::app::TestApp;
use stepwise_tests::db::{at, for_each_backend, t0};

async fn enqueue(store: &Store, account: &str, channel: OutboxChannel, key: &str, minute: i64) -> String {
    let payload = match channel {
        OutboxChannel::Email => {
            json!({"channel": "email", "id": key, "to": "ada@example.com", "subject": "Hi", "text": "Hi"})
        }
        OutboxChannel::Sms => json!({"channel": "sms", "id": key, "to": "+15550100", "body": "Hi"}),
    };
    let new = NewOutboxMessage {
        account_id: account.to_owned(),
        action_id: None,
        channel,
        payload,
        idempotency_key: key.to_owned(),
    };
    let mut tx = store.begin().await.unwrap();
    let message = tx.enqueue_message(&new, at(minute)).await.unwrap();
    tx.commit().await.unwrap();
    message.id
}

/// Claims every due message and records `outcome` for the one `id`; the
/// others are released.
async fn settle(store: &Store, id: &str, outcome: DeliveryOutcome<'_>) {
    let claimed = store.claim_messages(at(10), 100, std::time::Duration::from_secs(60)).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.finish_delivery(id, &claimed[0].lease_token, outcome, at(10)).await.unwrap();
    tx.commit().await.unwrap();
    store.release_messages(&claimed[0].lease_token).await.unwrap();
}

fn ids(answer: &Value) -> Vec<String> {
    answer["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn admins_list_the_accounts_messages_by_state_and_channel_in_pages() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store.clone()).await;
        let account = app.world.account.clone();
        let queued = enqueue(&store, &account, OutboxChannel::Email, "k_queued", 0).await;
        let sent = enqueue(&store, &account, OutboxChannel::Sms, "k_sent", 1).await;
        let failed = enqueue(&store, &account, OutboxChannel::Email, "k_failed", 2).await;
        let later = enqueue(&store, &account, OutboxChannel::Email, "k_later", 3).await;
        settle(&store, &sent, DeliveryOutcome::Sent { provider_id: Some("SM1") }).await;
        settle(&store, &failed, DeliveryOutcome::Failed { error: "permanent failure: 550 no such user" }).await;
        // Another account's message is never shown.
        let mut tx = store.begin().await.unwrap();
        let other = tx.create_account("Other", None, t0()).await.unwrap().id;
        tx.commit().await.unwrap();
        enqueue(&store, &other, OutboxChannel::Email, "k_other", 0).await;

        let key = Some(app.admin_key.as_str());
        let all = app.get("/v1/outbox", key).await;
        assert_eq!(all.status, 200, "{}", all.text);
        assert_eq!(
            ids(&all.json),
            [queued.as_str(), sent.as_str(), failed.as_str(), later.as_str()],
            "oldest first, this account's only"
        );
        assert_eq!(all.json["next_after"], Value::Null);
        let message = &all.json["messages"][2];
        assert_eq!(message["state"], "failed");
        assert_eq!(message["channel"], "email");
        assert_eq!(message["attempts"], 1);
        assert_eq!(message["last_error"], "permanent failure: 550 no such user");
        assert_eq!(message["sent_at"], Value::Null);
        assert!(message["created_at"].is_string());
        let message = &all.json["messages"][1];
        assert_eq!((message["state"].as_str(), message["provider_id"].as_str()), (Some("sent"), Some("SM1")));
        assert!(message["sent_at"].is_string());

        let failed_only = app.get("/v1/outbox?state=failed", key).await;
        assert_eq!(ids(&failed_only.json), [failed.as_str()]);
        let texts = app.get("/v1/outbox?channel=sms", key).await;
        assert_eq!(ids(&texts.json), [sent.as_str()]);
        let queued_emails = app.get("/v1/outbox?state=queued&channel=email", key).await;
        assert_eq!(ids(&queued_emails.json), [queued.as_str(), later.as_str()]);

        let first = app.get("/v1/outbox?limit=3", key).await;
        assert_eq!(ids(&first.json), [queued.as_str(), sent.as_str(), failed.as_str()]);
        let cursor = first.json["next_after"].as_str().expect("a cursor").to_owned();
        let second = app.get(&format!("/v1/outbox?limit=3&after={cursor}"), key).await;
        assert_eq!(ids(&second.json), [later.as_str()]);
        assert_eq!(second.json["next_after"], Value::Null);
    })
    .await;
}

#[tokio::test]
async fn agents_may_not_read_the_outbox_and_bad_filters_are_clear_problems() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store).await;
        let agent = app.get("/v1/outbox", Some(&app.agent_key)).await;
        assert_eq!(agent.status, 403, "{}", agent.text);
        assert_eq!(app.get("/v1/outbox", None).await.status, 401);
        let key = Some(app.admin_key.as_str());
        for (query, says) in [
            ("state=lost", "unknown variant `lost`"),
            ("channel=fax", "unknown variant `fax`"),
            ("limit=0", "limit 0 is outside 1 to 500"),
            ("after=nonsense", "`after=nonsense` is not a cursor"),
            ("colour=red", "unknown field `colour`"),
        ] {
            let answer = app.get(&format!("/v1/outbox?{query}"), key).await;
            assert!(matches!(answer.status, 400 | 422), "{query}: {}", answer.status);
            assert_eq!(answer.content_type, "application/problem+json", "{query}");
            assert!(answer.text.contains(says), "{query}: {}", answer.text);
        }
    })
    .await;
}
