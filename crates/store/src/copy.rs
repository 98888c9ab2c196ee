//! `mallee admin db copy`: moves a cloud's metadata from its SQLite file
//! into a new PostgreSQL database, table by table, in one PostgreSQL
//! transaction, so the target holds either all of it or nothing. The two
//! schemas have the same tables and columns at the same version (a test
//! holds them to it), every column being an integer or text, so each value
//! is carried as it is. Object data, the PKI and credentials stay in the
//! data directory; only the database moves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{AssertSqlSafe, Row};

use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;
use crate::{StoreError, StoreResult};

/// Rows read from SQLite per round trip.
const BATCH: i64 = 500;

/// Copies every row of the SQLite database at `from` into the PostgreSQL
/// database at `to` (migrated first; it must hold no account yet). Returns
/// each table with the rows copied, in the order they were copied.
pub async fn sqlite_to_postgres(from: &Path, to: &str) -> StoreResult<Vec<(String, u64)>> {
    if !from.is_file() {
        return Err(StoreError::NotFound(from.display().to_string()));
    }
    // Opening migrates both to the schema this binary knows.
    drop(SqliteStore::open(from).await?);
    drop(PostgresStore::open(to).await?);
    let source = SqlitePool::connect_with(
        SqliteConnectOptions::from_str("sqlite://")?
            .filename(from)
            .read_only(true),
    )
    .await?;
    let target = PgPool::connect(to).await?;
    let copied = copy_tables(&source, &target).await;
    source.close().await;
    target.close().await;
    copied
}

async fn copy_tables(source: &SqlitePool, target: &PgPool) -> StoreResult<Vec<(String, u64)>> {
    let tables = tables_in_key_order(target).await?;
    let mut tx = target.begin().await?;
    crate::postgres::lock_writes(&mut tx).await?;
    let accounts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
        .fetch_one(&mut *tx)
        .await?;
    if accounts > 0 {
        return Err(StoreError::Conflict(
            "the target database already holds a cloud".into(),
        ));
    }
    // Rows the migrations seed (counters) make way for the source's.
    for table in tables.iter().rev() {
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&mut *tx)
            .await?;
    }
    let mut copied = Vec::with_capacity(tables.len());
    for table in &tables {
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::TEXT, data_type::TEXT FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut *tx)
        .await?;
        let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
        let list = names.join(", ");
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        // Table and column names come from the target's catalogue, never
        // from input.
        let insert = format!(
            "INSERT INTO {table} ({list}) VALUES ({})",
            placeholders.join(", ")
        );
        let select = format!(
            "SELECT rowid AS mallee_rowid, {list} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT {BATCH}"
        );
        let mut after = 0_i64;
        let mut count = 0_u64;
        loop {
            let rows = sqlx::query(AssertSqlSafe(select.clone()))
                .bind(after)
                .fetch_all(source)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("mallee_rowid")?;
            for row in &rows {
                let mut query = sqlx::query(AssertSqlSafe(insert.clone()));
                for (name, kind) in &columns {
                    query = match kind.as_str() {
                        "bigint" => query.bind(row.try_get::<Option<i64>, _>(name.as_str())?),
                        "text" => query.bind(row.try_get::<Option<String>, _>(name.as_str())?),
                        other => {
                            return Err(StoreError::Corrupt(format!(
                                "{table}.{name}: no copy for column type {other}"
                            )));
                        }
                    };
                }
                query.execute(&mut *tx).await?;
                count += 1;
            }
        }
        let source_count: i64 =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(source)
                .await?;
        if u64::try_from(source_count).ok() != Some(count) {
            return Err(StoreError::Corrupt(format!(
                "{table}: {source_count} rows in the source, {count} copied"
            )));
        }
        copied.push((table.clone(), count));
    }
    tx.commit().await?;
    Ok(copied)
}

/// The target's tables, each after every table its foreign keys point at.
async fn tables_in_key_order(target: &PgPool) -> StoreResult<Vec<String>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::TEXT FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
           AND table_name <> '_sqlx_migrations' ORDER BY table_name",
    )
    .fetch_all(target)
    .await?;
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::TEXT, c.confrelid::regclass::TEXT FROM pg_constraint c
         WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace",
    )
    .fetch_all(target)
    .await?;
    let mut needs: BTreeMap<&str, BTreeSet<&str>> = tables
        .iter()
        .map(|t| (t.as_str(), BTreeSet::new()))
        .collect();
    for (from, to) in &edges {
        if from != to
            && let Some(set) = needs.get_mut(from.as_str())
        {
            set.insert(to.as_str());
        }
    }
    let mut ordered: Vec<String> = Vec::with_capacity(tables.len());
    while !needs.is_empty() {
        let ready: Vec<&str> = needs
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !needs.contains_key(d)))
            .map(|(t, _)| *t)
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "foreign keys form a cycle among {:?}",
                needs.keys().collect::<Vec<_>>()
            )));
        }
        for table in ready {
            needs.remove(table);
            ordered.push(table.to_owned());
        }
    }
    Ok(ordered)
}
