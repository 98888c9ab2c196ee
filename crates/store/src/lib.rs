//! mallee's metadata store: the [`Store`] trait every backend implements,
//! the records it keeps, the SQLite backend used by default and the
//! PostgreSQL backend for controllers that share a database
//! ([`Database`] picks one).
//!
//! The store holds the desired state of every resource. Each method is one
//! transaction: a call that returns `Ok` is durable, a call that fails or is
//! interrupted by a crash leaves nothing behind.

pub mod addresses;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod copy;
pub mod database;
pub mod enrolment;
pub mod identity;
pub mod images;
pub mod instances;
pub mod launch_templates;
pub mod lease;
pub mod metal;
mod model;
pub mod network;
pub mod objects;
pub mod postgres;
pub mod routing;
mod shared;
pub mod snapshots;
pub mod sqlite;
pub mod volumes;
pub mod vpcs;

pub use addresses::{AddressChange, AddressIndex, AddressOutcome, AddressRecord};
pub use database::Database;
pub use enrolment::{EnrolOutcome, EnrolmentTokenRecord, NodeCertificate, NodeEnrolmentIndex};
pub use identity::{
    IamEntity, IamUser, IdentityIndex, KeyLastUsed, SessionRecord, SigningCertificate,
    UserAccessKey,
};
pub use images::{
    Image, ImageBlockDevice, ImageIndex, LaunchPermissionChange, StateReason, UnbundledImage,
};
pub use instances::{
    InstanceCondition, InstanceField, InstanceIndex, InstanceQuery, InstanceRecord, Launch,
    Reservation,
};
pub use launch_templates::{LaunchTemplateIndex, LaunchTemplateRecord, LaunchTemplateVersion};
pub use lease::{Fence, Lease, LeaseIndex};
pub use metal::MetalIndex;
pub use model::*;
pub use network::{
    DefaultVpc, GroupDeletion, MAX_VNI, NetworkIndex, SecurityGroup, SecurityGroupRule, Subnet,
    Vpc, VpcAttributes,
};
pub use objects::{
    Bucket, BucketSetting, Expiry, MultipartUpload, NULL_VERSION, ObjectEncryption, ObjectIndex,
    ObjectIndexError, ObjectMetadata, ObjectRecord, ObjectVersion, Part, Segment, VersionPosition,
    Versioning,
};
pub use routing::{
    InternetGateway, NatGateway, Route, RouteTable, RouteTableAssociation, RouteTarget,
    RoutingIndex,
};
pub use snapshots::{SnapshotData, SnapshotDeletion, SnapshotIndex, SnapshotRecord};
pub use volumes::{VolumeIndex, VolumeRecord};
pub use vpcs::{DhcpOptions, DhcpOptionsDeletion, SubnetDeletion, VpcDeletion, VpcIndex};

use async_trait::async_trait;

/// Errors from any store backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A record with the same unique name or id already exists.
    #[error("already exists: {0}")]
    Conflict(String),
    /// A record the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The database failed or could not be opened.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A schema migration failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A resource would carry more tags than AWS allows.
    #[error("tag limit exceeded on {0}")]
    TagLimitExceeded(String),
    /// The object index refused a change.
    #[error(transparent)]
    Objects(#[from] ObjectIndexError),
    /// A stored value could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A write made under a lease generation that is no longer current
    /// (another controller took the lease): refused, see [`lease`].
    #[error("write fenced: {0}")]
    Fenced(lease::FenceViolation),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && let Some(violation) = db.try_downcast_ref::<lease::FenceViolation>()
        {
            return Self::Fenced(violation.clone());
        }
        Self::Database(err)
    }
}

impl StoreError {
    /// Whether a fenced write was refused, however it was reported (a
    /// backend's `map_err` may have wrapped the database error as is).
    pub fn is_fenced(&self) -> bool {
        match self {
            Self::Fenced(_) => true,
            Self::Database(sqlx::Error::Database(db)) => {
                db.try_downcast_ref::<lease::FenceViolation>().is_some()
            }
            _ => false,
        }
    }
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// The metadata store. Implemented by [`sqlite::SqliteStore`] and
/// [`postgres::PostgresStore`], which pass the same conformance suite
/// (`conformance::run`, behind the `conformance` feature).
#[async_trait]
pub trait Store:
    ObjectIndex
    + ImageIndex
    + InstanceIndex
    + LaunchTemplateIndex
    + NetworkIndex
    + VpcIndex
    + RoutingIndex
    + AddressIndex
    + VolumeIndex
    + SnapshotIndex
    + MetalIndex
    + NodeEnrolmentIndex
    + IdentityIndex
    + LeaseIndex
    + Send
    + Sync
    + std::fmt::Debug
{
    // --- accounts and credentials ---------------------------------------

    /// Creates an account with its first user. Fails with `Conflict` when the
    /// account name or id is taken.
    async fn create_account(&self, account: &Account, first_user: &User) -> StoreResult<()>;
    /// Looks an account up by name.
    async fn account_by_name(&self, name: &str) -> StoreResult<Option<Account>>;
    /// Looks an account up by its 12-digit id.
    async fn account_by_id(&self, account_id: &str) -> StoreResult<Option<Account>>;
    /// Every account, ordered by name.
    async fn accounts(&self) -> StoreResult<Vec<Account>>;
    /// Deletes an account with its users, keys, IAM entities and sessions;
    /// `Conflict` while it owns anything else (instances, volumes,
    /// buckets, key pairs, …). Returns whether it existed.
    async fn delete_account(&self, account_id: &str) -> StoreResult<bool>;
    /// Adds an access key to an existing user.
    async fn create_access_key(&self, key: &AccessKey) -> StoreResult<()>;
    /// Finds an active or inactive access key with its account.
    async fn access_key(&self, access_key_id: &str) -> StoreResult<Option<(AccessKey, Account)>>;

    // --- resources and tags ---------------------------------------------

    /// The owners and types of the given resource ids that exist.
    async fn resources(&self, resource_ids: &[String]) -> StoreResult<Vec<Resource>>;
    /// Sets tags on resources owned by `account_id`, all or none. Fails with
    /// `NotFound` naming the first resource id that does not exist or is not
    /// the account's.
    async fn put_tags(
        &self,
        account_id: &str,
        resource_ids: &[String],
        tags: &[TagPair],
    ) -> StoreResult<()>;
    /// Removes tags from the account's resources. A tag given with a value is
    /// removed only when its value matches.
    async fn delete_tags(
        &self,
        account_id: &str,
        resource_ids: &[String],
        tags: &[TagSelector],
    ) -> StoreResult<()>;
    /// Every tag of the account, ordered by resource id then key.
    async fn tags(&self, account_id: &str) -> StoreResult<Vec<Tag>>;
    /// The account's tags `query` selects, ordered by resource id then
    /// key, found by the database rather than by reading every tag.
    async fn tags_matching(&self, account_id: &str, query: &TagQuery) -> StoreResult<Vec<Tag>>;
    /// The tags of the given resources (whoever owns them), ordered by
    /// resource id then key.
    async fn resource_tags(&self, resource_ids: &[String]) -> StoreResult<Vec<Tag>>;

    // --- key pairs --------------------------------------------------------

    /// Stores a key pair and its tags atomically; `Conflict` if the account
    /// already has a key pair with that name.
    async fn create_key_pair(&self, key_pair: &KeyPair, tags: &[TagPair]) -> StoreResult<()>;
    /// The account's key pairs, ordered by name.
    async fn key_pairs(&self, account_id: &str) -> StoreResult<Vec<KeyPair>>;
    /// The account's key pairs that `query` selects, ordered by name, found
    /// by the database rather than by reading every key pair and tag of
    /// the account.
    ///
    /// Added for DescribeKeyPairs (issue 18). The default reads the whole
    /// account and filters in memory ([`KeyPairQuery::selects`]): correct,
    /// but O(account), for a backend that has no query of its own yet.
    async fn key_pairs_matching(
        &self,
        account_id: &str,
        query: &KeyPairQuery,
    ) -> StoreResult<Vec<KeyPair>> {
        let tags = self.tags(account_id).await?;
        Ok(self
            .key_pairs(account_id)
            .await?
            .into_iter()
            .filter(|k| {
                let own: Vec<Tag> = tags
                    .iter()
                    .filter(|t| t.resource_id == k.key_pair_id)
                    .cloned()
                    .collect();
                query.selects(k, &own)
            })
            .collect())
    }
    /// Deletes a key pair (and its tags). Returns whether it existed.
    async fn delete_key_pair(&self, account_id: &str, key_pair_id: &str) -> StoreResult<bool>;

    // --- nodes --------------------------------------------------------------

    /// Records a node and its latest capacity report.
    async fn upsert_node(&self, node: &Node) -> StoreResult<()>;
    /// Every known node, ordered by id.
    async fn nodes(&self) -> StoreResult<Vec<Node>>;
    /// Disables (or enables) placement on a node. Returns whether the node
    /// exists.
    async fn set_node_disabled(&self, node_id: &str, disabled: bool) -> StoreResult<bool>;

    // --- settings -----------------------------------------------------------

    /// Reads a controller setting.
    async fn setting(&self, name: &str) -> StoreResult<Option<String>>;
    /// Writes a controller setting.
    async fn set_setting(&self, name: &str, value: &str) -> StoreResult<()>;
}
