//! VPC attributes and DHCP options (`crate::vpcs`): what both backends share.

use super::StoreRow;
use crate::vpcs::DhcpOptions;
use crate::{StoreError, StoreResult};

pub(crate) fn dhcp_options_from_row(row: &impl StoreRow) -> StoreResult<DhcpOptions> {
    let configurations: String = row.try_get("configurations")?;
    Ok(DhcpOptions {
        dhcp_options_id: row.try_get("dhcp_options_id")?,
        account_id: row.try_get("account_id")?,
        configurations: serde_json::from_str(&configurations)
            .map_err(|e| StoreError::Corrupt(format!("DHCP options configurations: {e}")))?,
        created_at: row.try_get("created_at")?,
    })
}
