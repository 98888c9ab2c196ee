//! Launch templates (`crate::launch_templates`): what both backends share.

use super::{Binder, StoreRow};
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

// SQL that reads the same in both dialects, named after the `Store`
// method (or helper) that runs it and, where that runs several statements,
// after what the statement does.

pub(crate) const TEMPLATE_TX: &str =
    "SELECT * FROM launch_templates WHERE template_id = $1 AND account_id = $2";

pub(crate) const INSERT_VERSION_TX: &str =
    "INSERT INTO launch_template_versions (template_id, version, description, data, created_at, created_by)
    VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const CREATE_LAUNCH_TEMPLATE: &str =
    "INSERT INTO launch_templates (template_id, account_id, name, default_version,
      latest_version, created_at, created_by)
    VALUES ($1, $2, $3, 1, 1, $4, $5)";

pub(crate) const LAUNCH_TEMPLATES: &str =
    "SELECT * FROM launch_templates WHERE account_id = $1 ORDER BY name";

pub(crate) const ADD_LAUNCH_TEMPLATE_VERSION: &str =
    "UPDATE launch_templates SET latest_version = $1 WHERE template_id = $2";

pub(crate) const LAUNCH_TEMPLATE_VERSIONS_SELECT_LAUNCH_TEMPLATES: &str =
    "SELECT template_id FROM launch_templates WHERE template_id = $1 AND account_id = $2";

pub(crate) const LAUNCH_TEMPLATE_VERSIONS_SELECT_LAUNCH_TEMPLATE_VERSIONS: &str =
    "SELECT * FROM launch_template_versions WHERE template_id = $1 ORDER BY version";

pub(crate) const SET_DEFAULT_LAUNCH_TEMPLATE_VERSION_SELECT_LAUNCH_TEMPLATE_VERSIONS: &str =
    "SELECT version FROM launch_template_versions WHERE template_id = $1 AND version = $2";

pub(crate) const SET_DEFAULT_LAUNCH_TEMPLATE_VERSION_UPDATE_LAUNCH_TEMPLATES: &str =
    "UPDATE launch_templates SET default_version = $1 WHERE template_id = $2";

pub(crate) const DELETE_LAUNCH_TEMPLATE_VERSIONS: &str =
    "DELETE FROM launch_template_versions WHERE template_id = $1 AND version = $2";

/// Binds [`INSERT_VERSION_TX`]'s parameters.
pub(crate) fn bind_insert_version<Q: Binder>(query: Q, v: &LaunchTemplateVersion) -> Q {
    query
        .arg(&v.template_id)
        .arg(v.version)
        .arg(&v.description)
        .arg(&v.data)
        .arg(v.created_at)
        .arg(&v.created_by)
}
