//! Nodes as the controller knows them: the registry of node agents (clients
//! built from the addresses in the store, so a restarted controller reaches
//! its nodes before they re-register; each presents the controller's
//! certificate and accepts only the certificate of the node it calls) and
//! node registration (heartbeats included), accepted only from the node
//! its certificate names.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mallee_node_api::version::{ApiVersion, VersionError, compatible};
use mallee_node_api::{HttpNodeClient, NodeAgent, NodeRegistration};
use mallee_pki::{CertInfo, ControllerPki};
use mallee_store::Node;

use crate::Cloud;
use crate::ids::now_millis;

/// An HTTP client and the address it talks to.
type AddressedClient = (String, Arc<dyn NodeAgent>);

/// Agents for every known node, by node id: HTTP clients made from the
/// address each node registered, or agents attached in-process (a
/// simulated node, or tests), which take precedence.
pub struct NodeRegistry {
    pki: Arc<ControllerPki>,
    /// By node id: the address the client was made for, and the client.
    clients: RwLock<HashMap<String, AddressedClient>>,
    attached: RwLock<HashMap<String, Arc<dyn NodeAgent>>>,
}

impl std::fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attached: Vec<String> = self
            .attached
            .read()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("NodeRegistry")
            .field("attached", &attached)
            .finish_non_exhaustive()
    }
}

impl NodeRegistry {
    /// A registry whose clients connect as `pki` says.
    pub fn new(pki: Arc<ControllerPki>) -> Self {
        Self {
            pki,
            clients: RwLock::new(HashMap::new()),
            attached: RwLock::new(HashMap::new()),
        }
    }

    /// The cluster's PKI: the CA, the controller's certificate and the
    /// revocation set.
    pub fn pki(&self) -> &Arc<ControllerPki> {
        &self.pki
    }

    /// Serves `node_id` with `agent` instead of an HTTP client: any
    /// [`NodeAgent`] can be a node of the cloud.
    pub fn attach(&self, node_id: &str, agent: Arc<dyn NodeAgent>) {
        self.attached
            .write()
            .expect("node registry lock poisoned")
            .insert(node_id.to_owned(), agent);
    }

    /// The agent for `node`: an attached one, else an HTTP client created
    /// (or replaced when its address changed) on demand.
    pub fn client(&self, node: &Node) -> Arc<dyn NodeAgent> {
        if let Some(agent) = self
            .attached
            .read()
            .expect("node registry lock poisoned")
            .get(&node.node_id)
        {
            return agent.clone();
        }
        if let Some((address, client)) = self
            .clients
            .read()
            .expect("node registry lock poisoned")
            .get(&node.node_id)
            && *address == node.address
        {
            return client.clone();
        }
        let client: Arc<dyn NodeAgent> = Arc::new(HttpNodeClient::new(
            &node.address,
            self.pki.node_client_config(&node.node_id),
        ));
        self.clients
            .write()
            .expect("node registry lock poisoned")
            .insert(node.node_id.clone(), (node.address.clone(), client.clone()));
        client
    }
}

/// Why a node's registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The node names a zone this cloud does not have.
    #[error("zone {0} is not a zone of this cloud")]
    UnknownZone(String),
    /// The registration names another node than the certificate.
    #[error("the certificate is {certified}'s; it cannot register node {claimed}")]
    NotThisNode {
        /// Whom the certificate names.
        certified: String,
        /// The node the registration names.
        claimed: String,
    },
    /// The node's version cannot work with this controller.
    #[error("{0}")]
    Incompatible(#[from] VersionError),
    /// The certificate is not (or no longer) enrolled for the node's zone.
    #[error(
        "node {node_id} is not enrolled for zone {zone} with this certificate (removed, or enrolled for another zone)"
    )]
    NotEnrolled {
        /// The node.
        node_id: String,
        /// The zone it registered for.
        zone: String,
    },
    /// The store failed.
    #[error("could not record the node: {0}")]
    Store(#[from] mallee_store::StoreError),
}

fn to_i64(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// Records a node's registration (its zone, address, capacity, version
/// and accelerator) sent with the certificate `peer`, makes its client
/// and wakes the reconciler.
pub async fn register(
    cloud: &Cloud,
    registration: &NodeRegistration,
    peer: &CertInfo,
) -> Result<Node, RegisterError> {
    let info = &registration.info;
    if !cloud.config.zones.contains(&info.zone) {
        return Err(RegisterError::UnknownZone(info.zone.clone()));
    }
    if peer.name.node_id() != Some(info.node_id.as_str()) {
        return Err(RegisterError::NotThisNode {
            certified: peer.name.to_string(),
            claimed: info.node_id.clone(),
        });
    }
    info.version
        .parse::<ApiVersion>()
        .and_then(|node| compatible(ApiVersion::current(), node))?;
    let capacity = &registration.capacity;
    let node = Node {
        node_id: info.node_id.clone(),
        zone: info.zone.clone(),
        address: registration.url.clone(),
        cores_max: to_i64(capacity.cores_max),
        cores_free: to_i64(capacity.cores_free),
        memory_mib_max: to_i64(capacity.memory_mib_max),
        memory_mib_free: to_i64(capacity.memory_mib_free),
        disk_gib_max: to_i64(capacity.disk_gib_max),
        disk_gib_free: to_i64(capacity.disk_gib_free),
        updated_at: now_millis(),
        underlay_ip: info.underlay_ip.clone(),
        version: info.version.clone(),
        accel: info.accel.clone(),
        // Not written by registration: an administrator's choice stays.
        disabled: false,
        role: info.role.as_str().to_owned(),
    };
    let before = cloud
        .store
        .nodes()
        .await?
        .into_iter()
        .find(|n| n.node_id == node.node_id);
    if !cloud.store.register_node(&node, &peer.serial).await? {
        return Err(RegisterError::NotEnrolled {
            node_id: node.node_id,
            zone: node.zone,
        });
    }
    cloud.compute.nodes.client(&node);
    // A heartbeat repeats the registration: only news is worth a line.
    let news = match &before {
        None => Some("node registered"),
        Some(b)
            if crate::health::of(cloud, b, node.updated_at) == crate::health::NodeHealth::Down =>
        {
            Some("node is back")
        }
        Some(b)
            if (
                &b.address,
                &b.version,
                &b.accel,
                &b.underlay_ip,
                &b.role,
                b.cores_max,
                b.memory_mib_max,
            ) != (
                &node.address,
                &node.version,
                &node.accel,
                &node.underlay_ip,
                &node.role,
                node.cores_max,
                node.memory_mib_max,
            ) =>
        {
            Some("node registered again with changes")
        }
        Some(_) => None,
    };
    match news {
        Some(what) => tracing::info!(
            node = %node.node_id,
            zone = %node.zone,
            url = %node.address,
            accel = %info.accel,
            role = %node.role,
            version = %info.version,
            cores = capacity.cores_max,
            memory_mib = capacity.memory_mib_max,
            "{what}"
        ),
        None => tracing::debug!(node = %node.node_id, "node heartbeat"),
    }
    cloud.compute.wake();
    Ok(node)
}

#[cfg(test)]
mod tests {
    use mallee_node_api::{Capacity, NodeInfo};

    use super::*;
    use crate::testkit::{TestCloud, ZONE};

    fn registration(node_id: &str, zone: &str, version: &str) -> NodeRegistration {
        NodeRegistration {
            info: NodeInfo {
                node_id: node_id.into(),
                zone: zone.into(),
                hostname: "h".into(),
                version: version.into(),
                accel: "tcg (test)".into(),
                underlay_ip: None,
                role: mallee_node_api::NodeRole::Compute,
            },
            url: "https://127.0.0.1:9".into(),
            capacity: Capacity::default(),
        }
    }

    const VERSION: &str = env!("CARGO_PKG_VERSION");

    #[tokio::test]
    async fn a_node_registers_only_as_itself_with_a_live_certificate() {
        let tc = TestCloud::with_config(|c| c.zones.push("mallee-1b".into())).await;
        let cert = tc.enrol_node("nd-1", ZONE).await;
        let node = register(&tc, &registration("nd-1", ZONE, VERSION), &cert)
            .await
            .expect("register");
        assert_eq!(
            (node.version.as_str(), node.accel.as_str()),
            (VERSION, "tcg (test)")
        );
        assert_eq!(tc.store.nodes().await.expect("nodes"), vec![node]);
        // Not as another node, nor in another zone of its cloud.
        assert!(matches!(
            register(&tc, &registration("nd-2", ZONE, VERSION), &cert).await,
            Err(RegisterError::NotThisNode { .. })
        ));
        let other_zone = "mallee-1b".to_owned();
        assert!(matches!(
            register(&tc, &registration("nd-1", &other_zone, VERSION), &cert).await,
            Err(RegisterError::NotEnrolled { .. })
        ));
        // Not from a release it cannot work with; one minor behind works.
        let ours = ApiVersion::current();
        if let Some(minor) = ours.minor.checked_sub(1) {
            let behind = format!("{}.{minor}.7", ours.major);
            register(&tc, &registration("nd-1", ZONE, &behind), &cert)
                .await
                .expect("one minor behind");
        }
        assert!(matches!(
            register(&tc, &registration("nd-1", ZONE, "999.0.0"), &cert).await,
            Err(RegisterError::Incompatible(_))
        ));
        // A removed node's heartbeat does not bring it back.
        crate::node_removal::remove(tc.store.as_ref(), "nd-1", false)
            .await
            .expect("remove");
        assert!(matches!(
            register(&tc, &registration("nd-1", ZONE, VERSION), &cert).await,
            Err(RegisterError::NotEnrolled { .. })
        ));
        assert!(tc.store.nodes().await.expect("nodes").is_empty());
    }
}
