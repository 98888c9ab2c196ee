//! Internet gateways, route tables and NAT gateways (`crate::routing`):
//! what both backends share.

use super::{Binder, StoreRow};
use crate::routing::{InternetGateway, NatGateway, Route, RouteTableAssociation, RouteTarget};
use crate::{StoreError, StoreResult};

pub(crate) fn gateway_from_row(row: &impl StoreRow) -> StoreResult<InternetGateway> {
    Ok(InternetGateway {
        internet_gateway_id: row.try_get("internet_gateway_id")?,
        account_id: row.try_get("account_id")?,
        vpc_id: row.try_get("vpc_id")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn route_from_row(row: &impl StoreRow) -> StoreResult<Route> {
    let kind: String = row.try_get("target_kind")?;
    let id: String = row.try_get("target_id")?;
    Ok(Route {
        destination: row.try_get("destination")?,
        target: RouteTarget::from_parts(&kind, &id)
            .ok_or_else(|| StoreError::Corrupt(format!("route target kind {kind:?}")))?,
        with_table: row.try_get::<String>("origin")? == "CreateRouteTable",
    })
}

pub(crate) fn association_from_row(row: &impl StoreRow) -> StoreResult<RouteTableAssociation> {
    Ok(RouteTableAssociation {
        association_id: row.try_get("association_id")?,
        route_table_id: row.try_get("route_table_id")?,
        vpc_id: row.try_get("vpc_id")?,
        subnet_id: row.try_get("subnet_id")?,
    })
}

pub(crate) fn nat_from_row(row: &impl StoreRow) -> StoreResult<NatGateway> {
    Ok(NatGateway {
        nat_gateway_id: row.try_get("nat_gateway_id")?,
        account_id: row.try_get("account_id")?,
        vpc_id: row.try_get("vpc_id")?,
        subnet_id: row.try_get("subnet_id")?,
        allocation_id: row.try_get("allocation_id")?,
        public_ip: row.try_get("public_ip")?,
        private_ip: row.try_get("private_ip")?,
        interface_id: row.try_get("interface_id")?,
        state: row.try_get("state")?,
        client_token: row.try_get("client_token")?,
        created_at: row.try_get("created_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

// SQL that reads the same in both dialects, named after the `Store`
// method (or helper) that runs it and, where that runs several statements,
// after what the statement does.

pub(crate) const INSERT_GATEWAY: &str =
    "INSERT INTO internet_gateways (internet_gateway_id, account_id, vpc_id, created_at)
    VALUES ($1, $2, $3, $4)";

pub(crate) const INSERT_ROUTE_SELECT_ROUTES: &str =
    "SELECT COALESCE(MAX(position), -1) + 1 FROM routes WHERE route_table_id = $1";

pub(crate) const INSERT_ROUTE_INSERT_ROUTES: &str =
    "INSERT INTO routes (route_table_id, destination, target_kind, target_id, origin, position)
    VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const INSERT_TABLE: &str =
    "INSERT INTO route_tables (route_table_id, account_id, vpc_id, created_at)
    VALUES ($1, $2, $3, $4)";

pub(crate) const INSERT_ASSOCIATION: &str =
    "INSERT INTO route_table_associations (association_id, route_table_id, vpc_id, subnet_id)
    VALUES ($1, $2, $3, $4)";

pub(crate) const COMPLETE_TABLES_SELECT_ROUTES: &str =
    "SELECT * FROM routes WHERE route_table_id = $1 ORDER BY position";

pub(crate) const COMPLETE_TABLES_SELECT_ROUTE_TABLE_ASSOCIATIONS: &str =
    "SELECT * FROM route_table_associations WHERE route_table_id = $1
    ORDER BY association_id";

pub(crate) const MAIN_TABLE_OF: &str =
    "SELECT t.* FROM route_tables t JOIN route_table_associations a
      ON a.route_table_id = t.route_table_id
    WHERE a.vpc_id = $1 AND a.subnet_id IS NULL";

pub(crate) const INTERNET_GATEWAYS: &str =
    "SELECT * FROM internet_gateways WHERE account_id = $1 ORDER BY internet_gateway_id";

pub(crate) const INTERNET_GATEWAY: &str =
    "SELECT * FROM internet_gateways WHERE internet_gateway_id = $1";

pub(crate) const ATTACH_INTERNET_GATEWAY_UPDATE_INTERNET_GATEWAYS: &str =
    "UPDATE internet_gateways SET vpc_id = $1 WHERE internet_gateway_id = $2 AND vpc_id IS NULL";

pub(crate) const DETACH_INTERNET_GATEWAY: &str =
    "UPDATE internet_gateways SET vpc_id = NULL WHERE internet_gateway_id = $1 AND vpc_id = $2";

pub(crate) const DELETE_INTERNET_GATEWAY: &str =
    "SELECT vpc_id FROM internet_gateways WHERE internet_gateway_id = $1";

pub(crate) const ROUTE_TABLES: &str =
    "SELECT * FROM route_tables WHERE account_id = $1 ORDER BY route_table_id";

pub(crate) const ROUTE_TABLE: &str = "SELECT * FROM route_tables WHERE route_table_id = $1";

pub(crate) const DELETE_ROUTE_TABLE: &str =
    "SELECT association_id FROM route_table_associations WHERE route_table_id = $1 LIMIT 1";

pub(crate) const REPLACE_ROUTE: &str =
    "UPDATE routes SET target_kind = $1, target_id = $2, origin = $3
    WHERE route_table_id = $4 AND destination = $5";

pub(crate) const DELETE_ROUTE: &str =
    "DELETE FROM routes WHERE route_table_id = $1 AND destination = $2";

pub(crate) const REPLACE_ROUTE_TABLE_ASSOCIATION_SELECT_ROUTE_TABLE_ASSOCIATIONS: &str =
    "SELECT * FROM route_table_associations WHERE association_id = $1";

pub(crate) const REPLACE_ROUTE_TABLE_ASSOCIATION_DELETE_ROUTE_TABLE_ASSOCIATIONS: &str =
    "DELETE FROM route_table_associations WHERE association_id = $1";

pub(crate) const DISASSOCIATE_ROUTE_TABLE: &str = "DELETE FROM route_table_associations
    WHERE association_id = $1 AND subnet_id IS NOT NULL RETURNING *";

pub(crate) const CREATE_NAT_GATEWAY: &str =
    "INSERT INTO nat_gateways (nat_gateway_id, account_id, vpc_id, subnet_id, allocation_id,
      public_ip, private_ip, interface_id, state, client_token, created_at, deleted_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

pub(crate) const NAT_GATEWAYS: &str =
    "SELECT * FROM nat_gateways WHERE account_id = $1 ORDER BY nat_gateway_id";

pub(crate) const NAT_GATEWAY: &str = "SELECT * FROM nat_gateways WHERE nat_gateway_id = $1";

pub(crate) const SET_NAT_GATEWAY_STATE: &str =
    "UPDATE nat_gateways SET state = $1, deleted_at = COALESCE($2, deleted_at)
    WHERE nat_gateway_id = $3 AND state = $4";

/// Binds [`CREATE_NAT_GATEWAY`]'s parameters.
pub(crate) fn bind_insert_nat_gateway<Q: Binder>(query: Q, gateway: &NatGateway) -> Q {
    query
        .arg(&gateway.nat_gateway_id)
        .arg(&gateway.account_id)
        .arg(&gateway.vpc_id)
        .arg(&gateway.subnet_id)
        .arg(&gateway.allocation_id)
        .arg(&gateway.public_ip)
        .arg(&gateway.private_ip)
        .arg(&gateway.interface_id)
        .arg(&gateway.state)
        .arg(&gateway.client_token)
        .arg(gateway.created_at)
        .arg(gateway.deleted_at)
}
