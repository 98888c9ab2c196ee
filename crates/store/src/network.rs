//! VPCs, subnets, security groups with their rules, and which security
//! groups each instance is in, kept by [`NetworkIndex`].
//!
//! Every VPC, subnet, group and rule is also a row of the generic resource
//! table, so tags work on them. Ids, CIDR arithmetic and validation belong to
//! the API layer; the store guarantees one default VPC per account, unique
//! group names per VPC, no duplicate rules, and that a group still used by a
//! live instance or referenced by another group's rule is never deleted.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{StoreResult, TagPair, UnixMillis};

/// One VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vpc {
    /// `vpc-…`.
    pub vpc_id: String,
    /// Owning account.
    pub account_id: String,
    /// IPv4 CIDR block (`172.31.0.0/16`).
    pub cidr: String,
    /// The account's default VPC.
    pub is_default: bool,
    /// Creation time.
    pub created_at: UnixMillis,
    /// What ModifyVpcAttribute sets.
    #[serde(default)]
    pub attributes: VpcAttributes,
    /// Its DHCP options set (`dopt-…`); `None` is AWS's `default`: no set.
    #[serde(default)]
    pub dhcp_options_id: Option<String>,
}

/// A VPC's attributes (ModifyVpcAttribute / DescribeVpcAttribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcAttributes {
    /// `enableDnsSupport`: the VPC's resolver answers its instances.
    pub dns_support: bool,
    /// `enableDnsHostnames`: its instances get public DNS names.
    pub dns_hostnames: bool,
    /// `enableNetworkAddressUsageMetrics`.
    pub address_usage_metrics: bool,
}

impl Default for VpcAttributes {
    /// A default VPC's: DNS on, usage metrics off.
    fn default() -> Self {
        Self {
            dns_support: true,
            dns_hostnames: true,
            address_usage_metrics: false,
        }
    }
}

/// One subnet of a VPC, in one zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// `subnet-…`.
    pub subnet_id: String,
    /// Its VPC.
    pub vpc_id: String,
    /// Owning account.
    pub account_id: String,
    /// Availability zone.
    pub zone: String,
    /// IPv4 CIDR block inside the VPC's.
    pub cidr: String,
    /// The zone's default subnet (instances launched without a subnet go
    /// here).
    pub default_for_az: bool,
    /// Instances launched here get a public address unless told otherwise.
    pub map_public_ip_on_launch: bool,
    /// Creation time.
    pub created_at: UnixMillis,
    /// The subnet's VXLAN segment id (1..=2^24-1), given by the store when
    /// the subnet is stored (the value given to the store is ignored) and
    /// never given to another subnet.
    #[serde(default)]
    pub vni: u32,
}

/// One security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    /// `sg-…`.
    pub group_id: String,
    /// Owning account.
    pub account_id: String,
    /// Its VPC.
    pub vpc_id: String,
    /// Name, unique in the VPC (`default` is the VPC's default group).
    pub name: String,
    /// Description.
    pub description: String,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// One rule of a security group: one protocol and port range with one peer
/// (a CIDR or a group), as AWS's `sgr-` rules are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    /// `sgr-…`.
    pub rule_id: String,
    /// The group it belongs to.
    pub group_id: String,
    /// Owning account (the group's).
    pub account_id: String,
    /// Outbound rule.
    pub egress: bool,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `-1` or a protocol number.
    pub protocol: String,
    /// First port or ICMP type; `None` when the protocol has no ports.
    pub from_port: Option<i32>,
    /// Last port or ICMP code; `None` when the protocol has no ports.
    pub to_port: Option<i32>,
    /// IPv4 peer in canonical form, or `None` when `referenced_group_id` is set.
    pub cidr: Option<String>,
    /// Peer group, or `None` when `cidr` is set.
    pub referenced_group_id: Option<String>,
    /// Free-form description.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: UnixMillis,
}

impl SecurityGroupRule {
    /// Whether `other` allows the same flow (everything but ids, description
    /// and time), which makes it a duplicate.
    pub fn same_flow(&self, other: &Self) -> bool {
        self.group_id == other.group_id
            && self.egress == other.egress
            && self.protocol == other.protocol
            && self.from_port == other.from_port
            && self.to_port == other.to_port
            && self.cidr == other.cidr
            && self.referenced_group_id == other.referenced_group_id
    }
}

/// An account's default VPC with its default subnets and default group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultVpc {
    /// The VPC.
    pub vpc: Vpc,
    /// Its subnets, ordered by zone.
    pub subnets: Vec<Subnet>,
    /// Its `default` security group.
    pub default_group: SecurityGroup,
    /// That group's rules.
    pub default_rules: Vec<SecurityGroupRule>,
}

/// What [`NetworkIndex::delete_security_group`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupDeletion {
    /// Deleted with its rules, tags and (terminated) memberships.
    Deleted,
    /// No such group in the account.
    NotFound,
    /// A live (not terminated) instance is in the group.
    InUse {
        /// One such instance.
        instance_id: String,
    },
    /// Another group has a rule naming this group as its peer.
    Referenced {
        /// One such group.
        group_id: String,
    },
}

/// The largest VNI a subnet can get (VXLAN identifiers are 24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// Network persistence. Each method is one transaction; every change to
/// groups, rules or memberships increases [`NetworkIndex::firewall_generation`].
#[async_trait]
pub trait NetworkIndex: Send + Sync {
    /// The account's default VPC, created from `template` (whose ids and
    /// account are used) if the account has none. Race-safe: concurrent
    /// first calls store one VPC and all return it. When the VPC exists, the
    /// template's subnets for zones without a default subnet (and with a
    /// CIDR not yet used in the VPC) are added, so zones configured later
    /// get theirs.
    async fn ensure_default_vpc(&self, template: &DefaultVpc) -> StoreResult<DefaultVpc>;
    /// The account's default VPC, if it has been created.
    async fn default_vpc(&self, account_id: &str) -> StoreResult<Option<DefaultVpc>>;
    /// The account's VPCs, ordered by id.
    async fn vpcs(&self, account_id: &str) -> StoreResult<Vec<Vpc>>;
    /// One VPC.
    async fn vpc(&self, vpc_id: &str) -> StoreResult<Option<Vpc>>;
    /// Sets a VPC's attributes; returns whether it exists.
    async fn set_vpc_attributes(
        &self,
        vpc_id: &str,
        attributes: &VpcAttributes,
    ) -> StoreResult<bool>;
    /// The account's subnets, ordered by VPC then zone then id.
    async fn subnets(&self, account_id: &str) -> StoreResult<Vec<Subnet>>;
    /// One subnet.
    async fn subnet(&self, subnet_id: &str) -> StoreResult<Option<Subnet>>;

    /// Stores a group with its initial rules and its tags, registering both
    /// as resources. `Conflict` when its VPC already has a group of that
    /// name; `NotFound` when the VPC does not exist.
    async fn create_security_group(
        &self,
        group: &SecurityGroup,
        rules: &[SecurityGroupRule],
        tags: &[TagPair],
    ) -> StoreResult<()>;
    /// The account's groups, ordered by id.
    async fn security_groups(&self, account_id: &str) -> StoreResult<Vec<SecurityGroup>>;
    /// One group.
    async fn security_group(&self, group_id: &str) -> StoreResult<Option<SecurityGroup>>;
    /// Deletes a group of `account_id` unless a live instance uses it or
    /// another group's rule references it.
    async fn delete_security_group(
        &self,
        account_id: &str,
        group_id: &str,
    ) -> StoreResult<GroupDeletion>;

    /// Every rule of the account's groups, ordered by group, direction
    /// (ingress first) then creation.
    async fn security_group_rules(&self, account_id: &str) -> StoreResult<Vec<SecurityGroupRule>>;
    /// The rules of the given groups (any account), in the same order.
    async fn rules_of_groups(&self, group_ids: &[String]) -> StoreResult<Vec<SecurityGroupRule>>;
    /// Adds rules to their groups, each carrying `tags`, all or none.
    /// `Conflict` naming the rule id when a rule allows the same flow as a
    /// stored one (or as another of `rules`); `NotFound` when a group or a
    /// referenced group is gone.
    async fn add_security_group_rules(
        &self,
        rules: &[SecurityGroupRule],
        tags: &[TagPair],
    ) -> StoreResult<()>;
    /// Removes rules (with their tags) by id; returns how many existed.
    async fn remove_security_group_rules(&self, rule_ids: &[String]) -> StoreResult<u64>;
    /// Replaces the protocol, ports, peer and description of stored rules
    /// (matched by id and group; ids, direction, owner and creation time
    /// stay), all or none. `NotFound` naming the rule when one is gone or
    /// the referenced group does not exist; `Conflict` naming the rule when
    /// it would then allow the same flow as another rule of its group.
    async fn update_security_group_rules(&self, rules: &[SecurityGroupRule]) -> StoreResult<()>;

    /// Replaces an instance's groups (ordered as given). `NotFound` when
    /// the instance or a group does not exist.
    async fn set_instance_groups(&self, instance_id: &str, group_ids: &[String])
    -> StoreResult<()>;
    /// An instance's groups in the order they were set.
    async fn instance_groups(&self, instance_id: &str) -> StoreResult<Vec<String>>;
    /// The instances (terminated ones included) in a group, ordered by id.
    async fn instances_in_group(&self, group_id: &str) -> StoreResult<Vec<String>>;
    /// A counter raised by every change to groups, rules and memberships,
    /// so the reconciler can tell when firewalls must be recomputed.
    async fn firewall_generation(&self) -> StoreResult<u64>;
}
