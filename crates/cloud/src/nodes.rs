//! Nodes as the controller knows them: the registry of node agents (clients
//! built from the addresses in the store, so a restarted controller reaches
//! its nodes before they re-register) and node registration.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mallee_node_api::{HttpNodeClient, NodeAgent, NodeRegistration};
use mallee_store::Node;
use subtle::ConstantTimeEq;

use crate::Cloud;
use crate::ids::now_millis;

/// An HTTP client and the address it talks to.
type AddressedClient = (String, Arc<dyn NodeAgent>);

/// Agents for every known node, by node id: HTTP clients made from the
/// address each node registered, or agents attached in-process (a
/// simulated node, or tests), which take precedence.
pub struct NodeRegistry {
    token: String,
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
    /// A registry whose HTTP clients present `token` (the cluster token
    /// nodes also present to the controller).
    pub fn new(token: String) -> Self {
        Self {
            token,
            clients: RwLock::new(HashMap::new()),
            attached: RwLock::new(HashMap::new()),
        }
    }

    /// Whether `presented` is the cluster token (constant time).
    pub fn token_matches(&self, presented: &str) -> bool {
        presented.as_bytes().ct_eq(self.token.as_bytes()).into()
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
        let client: Arc<dyn NodeAgent> = Arc::new(HttpNodeClient::new(&node.address, &self.token));
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
    /// The store failed.
    #[error("could not record the node: {0}")]
    Store(#[from] mallee_store::StoreError),
}

fn to_i64(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// Records a node's registration (its zone, address and capacity), makes
/// its client and wakes the reconciler.
pub async fn register(
    cloud: &Cloud,
    registration: &NodeRegistration,
) -> Result<Node, RegisterError> {
    let info = &registration.info;
    if !cloud.config.zones.contains(&info.zone) {
        return Err(RegisterError::UnknownZone(info.zone.clone()));
    }
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
    };
    cloud.store.upsert_node(&node).await?;
    cloud.compute.nodes.client(&node);
    tracing::info!(
        node = %node.node_id,
        zone = %node.zone,
        url = %node.address,
        accel = %info.accel,
        cores = capacity.cores_max,
        memory_mib = capacity.memory_mib_max,
        "node registered"
    );
    cloud.compute.wake();
    Ok(node)
}
