//! The PostgreSQL backend: the same records, transactions and answers as
//! the SQLite backend (`crate::sqlite`), on a PostgreSQL database that
//! several controllers can share. Its schema lives in
//! `crates/store/migrations-postgres`; every schema change is a migration
//! with the same number there and in `crates/store/migrations`.
//!
//! Every write transaction first takes one transaction-scoped advisory
//! lock, so writers run one after another exactly as SQLite's
//! `BEGIN IMMEDIATE` makes them: a read-check-write sequence inside one
//! method (free capacity, the next VNI, "is this name taken") can never
//! interleave with another controller's. Readers never wait for it.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};

pub(crate) use locking::lock_writes;
use locking::{ExecuteLocked, check_collation};

use crate::shared::accounts::{self as sql, account_from_row, key_pair_from_row};
use crate::{
    AccessKey, Account, KeyPair, Node, Resource, Store, StoreError, StoreResult, Tag, TagCondition,
    TagPair, TagQuery, TagSelector, UnixMillis, User,
};

mod addresses;
mod enrolment;
mod identity;
mod images;
mod instances;
mod launch_templates;
mod lease;
mod locking;
mod metal;
mod network;
mod objects;
mod routing;
mod snapshots;
mod volumes;
mod vpcs;

/// AWS allows at most this many tags on one resource.
pub const MAX_TAGS_PER_RESOURCE: i64 = 50;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host/db`, or a
    /// unix socket directory as `?host=/path`) and runs migrations.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        // Bounded: a load spike queues on the pool instead of opening
        // connections until the server refuses them.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        check_collation(&pool).await?;
        sqlx::migrate!("./migrations-postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The rows `of_account` selects for `account_id`, or those `of_all`
    /// selects when no account is given.
    async fn rows_of(
        &self,
        account_id: Option<&str>,
        of_account: &'static str,
        of_all: &'static str,
    ) -> StoreResult<Vec<PgRow>> {
        Ok(match account_id {
            Some(account) => {
                sqlx::query(of_account)
                    .bind(account)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query(of_all).fetch_all(&self.pool).await?,
        })
    }

    /// Starts a write transaction holding the store's write lock until it
    /// commits or rolls back (see the module comment).
    async fn write_tx(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        lock_writes(&mut tx).await?;
        Ok(tx)
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Maps a unique-index violation to `Conflict` naming what collided.
fn conflict(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |err| {
        if is_unique_violation(&err) {
            StoreError::Conflict(what.into())
        } else {
            StoreError::Database(err)
        }
    }
}

/// Registers a taggable resource in `tx`; `Conflict` naming it when the id
/// is taken.
async fn insert_resource_tx(
    tx: &mut Transaction<'static, Postgres>,
    resource_id: &str,
    account_id: &str,
    resource_type: &str,
    created_at: UnixMillis,
) -> StoreResult<()> {
    sqlx::query(sql::INSERT_RESOURCE_TX)
        .bind(resource_id)
        .bind(account_id)
        .bind(resource_type)
        .bind(created_at)
        .execute(&mut **tx)
        .await
        .map_err(conflict(resource_id))?;
    Ok(())
}

/// Removes a resource of `resource_type` in `tx`; its tags go with it
/// (`ON DELETE CASCADE`).
async fn delete_resource_tx(
    tx: &mut Transaction<'static, Postgres>,
    resource_id: &str,
    resource_type: &str,
) -> StoreResult<()> {
    sqlx::query(sql::DELETE_RESOURCE_TX)
        .bind(resource_id)
        .bind(resource_type)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records a node and its latest report (registration and heartbeat).
pub(super) async fn upsert_node_in(conn: &mut sqlx::PgConnection, node: &Node) -> StoreResult<()> {
    sql::bind_upsert_node(sqlx::query(sql::UPSERT_NODE_IN), node)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// `NotFound(key)` unless `sql`, a `SELECT 1` of one row by `key`, finds
/// that row in `tx`.
async fn require_tx(
    tx: &mut Transaction<'static, Postgres>,
    sql: &'static str,
    key: &str,
) -> StoreResult<()> {
    let found: Option<i64> = sqlx::query_scalar(sql)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(key.to_owned())),
    }
}

/// An AWS filter pattern (`*`, `?`, `\\` escapes) as a LIKE pattern
/// (`%`, `_`, escaped with `\`): LIKE's own special characters stand for
/// themselves.
fn like(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('*' | '?')) => out.push(e),
                Some(e @ ('%' | '_' | '\\')) => {
                    out.push('\\');
                    out.push(e);
                }
                Some(e) => out.push(e),
                None => out.push_str("\\\\"),
            },
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn tag_from_row(row: &PgRow) -> StoreResult<Tag> {
    Ok(Tag {
        resource_id: row.try_get("resource_id")?,
        resource_type: row.try_get("resource_type")?,
        key: row.try_get("tag_key")?,
        value: row.try_get("tag_value")?,
    })
}

/// Tags a resource created in `tx` with `tags`, if there are any.
async fn tag_new_resource_tx(
    tx: &mut Transaction<'static, Postgres>,
    account_id: &str,
    resource_id: &str,
    tags: &[TagPair],
) -> StoreResult<()> {
    if tags.is_empty() {
        return Ok(());
    }
    put_tags_tx(tx, account_id, &[resource_id.to_owned()], tags).await
}

/// Inserts or replaces tags inside an open transaction after checking that
/// each resource belongs to `account_id`, then enforces the per-resource limit.
async fn put_tags_tx(
    tx: &mut Transaction<'static, Postgres>,
    account_id: &str,
    resource_ids: &[String],
    tags: &[TagPair],
) -> StoreResult<()> {
    for resource_id in resource_ids {
        let owner: Option<String> = sqlx::query_scalar(sql::PUT_TAGS_TX_SELECT_RESOURCES)
            .bind(resource_id)
            .fetch_optional(&mut **tx)
            .await?;
        if owner.as_deref() != Some(account_id) {
            return Err(StoreError::NotFound(resource_id.clone()));
        }
        for tag in tags {
            sqlx::query(sql::PUT_TAGS_TX_INSERT_TAGS)
                .bind(resource_id)
                .bind(&tag.key)
                .bind(&tag.value)
                .execute(&mut **tx)
                .await?;
        }
        let count: i64 = sqlx::query_scalar(sql::PUT_TAGS_TX_SELECT_TAGS)
            .bind(resource_id)
            .fetch_one(&mut **tx)
            .await?;
        if count > MAX_TAGS_PER_RESOURCE {
            return Err(StoreError::TagLimitExceeded(resource_id.clone()));
        }
    }
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_account(&self, account: &Account, first_user: &User) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let inserted = sqlx::query(sql::CREATE_ACCOUNT_INSERT_ACCOUNTS)
            .bind(&account.account_id)
            .bind(&account.name)
            .bind(i64::from(account.is_admin))
            .bind(account.created_at)
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(account.name.clone()));
            }
            other => {
                other?;
            }
        }
        sqlx::query(sql::CREATE_ACCOUNT_INSERT_USERS)
            .bind(&first_user.account_id)
            .bind(&first_user.user_name)
            .bind(&first_user.user_id)
            .bind(first_user.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn account_by_name(&self, name: &str) -> StoreResult<Option<Account>> {
        sqlx::query(sql::ACCOUNT_BY_NAME)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(account_from_row)
            .transpose()
    }

    async fn account_by_id(&self, account_id: &str) -> StoreResult<Option<Account>> {
        sqlx::query(sql::ACCOUNT_BY_ID)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(account_from_row)
            .transpose()
    }

    async fn delete_account(&self, account_id: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        // Keys reference users without a cascade from the account: they go
        // first; users, IAM entities and sessions cascade.
        sqlx::query(sql::DELETE_ACCOUNT_DELETE_ACCESS_KEYS)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query(sql::DELETE_ACCOUNT_DELETE_ACCOUNTS)
            .bind(account_id)
            .execute(&mut *tx)
            .await;
        match deleted {
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::Conflict(format!(
                "account {account_id} owns resources"
            ))),
            Err(e) => Err(e.into()),
            Ok(done) => {
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }
        }
    }

    async fn accounts(&self) -> StoreResult<Vec<Account>> {
        sqlx::query(sql::ACCOUNTS)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(account_from_row)
            .collect()
    }

    async fn create_access_key(&self, key: &AccessKey) -> StoreResult<()> {
        let result = sql::bind_insert_access_key(sqlx::query(sql::CREATE_ACCESS_KEY), key)
            .execute_locked(&self.pool)
            .await;
        match result {
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict(key.access_key_id.clone()))
            }
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => Err(
                StoreError::NotFound(format!("{}/{}", key.account_id, key.user_name)),
            ),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    async fn access_key(&self, access_key_id: &str) -> StoreResult<Option<(AccessKey, Account)>> {
        let row = sqlx::query(sql::ACCESS_KEY)
            .bind(access_key_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let key = AccessKey {
            access_key_id: row.try_get("access_key_id")?,
            secret_access_key: row.try_get("secret_access_key")?,
            account_id: row.try_get("account_id")?,
            user_name: row.try_get("user_name")?,
            active: row.try_get::<i64, _>("active")? != 0,
            created_at: row.try_get("key_created_at")?,
        };
        let account = account_from_row(&row)?;
        Ok(Some((key, account)))
    }

    async fn resources(&self, resource_ids: &[String]) -> StoreResult<Vec<Resource>> {
        let mut found = Vec::with_capacity(resource_ids.len());
        for id in resource_ids {
            let row = sqlx::query(sql::RESOURCES)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                found.push(Resource {
                    resource_id: row.try_get("resource_id")?,
                    account_id: row.try_get("account_id")?,
                    resource_type: row.try_get("resource_type")?,
                });
            }
        }
        Ok(found)
    }

    async fn resource_tags(&self, resource_ids: &[String]) -> StoreResult<Vec<Tag>> {
        let mut tags = Vec::new();
        for id in resource_ids {
            let rows = sqlx::query(
                "SELECT t.resource_id, r.resource_type, t.tag_key, t.tag_value
                 FROM tags t JOIN resources r ON r.resource_id = t.resource_id
                 WHERE t.resource_id = $1 ORDER BY t.tag_key",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                tags.push(Tag {
                    resource_id: row.try_get("resource_id")?,
                    resource_type: row.try_get("resource_type")?,
                    key: row.try_get("tag_key")?,
                    value: row.try_get("tag_value")?,
                });
            }
        }
        tags.sort_by(|a, b| (&a.resource_id, &a.key).cmp(&(&b.resource_id, &b.key)));
        Ok(tags)
    }

    async fn put_tags(
        &self,
        account_id: &str,
        resource_ids: &[String],
        tags: &[TagPair],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        put_tags_tx(&mut tx, account_id, resource_ids, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_tags(
        &self,
        account_id: &str,
        resource_ids: &[String],
        tags: &[TagSelector],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        for resource_id in resource_ids {
            let owner: Option<String> = sqlx::query_scalar(sql::PUT_TAGS_TX_SELECT_RESOURCES)
                .bind(resource_id)
                .fetch_optional(&mut *tx)
                .await?;
            if owner.as_deref() != Some(account_id) {
                return Err(StoreError::NotFound(resource_id.clone()));
            }
            if tags.is_empty() {
                sqlx::query(sql::DELETE_TAGS_ALL_OF_RESOURCE)
                    .bind(resource_id)
                    .execute(&mut *tx)
                    .await?;
            }
            for tag in tags {
                match &tag.value {
                    Some(value) => {
                        sqlx::query(sql::DELETE_TAGS_KEY_AND_VALUE)
                            .bind(resource_id)
                            .bind(&tag.key)
                            .bind(value)
                            .execute(&mut *tx)
                            .await?;
                    }
                    None => {
                        sqlx::query(sql::DELETE_TAGS_KEY)
                            .bind(resource_id)
                            .bind(&tag.key)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn tags(&self, account_id: &str) -> StoreResult<Vec<Tag>> {
        sqlx::query(
            "SELECT t.resource_id, r.resource_type, t.tag_key, t.tag_value
             FROM tags t JOIN resources r ON r.resource_id = t.resource_id
             WHERE r.account_id = $1 ORDER BY t.resource_id, t.tag_key",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(tag_from_row)
        .collect()
    }

    async fn tags_matching(&self, account_id: &str, query: &TagQuery) -> StoreResult<Vec<Tag>> {
        let mut sql = String::from(
            "SELECT t.resource_id, r.resource_type, t.tag_key, t.tag_value
             FROM tags t JOIN resources r ON r.resource_id = t.resource_id
             WHERE r.account_id = $1",
        );
        let mut binds: Vec<String> = vec![account_id.to_owned()];
        // Appends a placeholder for `value`, numbered after those before it.
        let param = |binds: &mut Vec<String>, value: String| {
            binds.push(value);
            format!("${}", binds.len())
        };
        let any_of =
            |sql: &mut String, binds: &mut Vec<String>, column: &str, patterns: &[String]| {
                if patterns.is_empty() {
                    sql.push_str(" AND FALSE");
                    return;
                }
                let ors: Vec<String> = patterns
                    .iter()
                    .map(|p| format!("{column} LIKE {}", param(binds, like(p))))
                    .collect();
                sql.push_str(&format!(" AND ({})", ors.join(" OR ")));
            };
        for condition in &query.conditions {
            match condition {
                TagCondition::ResourceId(p) => any_of(&mut sql, &mut binds, "t.resource_id", p),
                TagCondition::ResourceType(p) => any_of(&mut sql, &mut binds, "r.resource_type", p),
                TagCondition::Key(p) => any_of(&mut sql, &mut binds, "t.tag_key", p),
                TagCondition::Value(p) => any_of(&mut sql, &mut binds, "t.tag_value", p),
                TagCondition::ResourceTag { key, values } => {
                    let key = param(&mut binds, key.clone());
                    sql.push_str(&format!(
                        " AND EXISTS (SELECT 1 FROM tags o WHERE o.resource_id = t.resource_id AND o.tag_key = {key}"
                    ));
                    any_of(&mut sql, &mut binds, "o.tag_value", values);
                    sql.push(')');
                }
            }
        }
        if let Some((resource_id, key)) = &query.after {
            let id = param(&mut binds, resource_id.clone());
            let key = param(&mut binds, key.clone());
            sql.push_str(&format!(
                " AND (t.resource_id > {id} OR (t.resource_id = {id} AND t.tag_key > {key}))"
            ));
        }
        sql.push_str(" ORDER BY t.resource_id, t.tag_key");
        if let Some(limit) = query.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        // Only fixed fragments, numbered placeholders and a number: no input.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(tag_from_row)
            .collect()
    }

    async fn create_key_pair(&self, key_pair: &KeyPair, tags: &[TagPair]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let exists: Option<String> = sqlx::query_scalar(sql::CREATE_KEY_PAIR_SELECT_KEY_PAIRS)
            .bind(&key_pair.account_id)
            .bind(&key_pair.name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(key_pair.name.clone()));
        }
        sqlx::query(sql::CREATE_KEY_PAIR_INSERT_RESOURCES)
            .bind(&key_pair.key_pair_id)
            .bind(&key_pair.account_id)
            .bind(key_pair.created_at)
            .execute(&mut *tx)
            .await?;
        sql::bind_insert_key_pair(sqlx::query(sql::CREATE_KEY_PAIR_INSERT_KEY_PAIRS), key_pair)
            .execute(&mut *tx)
            .await?;
        tag_new_resource_tx(&mut tx, &key_pair.account_id, &key_pair.key_pair_id, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn key_pairs(&self, account_id: &str) -> StoreResult<Vec<KeyPair>> {
        sqlx::query(sql::KEY_PAIRS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(key_pair_from_row)
            .collect()
    }

    async fn delete_key_pair(&self, account_id: &str, key_pair_id: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let deleted = sqlx::query(sql::DELETE_KEY_PAIR_DELETE_KEY_PAIRS)
            .bind(account_id)
            .bind(key_pair_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(sql::DELETE_KEY_PAIR_DELETE_RESOURCES)
            .bind(account_id)
            .bind(key_pair_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn upsert_node(&self, node: &Node) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        upsert_node_in(&mut tx, node).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn nodes(&self) -> StoreResult<Vec<Node>> {
        let rows = sqlx::query(sql::NODES).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(Node {
                    node_id: row.try_get("node_id")?,
                    zone: row.try_get("zone")?,
                    address: row.try_get("address")?,
                    cores_max: row.try_get("cores_max")?,
                    cores_free: row.try_get("cores_free")?,
                    memory_mib_max: row.try_get("memory_mib_max")?,
                    memory_mib_free: row.try_get("memory_mib_free")?,
                    disk_gib_max: row.try_get("disk_gib_max")?,
                    disk_gib_free: row.try_get("disk_gib_free")?,
                    updated_at: row.try_get("updated_at")?,
                    version: row.try_get("version")?,
                    accel: row.try_get("accel")?,
                    underlay_ip: row.try_get("underlay_ip")?,
                    disabled: row.try_get::<i64, _>("disabled")? != 0,
                    role: row.try_get("role")?,
                })
            })
            .collect()
    }

    async fn set_node_disabled(&self, node_id: &str, disabled: bool) -> StoreResult<bool> {
        let changed = sqlx::query(sql::SET_NODE_DISABLED)
            .bind(i64::from(disabled))
            .bind(node_id)
            .execute_locked(&self.pool)
            .await?
            .rows_affected();
        Ok(changed > 0)
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(sql::SETTING)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_setting(&self, name: &str, value: &str) -> StoreResult<()> {
        sqlx::query(sql::SET_SETTING)
            .bind(name)
            .bind(value)
            .execute_locked(&self.pool)
            .await?;
        Ok(())
    }
}
