//! The SQLite backend: one database file under the data directory, WAL mode,
//! `synchronous=FULL`, so a transaction that returned is on disk.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use self::select::Where;
use crate::shared::accounts::{self as sql, account_from_row, key_pair_from_row};
use crate::{
    AccessKey, Account, KeyPair, KeyPairCondition, KeyPairField, KeyPairQuery, Node, Resource,
    Store, StoreError, StoreResult, Tag, TagCondition, TagPair, TagQuery, TagSelector, UnixMillis,
    User,
};

mod addresses;
mod enrolment;
mod identity;
mod images;
mod instances;
mod launch_templates;
mod lease;
mod metal;
mod network;
mod objects;
mod routing;
mod select;
mod snapshots;
mod volumes;
mod vpcs;

/// AWS allows at most this many tags on one resource.
pub const MAX_TAGS_PER_RESOURCE: i64 = 50;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Group commit of object-index writes (shared by clones).
    committer: std::sync::Arc<objects::Committer>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and runs migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self {
            committer: objects::Committer::new(pool.clone()),
            pool,
        })
    }

    /// The rows `of_account` selects for `account_id`, or those `of_all`
    /// selects when no account is given.
    async fn rows_of(
        &self,
        account_id: Option<&str>,
        of_account: &'static str,
        of_all: &'static str,
    ) -> StoreResult<Vec<SqliteRow>> {
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

    /// Starts a write transaction that takes the write lock up front, so
    /// concurrent writers queue on the busy timeout instead of failing on a
    /// read-to-write lock upgrade.
    /// Under a lease fence (`crate::lease`), a stale generation is refused.
    async fn write_tx(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        lease::check_fence(&mut tx).await?;
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
    tx: &mut Transaction<'static, Sqlite>,
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
    tx: &mut Transaction<'static, Sqlite>,
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
pub(super) async fn upsert_node_in(
    conn: &mut sqlx::SqliteConnection,
    node: &Node,
) -> StoreResult<()> {
    sql::bind_upsert_node(sqlx::query(sql::UPSERT_NODE_IN), node)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// `NotFound(key)` unless `sql`, a `SELECT 1` of one row by `key`, finds
/// that row in `tx`.
async fn require_tx(
    tx: &mut Transaction<'static, Sqlite>,
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

/// Tags from a JSON array of `[resource id, type, key, value]`, ordered by
/// resource id then key.
fn tags_from_json(json: &str) -> StoreResult<Vec<Tag>> {
    let rows: Vec<(String, String, String, String)> =
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?;
    let mut tags: Vec<Tag> = rows
        .into_iter()
        .map(|(resource_id, resource_type, key, value)| Tag {
            resource_id,
            resource_type,
            key,
            value,
        })
        .collect();
    tags.sort_unstable_by(|a, b| (&a.resource_id, &a.key).cmp(&(&b.resource_id, &b.key)));
    Ok(tags)
}

/// Tags a resource created in `tx` with `tags`, if there are any.
async fn tag_new_resource_tx(
    tx: &mut Transaction<'static, Sqlite>,
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
    tx: &mut Transaction<'static, Sqlite>,
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
impl Store for SqliteStore {
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
            .execute(&self.pool)
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
        if resource_ids.is_empty() {
            return Ok(Vec::new());
        }
        // One query for all of them (the ids as one JSON array), and one
        // JSON row back: a Describe page of 1,000 resources costs one
        // round trip, not 1,000.
        let mut w = Where::default();
        w.and_in("t.resource_id", resource_ids)?;
        let select = format!(
            "SELECT COALESCE(json_group_array(json_array(t.resource_id, r.resource_type, t.tag_key, t.tag_value)), '[]')
             FROM tags t JOIN resources r ON r.resource_id = t.resource_id
             WHERE 1{}",
            w.sql()
        );
        tags_from_json(&w.fetch_json(&self.pool, select).await?)
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
        // One JSON row instead of a row per tag: the per-row cost of the
        // driver dominates when an account has thousands of tags.
        let json: String = sqlx::query_scalar(
            "SELECT COALESCE(json_group_array(json_array(t.resource_id, r.resource_type, t.tag_key, t.tag_value)), '[]')
             FROM tags t JOIN resources r ON r.resource_id = t.resource_id
             WHERE r.account_id = ?",
        )
        .bind(account_id)
        .fetch_one(&self.pool)
        .await?;
        tags_from_json(&json)
    }

    async fn tags_matching(&self, account_id: &str, query: &TagQuery) -> StoreResult<Vec<Tag>> {
        let mut w = Where::new("r.account_id = ?", [account_id.to_owned()]);
        for condition in &query.conditions {
            match condition {
                TagCondition::ResourceId(p) => w.and_any("t.resource_id", p),
                TagCondition::ResourceType(p) => w.and_any("r.resource_type", p),
                TagCondition::Key(p) => w.and_any("t.tag_key", p),
                TagCondition::Value(p) => w.and_any("t.tag_value", p),
                TagCondition::ResourceTag { key, values } => w.and_around(
                    "t.resource_id IN (SELECT o.resource_id FROM tags o WHERE o.tag_key = ? AND {})",
                    Some(key.clone()),
                    "o.tag_value",
                    values,
                ),
            }
        }
        if let Some((resource_id, key)) = &query.after {
            // On `r`, so that the index on (account, resource id) starts
            // at the resource, not at the account's first one.
            w.and(
                "r.resource_id >= ? AND (r.resource_id > ? OR t.tag_key > ?)",
                [resource_id.clone(), resource_id.clone(), key.clone()],
            );
        }
        let limit = query
            .limit
            .map(|l| format!(" LIMIT {l}"))
            .unwrap_or_default();
        // Ordered by `r`'s resource id: the account's resources come in
        // that order from their unique index and each one's tags in key
        // order from the tags' key, so SQLite sorts nothing and a page
        // stops after its last row. One JSON row, as in `tags`.
        let select = format!(
            "SELECT COALESCE(json_group_array(json_array(rid, rtype, k, v)), '[]') FROM
               (SELECT t.resource_id AS rid, r.resource_type AS rtype, t.tag_key AS k, t.tag_value AS v
                FROM tags t JOIN resources r ON r.resource_id = t.resource_id
                WHERE {} ORDER BY r.resource_id, t.tag_key{limit})",
            w.sql()
        );
        tags_from_json(&w.fetch_json(&self.pool, select).await?)
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

    async fn key_pairs_matching(
        &self,
        account_id: &str,
        query: &KeyPairQuery,
    ) -> StoreResult<Vec<KeyPair>> {
        let mut w = Where::new("k.account_id = ?", [account_id.to_owned()]);
        if !query.names.is_empty() {
            w.and_in("k.name", &query.names)?;
        }
        if !query.ids.is_empty() {
            w.and_in("k.key_pair_id", &query.ids)?;
        }
        for condition in &query.conditions {
            match condition {
                KeyPairCondition::Field { field, patterns } => {
                    let column = match field {
                        KeyPairField::KeyPairId => "k.key_pair_id",
                        KeyPairField::Name => "k.name",
                        KeyPairField::Fingerprint => "k.fingerprint",
                        KeyPairField::KeyType => "k.key_type",
                    };
                    w.and_any(column, patterns);
                }
                KeyPairCondition::Tag { key, values } => w.and_around(
                    "k.key_pair_id IN (SELECT t.resource_id FROM tags t WHERE t.tag_key = ? AND {})",
                    Some(key.clone()),
                    "t.tag_value",
                    values,
                ),
                KeyPairCondition::TagKey(patterns) => w.and_around(
                    "EXISTS (SELECT 1 FROM tags t WHERE t.resource_id = k.key_pair_id AND {})",
                    None,
                    "t.tag_key",
                    patterns,
                ),
                KeyPairCondition::TagValue(patterns) => w.and_around(
                    "EXISTS (SELECT 1 FROM tags t WHERE t.resource_id = k.key_pair_id AND {})",
                    None,
                    "t.tag_value",
                    patterns,
                ),
            }
        }
        let select = format!(
            "SELECT COALESCE(json_group_array(json_object('key_pair_id', key_pair_id,
               'account_id', account_id, 'name', name, 'key_type', key_type,
               'fingerprint', fingerprint, 'public_key', public_key, 'created_at', created_at)), '[]')
             FROM (SELECT * FROM key_pairs k WHERE {} ORDER BY k.name)",
            w.sql()
        );
        let json = w.fetch_json(&self.pool, select).await?;
        let mut key_pairs: Vec<KeyPair> = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("key pairs: {e}")))?;
        key_pairs.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(key_pairs)
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
        let mut conn = self.pool.acquire().await?;
        upsert_node_in(&mut conn, node).await
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
                    disabled: row.try_get("disabled")?,
                    role: row.try_get("role")?,
                })
            })
            .collect()
    }

    async fn set_node_disabled(&self, node_id: &str, disabled: bool) -> StoreResult<bool> {
        let changed = sqlx::query(sql::SET_NODE_DISABLED)
            .bind(disabled)
            .bind(node_id)
            .execute(&self.pool)
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
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
