//! Launch templates (`crate::launch_templates`): what both backends share.

use super::StoreRow;
use crate::StoreResult;
use crate::launch_templates::{LaunchTemplateRecord, LaunchTemplateVersion};

pub(crate) fn template_from_row(row: &impl StoreRow) -> StoreResult<LaunchTemplateRecord> {
    Ok(LaunchTemplateRecord {
        template_id: row.try_get("template_id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        default_version: row.try_get("default_version")?,
        latest_version: row.try_get("latest_version")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

pub(crate) fn version_from_row(row: &impl StoreRow) -> StoreResult<LaunchTemplateVersion> {
    Ok(LaunchTemplateVersion {
        template_id: row.try_get("template_id")?,
        version: row.try_get("version")?,
        description: row.try_get("description")?,
        data: row.try_get("data")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}
