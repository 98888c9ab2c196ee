//! EC2 launch templates and their numbered versions, kept by
//! [`LaunchTemplateIndex`].
//!
//! The store treats a version's launch data as opaque JSON (the compute
//! layer in `mallee-cloud` owns its meaning). It guarantees template names
//! unique per account, version numbers that only grow (a deleted version's
//! number is never given again, as on EC2), a default version that always
//! exists, and that a template, its versions, its resource row and its tags
//! come and go together.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{StoreResult, TagPair, UnixMillis};

/// One launch template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchTemplateRecord {
    /// `lt-…`.
    pub template_id: String,
    /// Owning account.
    pub account_id: String,
    /// Name, unique in the account.
    pub name: String,
    /// The version a launch gets when it names none (or `$Default`).
    pub default_version: i64,
    /// The highest version number given so far.
    pub latest_version: i64,
    /// Creation time.
    pub created_at: UnixMillis,
    /// ARN of the principal that created it.
    pub created_by: String,
}

/// One version of a launch template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchTemplateVersion {
    /// The template it belongs to.
    pub template_id: String,
    /// Its number, from 1.
    pub version: i64,
    /// `VersionDescription`.
    pub description: Option<String>,
    /// The launch data (JSON owned by the compute layer).
    pub data: String,
    /// Creation time.
    pub created_at: UnixMillis,
    /// ARN of the principal that created it.
    pub created_by: String,
}

/// Launch template persistence.
#[async_trait]
pub trait LaunchTemplateIndex: Send + Sync {
    /// Records a new template with its first version (number 1, the
    /// default and latest) and its tags, as a `launch-template` resource,
    /// in one transaction. `Conflict` when the account already has a
    /// template of that name, or the id is taken.
    async fn create_launch_template(
        &self,
        template: &LaunchTemplateRecord,
        first: &LaunchTemplateVersion,
        tags: &[TagPair],
    ) -> StoreResult<()>;
    /// The account's templates, ordered by name.
    async fn launch_templates(&self, account_id: &str) -> StoreResult<Vec<LaunchTemplateRecord>>;
    /// Adds the template's next version (latest + 1) and returns it.
    /// `NotFound` when the account has no such template.
    async fn add_launch_template_version(
        &self,
        account_id: &str,
        template_id: &str,
        description: Option<&str>,
        data: &str,
        created_at: UnixMillis,
        created_by: &str,
    ) -> StoreResult<LaunchTemplateVersion>;
    /// The template's versions, ordered by number. `NotFound` when the
    /// account has no such template.
    async fn launch_template_versions(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> StoreResult<Vec<LaunchTemplateVersion>>;
    /// Makes `version` the default and returns the updated template.
    /// `NotFound` naming the template or the version when either is missing.
    async fn set_default_launch_template_version(
        &self,
        account_id: &str,
        template_id: &str,
        version: i64,
    ) -> StoreResult<LaunchTemplateRecord>;
    /// Deletes the template with its versions and tags; returns it, or
    /// `None` when the account had no such template.
    async fn delete_launch_template(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> StoreResult<Option<LaunchTemplateRecord>>;
    /// Deletes those of `versions` that exist and returns their numbers.
    /// `Conflict` (and nothing deleted) when one of them is the default;
    /// `NotFound` when the account has no such template.
    async fn delete_launch_template_versions(
        &self,
        account_id: &str,
        template_id: &str,
        versions: &[i64],
    ) -> StoreResult<Vec<i64>>;
}
