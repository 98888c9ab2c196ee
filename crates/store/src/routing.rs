//! Internet gateways, route tables (with their routes and subnet
//! associations) and NAT gateways, kept by [`RoutingIndex`].
//!
//! Gateways and tables are rows of the generic resource table, so tags
//! work on them. Ids, CIDR checks and which target a route may name belong
//! to the domain; the store guarantees one gateway per VPC and one VPC per
//! gateway, one route per destination of a table, one association per
//! subnet, one main table per VPC (made once, however first requests race),
//! that an attached gateway or an associated table is never deleted, and
//! that an elastic IP serves one live NAT gateway.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{StoreResult, TagPair, UnixMillis};

/// One internet gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetGateway {
    /// `igw-…`.
    pub internet_gateway_id: String,
    /// Owning account.
    pub account_id: String,
    /// The VPC it is attached to.
    pub vpc_id: Option<String>,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// Where a route sends its traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteTarget {
    /// The VPC itself (`local`).
    Local,
    /// An internet gateway (`igw-…`).
    Gateway(String),
    /// A NAT gateway (`nat-…`).
    NatGateway(String),
    /// An instance (`i-…`).
    Instance(String),
    /// A network interface (`eni-…`).
    NetworkInterface(String),
}

impl RouteTarget {
    /// The stored kind and id (`local` routes store an empty id).
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            Self::Local => ("local", ""),
            Self::Gateway(id) => ("gateway", id),
            Self::NatGateway(id) => ("nat-gateway", id),
            Self::Instance(id) => ("instance", id),
            Self::NetworkInterface(id) => ("network-interface", id),
        }
    }

    /// The target of stored kind `kind` and id `id`.
    pub fn from_parts(kind: &str, id: &str) -> Option<Self> {
        let id = id.to_owned();
        Some(match kind {
            "local" => Self::Local,
            "gateway" => Self::Gateway(id),
            "nat-gateway" => Self::NatGateway(id),
            "instance" => Self::Instance(id),
            "network-interface" => Self::NetworkInterface(id),
            _ => return None,
        })
    }
}

/// One route of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination IPv4 CIDR in canonical form.
    pub destination: String,
    /// Where it goes.
    pub target: RouteTarget,
    /// Made with its table (`CreateRouteTable`: the local route, a default
    /// VPC's internet route) rather than by `CreateRoute`.
    pub with_table: bool,
}

/// A subnet's (or, without one, the VPC's main) use of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTableAssociation {
    /// `rtbassoc-…`.
    pub association_id: String,
    /// The table.
    pub route_table_id: String,
    /// The table's VPC.
    pub vpc_id: String,
    /// The subnet; `None` for the VPC's main association.
    pub subnet_id: Option<String>,
}

impl RouteTableAssociation {
    /// Whether this is the VPC's main association.
    pub fn main(&self) -> bool {
        self.subnet_id.is_none()
    }
}

/// One route table with its routes (in the order they were made) and
/// associations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTable {
    /// `rtb-…`.
    pub route_table_id: String,
    /// Owning account.
    pub account_id: String,
    /// Its VPC.
    pub vpc_id: String,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Its routes.
    pub routes: Vec<Route>,
    /// Its associations, ordered by id.
    pub associations: Vec<RouteTableAssociation>,
}

/// One NAT gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatGateway {
    /// `nat-…`.
    pub nat_gateway_id: String,
    /// Owning account.
    pub account_id: String,
    /// Its subnet's VPC.
    pub vpc_id: String,
    /// The subnet it lives in.
    pub subnet_id: String,
    /// Its elastic IP's `eipalloc-…`.
    pub allocation_id: String,
    /// That elastic IP.
    pub public_ip: String,
    /// Its address in the subnet.
    pub private_ip: String,
    /// Its network interface (`eni-…`).
    pub interface_id: String,
    /// `pending`, `available`, `deleting`, `deleted` or `failed`.
    pub state: String,
    /// CreateNatGateway's `ClientToken`.
    pub client_token: Option<String>,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Deletion time, once deleted.
    pub deleted_at: Option<UnixMillis>,
}

/// Routing persistence. Each method is one transaction.
#[async_trait]
pub trait RoutingIndex: Send + Sync {
    /// The VPC's main table, made from `main` (whose routes and single
    /// main association are stored with it) together with `gateway`
    /// (attached to the VPC) when the VPC has no main table yet.
    /// Race-safe: concurrent first calls store one table and all return
    /// it; once a VPC has a main table, nothing of the templates is
    /// stored. `NotFound` when the VPC does not exist.
    async fn ensure_main_route_table(
        &self,
        main: &RouteTable,
        gateway: Option<&InternetGateway>,
    ) -> StoreResult<RouteTable>;

    /// Stores a detached (or attached, when its VPC has none) gateway with
    /// its tags.
    async fn create_internet_gateway(
        &self,
        gateway: &InternetGateway,
        tags: &[TagPair],
    ) -> StoreResult<()>;
    /// The account's gateways, ordered by id.
    async fn internet_gateways(&self, account_id: &str) -> StoreResult<Vec<InternetGateway>>;
    /// One gateway.
    async fn internet_gateway(&self, gateway_id: &str) -> StoreResult<Option<InternetGateway>>;
    /// Attaches a detached gateway to a VPC. `Conflict` when the gateway
    /// is attached or the VPC has a gateway; `NotFound` when either is
    /// missing.
    async fn attach_internet_gateway(&self, gateway_id: &str, vpc_id: &str) -> StoreResult<()>;
    /// Detaches a gateway from `vpc_id`; whether it was attached there.
    async fn detach_internet_gateway(&self, gateway_id: &str, vpc_id: &str) -> StoreResult<bool>;
    /// Deletes a detached gateway (with its tags); whether it existed.
    /// `Conflict` while it is attached.
    async fn delete_internet_gateway(&self, gateway_id: &str) -> StoreResult<bool>;

    /// Stores a table (its routes, no associations) with its tags.
    /// `NotFound` when its VPC does not exist.
    async fn create_route_table(&self, table: &RouteTable, tags: &[TagPair]) -> StoreResult<()>;
    /// The account's tables, ordered by id.
    async fn route_tables(&self, account_id: &str) -> StoreResult<Vec<RouteTable>>;
    /// One table.
    async fn route_table(&self, route_table_id: &str) -> StoreResult<Option<RouteTable>>;
    /// Deletes a table without associations (with its routes and tags);
    /// whether it existed. `Conflict` while it has an association.
    async fn delete_route_table(&self, route_table_id: &str) -> StoreResult<bool>;
    /// Adds a route. `Conflict` when the table has a route for its
    /// destination; `NotFound` when the table is gone.
    async fn create_route(&self, route_table_id: &str, route: &Route) -> StoreResult<()>;
    /// Replaces the target of the table's route for `route.destination`
    /// (it then counts as made by CreateRoute); whether it existed.
    async fn replace_route(&self, route_table_id: &str, route: &Route) -> StoreResult<bool>;
    /// Removes the table's route for `destination`; whether it existed.
    async fn delete_route(&self, route_table_id: &str, destination: &str) -> StoreResult<bool>;
    /// Associates a subnet with a table. `Conflict` when the subnet has an
    /// association; `NotFound` when the table or subnet is gone.
    async fn associate_route_table(&self, association: &RouteTableAssociation) -> StoreResult<()>;
    /// Moves association `association_id` to table `route_table_id` under
    /// the new id `new_association_id` (a main one stays main); the new
    /// association, or `None` when the old one does not exist. `NotFound`
    /// when the table is gone.
    async fn replace_route_table_association(
        &self,
        association_id: &str,
        route_table_id: &str,
        new_association_id: &str,
    ) -> StoreResult<Option<RouteTableAssociation>>;
    /// Removes a subnet association; the removed one, or `None` when there
    /// is no such subnet association (main ones are never removed here).
    async fn disassociate_route_table(
        &self,
        association_id: &str,
    ) -> StoreResult<Option<RouteTableAssociation>>;

    /// Stores a NAT gateway with its tags. `Conflict` when its elastic IP
    /// serves another live gateway.
    async fn create_nat_gateway(&self, gateway: &NatGateway, tags: &[TagPair]) -> StoreResult<()>;
    /// The account's NAT gateways (deleted ones included), ordered by id.
    async fn nat_gateways(&self, account_id: &str) -> StoreResult<Vec<NatGateway>>;
    /// One NAT gateway.
    async fn nat_gateway(&self, nat_gateway_id: &str) -> StoreResult<Option<NatGateway>>;
    /// Moves a gateway from state `from` to `to` (setting `deleted_at`
    /// when given); whether it was in `from`.
    async fn set_nat_gateway_state(
        &self,
        nat_gateway_id: &str,
        from: &str,
        to: &str,
        deleted_at: Option<UnixMillis>,
    ) -> StoreResult<bool>;
}
