//! Regression: `GET /v1/sequences/{id}/report` loaded every enrollment and
//! action into memory and bound one parameter per enrollment, so it failed
//! past 32,766 enrollments on SQLite (65,535 on PostgreSQL). It is counted
//! by the database now. On both backends, with 100,000 enrollments.

use stepwise::engagement::{SequenceSettings, TimingMode};
use stepwise_tests::app::TestApp;
use stepwise_tests::db::for_each_backend;
use stepwise_tests::scenario::task;

const ENROLLMENTS: u64 = 100_000;

#[tokio::test]
async fn the_report_of_a_sequence_with_100_000_enrollments_is_counted_by_the_database() {
    for_each_backend(|store| async move {
        let app = TestApp::spawn(store.clone()).await;
        let w = &app.world;
        let seq = w.sequence(TimingMode::AfterPrevious, SequenceSettings::default(), vec![task(0)]).await;
        let mut tx = store.begin_read().await.unwrap();
        let types = tx.contact_types(&w.account).await.unwrap();
        drop(tx);
        let kind = &types.iter().find(|t| t.default).unwrap().id;
        let account = &w.account;
        // Seeded in two statements: through the API this would take minutes.
        let rows = format!("WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ENROLLMENTS})");
        store
            .execute_unchecked(&format!(
                "{rows} INSERT INTO contacts (id, account_id, kind, first_name, last_name, contact_type_id,
                         opt_out_email, opt_out_sms, opt_out_phone, attributes, created_at, updated_at)
                 SELECT 'con_r' || i, '{account}', 'lead', 'Lead', '', '{kind}', FALSE, FALSE, FALSE, '{{}}', 0, 0
                 FROM n"
            ))
            .await
            .unwrap();
        // Every tenth replied, the rest pending.
        store
            .execute_unchecked(&format!(
                "{rows} INSERT INTO enrollments (id, account_id, contact_id, sequence_id, version, status,
                         current_step, started_at, created_at, updated_at)
                 SELECT 'enr_r' || i, '{account}', 'con_r' || i, '{seq}', 1,
                        CASE WHEN i % 10 = 0 THEN 'replied' ELSE 'pending' END, 0, 0, 0, 0
                 FROM n"
            ))
            .await
            .unwrap();

        let report = app.get(&format!("/v1/sequences/{seq}/report"), Some(&app.admin_key)).await;
        assert_eq!(report.status, 200, "{}", report.text);
        assert_eq!(report.json["enrolled"], ENROLLMENTS, "{}", report.text);
        assert_eq!(report.json["by_status"]["pending"], ENROLLMENTS / 10 * 9, "{}", report.text);
        assert_eq!(report.json["replies"], ENROLLMENTS / 10, "{}", report.text);
    })
    .await;
}
