//! Accounts and key pairs (`crate::Store`): the row decoders both backends
//! use.

use super::StoreRow;
use crate::{Account, KeyPair, StoreResult};

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
