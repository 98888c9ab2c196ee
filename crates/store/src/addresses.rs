//! Public IPv4 addresses: elastic IPs an account allocates and public IPs
//! auto-assigned to instances, kept by [`AddressIndex`].
//!
//! The store guarantees that an address is held by at most one record
//! (however allocations race), that an instance has at most one public
//! address, and that a change touching several addresses and the instances
//! they move between is applied whole or not at all, with compare-and-set on
//! every record it replaces. Which address moves where is decided by the
//! layer above; the store refuses a change computed from stale records.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{InstanceRecord, StoreResult, TagPair, UnixMillis};

/// One public address held by an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRecord {
    /// `eipalloc-…` (auto-assigned addresses get one too, never shown).
    pub allocation_id: String,
    /// Owning account.
    pub account_id: String,
    /// The public IPv4 address.
    pub public_ip: String,
    /// Zone whose public range it comes from (its network border group).
    pub zone: String,
    /// `vpc` or `standard`.
    pub domain: String,
    /// `eipassoc-…` while associated.
    pub association_id: Option<String>,
    /// The instance it is associated with.
    pub instance_id: Option<String>,
    /// The private address it maps to while associated.
    pub private_ip: Option<String>,
    /// Auto-assigned at launch (not an elastic IP).
    pub auto_assigned: bool,
    /// For an elastic IP: the auto-assigned address it displaced from its
    /// instance, to give back when it is disassociated.
    pub replaced_auto_ip: Option<String>,
    /// The domain name (PTR record) set with ModifyAddressAttribute;
    /// `None` for the default reverse name.
    #[serde(default)]
    pub ptr_record: Option<String>,
    /// Compare-and-set counter, bumped by every update.
    pub revision: i64,
    /// Allocation time.
    pub created_at: UnixMillis,
}

/// A change applied in one transaction by [`AddressIndex::apply_address_change`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressChange {
    /// New records (stored with revision 0). Elastic IPs (not
    /// `auto_assigned`) are registered as `elastic-ip` resources carrying
    /// `tags`.
    pub insert: Vec<AddressRecord>,
    /// Records to replace, if their `revision` is still the stored one.
    pub update: Vec<AddressRecord>,
    /// Records to remove (with their resource and tags), if their
    /// `revision` is still the stored one.
    pub delete: Vec<AddressRecord>,
    /// Instances whose launch details change with the addresses: their
    /// `generation`, `details` and `updated_at` are written if their
    /// `revision` is still the stored one (which is then bumped).
    pub instances: Vec<InstanceRecord>,
    /// Tags of the inserted elastic IPs.
    pub tags: Vec<TagPair>,
    /// `(account, max)`: refuse the change if the account would then hold
    /// more than `max` elastic IPs.
    pub elastic_ip_limit: Option<(String, i64)>,
}

/// What became of an [`AddressChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressOutcome {
    /// Applied whole.
    Applied,
    /// A record it replaces or removes changed (or vanished) first; nothing
    /// was applied.
    Stale,
    /// An inserted address is already held; nothing was applied.
    PublicIpTaken(String),
    /// The account would exceed its elastic IP limit; nothing was applied.
    LimitExceeded,
}

/// Address persistence.
#[async_trait]
pub trait AddressIndex: Send + Sync {
    /// Applies a change whole, or nothing of it.
    async fn apply_address_change(&self, change: &AddressChange) -> StoreResult<AddressOutcome>;
    /// One address by allocation id.
    async fn address(&self, allocation_id: &str) -> StoreResult<Option<AddressRecord>>;
    /// One address by public IP.
    async fn address_by_public_ip(&self, public_ip: &str) -> StoreResult<Option<AddressRecord>>;
    /// Addresses of one account, or of every account when `None`, auto-assigned
    /// ones included, ordered by public IP.
    async fn addresses(&self, account_id: Option<&str>) -> StoreResult<Vec<AddressRecord>>;
    /// The address associated with an instance.
    async fn address_of_instance(&self, instance_id: &str) -> StoreResult<Option<AddressRecord>>;
    /// Public IPs held in a zone's range.
    async fn public_ips_in_use(&self, zone: &str) -> StoreResult<Vec<String>>;
    /// Addresses created before `created_before` that are associated with an
    /// instance that does not exist (left by a launch that never committed).
    async fn orphan_addresses(&self, created_before: UnixMillis)
    -> StoreResult<Vec<AddressRecord>>;
}
