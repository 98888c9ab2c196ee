//! Elastic IP addresses (`crate::addresses`): what both backends share.

use super::{Binder, StoreRow};
use crate::StoreResult;
use crate::addresses::AddressRecord;

pub(crate) fn address_from_row(row: &impl StoreRow) -> StoreResult<AddressRecord> {
    Ok(AddressRecord {
        allocation_id: row.try_get("allocation_id")?,
        account_id: row.try_get("account_id")?,
        public_ip: row.try_get("public_ip")?,
        zone: row.try_get("zone")?,
        domain: row.try_get("domain")?,
        association_id: row.try_get("association_id")?,
        instance_id: row.try_get("instance_id")?,
        private_ip: row.try_get("private_ip")?,
        auto_assigned: row.try_get::<i64>("auto_assigned")? != 0,
        replaced_auto_ip: row.try_get("replaced_auto_ip")?,
        ptr_record: row.try_get("ptr_record")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
    })
}

// SQL that reads the same in both dialects, named after the `Store`
// method (or helper) that runs it and, where that runs several statements,
// after what the statement does.

pub(crate) const APPLY_ADDRESS_CHANGE_DELETE_ADDRESSES: &str =
    "DELETE FROM addresses WHERE allocation_id = $1 AND revision = $2";

pub(crate) const APPLY_ADDRESS_CHANGE_UPDATE_ADDRESSES: &str =
    "UPDATE addresses SET association_id = $1, instance_id = $2, private_ip = $3,
      replaced_auto_ip = $4, ptr_record = $5, revision = revision + 1
    WHERE allocation_id = $6 AND revision = $7";

pub(crate) const APPLY_ADDRESS_CHANGE_ALLOCATION_OF_IP: &str =
    "SELECT allocation_id FROM addresses WHERE public_ip = $1";

pub(crate) const APPLY_ADDRESS_CHANGE_INSERT_RESOURCES: &str =
    "INSERT INTO resources (resource_id, account_id, resource_type, created_at)
    VALUES ($1, $2, 'elastic-ip', $3)";

pub(crate) const APPLY_ADDRESS_CHANGE_INSERT_ADDRESSES: &str =
    "INSERT INTO addresses (allocation_id, account_id, public_ip, zone, domain,
      association_id, instance_id, private_ip, auto_assigned, replaced_auto_ip,
      ptr_record, revision, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12)";

pub(crate) const APPLY_ADDRESS_CHANGE_UPDATE_INSTANCES: &str =
    "UPDATE instances SET generation = $1, details = $2, updated_at = $3,
      revision = revision + 1
    WHERE instance_id = $4 AND revision = $5";

pub(crate) const APPLY_ADDRESS_CHANGE_COUNT_ELASTIC: &str =
    "SELECT COUNT(*) FROM addresses WHERE account_id = $1 AND auto_assigned = 0";

pub(crate) const ADDRESS: &str = "SELECT * FROM addresses WHERE allocation_id = $1";

pub(crate) const ADDRESS_BY_PUBLIC_IP: &str = "SELECT * FROM addresses WHERE public_ip = $1";

pub(crate) const ADDRESSES_OF_ACCOUNT: &str = "SELECT * FROM addresses WHERE account_id = $1";

pub(crate) const ADDRESSES_OF_ALL_ACCOUNTS: &str = "SELECT * FROM addresses";

pub(crate) const ADDRESS_OF_INSTANCE: &str = "SELECT * FROM addresses WHERE instance_id = $1";

pub(crate) const PUBLIC_IPS_IN_USE: &str = "SELECT public_ip FROM addresses WHERE zone = $1";

/// Binds [`APPLY_ADDRESS_CHANGE_INSERT_ADDRESSES`]'s parameters.
pub(crate) fn bind_insert_address<Q: Binder>(query: Q, address: &AddressRecord) -> Q {
    query
        .arg(&address.allocation_id)
        .arg(&address.account_id)
        .arg(&address.public_ip)
        .arg(&address.zone)
        .arg(&address.domain)
        .arg(&address.association_id)
        .arg(&address.instance_id)
        .arg(&address.private_ip)
        .arg(i64::from(address.auto_assigned))
        .arg(&address.replaced_auto_ip)
        .arg(&address.ptr_record)
        .arg(address.created_at)
}

/// Binds [`APPLY_ADDRESS_CHANGE_UPDATE_ADDRESSES`]'s parameters.
pub(crate) fn bind_update_address<Q: Binder>(query: Q, address: &AddressRecord) -> Q {
    query
        .arg(&address.association_id)
        .arg(&address.instance_id)
        .arg(&address.private_ip)
        .arg(&address.replaced_auto_ip)
        .arg(&address.ptr_record)
        .arg(&address.allocation_id)
        .arg(address.revision)
}
