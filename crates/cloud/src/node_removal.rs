//! Removing a node from the cloud (`mallee admin node remove`): its
//! certificates are revoked and its record forgotten in one transaction,
//! so its handshakes fail (a running controller applies the revocation
//! within a second, [`crate::enrolment::sync_revocations`]) and nothing
//! calls it or places anything on it any more. A node that still holds
//! instances or volumes is removed only when forced: its instances then
//! end (the reconciler records them terminated without waiting for a node
//! that will never confirm) and its volumes, whose data went with the
//! node, go to `error` (deleting one then just forgets it).

use mallee_store::{Store, StoreError};

use crate::ids::now_millis;
use crate::instances::model::{Desired, Instance, InstanceState, StateReason};
use crate::volumes::model::{Volume, VolumeDesired, VolumeStatus};

/// Tries of a compare-and-set update that lost to another writer.
const UPDATE_TRIES: usize = 5;

/// Why a node was not removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// No such node was ever enrolled or registered.
    #[error("no node {0} in this cloud")]
    UnknownNode(String),
    /// It still holds instances or volumes.
    #[error(
        "node {node_id} still holds {instances} instance(s) and {volumes} volume(s): terminate and delete them first, or remove it with --force (its instances end, its volumes go to error)"
    )]
    Busy {
        /// The node.
        node_id: String,
        /// Instances not terminated.
        instances: usize,
        /// Volumes.
        volumes: usize,
    },
    /// A record could not be updated (it kept changing).
    #[error("{0} kept changing while the node was removed; run the removal again")]
    Contended(String),
    /// The store failed.
    #[error("could not remove the node: {0}")]
    Store(#[from] StoreError),
}

/// What a removal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The node.
    pub node_id: String,
    /// Serials of the certificates revoked now.
    pub revoked: Vec<String>,
    /// Instances ended.
    pub instances: Vec<String>,
    /// Volumes gone to `error`.
    pub volumes: Vec<String>,
}

async fn held_instances(store: &dyn Store, node_id: &str) -> Result<Vec<Instance>, StoreError> {
    Ok(store
        .instances(None)
        .await?
        .into_iter()
        .filter(|r| r.node_id == node_id)
        .filter_map(|r| Instance::decode(r).ok())
        .filter(|i| i.state != InstanceState::Terminated)
        .collect())
}

async fn held_volumes(store: &dyn Store, node_id: &str) -> Result<Vec<Volume>, StoreError> {
    Ok(store
        .volumes(None)
        .await?
        .into_iter()
        .filter(|r| r.node_id == node_id)
        .filter_map(|r| Volume::decode(r).ok())
        .collect())
}

/// Removes node `node_id`; with `force` even while it holds instances or
/// volumes. Running it again finishes a removal that was interrupted.
pub async fn remove(store: &dyn Store, node_id: &str, force: bool) -> Result<Removed, RemoveError> {
    let known = store.nodes().await?.iter().any(|n| n.node_id == node_id)
        || !store.node_certificates(node_id).await?.is_empty();
    if !known {
        return Err(RemoveError::UnknownNode(node_id.to_owned()));
    }
    let instances = held_instances(store, node_id).await?;
    let volumes = held_volumes(store, node_id).await?;
    let idle = instances.is_empty() && volumes.is_empty();
    if !force && !idle {
        return Err(RemoveError::Busy {
            node_id: node_id.to_owned(),
            instances: instances.len(),
            volumes: volumes.len(),
        });
    }
    let revoked = store.revoke_node(node_id, now_millis()).await?;
    tracing::info!(node = node_id, revoked = ?revoked, "node removed from the cloud");
    let mut ended = Vec::new();
    for instance in instances {
        let id = instance.id().to_owned();
        if end_instance(store, instance, node_id).await? {
            ended.push(id);
        }
    }
    let mut failed = Vec::new();
    for volume in volumes {
        let id = volume.id().to_owned();
        if fail_volume(store, volume, node_id).await? {
            failed.push(id);
        }
    }
    Ok(Removed {
        node_id: node_id.to_owned(),
        revoked,
        instances: ended,
        volumes: failed,
    })
}

fn removed_reason(node_id: &str) -> String {
    format!("its node {node_id} was removed from the cloud")
}

/// Applies `change` to `record` and writes it with `write` (a
/// compare-and-set), reading it again with `reread` after losing to
/// another writer. `change` answers `false` when there is nothing (more)
/// to do; the result says whether a change was written.
async fn compare_and_set<T>(
    mut record: T,
    id: &str,
    change: impl Fn(&mut T) -> bool,
    write: impl AsyncFn(&T) -> Result<bool, StoreError>,
    reread: impl AsyncFn() -> Result<Option<T>, StoreError>,
) -> Result<bool, RemoveError> {
    for _ in 0..UPDATE_TRIES {
        if !change(&mut record) {
            return Ok(false);
        }
        if write(&record).await? {
            return Ok(true);
        }
        match reread().await? {
            Some(fresh) => record = fresh,
            None => return Ok(false),
        }
    }
    Err(RemoveError::Contended(id.to_owned()))
}

/// Sends an instance of a removed node to its end; `false` when it ended
/// or vanished meanwhile.
async fn end_instance(
    store: &dyn Store,
    instance: Instance,
    node_id: &str,
) -> Result<bool, RemoveError> {
    let id = instance.id().to_owned();
    let reason = StateReason::new("Server.InternalError", &removed_reason(node_id));
    compare_and_set(
        instance,
        &id,
        |instance| {
            if instance.state == InstanceState::Terminated {
                return false;
            }
            instance.desired = Desired::Terminated;
            instance.state = InstanceState::ShuttingDown;
            instance.details.state_reason = Some(reason.clone());
            instance.record.updated_at = now_millis();
            true
        },
        async |instance| store.update_instance(&instance.encode()).await,
        async || {
            Ok(store
                .instance(&id)
                .await?
                .and_then(|r| Instance::decode(r).ok()))
        },
    )
    .await
}

/// Puts a volume of a removed node in `error`, detached; `false` when it
/// is being deleted (the volume pass forgets it) or vanished.
async fn fail_volume(
    store: &dyn Store,
    volume: Volume,
    node_id: &str,
) -> Result<bool, RemoveError> {
    let id = volume.id().to_owned();
    compare_and_set(
        volume,
        &id,
        |volume| {
            if volume.desired == VolumeDesired::Deleted {
                return false;
            }
            volume.detach();
            volume.status = VolumeStatus::Error;
            volume.details.error = Some(removed_reason(node_id));
            volume.record.updated_at = now_millis();
            true
        },
        async |volume| store.update_volume(&volume.encode()).await,
        async || {
            Ok(store
                .volume(&id)
                .await?
                .and_then(|r| Volume::decode(r).ok()))
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{InstanceBuilder, TestCloud, ZONE, node};
    use crate::volumes::model::VolumeDetails;

    async fn cloud_with_busy_node() -> (TestCloud, String) {
        let tc = TestCloud::new().await;
        let cert = tc.enrol_node("nd-1", ZONE).await;
        tc.add_node(node("nd-1", ZONE, 4, 4096, 100)).await;
        let alice = tc.principal("alice").await;
        InstanceBuilder::new("i-00000000000000001", alice.account_id())
            .node("nd-1")
            .store(&tc)
            .await;
        let volume = Volume::new(
            alice.account_id(),
            ZONE,
            "nd-1",
            1,
            VolumeDetails::new("gp2"),
            1,
        );
        tc.store
            .create_volume(&volume.encode(), &[])
            .await
            .expect("volume");
        (tc, cert.serial)
    }

    #[tokio::test]
    async fn unknown_nodes_are_not_removed() {
        let tc = TestCloud::new().await;
        assert!(matches!(
            remove(tc.store.as_ref(), "nd-x", true).await,
            Err(RemoveError::UnknownNode(_))
        ));
    }

    #[tokio::test]
    async fn a_busy_node_is_removed_only_by_force() {
        let (tc, serial) = cloud_with_busy_node().await;
        assert!(matches!(
            remove(tc.store.as_ref(), "nd-1", false).await,
            Err(RemoveError::Busy {
                instances: 1,
                volumes: 1,
                ..
            })
        ));
        assert!(
            tc.store
                .revoked_serials()
                .await
                .expect("revoked")
                .is_empty()
        );
        let removed = remove(tc.store.as_ref(), "nd-1", true)
            .await
            .expect("forced");
        assert_eq!(removed.revoked, vec![serial.clone()]);
        assert_eq!(removed.instances, vec!["i-00000000000000001".to_owned()]);
        assert_eq!(removed.volumes.len(), 1);
        assert_eq!(
            tc.store.revoked_serials().await.expect("revoked"),
            vec![serial]
        );
        assert!(tc.store.nodes().await.expect("nodes").is_empty());
        let instance = Instance::decode(
            tc.store
                .instance("i-00000000000000001")
                .await
                .expect("get")
                .expect("some"),
        )
        .expect("decode");
        assert_eq!(
            (instance.state, instance.desired),
            (InstanceState::ShuttingDown, Desired::Terminated)
        );
        let volume = Volume::decode(
            tc.store
                .volume(&removed.volumes[0])
                .await
                .expect("get")
                .expect("some"),
        )
        .expect("decode");
        assert_eq!(volume.status, VolumeStatus::Error);

        // The reconciler ends the instance without a node to confirm.
        crate::reconciler::pass(&tc.cloud).await.expect("pass");
        let instance = tc
            .store
            .instance("i-00000000000000001")
            .await
            .expect("get")
            .expect("some");
        assert_eq!(instance.state, "terminated");

        // Running it again finishes nothing more and fails nothing.
        let again = remove(tc.store.as_ref(), "nd-1", true)
            .await
            .expect("again");
        assert!(again.revoked.is_empty() && again.instances.is_empty());
    }

    #[tokio::test]
    async fn deleting_a_volume_of_a_removed_node_forgets_it() {
        let (tc, _) = cloud_with_busy_node().await;
        let removed = remove(tc.store.as_ref(), "nd-1", true)
            .await
            .expect("forced");
        let mut volume = Volume::decode(
            tc.store
                .volume(&removed.volumes[0])
                .await
                .expect("get")
                .expect("some"),
        )
        .expect("decode");
        volume.desired = VolumeDesired::Deleted;
        volume.status = VolumeStatus::Deleting;
        assert!(
            tc.store
                .update_volume(&volume.encode())
                .await
                .expect("update")
        );
        crate::reconciler::pass(&tc.cloud).await.expect("pass");
        assert_eq!(tc.store.volume(volume.id()).await.expect("get"), None);
    }
}
