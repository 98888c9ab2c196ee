//! The controller's side of the PKI: the cluster CA and the controller's
//! own certificate (both in `DATA/pki/`, made at the first start, the
//! controller's renewed when it nears its end), the trust every node
//! connection is checked against, with the revocation set of removed
//! nodes, and the TLS configurations of the node listener and of the
//! clients that call nodes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::{ClientConfig, ServerConfig};

use crate::ca::{CaError, ClusterCa, Validity};
use crate::credentials::{Credentials, CredentialsError};
use crate::names::{PeerKind, PeerName};
use crate::tls::{ClientAuth, Clients, TlsError, server_config};
use crate::trust::{RevocationSet, Trust, TrustError};

/// File stem of the controller's certificate and key in `DATA/pki/`.
pub const CONTROLLER_STEM: &str = "controller";
/// The controller's certificate is made again when it ends sooner.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Errors of the controller's PKI.
#[derive(Debug, thiserror::Error)]
pub enum ControllerPkiError {
    /// The CA.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The controller's credentials.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// A TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The CA certificate.
    #[error(transparent)]
    Trust(#[from] TrustError),
}

/// The cluster CA, the controller's credentials and what is built on them.
pub struct ControllerPki {
    ca: ClusterCa,
    credentials: Credentials,
    trust: Trust,
    node_listener: Arc<ServerConfig>,
    clients: Clients,
    /// Client configurations by node id (each expects that node).
    by_node: Mutex<HashMap<String, Arc<ClientConfig>>>,
}

impl std::fmt::Debug for ControllerPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerPki")
            .field("ca", &self.ca.fingerprint())
            .finish_non_exhaustive()
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl ControllerPki {
    /// The PKI kept in `dir`: the CA and the controller's certificate are
    /// made there when missing, the latter also when it ends within 30
    /// days or was not issued by this CA.
    pub fn open(dir: &Path) -> Result<Self, ControllerPkiError> {
        let (ca, created) = ClusterCa::load_or_create(dir)?;
        if created {
            tracing::info!(dir = %dir.display(), fingerprint = %ca.fingerprint(), "created the cluster CA");
        }
        let renew_by = now_millis()
            .saturating_add(i64::try_from(RENEW_BEFORE.as_millis()).unwrap_or(i64::MAX));
        let current = match Credentials::load(dir, CONTROLLER_STEM) {
            Ok(Some(c))
                if c.ca_fingerprint() == ca.fingerprint()
                    && c.info().name == PeerName::Controller
                    && c.info().not_after_millis > renew_by =>
            {
                Some(c)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the controller's certificate is unusable; issuing a new one");
                None
            }
        };
        let credentials = match current {
            Some(c) => c,
            None => {
                let c = ca.issue(&PeerName::Controller, Validity::peer())?;
                c.save(dir, CONTROLLER_STEM)?;
                tracing::info!(serial = %c.info().serial, "issued the controller's certificate");
                c
            }
        };
        Self::with(ca, credentials)
    }

    /// A PKI in memory only (tests).
    pub fn in_memory() -> Result<Self, ControllerPkiError> {
        let ca = ClusterCa::generate()?;
        let credentials = ca.issue(&PeerName::Controller, Validity::peer())?;
        Self::with(ca, credentials)
    }

    fn with(ca: ClusterCa, credentials: Credentials) -> Result<Self, ControllerPkiError> {
        let trust = Trust::new(ca.certificate_pem(), RevocationSet::new())?;
        let node_listener =
            server_config(&credentials, &trust, ClientAuth::Optional(PeerKind::Node))?;
        let clients = Clients::new(&credentials, &trust)?;
        Ok(Self {
            ca,
            credentials,
            trust,
            node_listener,
            clients,
            by_node: Mutex::new(HashMap::new()),
        })
    }

    /// The cluster CA.
    pub fn ca(&self) -> &ClusterCa {
        &self.ca
    }

    /// Trust in the CA, with the revocation set.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Serials of removed nodes' certificates.
    pub fn revocations(&self) -> &RevocationSet {
        self.trust.revocations()
    }

    /// The controller's own credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The node listener's configuration: nodes with a certificate of
    /// this CA that is not revoked, or (for enrolment only) no certificate.
    pub fn node_listener_config(&self) -> Arc<ServerConfig> {
        self.node_listener.clone()
    }

    /// The configuration of calls to node `node_id`: its certificate must
    /// name it and not be revoked. (An id no certificate can carry makes a
    /// configuration no node passes.)
    pub fn node_client_config(&self, node_id: &str) -> Arc<ClientConfig> {
        let mut by_node = self
            .by_node
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        by_node
            .entry(node_id.to_owned())
            .or_insert_with(|| self.clients.to(&PeerName::Node(node_id.to_owned())))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_keeps_its_ca_and_certificate_across_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ControllerPki::open(dir.path()).expect("first");
        let again = ControllerPki::open(dir.path()).expect("again");
        assert_eq!(first.ca().fingerprint(), again.ca().fingerprint());
        assert_eq!(
            first.credentials().info().serial,
            again.credentials().info().serial
        );
        // A certificate that is about to end is replaced.
        let short = first
            .ca()
            .issue(&PeerName::Controller, Validity::days(2))
            .expect("short");
        short.save(dir.path(), CONTROLLER_STEM).expect("save");
        let renewed = ControllerPki::open(dir.path()).expect("renewed");
        assert_ne!(renewed.credentials().info().serial, short.info().serial);
        assert!(renewed.credentials().info().not_after_millis > short.info().not_after_millis);
    }
}
