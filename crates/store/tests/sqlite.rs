//! Runs the store conformance suite against the SQLite backend, and checks
//! that data survives reopening the file.

use mallee_store::{Store, conformance, sqlite::SqliteStore};

#[tokio::test]
async fn sqlite_passes_conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("mallee.db"))
        .await
        .expect("open");
    conformance::run(&store).await;
}

#[tokio::test]
async fn sqlite_reopens_with_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mallee.db");
    {
        let store = SqliteStore::open(&path).await.expect("open");
        store.set_setting("kept", "yes").await.expect("set");
    }
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(
        store.setting("kept").await.expect("get").as_deref(),
        Some("yes")
    );
}
