//! The cluster's PKI, in one place: the cluster CA the controller creates
//! at its first start ([`ClusterCa`]), the certificates it issues to
//! itself and to nodes (from a node's certificate signing request at
//! enrolment, or directly for the node of `mallee up`), the one-time
//! enrolment tokens that carry the CA's fingerprint ([`EnrolmentToken`]),
//! chain and revocation checks ([`Trust`], [`RevocationSet`]) and the
//! rustls configurations every controller↔node connection uses
//! ([`tls`]).
//!
//! Identities are names, not addresses: the controller's certificate
//! names `controller.mallee-cluster`, a node's `<node-id>.node.mallee-cluster`
//! ([`PeerName`]). Each side checks that the other's certificate chains to
//! the cluster CA, is not revoked and names the peer it expects, whatever
//! address it dialled.

mod ca;
mod controller;
mod credentials;
mod files;
mod names;
pub mod tls;
mod token;
mod trust;

pub use ca::{CaError, ClusterCa, Issued, Validity};
pub use controller::{ControllerPki, ControllerPkiError};
pub use credentials::{Credentials, CredentialsError, KeyRequest, QemuTlsEndpoint};
pub use names::{NameError, PeerKind, PeerName};
pub use token::{EnrolmentToken, Fingerprint, TokenError};
pub use trust::{CertInfo, RevocationSet, Trust, TrustError};

/// The crypto provider every configuration uses: ring. rustls deprecates
/// it for lacking post-quantum key exchange, which only aws-lc-rs offers;
/// aws-lc-rs needs a C toolchain and cmake this project does not require.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    static PROVIDER: std::sync::LazyLock<std::sync::Arc<rustls::crypto::CryptoProvider>> =
        std::sync::LazyLock::new(|| std::sync::Arc::new(rustls::crypto::ring::default_provider()));
    PROVIDER.clone()
}
