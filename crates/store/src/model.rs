//! The records the store keeps. Plain data: validation and id generation
//! happen in the layers above.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch; every timestamp in the store.
pub type UnixMillis = i64;

/// A tenant: owns resources and has users with access keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// 12-digit account number.
    pub account_id: String,
    /// Unique account name (Eucalyptus' account alias).
    pub name: String,
    /// Administrators see cloud-wide information (for example zone capacity).
    pub is_admin: bool,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Changes with every change to the account's IAM identities and
    /// policies (see [`crate::IdentityIndex`]).
    #[serde(default)]
    pub iam_generation: i64,
}

/// A user inside an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Owning account.
    pub account_id: String,
    /// Name, unique in the account.
    pub user_name: String,
    /// Globally unique id (AWS's `AIDA…`).
    pub user_id: String,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// An access key id and its secret, for signing requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// `AKIA…` id.
    pub access_key_id: String,
    /// The secret used to verify signatures.
    pub secret_access_key: String,
    /// Owning account.
    pub account_id: String,
    /// Owning user.
    pub user_name: String,
    /// Inactive keys are refused.
    pub active: bool,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// Owner and type of a resource id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// AWS-style id (`key-…`, `i-…`).
    pub resource_id: String,
    /// Owning account.
    pub account_id: String,
    /// AWS resource type name as DescribeTags reports it (`key-pair`, `instance`, …).
    pub resource_type: String,
}

/// A tag key and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagPair {
    /// Tag key.
    pub key: String,
    /// Tag value (may be empty).
    pub value: String,
}

/// Which tag DeleteTags removes: a key, or a key only with a given value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagSelector {
    /// Tag key.
    pub key: String,
    /// When set, the tag is removed only if its value is this.
    pub value: Option<String>,
}

/// A tag on a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Tagged resource.
    pub resource_id: String,
    /// Its type.
    pub resource_type: String,
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

/// Which tags [`crate::Store::tags_matching`] returns: every condition
/// holds, each by any of its patterns. A pattern is AWS's filter syntax:
/// `*` any run of characters, `?` one, `\` makes the next one literal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagQuery {
    /// Conditions, all of which hold.
    pub conditions: Vec<TagCondition>,
    /// Only tags after this (resource id, key), in that order.
    pub after: Option<(String, String)>,
    /// At most this many tags.
    pub limit: Option<usize>,
}

/// One condition of a [`TagQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCondition {
    /// The tag's resource id matches a pattern.
    ResourceId(Vec<String>),
    /// The tag's resource type matches a pattern.
    ResourceType(Vec<String>),
    /// The tag's key matches a pattern.
    Key(Vec<String>),
    /// The tag's value matches a pattern.
    Value(Vec<String>),
    /// The tag's resource has the tag `key` with a value matching a
    /// pattern.
    ResourceTag {
        /// The other tag's key (exact).
        key: String,
        /// Patterns of its value.
        values: Vec<String>,
    },
}

/// An SSH key pair; only the public half is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPair {
    /// `key-…` id.
    pub key_pair_id: String,
    /// Owning account.
    pub account_id: String,
    /// Name, unique in the account.
    pub name: String,
    /// `rsa` or `ed25519`.
    pub key_type: String,
    /// Fingerprint as AWS computes it.
    pub fingerprint: String,
    /// OpenSSH public key line.
    pub public_key: String,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// A node agent and the capacity it last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Node id.
    pub node_id: String,
    /// Availability zone the node serves.
    pub zone: String,
    /// Where the controller reaches its agent.
    pub address: String,
    /// Total and free virtual cores.
    pub cores_max: i64,
    /// Free cores.
    pub cores_free: i64,
    /// Total memory for instances.
    pub memory_mib_max: i64,
    /// Free memory.
    pub memory_mib_free: i64,
    /// Total instance disk.
    pub disk_gib_max: i64,
    /// Free disk.
    pub disk_gib_free: i64,
    /// Time of the last report (registration or heartbeat).
    pub updated_at: UnixMillis,
    /// The agent's mallee release, as it last registered.
    pub version: String,
    /// The accelerator it uses (`kvm`, `tcg`) and why, as it last
    /// registered.
    pub accel: String,
    /// Its address on the network between nodes (the VXLAN underlay);
    /// `None`: it takes no part in the overlay.
    #[serde(default)]
    pub underlay_ip: Option<String>,
    /// Set by an administrator for maintenance: nothing new is placed on
    /// the node (what it runs stays). Registration and heartbeats leave it
    /// as it is.
    #[serde(default)]
    pub disabled: bool,
    /// `compute` (runs instances) or `storage` (holds the zone's volumes),
    /// as it last registered.
    #[serde(default = "compute_role")]
    pub role: String,
}

fn compute_role() -> String {
    "compute".into()
}
