//! Custom VPCs, their subnets and DHCP options sets, kept by [`VpcIndex`]
//! (the default VPC is [`crate::NetworkIndex::ensure_default_vpc`]'s).
//!
//! CIDR arithmetic and AWS's validation belong to the cloud; the store
//! guarantees that a VPC, subnet or options set is deleted only when
//! nothing depends on it, in the same transaction that checks it, and that
//! every subnet gets a VNI never given to another.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::network::{SecurityGroup, SecurityGroupRule, Subnet, Vpc};
use crate::{StoreResult, TagPair, UnixMillis};

/// One DHCP options set (CreateDhcpOptions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpOptions {
    /// `dopt-…`.
    pub dhcp_options_id: String,
    /// Owning account.
    pub account_id: String,
    /// Each option's key (`domain-name`, `domain-name-servers`, …) with its
    /// values, in the order given.
    pub configurations: Vec<(String, Vec<String>)>,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// What [`VpcIndex::delete_vpc`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VpcDeletion {
    /// Deleted with its default security group, its rules and tags.
    Deleted,
    /// No such VPC in the account (or it is the default VPC, which only
    /// its own API deletes).
    NotFound,
    /// Something still lives in it.
    Dependency {
        /// What (`subnet-…`, `sg-…`, `i-…`).
        resource_id: String,
    },
}

/// What [`VpcIndex::delete_subnet`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubnetDeletion {
    /// Deleted with its tags.
    Deleted,
    /// No such subnet in the account.
    NotFound,
    /// A live (not terminated) instance has its interface in it.
    InUse {
        /// One such instance.
        instance_id: String,
    },
}

/// What [`VpcIndex::delete_dhcp_options`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DhcpOptionsDeletion {
    /// Deleted with its tags.
    Deleted,
    /// No such set in the account.
    NotFound,
    /// A VPC uses it.
    InUse {
        /// One such VPC.
        vpc_id: String,
    },
}

/// Custom VPC persistence. Each method is one transaction.
#[async_trait]
pub trait VpcIndex: Send + Sync {
    /// Stores a (non-default) VPC with its `default` security group, that
    /// group's rules, and the VPC's tags. `NotFound` when its DHCP options
    /// set is not the account's.
    async fn create_vpc(
        &self,
        vpc: &Vpc,
        default_group: &SecurityGroup,
        default_rules: &[SecurityGroupRule],
        tags: &[TagPair],
    ) -> StoreResult<()>;
    /// Deletes a non-default VPC of `account_id` with its default security
    /// group and its main route table, unless a subnet, another security
    /// group, a live instance, an attached internet gateway or another
    /// route table is still in it.
    async fn delete_vpc(&self, account_id: &str, vpc_id: &str) -> StoreResult<VpcDeletion>;
    /// Stores a subnet with its tags and returns it with its VNI.
    /// `NotFound` when the VPC is not the subnet's account's; `Conflict`
    /// when the VPC has a subnet with the same CIDR.
    async fn create_subnet(&self, subnet: &Subnet, tags: &[TagPair]) -> StoreResult<Subnet>;
    /// Deletes a subnet of `account_id` unless a live instance is in it.
    async fn delete_subnet(&self, account_id: &str, subnet_id: &str)
    -> StoreResult<SubnetDeletion>;
    /// Sets whether instances launched in the subnet get a public address;
    /// returns whether the subnet exists.
    async fn set_subnet_map_public_ip(&self, subnet_id: &str, value: bool) -> StoreResult<bool>;

    /// Stores a DHCP options set with its tags.
    async fn create_dhcp_options(&self, options: &DhcpOptions, tags: &[TagPair])
    -> StoreResult<()>;
    /// The account's DHCP options sets, ordered by id.
    async fn dhcp_options(&self, account_id: &str) -> StoreResult<Vec<DhcpOptions>>;
    /// Deletes a set of `account_id` unless a VPC uses it.
    async fn delete_dhcp_options(
        &self,
        account_id: &str,
        dhcp_options_id: &str,
    ) -> StoreResult<DhcpOptionsDeletion>;
    /// Makes a VPC use a set (`None`: no set, AWS's `default`). `NotFound`
    /// when the VPC or the set is not the account's.
    async fn associate_dhcp_options(
        &self,
        account_id: &str,
        vpc_id: &str,
        dhcp_options_id: Option<&str>,
    ) -> StoreResult<()>;
}
