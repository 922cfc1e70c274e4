//! Webhook deliveries' lanes in the store, on both backends: one delivery
//! of a subscription and ordering key at a time, in order, with writers and
//! deliverers racing each other, and heads that follow the subscription's
//! state.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use stepwise::engagement::{DeliveryStatus, SubscriptionStatus, WebhookEventType};
use stepwise::store::{ClaimedDelivery, DeliveryFilter, NewSubscription, Store, WebhookSubscription};
use stepwise_tests::db::{at, fixture, for_each_backend};

const LEASE: Duration = Duration::from_secs(60);
const TYPES: &[WebhookEventType] = &[WebhookEventType::ContactUpdated];

async fn subscription(store: &Store, account: &str) -> WebhookSubscription {
    let mut tx = store.begin().await.unwrap();
    let new = NewSubscription {
        url: "https://hooks.example.com/in",
        description: None,
        event_types: TYPES,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    };
    let sub = tx.create_webhook_subscription(account, &new, at(0)).await.unwrap();
    tx.commit().await.unwrap();
    sub
}

/// Publishes one event keyed by `key`, carrying `data`, in its own
/// transaction.
async fn publish(store: &Store, account: &str, key: &str, data: serde_json::Value) {
    let mut tx = store.begin().await.unwrap();
    tx.publish_event(account, WebhookEventType::ContactUpdated, Some(key), data, at(0)).await.unwrap();
    tx.commit().await.unwrap();
}

/// Records an attempt of `d` and commits.
async fn record(store: &Store, d: &ClaimedDelivery, status: DeliveryStatus, retry_at: Option<i64>) {
    let mut tx = store.begin().await.unwrap();
    let recorded =
        tx.record_delivery_attempt(d, status, retry_at.map(at), Some(200), Some("ok"), None, at(1)).await.unwrap();
    assert!(recorded, "the lease is the deliverer's");
    tx.commit().await.unwrap();
}

fn keys(claimed: &[ClaimedDelivery]) -> Vec<String> {
    let mut keys: Vec<String> = claimed.iter().map(|d| d.ordering_key.clone()).collect();
    keys.sort_unstable();
    keys
}

fn data(d: &ClaimedDelivery) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&d.payload).unwrap()["data"].clone()
}

async fn pending(store: &Store, account: &str, sub: &str) -> usize {
    let mut tx = store.begin_read().await.unwrap();
    let filter = DeliveryFilter { status: Some(DeliveryStatus::Pending), event_id: None };
    tx.webhook_deliveries(account, sub, &filter, None, 1_000).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_and_deliverers_send_each_lane_one_at_a_time_in_order() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let sub = subscription(&store, &f.account).await;
        const WRITERS: usize = 4;
        const EACH: usize = 30;
        const LANES: usize = 3;
        let writing = Arc::new(AtomicBool::new(true));
        // Lanes with a claimed delivery not yet recorded, and what each
        // lane delivered, in the order it went.
        let in_flight = Arc::new(Mutex::new(HashSet::<String>::new()));
        let delivered = Arc::new(Mutex::new(BTreeMap::<String, Vec<(u64, u64)>>::new()));
        let deliverers: Vec<_> = (0..3)
            .map(|_| {
                let (store, writing) = (store.clone(), writing.clone());
                let (in_flight, delivered) = (in_flight.clone(), delivered.clone());
                tokio::spawn(async move {
                    loop {
                        let done = !writing.load(Ordering::SeqCst);
                        let claimed = store.claim_webhook_deliveries(at(1), 4, LEASE).await.unwrap();
                        if claimed.is_empty() {
                            if done {
                                return;
                            }
                            tokio::task::yield_now().await;
                            continue;
                        }
                        for d in &claimed {
                            assert!(
                                in_flight.lock().unwrap().insert(d.ordering_key.clone()),
                                "two deliveries of lane {} at once",
                                d.ordering_key
                            );
                        }
                        for d in &claimed {
                            let body = data(d);
                            let sent = (body["writer"].as_u64().unwrap(), body["n"].as_u64().unwrap());
                            delivered.lock().unwrap().entry(d.ordering_key.clone()).or_default().push(sent);
                            let mut tx = store.begin().await.unwrap();
                            let ok = tx
                                .record_delivery_attempt(
                                    d,
                                    DeliveryStatus::Succeeded,
                                    None,
                                    Some(204),
                                    None,
                                    None,
                                    at(1),
                                )
                                .await
                                .unwrap();
                            assert!(ok);
                            // Out of flight before the next head can be seen.
                            in_flight.lock().unwrap().remove(&d.ordering_key);
                            tx.commit().await.unwrap();
                        }
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (store, account) = (store.clone(), f.account.clone());
                tokio::spawn(async move {
                    for n in 0..EACH {
                        let key = format!("lane-{}", (writer + n) % LANES);
                        publish(&store, &account, &key, json!({ "writer": writer, "n": n })).await;
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        writing.store(false, Ordering::SeqCst);
        for deliverer in deliverers {
            deliverer.await.unwrap();
        }
        let delivered = delivered.lock().unwrap().clone();
        assert_eq!(delivered.values().map(Vec::len).sum::<usize>(), WRITERS * EACH, "each delivered once");
        for (lane, sent) in &delivered {
            for writer in 0..WRITERS as u64 {
                let mine: Vec<u64> = sent.iter().filter(|(w, _)| *w == writer).map(|(_, n)| *n).collect();
                assert!(mine.windows(2).all(|p| p[0] < p[1]), "lane {lane} kept writer {writer}'s order: {mine:?}");
            }
        }
        assert_eq!(pending(&store, &f.account, &sub.id).await, 0);
        assert_eq!(store.next_webhook_delivery_at().await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn a_retrying_head_holds_its_lane_only_and_heads_follow_the_subscription() {
    for_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut sub = subscription(&store, &f.account).await;
        for (key, n) in [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)] {
            publish(&store, &f.account, key, json!({ "n": n })).await;
        }
        // One head per lane.
        let first = store.claim_webhook_deliveries(at(1), 10, LEASE).await.unwrap();
        assert_eq!(keys(&first), ["a", "b"]);
        assert!(first.iter().all(|d| data(d)["n"] == 0));
        assert!(store.claim_webhook_deliveries(at(1), 10, LEASE).await.unwrap().is_empty(), "claimed, not due again");
        assert_eq!(store.next_webhook_delivery_at().await.unwrap(), Some(at(1) + LEASE), "due when the lease ends");

        // "a" fails and retries at minute 30; "b" succeeds and its next goes.
        let (a, b) = if first[0].ordering_key == "a" { (&first[0], &first[1]) } else { (&first[1], &first[0]) };
        record(&store, a, DeliveryStatus::Pending, Some(30)).await;
        record(&store, b, DeliveryStatus::Succeeded, None).await;
        let next = store.claim_webhook_deliveries(at(2), 10, LEASE).await.unwrap();
        assert_eq!(keys(&next), ["b"], "lane a waits behind its retry");
        assert_eq!(data(&next[0])["n"], 1);
        record(&store, &next[0], DeliveryStatus::Succeeded, None).await;
        assert_eq!(store.next_webhook_delivery_at().await.unwrap(), Some(at(30)));

        // Disabled: nothing is due. Enabled: lane a's first goes again.
        sub.status = SubscriptionStatus::Disabled;
        let mut tx = store.begin().await.unwrap();
        tx.save_webhook_subscription(&sub, at(3)).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.next_webhook_delivery_at().await.unwrap(), None);
        assert!(store.claim_webhook_deliveries(at(40), 10, LEASE).await.unwrap().is_empty());
        sub.status = SubscriptionStatus::Active;
        let mut tx = store.begin().await.unwrap();
        tx.save_webhook_subscription(&sub, at(41)).await.unwrap();
        tx.commit().await.unwrap();
        let again = store.claim_webhook_deliveries(at(41), 10, LEASE).await.unwrap();
        assert_eq!(keys(&again), ["a"]);
        assert_eq!(data(&again[0])["n"], 0, "the retry first");
        assert_eq!(again[0].attempts, 1);

        // A replay waits at the end of its lane.
        let mut tx = store.begin().await.unwrap();
        let replay = tx.replay_webhook_delivery(&f.account, &sub.id, &again[0].id, at(41)).await.unwrap();
        tx.commit().await.unwrap();
        let mut order = Vec::new();
        let mut claim = again;
        while let [d] = claim.as_slice() {
            order.push((d.id.clone(), data(d)["n"].as_u64().unwrap()));
            record(&store, d, DeliveryStatus::Succeeded, None).await;
            claim = store.claim_webhook_deliveries(at(42), 10, LEASE).await.unwrap();
        }
        assert!(claim.is_empty());
        let ns: Vec<u64> = order.iter().map(|(_, n)| *n).collect();
        assert_eq!(ns, [0, 1, 2, 0]);
        assert_eq!(order[3].0, replay.id);
        assert_eq!(pending(&store, &f.account, &sub.id).await, 0);
        assert_eq!(store.next_webhook_delivery_at().await.unwrap(), None);
    })
    .await;
}
