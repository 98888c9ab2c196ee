//! Internet gateways, route tables and NAT gateways (`crate::routing`):
//! what both backends share.

use super::StoreRow;
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
