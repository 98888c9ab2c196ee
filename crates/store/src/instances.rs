//! Reservations and instances: the controller's desired state of every
//! instance and the state it last observed, kept by [`InstanceIndex`].
//!
//! The store treats states and launch details as opaque strings (the
//! compute layer in `mallee-cloud` owns their meaning); it guarantees
//! atomic reservations, ClientToken uniqueness, unique live private
//! addresses and MACs, and compare-and-set updates through `revision`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{StoreResult, TagPair, UnixMillis};

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
