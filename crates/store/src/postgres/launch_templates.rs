//! [`LaunchTemplateIndex`] on PostgreSQL.

use async_trait::async_trait;

use super::{PostgresStore, conflict, delete_resource_tx, insert_resource_tx, tag_new_resource_tx};
use crate::launch_templates::{LaunchTemplateIndex, LaunchTemplateRecord, LaunchTemplateVersion};
use crate::shared::launch_templates::{self as sql, template_from_row, version_from_row};
use crate::{StoreError, StoreResult, TagPair, UnixMillis};

async fn template_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    account_id: &str,
    template_id: &str,
) -> StoreResult<LaunchTemplateRecord> {
    let row = sqlx::query(sql::TEMPLATE_TX)
        .bind(template_id)
        .bind(account_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(template_id.to_owned()))?;
    template_from_row(&row)
}

async fn insert_version_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    v: &LaunchTemplateVersion,
) -> StoreResult<()> {
    sql::bind_insert_version(sqlx::query(sql::INSERT_VERSION_TX), v)
        .execute(&mut **tx)
        .await
        .map_err(conflict(format!("{} version {}", v.template_id, v.version)))?;
    Ok(())
}

#[async_trait]
impl LaunchTemplateIndex for PostgresStore {
    async fn create_launch_template(
        &self,
        template: &LaunchTemplateRecord,
        first: &LaunchTemplateVersion,
        tags: &[TagPair],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_resource_tx(
            &mut tx,
            &template.template_id,
            &template.account_id,
            "launch-template",
            template.created_at,
        )
        .await?;
        sqlx::query(sql::CREATE_LAUNCH_TEMPLATE)
            .bind(&template.template_id)
            .bind(&template.account_id)
            .bind(&template.name)
            .bind(template.created_at)
            .bind(&template.created_by)
            .execute(&mut *tx)
            .await
            .map_err(conflict(template.name.clone()))?;
        insert_version_tx(
            &mut tx,
            &LaunchTemplateVersion {
                template_id: template.template_id.clone(),
                version: 1,
                ..first.clone()
            },
        )
        .await?;
        tag_new_resource_tx(&mut tx, &template.account_id, &template.template_id, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn launch_templates(&self, account_id: &str) -> StoreResult<Vec<LaunchTemplateRecord>> {
        sqlx::query(sql::LAUNCH_TEMPLATES)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(template_from_row)
            .collect()
    }

    async fn add_launch_template_version(
        &self,
        account_id: &str,
        template_id: &str,
        description: Option<&str>,
        data: &str,
        created_at: UnixMillis,
        created_by: &str,
    ) -> StoreResult<LaunchTemplateVersion> {
        let mut tx = self.write_tx().await?;
        let template = template_tx(&mut tx, account_id, template_id).await?;
        let version = LaunchTemplateVersion {
            template_id: template_id.to_owned(),
            version: template.latest_version + 1,
            description: description.map(str::to_owned),
            data: data.to_owned(),
            created_at,
            created_by: created_by.to_owned(),
        };
        insert_version_tx(&mut tx, &version).await?;
        sqlx::query(sql::ADD_LAUNCH_TEMPLATE_VERSION)
            .bind(version.version)
            .bind(template_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn launch_template_versions(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> StoreResult<Vec<LaunchTemplateVersion>> {
        let owned: Option<String> =
            sqlx::query_scalar(sql::LAUNCH_TEMPLATE_VERSIONS_SELECT_LAUNCH_TEMPLATES)
                .bind(template_id)
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await?;
        if owned.is_none() {
            return Err(StoreError::NotFound(template_id.to_owned()));
        }
        sqlx::query(sql::LAUNCH_TEMPLATE_VERSIONS_SELECT_LAUNCH_TEMPLATE_VERSIONS)
            .bind(template_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(version_from_row)
            .collect()
    }

    async fn set_default_launch_template_version(
        &self,
        account_id: &str,
        template_id: &str,
        version: i64,
    ) -> StoreResult<LaunchTemplateRecord> {
        let mut tx = self.write_tx().await?;
        let mut template = template_tx(&mut tx, account_id, template_id).await?;
        let exists: Option<i64> = sqlx::query_scalar(
            sql::SET_DEFAULT_LAUNCH_TEMPLATE_VERSION_SELECT_LAUNCH_TEMPLATE_VERSIONS,
        )
        .bind(template_id)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!(
                "{template_id} version {version}"
            )));
        }
        sqlx::query(sql::SET_DEFAULT_LAUNCH_TEMPLATE_VERSION_UPDATE_LAUNCH_TEMPLATES)
            .bind(version)
            .bind(template_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        template.default_version = version;
        Ok(template)
    }

    async fn delete_launch_template(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> StoreResult<Option<LaunchTemplateRecord>> {
        let mut tx = self.write_tx().await?;
        let template = match template_tx(&mut tx, account_id, template_id).await {
            Ok(t) => t,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        // The resource row's cascade takes the template, its versions and
        // its tags with it.
        delete_resource_tx(&mut tx, template_id, "launch-template").await?;
        tx.commit().await?;
        Ok(Some(template))
    }

    async fn delete_launch_template_versions(
        &self,
        account_id: &str,
        template_id: &str,
        versions: &[i64],
    ) -> StoreResult<Vec<i64>> {
        let mut tx = self.write_tx().await?;
        let template = template_tx(&mut tx, account_id, template_id).await?;
        if versions.contains(&template.default_version) {
            return Err(StoreError::Conflict(format!(
                "{template_id} version {} is the default",
                template.default_version
            )));
        }
        let mut deleted = Vec::new();
        for &version in versions {
            let gone = sqlx::query(sql::DELETE_LAUNCH_TEMPLATE_VERSIONS)
                .bind(template_id)
                .bind(version)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone > 0 && !deleted.contains(&version) {
                deleted.push(version);
            }
        }
        tx.commit().await?;
        Ok(deleted)
    }
}
