//! Runs the store conformance suite against the PostgreSQL backend on a
//! real server the test starts itself (see `support`), and checks that
//! data survives reconnecting.

mod support;

use mallee_store::{Store, conformance, postgres::PostgresStore};
use support::PgServer;

#[tokio::test]
async fn postgres_passes_conformance() {
    let server = PgServer::start();
    let store = PostgresStore::open(&server.create_database().await)
        .await
        .expect("open");
    conformance::run(&store).await;
}

#[tokio::test]
async fn postgres_reopens_with_data() {
    let server = PgServer::start();
    let url = server.create_database().await;
    {
        let store = PostgresStore::open(&url).await.expect("open");
        store.set_setting("kept", "yes").await.expect("set");
    }
    // Migrations already applied are not run again.
    let store = PostgresStore::open(&url).await.expect("reopen");
    assert_eq!(
        store.setting("kept").await.expect("get").as_deref(),
        Some("yes")
    );
}
