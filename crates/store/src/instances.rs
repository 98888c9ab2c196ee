//! Reservations and instances: the controller's desired state of every
//! instance and the state it last observed, kept by [`InstanceIndex`].
//!
//! The store treats states and launch details as opaque strings (the
//! compute layer in `mallee-cloud` owns their meaning); it guarantees
//! atomic reservations, ClientToken uniqueness, unique live private
//! addresses and MACs, and compare-and-set updates through `revision`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{StoreResult, Tag, TagPair, UnixMillis, pattern_matches};

/// One RunInstances call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// `r-…`.
    pub reservation_id: String,
    /// Owning account.
    pub account_id: String,
    /// The caller's ClientToken, if any.
    pub client_token: Option<String>,
    /// Digest of the request parameters (idempotency mismatch detection).
    pub request_hash: String,
    /// When it was made.
    pub created_at: UnixMillis,
}

/// One instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// `i-…`.
    pub instance_id: String,
    /// `r-…`.
    pub reservation_id: String,
    /// Owning account.
    pub account_id: String,
    /// Position in its reservation.
    pub launch_index: i64,
    /// Node it is placed on.
    pub node_id: String,
    /// Availability zone.
    pub zone: String,
    /// Network its interface is on.
    pub network_id: String,
    /// Private IPv4.
    pub private_ip: String,
    /// MAC of its interface.
    pub mac: String,
    /// EC2 state name (`pending`, `running`, …).
    pub state: String,
    /// What the controller drives it toward (`running`, `stopped`,
    /// `terminated`).
    pub desired: String,
    /// Generation of the spec sent to the node; bumped by every change the
    /// node must act on.
    pub generation: i64,
    /// Compare-and-set counter, bumped by every update.
    pub revision: i64,
    /// Launch details (JSON owned by the compute layer).
    pub details: String,
    /// Launch time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
    /// When it reached `terminated`.
    pub terminated_at: Option<UnixMillis>,
}

/// Everything one launch stores, in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    /// The reservation.
    pub reservation: &'a Reservation,
    /// Its instances.
    pub instances: &'a [InstanceRecord],
    /// Their EBS volumes.
    pub volumes: &'a [crate::VolumeRecord],
    /// The security groups of every instance, in order.
    pub groups: &'a [String],
    /// Tags of every instance.
    pub tags: &'a [TagPair],
    /// Tags of every volume of `volumes`.
    pub volume_tags: &'a [TagPair],
    /// `(instance id, eni-…)` of each instance's primary network
    /// interface, registered as a `network-interface` resource that goes
    /// with its instance.
    pub interfaces: &'a [(String, String)],
    /// Tags of every interface of `interfaces`.
    pub interface_tags: &'a [TagPair],
}

/// A column of an instance that [`InstanceQuery`] can select on.
///
/// Five of them live in the launch details, which the store otherwise keeps
/// as opaque JSON: the compute layer (`mallee-cloud`) owns that document,
/// and [`InstanceField::detail_path`] is the one place the store names where
/// in it each of them sits, so a backend can index them (SQLite: generated
/// columns of migration 0030). `mallee-cloud` has a test that its records
/// put them there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceField {
    /// `instance_id`.
    InstanceId,
    /// `reservation_id`.
    ReservationId,
    /// `state` (the EC2 state name).
    State,
    /// `zone`.
    Zone,
    /// `network_id` (the network its interface is on).
    NetworkId,
    /// `private_ip`, only of instances whose state is not `terminated`
    /// (a terminated instance has given its address back).
    LivePrivateIp,
    /// The instance type, from the details.
    InstanceType,
    /// The image it was launched from, from the details.
    ImageId,
    /// Its key pair's name, from the details (none: never matches).
    KeyName,
    /// Its subnet, from the details (empty when they have none).
    SubnetId,
    /// Its VPC, from the details (empty when they have none).
    VpcId,
}

impl InstanceField {
    /// Where a field kept in the launch details sits in that JSON document,
    /// as the keys from its root; `None` for the store's own columns.
    pub fn detail_path(self) -> Option<&'static [&'static str]> {
        match self {
            Self::InstanceType => Some(&["spec", "instance_type"]),
            Self::ImageId => Some(&["spec", "metadata", "ami_id"]),
            Self::KeyName => Some(&["key_name"]),
            Self::SubnetId => Some(&["subnet_id"]),
            Self::VpcId => Some(&["vpc_id"]),
            _ => None,
        }
    }

    /// The value a field kept in the details has when the document lacks
    /// it (records written before the field existed), if any.
    pub fn detail_default(self) -> Option<&'static str> {
        match self {
            Self::SubnetId | Self::VpcId => Some(""),
            _ => None,
        }
    }

    /// This field's value in `record`, if it has one.
    pub fn value_of(self, record: &InstanceRecord) -> Option<String> {
        let column = |v: &str| Some(v.to_owned());
        match self {
            Self::InstanceId => column(&record.instance_id),
            Self::ReservationId => column(&record.reservation_id),
            Self::State => column(&record.state),
            Self::Zone => column(&record.zone),
            Self::NetworkId => column(&record.network_id),
            Self::LivePrivateIp => {
                (record.state != "terminated").then(|| record.private_ip.clone())
            }
            _ => {
                let path = self.detail_path()?;
                let details: serde_json::Value = serde_json::from_str(&record.details).ok()?;
                let found = path
                    .iter()
                    .try_fold(&details, |at, key| at.get(key))
                    .and_then(|v| v.as_str().map(str::to_owned));
                found.or_else(|| self.detail_default().map(str::to_owned))
            }
        }
    }
}

/// One condition of an [`InstanceQuery`]. Patterns are AWS's filter syntax
/// (as in [`crate::TagQuery`]): `*` any run of characters, `?` one, `\`
/// makes the next one literal; a condition holds when any of its patterns
/// matches, and never when it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceCondition {
    /// A column matches a pattern.
    Field {
        /// Which column.
        field: InstanceField,
        /// Its patterns.
        patterns: Vec<String>,
    },
    /// The instance has the tag `key` with a value matching a pattern.
    Tag {
        /// The key (exact).
        key: String,
        /// Patterns of its value.
        values: Vec<String>,
    },
    /// The instance has a tag whose key matches a pattern.
    TagKey(Vec<String>),
    /// The instance has a tag whose value matches a pattern.
    TagValue(Vec<String>),
}

/// Which instances of an account [`InstanceIndex::instances_matching`]
/// returns: those named by `ids` (all when empty) for which every condition
/// holds, ordered by instance id, after `after`, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceQuery {
    /// Only these instance ids (exact), when not empty.
    pub ids: Vec<String>,
    /// Conditions, all of which hold.
    pub conditions: Vec<InstanceCondition>,
    /// Only instances whose id sorts after this one.
    pub after: Option<String>,
    /// At most this many instances.
    pub limit: Option<usize>,
}

impl InstanceQuery {
    /// Whether `record`, with its `tags`, satisfies the ids and conditions
    /// (not the page): the meaning every backend's query must have.
    pub fn selects(&self, record: &InstanceRecord, tags: &[Tag]) -> bool {
        let any =
            |patterns: &[String], value: &str| patterns.iter().any(|p| pattern_matches(p, value));
        (self.ids.is_empty() || self.ids.contains(&record.instance_id))
            && self.conditions.iter().all(|c| match c {
                InstanceCondition::Field { field, patterns } => {
                    field.value_of(record).is_some_and(|v| any(patterns, &v))
                }
                InstanceCondition::Tag { key, values } => {
                    tags.iter().any(|t| &t.key == key && any(values, &t.value))
                }
                InstanceCondition::TagKey(p) => tags.iter().any(|t| any(p, &t.key)),
                InstanceCondition::TagValue(p) => tags.iter().any(|t| any(p, &t.value)),
            })
    }
}

impl InstanceQuery {
    /// The query answered in memory over every instance of an account
    /// (`records`, in any order) and the account's `tags`: what
    /// [`InstanceIndex::instances_matching`] returns, for a backend that
    /// has no query of its own yet, and as the reference in tests.
    pub fn apply(&self, mut records: Vec<InstanceRecord>, tags: &[Tag]) -> Vec<InstanceRecord> {
        let mut by_resource: std::collections::HashMap<&str, Vec<Tag>> =
            std::collections::HashMap::new();
        for tag in tags {
            by_resource
                .entry(tag.resource_id.as_str())
                .or_default()
                .push(tag.clone());
        }
        records.retain(|r| {
            self.after
                .as_ref()
                .is_none_or(|after| r.instance_id > *after)
                && self.selects(
                    r,
                    by_resource
                        .get(r.instance_id.as_str())
                        .map_or(&[][..], Vec::as_slice),
                )
        });
        records.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        if let Some(limit) = self.limit {
            records.truncate(limit);
        }
        records
    }
}

/// Instance persistence.
#[async_trait]
pub trait InstanceIndex: Send + Sync {
    /// Records a reservation with its instances (registered as `instance`
    /// resources carrying `tags`) in one transaction. `Conflict` when the
    /// account already used the client token, or an address or MAC is taken
    /// by a live instance.
    async fn create_reservation(
        &self,
        reservation: &Reservation,
        instances: &[InstanceRecord],
        tags: &[TagPair],
    ) -> StoreResult<()> {
        self.create_launch(&Launch {
            reservation,
            instances,
            volumes: &[],
            groups: &[],
            tags,
            volume_tags: &[],
            interfaces: &[],
            interface_tags: &[],
        })
        .await
    }
    /// [`InstanceIndex::create_reservation`] with everything else a launch
    /// records: the EBS volumes the instances boot from or get at launch
    /// (registered as `volume` resources carrying `volume_tags`), the
    /// instances' primary interfaces (`network-interface` resources
    /// carrying `interface_tags`, removed with their instance) and every
    /// instance's security groups, all in the same transaction. `NotFound`
    /// when a group does not exist.
    async fn create_launch(&self, launch: &Launch<'_>) -> StoreResult<()>;
    /// The reservation an account made with a client token.
    async fn reservation_by_client_token(
        &self,
        account_id: &str,
        client_token: &str,
    ) -> StoreResult<Option<Reservation>>;
    /// One instance.
    async fn instance(&self, instance_id: &str) -> StoreResult<Option<InstanceRecord>>;
    /// Instances of one account, or of every account when `None`, ordered
    /// by launch time then launch index.
    async fn instances(&self, account_id: Option<&str>) -> StoreResult<Vec<InstanceRecord>>;
    /// The instances of `account_id` that `query` selects, ordered by
    /// instance id: the database finds them (by index where it can) instead
    /// of the caller reading every instance of the account.
    ///
    /// Added for DescribeInstances (issue 18). A backend without a query
    /// of its own can answer with [`InstanceQuery::apply`] over
    /// `instances(Some(account_id))` and `tags(account_id)` (correct, but
    /// O(account)); the conformance suite checks the meaning either way.
    async fn instances_matching(
        &self,
        account_id: &str,
        query: &InstanceQuery,
    ) -> StoreResult<Vec<InstanceRecord>>;
    /// Replaces an instance's row if its `revision` is still the stored one
    /// (the stored revision becomes `revision + 1`); `false` when someone
    /// else changed it first or it is gone.
    async fn update_instance(&self, record: &InstanceRecord) -> StoreResult<bool>;
    /// Removes an instance, its tags, its primary interface's resource and
    /// tags, and its reservation once empty.
    async fn delete_instance(&self, instance_id: &str) -> StoreResult<()>;
    /// Private addresses held by live instances of a network.
    async fn private_ips_in_use(&self, network_id: &str) -> StoreResult<Vec<String>>;
}
