//! [`NodeEnrolmentIndex`] on SQLite.

use async_trait::async_trait;

use super::{SqliteStore, conflict, upsert_node_in};
use crate::enrolment::{EnrolOutcome, EnrolmentTokenRecord, NodeCertificate, NodeEnrolmentIndex};
use crate::shared::enrolment::{self as sql, certificate_from_row, token_from_row};
use crate::{Node, StoreResult, UnixMillis};

async fn insert_certificate(
    conn: &mut sqlx::SqliteConnection,
    c: &NodeCertificate,
) -> StoreResult<()> {
    sql::bind_insert_certificate(sqlx::query(sql::INSERT_CERTIFICATE), c)
        .execute(&mut *conn)
        .await
        .map_err(conflict(format!("certificate {}", c.serial)))?;
    Ok(())
}

#[async_trait]
impl NodeEnrolmentIndex for SqliteStore {
    async fn create_enrolment_token(&self, t: &EnrolmentTokenRecord) -> StoreResult<()> {
        sql::bind_insert_token(sqlx::query(sql::CREATE_ENROLMENT_TOKEN), t)
            .execute(&self.pool)
            .await
            .map_err(conflict(format!("enrolment token {}", t.token_id)))?;
        Ok(())
    }

    async fn enrolment_token(&self, token_id: &str) -> StoreResult<Option<EnrolmentTokenRecord>> {
        sqlx::query(sql::ENROLMENT_TOKEN)
            .bind(token_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(token_from_row)
            .transpose()
    }

    async fn enrol_node(
        &self,
        token_id: &str,
        now: UnixMillis,
        certificate: &NodeCertificate,
    ) -> StoreResult<EnrolOutcome> {
        let mut tx = self.write_tx().await?;
        let enrolled: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM node_certificates WHERE node_id = ? AND revoked_at IS NULL LIMIT 1",
        )
        .bind(&certificate.node_id)
        .fetch_optional(&mut *tx)
        .await?;
        if enrolled.is_some() {
            return Ok(EnrolOutcome::NodeEnrolled);
        }
        let spent = sqlx::query(sql::ENROL_NODE_UPDATE_NODE_ENROLMENT_TOKENS)
            .bind(now)
            .bind(&certificate.node_id)
            .bind(token_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if spent != 1 {
            return Ok(EnrolOutcome::TokenSpent);
        }
        insert_certificate(&mut tx, certificate).await?;
        tx.commit().await?;
        Ok(EnrolOutcome::Enrolled)
    }

    async fn record_node_certificate(&self, certificate: &NodeCertificate) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        insert_certificate(&mut conn, certificate).await
    }

    async fn node_certificate(&self, serial: &str) -> StoreResult<Option<NodeCertificate>> {
        sqlx::query(sql::NODE_CERTIFICATE)
            .bind(serial)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(certificate_from_row)
            .transpose()
    }

    async fn node_certificates(&self, node_id: &str) -> StoreResult<Vec<NodeCertificate>> {
        sqlx::query(sql::NODE_CERTIFICATES)
            .bind(node_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(certificate_from_row)
            .collect()
    }

    async fn revoked_serials(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(sql::REVOKED_SERIALS)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn revoke_node(&self, node_id: &str, now: UnixMillis) -> StoreResult<Vec<String>> {
        let mut tx = self.write_tx().await?;
        let serials: Vec<String> = sqlx::query_scalar(sql::REVOKE_NODE_UPDATE_NODE_CERTIFICATES)
            .bind(now)
            .bind(node_id)
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query(sql::REVOKE_NODE_DELETE_NODES)
            .bind(node_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(serials)
    }

    async fn register_node(&self, node: &Node, serial: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let valid: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM node_certificates
             WHERE serial = ? AND node_id = ? AND zone = ? AND revoked_at IS NULL",
        )
        .bind(serial)
        .bind(&node.node_id)
        .bind(&node.zone)
        .fetch_optional(&mut *tx)
        .await?;
        if valid.is_none() {
            return Ok(false);
        }
        upsert_node_in(&mut tx, node).await?;
        tx.commit().await?;
        Ok(true)
    }
}
