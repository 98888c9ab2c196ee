//! Runs the store conformance suite against the PostgreSQL backend on a
//! real server the test starts itself (see `support`), and checks that
//! data survives reconnecting and that the PostgreSQL migrations describe
//! the same schema as SQLite's.

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

/// The two migrations directories must describe one schema: the same
/// tables with the same columns, the same named indexes, at the same
/// version. A migration added to one directory only fails here.
#[tokio::test]
async fn postgres_schema_matches_sqlite() {
    use std::collections::BTreeSet;

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mallee.db");
    mallee_store::sqlite::SqliteStore::open(&file)
        .await
        .expect("open sqlite");
    let sqlite = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
        .await
        .expect("connect sqlite");
    let server = PgServer::start();
    let url = server.create_database().await;
    PostgresStore::open(&url).await.expect("open postgres");
    let postgres = sqlx::PgPool::connect(&url).await.expect("connect postgres");

    let rows = |v: Vec<(String, String)>| v.into_iter().collect::<BTreeSet<_>>();
    let sqlite_columns = rows(
        sqlx::query_as(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
        )
        .fetch_all(&sqlite)
        .await
        .expect("sqlite columns"),
    );
    let postgres_columns = rows(
        sqlx::query_as(
            "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
        )
        .fetch_all(&postgres)
        .await
        .expect("postgres columns"),
    );
    assert_eq!(
        sqlite_columns
            .difference(&postgres_columns)
            .collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "(table, column) in SQLite's schema only: add the migration to migrations-postgres"
    );
    assert_eq!(
        postgres_columns
            .difference(&sqlite_columns)
            .collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "(table, column) in PostgreSQL's schema only"
    );

    // Named indexes: those behind PRIMARY KEY and UNIQUE constraints are
    // implicit in SQLite and named after their constraint in PostgreSQL.
    let sqlite_indexes = rows(
        sqlx::query_as(
            "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
        )
        .fetch_all(&sqlite)
        .await
        .expect("sqlite indexes"),
    );
    let postgres_indexes = rows(
        sqlx::query_as(
            "SELECT tablename::TEXT, indexname::TEXT FROM pg_indexes
             WHERE schemaname = current_schema() AND tablename <> '_sqlx_migrations'
               AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        )
        .fetch_all(&postgres)
        .await
        .expect("postgres indexes"),
    );
    assert_eq!(sqlite_indexes, postgres_indexes, "named indexes differ");

    let version = "SELECT MAX(version) FROM _sqlx_migrations";
    let sqlite_version: i64 = sqlx::query_scalar(version)
        .fetch_one(&sqlite)
        .await
        .expect("sqlite version");
    let postgres_version: i64 = sqlx::query_scalar(version)
        .fetch_one(&postgres)
        .await
        .expect("postgres version");
    assert_eq!(sqlite_version, postgres_version, "schema versions differ");
    sqlite.close().await;
    postgres.close().await;
}

/// `admin db copy`: a SQLite cloud (what the conformance suite leaves
/// behind) moves into PostgreSQL whole, reads back the same, and a second
/// copy into a database that holds a cloud is refused.
#[tokio::test]
async fn sqlite_cloud_copies_into_postgres() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mallee.db");
    let sqlite = mallee_store::sqlite::SqliteStore::open(&file)
        .await
        .expect("open sqlite");
    conformance::run(&sqlite).await;
    sqlite.set_setting("moved", "yes").await.expect("set");

    let server = PgServer::start();
    let url = server.create_database().await;
    let copied = mallee_store::copy::sqlite_to_postgres(&file, &url)
        .await
        .expect("copy");
    assert!(
        copied
            .iter()
            .any(|(table, rows)| table == "accounts" && *rows > 0),
        "{copied:?}"
    );
    let accounts = copied.iter().position(|(t, _)| t == "accounts");
    let users = copied.iter().position(|(t, _)| t == "users");
    assert!(accounts < users, "accounts are copied before their users");

    let postgres = PostgresStore::open(&url).await.expect("open postgres");
    assert_eq!(
        postgres.setting("moved").await.expect("get").as_deref(),
        Some("yes")
    );
    let accounts = sqlite.accounts().await.expect("accounts");
    assert!(!accounts.is_empty());
    assert_eq!(postgres.accounts().await.expect("accounts"), accounts);
    assert_eq!(
        postgres.nodes().await.expect("nodes"),
        sqlite.nodes().await.expect("nodes")
    );
    for account in &accounts {
        let id = &account.account_id;
        assert_eq!(
            postgres.tags(id).await.expect("tags"),
            sqlite.tags(id).await.expect("tags")
        );
        assert_eq!(
            postgres.key_pairs(id).await.expect("key pairs"),
            sqlite.key_pairs(id).await.expect("key pairs")
        );
    }

    let again = mallee_store::copy::sqlite_to_postgres(&file, &url).await;
    assert!(
        matches!(again, Err(mallee_store::StoreError::Conflict(_))),
        "{again:?}"
    );
}
