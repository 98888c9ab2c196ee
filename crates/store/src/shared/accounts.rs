//! The `Store` trait's own operations (accounts, access keys, key pairs,
//! resources and their tags, nodes): the row decoders and SQL both
//! backends use.

use super::{Binder, StoreRow};
use crate::{AccessKey, Account, KeyPair, Node, StoreResult};

pub(crate) fn account_from_row(row: &impl StoreRow) -> StoreResult<Account> {
    Ok(Account {
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        is_admin: row.try_get::<i64>("is_admin")? != 0,
        created_at: row.try_get("created_at")?,
        iam_generation: row.try_get("iam_generation")?,
    })
}

pub(crate) fn key_pair_from_row(row: &impl StoreRow) -> StoreResult<KeyPair> {
    Ok(KeyPair {
        key_pair_id: row.try_get("key_pair_id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        key_type: row.try_get("key_type")?,
        fingerprint: row.try_get("fingerprint")?,
        public_key: row.try_get("public_key")?,
        created_at: row.try_get("created_at")?,
    })
}

// SQL that reads the same in both dialects, named after the `Store`
// method (or helper) that runs it and, where that runs several statements,
// after what the statement does.

pub(crate) const INSERT_RESOURCE_TX: &str = "INSERT INTO resources (resource_id, account_id, resource_type, created_at) VALUES ($1, $2, $3, $4)";

pub(crate) const DELETE_RESOURCE_TX: &str =
    "DELETE FROM resources WHERE resource_id = $1 AND resource_type = $2";

pub(crate) const UPSERT_NODE_IN: &str =
    "INSERT INTO nodes (node_id, zone, address, cores_max, cores_free, memory_mib_max, memory_mib_free,
                       disk_gib_max, disk_gib_free, updated_at, underlay_ip, version, accel, role)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
    ON CONFLICT (node_id) DO UPDATE SET zone = excluded.zone, address = excluded.address,
       cores_max = excluded.cores_max, cores_free = excluded.cores_free,
       memory_mib_max = excluded.memory_mib_max, memory_mib_free = excluded.memory_mib_free,
       disk_gib_max = excluded.disk_gib_max, disk_gib_free = excluded.disk_gib_free,
       updated_at = excluded.updated_at, underlay_ip = excluded.underlay_ip,
       version = excluded.version, accel = excluded.accel, role = excluded.role";

pub(crate) const PUT_TAGS_TX_SELECT_RESOURCES: &str =
    "SELECT account_id FROM resources WHERE resource_id = $1";

pub(crate) const PUT_TAGS_TX_INSERT_TAGS: &str =
    "INSERT INTO tags (resource_id, tag_key, tag_value) VALUES ($1, $2, $3)
    ON CONFLICT (resource_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value";

pub(crate) const PUT_TAGS_TX_SELECT_TAGS: &str = "SELECT COUNT(*) FROM tags WHERE resource_id = $1";

pub(crate) const CREATE_ACCOUNT_INSERT_ACCOUNTS: &str =
    "INSERT INTO accounts (account_id, name, is_admin, created_at) VALUES ($1, $2, $3, $4)";

pub(crate) const CREATE_ACCOUNT_INSERT_USERS: &str =
    "INSERT INTO users (account_id, user_name, user_id, created_at) VALUES ($1, $2, $3, $4)";

pub(crate) const ACCOUNT_BY_NAME: &str = "SELECT * FROM accounts WHERE name = $1";

pub(crate) const ACCOUNT_BY_ID: &str = "SELECT * FROM accounts WHERE account_id = $1";

pub(crate) const DELETE_ACCOUNT_DELETE_ACCESS_KEYS: &str =
    "DELETE FROM access_keys WHERE account_id = $1";

pub(crate) const DELETE_ACCOUNT_DELETE_ACCOUNTS: &str =
    "DELETE FROM accounts WHERE account_id = $1";

pub(crate) const ACCOUNTS: &str = "SELECT * FROM accounts ORDER BY name";

pub(crate) const CREATE_ACCESS_KEY: &str =
    "INSERT INTO access_keys (access_key_id, secret_access_key, account_id, user_name, active, created_at)
    VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const ACCESS_KEY: &str =
    "SELECT k.access_key_id, k.secret_access_key, k.account_id, k.user_name, k.active,
           k.created_at AS key_created_at, a.name, a.is_admin, a.created_at,
           a.iam_generation
    FROM access_keys k JOIN accounts a ON a.account_id = k.account_id
    WHERE k.access_key_id = $1";

pub(crate) const RESOURCES: &str =
    "SELECT resource_id, account_id, resource_type FROM resources WHERE resource_id = $1";

pub(crate) const DELETE_TAGS_ALL_OF_RESOURCE: &str = "DELETE FROM tags WHERE resource_id = $1";

pub(crate) const DELETE_TAGS_KEY_AND_VALUE: &str =
    "DELETE FROM tags WHERE resource_id = $1 AND tag_key = $2 AND tag_value = $3";

pub(crate) const DELETE_TAGS_KEY: &str = "DELETE FROM tags WHERE resource_id = $1 AND tag_key = $2";

pub(crate) const CREATE_KEY_PAIR_SELECT_KEY_PAIRS: &str =
    "SELECT key_pair_id FROM key_pairs WHERE account_id = $1 AND name = $2";

pub(crate) const CREATE_KEY_PAIR_INSERT_RESOURCES: &str = "INSERT INTO resources (resource_id, account_id, resource_type, created_at) VALUES ($1, $2, 'key-pair', $3)";

pub(crate) const CREATE_KEY_PAIR_INSERT_KEY_PAIRS: &str =
    "INSERT INTO key_pairs (key_pair_id, account_id, name, key_type, fingerprint, public_key, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) const KEY_PAIRS: &str = "SELECT * FROM key_pairs WHERE account_id = $1 ORDER BY name";

pub(crate) const DELETE_KEY_PAIR_DELETE_KEY_PAIRS: &str =
    "DELETE FROM key_pairs WHERE account_id = $1 AND key_pair_id = $2";

pub(crate) const DELETE_KEY_PAIR_DELETE_RESOURCES: &str =
    "DELETE FROM resources WHERE account_id = $1 AND resource_id = $2";

pub(crate) const NODES: &str = "SELECT * FROM nodes ORDER BY node_id";

pub(crate) const SET_NODE_DISABLED: &str = "UPDATE nodes SET disabled = $1 WHERE node_id = $2";

pub(crate) const SETTING: &str = "SELECT value FROM settings WHERE name = $1";

pub(crate) const SET_SETTING: &str = "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value";

/// Binds [`UPSERT_NODE_IN`]'s parameters.
pub(crate) fn bind_upsert_node<Q: Binder>(query: Q, node: &Node) -> Q {
    query
        .arg(&node.node_id)
        .arg(&node.zone)
        .arg(&node.address)
        .arg(node.cores_max)
        .arg(node.cores_free)
        .arg(node.memory_mib_max)
        .arg(node.memory_mib_free)
        .arg(node.disk_gib_max)
        .arg(node.disk_gib_free)
        .arg(node.updated_at)
        .arg(&node.underlay_ip)
        .arg(&node.version)
        .arg(&node.accel)
        .arg(&node.role)
}

/// Binds [`CREATE_ACCESS_KEY`]'s parameters.
pub(crate) fn bind_insert_access_key<Q: Binder>(query: Q, key: &AccessKey) -> Q {
    query
        .arg(&key.access_key_id)
        .arg(&key.secret_access_key)
        .arg(&key.account_id)
        .arg(&key.user_name)
        .arg(i64::from(key.active))
        .arg(key.created_at)
}

/// Binds [`CREATE_KEY_PAIR_INSERT_KEY_PAIRS`]'s parameters.
pub(crate) fn bind_insert_key_pair<Q: Binder>(query: Q, key_pair: &KeyPair) -> Q {
    query
        .arg(&key_pair.key_pair_id)
        .arg(&key_pair.account_id)
        .arg(&key_pair.name)
        .arg(&key_pair.key_type)
        .arg(&key_pair.fingerprint)
        .arg(&key_pair.public_key)
        .arg(key_pair.created_at)
}
