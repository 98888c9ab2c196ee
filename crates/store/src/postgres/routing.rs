//! [`RoutingIndex`] on PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use super::{
    PostgresStore, conflict, delete_resource_tx, insert_resource_tx, is_foreign_key_violation,
    require_tx, tag_new_resource_tx,
};
use crate::postgres::ExecuteLocked;
use crate::routing::{
    InternetGateway, NatGateway, Route, RouteTable, RouteTableAssociation, RoutingIndex,
};
use crate::shared::routing::{
    self as sql, association_from_row, gateway_from_row, nat_from_row, route_from_row,
};
use crate::{StoreError, StoreResult, TagPair, UnixMillis};

const VPC_EXISTS: &str = "SELECT 1::BIGINT FROM vpcs WHERE vpc_id = $1";
const TABLE_EXISTS: &str = "SELECT 1::BIGINT FROM route_tables WHERE route_table_id = $1";
const SUBNET_EXISTS: &str = "SELECT 1::BIGINT FROM subnets WHERE subnet_id = $1";

async fn insert_gateway(
    tx: &mut Transaction<'static, Postgres>,
    gateway: &InternetGateway,
) -> StoreResult<()> {
    insert_resource_tx(
        tx,
        &gateway.internet_gateway_id,
        &gateway.account_id,
        "internet-gateway",
        gateway.created_at,
    )
    .await?;
    if let Some(vpc_id) = &gateway.vpc_id {
        require_tx(tx, VPC_EXISTS, vpc_id).await?;
    }
    sqlx::query(sql::INSERT_GATEWAY)
        .bind(&gateway.internet_gateway_id)
        .bind(&gateway.account_id)
        .bind(&gateway.vpc_id)
        .bind(gateway.created_at)
        .execute(&mut **tx)
        .await
        .map_err(conflict(format!(
            "VPC {} already has an internet gateway",
            gateway.vpc_id.as_deref().unwrap_or_default()
        )))?;
    Ok(())
}

async fn insert_route(
    tx: &mut Transaction<'static, Postgres>,
    route_table_id: &str,
    route: &Route,
) -> StoreResult<()> {
    let (kind, id) = route.target.parts();
    let position: i64 = sqlx::query_scalar(sql::INSERT_ROUTE_SELECT_ROUTES)
        .bind(route_table_id)
        .fetch_one(&mut **tx)
        .await?;
    sqlx::query(sql::INSERT_ROUTE_INSERT_ROUTES)
        .bind(route_table_id)
        .bind(&route.destination)
        .bind(kind)
        .bind(id)
        .bind(origin(route))
        .bind(position)
        .execute(&mut **tx)
        .await
        .map_err(conflict(route.destination.clone()))?;
    Ok(())
}

fn origin(route: &Route) -> &'static str {
    if route.with_table {
        "CreateRouteTable"
    } else {
        "CreateRoute"
    }
}

async fn insert_table(
    tx: &mut Transaction<'static, Postgres>,
    table: &RouteTable,
) -> StoreResult<()> {
    require_tx(tx, VPC_EXISTS, &table.vpc_id).await?;
    insert_resource_tx(
        tx,
        &table.route_table_id,
        &table.account_id,
        "route-table",
        table.created_at,
    )
    .await?;
    sqlx::query(sql::INSERT_TABLE)
        .bind(&table.route_table_id)
        .bind(&table.account_id)
        .bind(&table.vpc_id)
        .bind(table.created_at)
        .execute(&mut **tx)
        .await?;
    for route in &table.routes {
        insert_route(tx, &table.route_table_id, route).await?;
    }
    Ok(())
}

async fn insert_association(
    tx: &mut Transaction<'static, Postgres>,
    association: &RouteTableAssociation,
) -> StoreResult<()> {
    sqlx::query(sql::INSERT_ASSOCIATION)
        .bind(&association.association_id)
        .bind(&association.route_table_id)
        .bind(&association.vpc_id)
        .bind(&association.subnet_id)
        .execute(&mut **tx)
        .await
        .map_err(conflict(
            association
                .subnet_id
                .clone()
                .unwrap_or_else(|| association.vpc_id.clone()),
        ))?;
    Ok(())
}

impl PostgresStore {
    /// The tables `rows` selects, with their routes and associations.
    async fn complete_tables(&self, rows: Vec<PgRow>) -> StoreResult<Vec<RouteTable>> {
        let mut tables = Vec::with_capacity(rows.len());
        for row in rows {
            let route_table_id: String = row.try_get("route_table_id")?;
            let routes = sqlx::query(sql::COMPLETE_TABLES_SELECT_ROUTES)
                .bind(&route_table_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(route_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            let associations = sqlx::query(sql::COMPLETE_TABLES_SELECT_ROUTE_TABLE_ASSOCIATIONS)
                .bind(&route_table_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(association_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            tables.push(RouteTable {
                account_id: row.try_get("account_id")?,
                vpc_id: row.try_get("vpc_id")?,
                created_at: row.try_get("created_at")?,
                route_table_id,
                routes,
                associations,
            });
        }
        Ok(tables)
    }

    async fn main_table_of(&self, vpc_id: &str) -> StoreResult<Option<RouteTable>> {
        let rows = sqlx::query(sql::MAIN_TABLE_OF)
            .bind(vpc_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(self.complete_tables(rows).await?.into_iter().next())
    }
}

#[async_trait]
impl RoutingIndex for PostgresStore {
    async fn ensure_main_route_table(
        &self,
        main: &RouteTable,
        gateway: Option<&InternetGateway>,
    ) -> StoreResult<RouteTable> {
        if let Some(existing) = self.main_table_of(&main.vpc_id).await? {
            return Ok(existing);
        }
        let mut tx = self.write_tx().await?;
        // Another request may have made it between the read and the lock.
        let made: Option<i64> = sqlx::query_scalar(
            "SELECT 1::BIGINT FROM route_table_associations WHERE vpc_id = $1 AND subnet_id IS NULL",
        )
        .bind(&main.vpc_id)
        .fetch_optional(&mut *tx)
        .await?;
        if made.is_none() {
            if let Some(gateway) = gateway {
                insert_gateway(&mut tx, gateway).await?;
            }
            insert_table(&mut tx, main).await?;
            for association in &main.associations {
                insert_association(&mut tx, association).await?;
            }
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        self.main_table_of(&main.vpc_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(main.vpc_id.clone()))
    }

    async fn create_internet_gateway(
        &self,
        gateway: &InternetGateway,
        tags: &[TagPair],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_gateway(&mut tx, gateway).await?;
        tag_new_resource_tx(
            &mut tx,
            &gateway.account_id,
            &gateway.internet_gateway_id,
            tags,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn internet_gateways(&self, account_id: &str) -> StoreResult<Vec<InternetGateway>> {
        sqlx::query(sql::INTERNET_GATEWAYS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(gateway_from_row)
            .collect()
    }

    async fn internet_gateway(&self, gateway_id: &str) -> StoreResult<Option<InternetGateway>> {
        sqlx::query(sql::INTERNET_GATEWAY)
            .bind(gateway_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(gateway_from_row)
            .transpose()
    }

    async fn attach_internet_gateway(&self, gateway_id: &str, vpc_id: &str) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        require_tx(
            &mut tx,
            "SELECT 1::BIGINT FROM internet_gateways WHERE internet_gateway_id = $1",
            gateway_id,
        )
        .await?;
        require_tx(&mut tx, VPC_EXISTS, vpc_id).await?;
        let updated = sqlx::query(sql::ATTACH_INTERNET_GATEWAY_UPDATE_INTERNET_GATEWAYS)
            .bind(vpc_id)
            .bind(gateway_id)
            .execute(&mut *tx)
            .await
            .map_err(conflict(vpc_id))?
            .rows_affected();
        if updated == 0 {
            return Err(StoreError::Conflict(gateway_id.to_owned()));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn detach_internet_gateway(&self, gateway_id: &str, vpc_id: &str) -> StoreResult<bool> {
        let updated = sqlx::query(sql::DETACH_INTERNET_GATEWAY)
            .bind(gateway_id)
            .bind(vpc_id)
            .execute_locked(&self.pool)
            .await?
            .rows_affected();
        Ok(updated > 0)
    }

    async fn delete_internet_gateway(&self, gateway_id: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let attached: Option<Option<String>> = sqlx::query_scalar(sql::DELETE_INTERNET_GATEWAY)
            .bind(gateway_id)
            .fetch_optional(&mut *tx)
            .await?;
        match attached {
            None => Ok(false),
            Some(Some(vpc_id)) => Err(StoreError::Conflict(vpc_id)),
            Some(None) => {
                delete_resource_tx(&mut tx, gateway_id, "internet-gateway").await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    }

    async fn create_route_table(&self, table: &RouteTable, tags: &[TagPair]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_table(&mut tx, table).await?;
        tag_new_resource_tx(&mut tx, &table.account_id, &table.route_table_id, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn route_tables(&self, account_id: &str) -> StoreResult<Vec<RouteTable>> {
        let rows = sqlx::query(sql::ROUTE_TABLES)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        self.complete_tables(rows).await
    }

    async fn route_table(&self, route_table_id: &str) -> StoreResult<Option<RouteTable>> {
        let rows = sqlx::query(sql::ROUTE_TABLE)
            .bind(route_table_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(self.complete_tables(rows).await?.into_iter().next())
    }

    async fn delete_route_table(&self, route_table_id: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let associated: Option<String> = sqlx::query_scalar(sql::DELETE_ROUTE_TABLE)
            .bind(route_table_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(association) = associated {
            return Err(StoreError::Conflict(association));
        }
        let exists: Option<i64> = sqlx::query_scalar(TABLE_EXISTS)
            .bind(route_table_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(false);
        }
        delete_resource_tx(&mut tx, route_table_id, "route-table").await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_route(&self, route_table_id: &str, route: &Route) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        require_tx(&mut tx, TABLE_EXISTS, route_table_id).await?;
        insert_route(&mut tx, route_table_id, route).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn replace_route(&self, route_table_id: &str, route: &Route) -> StoreResult<bool> {
        let (kind, id) = route.target.parts();
        let updated = sqlx::query(sql::REPLACE_ROUTE)
            .bind(kind)
            .bind(id)
            .bind(origin(route))
            .bind(route_table_id)
            .bind(&route.destination)
            .execute_locked(&self.pool)
            .await?
            .rows_affected();
        Ok(updated > 0)
    }

    async fn delete_route(&self, route_table_id: &str, destination: &str) -> StoreResult<bool> {
        let deleted = sqlx::query(sql::DELETE_ROUTE)
            .bind(route_table_id)
            .bind(destination)
            .execute_locked(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn associate_route_table(&self, association: &RouteTableAssociation) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        require_tx(&mut tx, TABLE_EXISTS, &association.route_table_id).await?;
        if let Some(subnet_id) = &association.subnet_id {
            require_tx(&mut tx, SUBNET_EXISTS, subnet_id).await?;
        }
        insert_association(&mut tx, association).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn replace_route_table_association(
        &self,
        association_id: &str,
        route_table_id: &str,
        new_association_id: &str,
    ) -> StoreResult<Option<RouteTableAssociation>> {
        let mut tx = self.write_tx().await?;
        let Some(old) =
            sqlx::query(sql::REPLACE_ROUTE_TABLE_ASSOCIATION_SELECT_ROUTE_TABLE_ASSOCIATIONS)
                .bind(association_id)
                .fetch_optional(&mut *tx)
                .await?
                .as_ref()
                .map(association_from_row)
                .transpose()?
        else {
            return Ok(None);
        };
        require_tx(&mut tx, TABLE_EXISTS, route_table_id).await?;
        sqlx::query(sql::REPLACE_ROUTE_TABLE_ASSOCIATION_DELETE_ROUTE_TABLE_ASSOCIATIONS)
            .bind(association_id)
            .execute(&mut *tx)
            .await?;
        let new = RouteTableAssociation {
            association_id: new_association_id.to_owned(),
            route_table_id: route_table_id.to_owned(),
            ..old
        };
        insert_association(&mut tx, &new).await?;
        tx.commit().await?;
        Ok(Some(new))
    }

    async fn disassociate_route_table(
        &self,
        association_id: &str,
    ) -> StoreResult<Option<RouteTableAssociation>> {
        let mut tx = self.write_tx().await?;
        let deleted = sqlx::query(sql::DISASSOCIATE_ROUTE_TABLE)
            .bind(association_id)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(association_from_row)
            .transpose()?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn create_nat_gateway(&self, gateway: &NatGateway, tags: &[TagPair]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_resource_tx(
            &mut tx,
            &gateway.nat_gateway_id,
            &gateway.account_id,
            "natgateway",
            gateway.created_at,
        )
        .await?;
        sql::bind_insert_nat_gateway(sqlx::query(sql::CREATE_NAT_GATEWAY), gateway)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::NotFound(gateway.account_id.clone())
                } else {
                    conflict(gateway.allocation_id.clone())(e)
                }
            })?;
        tag_new_resource_tx(&mut tx, &gateway.account_id, &gateway.nat_gateway_id, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn nat_gateways(&self, account_id: &str) -> StoreResult<Vec<NatGateway>> {
        sqlx::query(sql::NAT_GATEWAYS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(nat_from_row)
            .collect()
    }

    async fn nat_gateway(&self, nat_gateway_id: &str) -> StoreResult<Option<NatGateway>> {
        sqlx::query(sql::NAT_GATEWAY)
            .bind(nat_gateway_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(nat_from_row)
            .transpose()
    }

    async fn set_nat_gateway_state(
        &self,
        nat_gateway_id: &str,
        from: &str,
        to: &str,
        deleted_at: Option<UnixMillis>,
    ) -> StoreResult<bool> {
        let updated = sqlx::query(sql::SET_NAT_GATEWAY_STATE)
            .bind(to)
            .bind(deleted_at)
            .bind(nat_gateway_id)
            .bind(from)
            .execute_locked(&self.pool)
            .await?
            .rows_affected();
        Ok(updated > 0)
    }
}
