//! Elastic IP addresses (`crate::addresses`): what both backends share.

use super::StoreRow;
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
