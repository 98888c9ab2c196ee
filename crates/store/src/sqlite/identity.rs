//! [`IdentityIndex`] on SQLite.

use async_trait::async_trait;
use sqlx::{Row, Sqlite, Transaction};

use super::{SqliteStore, conflict};
use crate::identity::{
    IamEntity, IamUser, IdentityIndex, KeyLastUsed, SessionRecord, SigningCertificate,
    UserAccessKey,
};
use crate::shared::identity::{
    self as sql, entity_from_row, last_used_from_row, signing_certificate_from_row, user_from_row,
};
use crate::{AccessKey, StoreError, StoreResult};

/// Marks the account's identities changed, in the write's own transaction.
async fn bump_generation(
    tx: &mut Transaction<'static, Sqlite>,
    account_id: &str,
) -> StoreResult<()> {
    sqlx::query(sql::BUMP_GENERATION)
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl IdentityIndex for SqliteStore {
    async fn create_signing_certificate(&self, cert: &SigningCertificate) -> StoreResult<()> {
        let result = sql::bind_insert_signing_certificate(
            sqlx::query(sql::CREATE_SIGNING_CERTIFICATE),
            cert,
        )
        .execute(&self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(StoreError::NotFound(format!("user {}", cert.user_name)))
            }
            other => other
                .map(|_| ())
                .map_err(conflict(format!("certificate {}", cert.certificate_id))),
        }
    }

    async fn signing_certificates(
        &self,
        account_id: &str,
        user_name: Option<&str>,
    ) -> StoreResult<Vec<SigningCertificate>> {
        sqlx::query(sql::SIGNING_CERTIFICATES)
            .bind(account_id)
            .bind(user_name)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(signing_certificate_from_row)
            .collect()
    }

    async fn set_signing_certificate_active(
        &self,
        account_id: &str,
        user_name: &str,
        certificate_id: &str,
        active: bool,
    ) -> StoreResult<bool> {
        let updated = sqlx::query(sql::SET_SIGNING_CERTIFICATE_ACTIVE)
            .bind(i64::from(active))
            .bind(account_id)
            .bind(user_name)
            .bind(certificate_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(updated > 0)
    }

    async fn delete_signing_certificate(
        &self,
        account_id: &str,
        user_name: &str,
        certificate_id: &str,
    ) -> StoreResult<bool> {
        let deleted = sqlx::query(sql::DELETE_SIGNING_CERTIFICATE)
            .bind(account_id)
            .bind(user_name)
            .bind(certificate_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn create_user(&self, user: &IamUser) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sql::bind_insert_user(sqlx::query(sql::CREATE_USER), user)
            .execute(&mut *tx)
            .await
            .map_err(conflict(&user.user_name))?;
        bump_generation(&mut tx, &user.account_id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn user(&self, account_id: &str, user_name: &str) -> StoreResult<Option<IamUser>> {
        sqlx::query(sql::USER)
            .bind(account_id)
            .bind(user_name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn users(&self, account_id: &str) -> StoreResult<Vec<IamUser>> {
        sqlx::query(sql::USERS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    async fn update_user(&self, user_name: &str, user: &IamUser) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        // The keys follow a renamed user: the foreign key is checked at
        // commit, once both sides carry the new name.
        sqlx::query("PRAGMA defer_foreign_keys = ON")
            .execute(&mut *tx)
            .await?;
        let updated = sqlx::query(sql::UPDATE_USER_UPDATE_USERS)
            .bind(&user.user_name)
            .bind(&user.details)
            .bind(&user.account_id)
            .bind(user_name)
            .bind(user.revision)
            .execute(&mut *tx)
            .await
            .map_err(conflict(&user.user_name))?
            .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        if user.user_name != user_name {
            sqlx::query(sql::UPDATE_USER_UPDATE_ACCESS_KEYS)
                .bind(&user.user_name)
                .bind(&user.account_id)
                .bind(user_name)
                .execute(&mut *tx)
                .await?;
        }
        bump_generation(&mut tx, &user.account_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_user(
        &self,
        account_id: &str,
        user_name: &str,
        revision: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let deleted = sqlx::query(sql::DELETE_USER)
            .bind(account_id)
            .bind(user_name)
            .bind(revision)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        bump_generation(&mut tx, account_id).await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn user_access_keys(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> StoreResult<Vec<UserAccessKey>> {
        sqlx::query(sql::USER_ACCESS_KEYS)
            .bind(account_id)
            .bind(user_name)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(UserAccessKey {
                    key: AccessKey {
                        access_key_id: row.try_get("access_key_id")?,
                        secret_access_key: row.try_get("secret_access_key")?,
                        account_id: row.try_get("account_id")?,
                        user_name: row.try_get("user_name")?,
                        active: row.try_get::<i64, _>("active")? != 0,
                        created_at: row.try_get("created_at")?,
                    },
                    last_used: last_used_from_row(row)?,
                })
            })
            .collect()
    }

    async fn delete_access_key(
        &self,
        account_id: &str,
        user_name: &str,
        access_key_id: &str,
    ) -> StoreResult<bool> {
        let deleted = sqlx::query(sql::DELETE_ACCESS_KEY)
            .bind(account_id)
            .bind(user_name)
            .bind(access_key_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn set_access_key_active(
        &self,
        account_id: &str,
        user_name: &str,
        access_key_id: &str,
        active: bool,
    ) -> StoreResult<bool> {
        let updated = sqlx::query(sql::SET_ACCESS_KEY_ACTIVE)
            .bind(i64::from(active))
            .bind(account_id)
            .bind(user_name)
            .bind(access_key_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(updated > 0)
    }

    async fn record_key_use(&self, access_key_id: &str, used: &KeyLastUsed) -> StoreResult<()> {
        sqlx::query(sql::RECORD_KEY_USE)
            .bind(used.at)
            .bind(&used.service)
            .bind(&used.region)
            .bind(access_key_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn key_last_used(&self, access_key_id: &str) -> StoreResult<Option<KeyLastUsed>> {
        let row = sqlx::query(sql::KEY_LAST_USED)
            .bind(access_key_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => last_used_from_row(&row),
            None => Ok(None),
        }
    }

    async fn create_entity(&self, entity: &IamEntity) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sql::bind_insert_entity(sqlx::query(sql::CREATE_ENTITY), entity)
            .execute(&mut *tx)
            .await
            .map_err(conflict(&entity.name))?;
        bump_generation(&mut tx, &entity.account_id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn entity(
        &self,
        account_id: &str,
        kind: &str,
        name: &str,
    ) -> StoreResult<Option<IamEntity>> {
        sqlx::query(sql::ENTITY)
            .bind(account_id)
            .bind(kind)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(entity_from_row)
            .transpose()
    }

    async fn entities(&self, account_id: &str, kind: &str) -> StoreResult<Vec<IamEntity>> {
        sqlx::query(sql::ENTITIES)
            .bind(account_id)
            .bind(kind)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(entity_from_row)
            .collect()
    }

    async fn update_entity(&self, entity: &IamEntity) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let updated = sqlx::query(sql::UPDATE_ENTITY)
            .bind(&entity.details)
            .bind(&entity.account_id)
            .bind(&entity.kind)
            .bind(&entity.name)
            .bind(entity.revision)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        bump_generation(&mut tx, &entity.account_id).await?;
        tx.commit().await?;
        Ok(updated > 0)
    }

    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()> {
        sql::bind_insert_session(sqlx::query(sql::CREATE_SESSION), session)
            .execute(&self.pool)
            .await
            .map_err(conflict(&session.access_key_id))?;
        Ok(())
    }

    async fn session(&self, access_key_id: &str) -> StoreResult<Option<SessionRecord>> {
        let row = sqlx::query(sql::SESSION)
            .bind(access_key_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionRecord {
            access_key_id: row.try_get("access_key_id")?,
            secret_access_key: row.try_get("secret_access_key")?,
            session_token: row.try_get("session_token")?,
            account_id: row.try_get("account_id")?,
            user_name: row.try_get("user_name")?,
            role_name: row.try_get("role_name")?,
            session_name: row.try_get("session_name")?,
            details: row.try_get("details")?,
            expires_at: row.try_get("expires_at")?,
            created_at: row.try_get("created_at")?,
        }))
    }

    async fn delete_expired_sessions(&self, now: i64) -> StoreResult<u64> {
        Ok(sqlx::query(sql::DELETE_EXPIRED_SESSIONS)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn delete_entity(
        &self,
        account_id: &str,
        kind: &str,
        name: &str,
        revision: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let deleted = sqlx::query(sql::DELETE_ENTITY)
            .bind(account_id)
            .bind(kind)
            .bind(name)
            .bind(revision)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        bump_generation(&mut tx, account_id).await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }
}
