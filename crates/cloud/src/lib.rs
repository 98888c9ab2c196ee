//! mallee's domain: what the cloud *is*, with no wire format in sight.
//! Launching instances as steps with undo, placement and quotas, addresses,
//! security groups compiled into node firewalls, images, volumes,
//! snapshots, the bare-metal zone, accounts, and the reconcilers that drive
//! node agents toward the desired state. Functions take typed inputs and
//! return typed outputs or a [`CloudError`]; the protocol crate
//! (`mallee-api`) parses requests into those inputs and renders the outputs.

pub mod account_attributes;
pub mod accounts;
pub mod addresses;
pub mod admission;
pub mod bootstrap;
pub mod cloud_status;
pub mod compute;
pub mod config;
pub mod dhcp_options;
pub mod doctor;
pub mod enrolment;
pub mod error;
pub mod faults;
pub mod health;
pub mod iam_profiles;
pub mod identity;
pub mod ids;
pub mod images;
pub mod instances;
pub mod internet_gateways;
pub mod key_pairs;
pub mod launch_templates;
pub mod leadership;
pub mod metal;
pub mod nat_gateways;
pub mod network_acls;
pub mod network_interfaces;
pub mod node_calls;
pub mod node_removal;
pub mod node_state;
pub mod node_status;
pub mod nodes;
pub mod objects;
pub mod overlay;
pub mod public_dns;
pub mod reconciler;
pub mod route_tables;
pub mod routing;
pub mod security_groups;
pub mod sharing;
pub mod snapshots;
pub mod subnets;
pub mod tags;
pub mod telemetry;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod volumes;
pub mod vpc_attributes;
pub mod vpc_lifecycle;
pub mod vpcs;
pub mod zone_storage;
pub mod zones;

use std::sync::Arc;

use mallee_store::{Account, Store};

pub use config::Config;
pub use error::{CloudError, Kind};

/// The state every request handler and background task shares.
#[derive(Debug)]
pub struct Cloud {
    /// The metadata store.
    pub store: Arc<dyn Store>,
    /// Static configuration.
    pub config: Config,
    /// The instance-type table.
    pub instance_types: instances::types::InstanceTypes,
    /// Object data (image headers at registration, snapshot data).
    pub blobs: Arc<mallee_blobs::BlobStore>,
    /// Nodes, placement and the reconciler's wake-up.
    pub compute: compute::Compute,
    /// Where multi-step operations fail or pause on purpose (tests).
    pub faults: faults::Faults,
    /// When each access key was last used, written at most once a minute.
    pub key_use: identity::keys::KeyUseLog,
    /// Callers' parsed policies, good while their account's IAM
    /// generation holds.
    pub identities: identity::cache::IdentityCache,
    /// Seals EC2's encoded authorization messages.
    pub authz_seal: identity::authz_seal::AuthzSeal,
    /// Requests answered and reconciler passes, for the metrics endpoint.
    pub telemetry: telemetry::Telemetry,
    /// How many requests are taken on at once, and per account.
    pub admission: admission::Admission,
    /// Wraps the data keys of encrypted objects.
    pub object_keys: objects::sse::MasterKey,
    /// Failed console sign-ins per user, which make the next ones wait.
    pub sign_in_guard: identity::sign_in_guard::SignInGuard,
}

impl Cloud {
    /// Capacity of `zone`: each node's registered maximum less what the
    /// controller placed on it, and whether it takes new instances now.
    pub async fn zone_capacity(
        &self,
        zone: &str,
    ) -> Result<instances::capacity::ZoneCapacity, CloudError> {
        let nodes = self.store.nodes().await?;
        let instances = instances::quota::all_instances(self).await?;
        let now = ids::now_millis();
        let open: std::collections::HashSet<String> = health::schedulable(self, nodes.clone(), now)
            .into_iter()
            .map(|n| n.node_id)
            .collect();
        Ok(instances::capacity::ZoneCapacity {
            nodes: instances::placement::rooms(&nodes, &instances, zone)
                .into_iter()
                .map(|room| {
                    let takes_new = open.contains(&room.node.node_id);
                    (room, takes_new)
                })
                .collect(),
        })
    }
}

/// The authenticated caller of a request, as every domain operation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The caller's account.
    pub account: Account,
    /// The user inside it.
    pub user_name: String,
    /// The access key that signed the request.
    pub access_key_id: String,
    /// Set when the key is STS temporary credentials.
    pub session: Option<Session>,
}

/// What temporary credentials stand for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The role of a role session (AssumeRole); `None` for a user's own
    /// session (GetSessionToken), which acts as that user.
    pub role_name: Option<String>,
    /// `RoleSessionName`.
    pub session_name: String,
    /// When the credentials stop working.
    pub expires_at: i64,
}

impl Principal {
    /// The role of a role session, if the caller is one.
    pub fn role(&self) -> Option<&str> {
        self.session.as_ref()?.role_name.as_deref()
    }

    /// The caller's account id.
    pub fn account_id(&self) -> &str {
        &self.account.account_id
    }
}
