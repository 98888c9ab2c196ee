//! The rustls configurations of every controller↔node connection. Both
//! ends present a certificate of the cluster CA and check the other's:
//! the chain, the validity period, the revocation set and the identity
//! (a server's certificate must name the peer the client meant to reach,
//! whatever address it dialled; a client's must be of the kind the server
//! serves). A node that enrols knows only the CA's fingerprint from its
//! token, so its one enrolment connection pins that instead.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};

use crate::credentials::{Credentials, CredentialsError};
use crate::names::{PeerKind, PeerName};
use crate::token::Fingerprint;
use crate::trust::{CertInfo, Trust};

/// Errors building a configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The credentials are unusable.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// rustls refused them.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A verifier could not be built.
    #[error("TLS verifier: {0}")]
    Verifier(String),
}

/// The handshake signature checks, the same in every verifier here: the
/// ring provider's algorithms.
macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms())
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            algorithms().supported_schemes()
        }
    };
}

fn algorithms() -> rustls::crypto::WebPkiSupportedAlgorithms {
    crate::provider().signature_verification_algorithms
}

/// Who may connect to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Only peers of this kind, each with a certificate.
    Require(PeerKind),
    /// Peers of this kind with a certificate, or anyone without one (the
    /// controller's node listener, where a node without a certificate yet
    /// may only enrol).
    Optional(PeerKind),
}

#[derive(Debug)]
struct PeerClientVerifier {
    trust: Trust,
    kind: PeerKind,
    mandatory: bool,
}

impl ClientCertVerifier for PeerClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.trust.chain_verifier().root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let info = self
            .trust
            .check(end_entity, intermediates, now)
            .map_err(|e| e.to_rustls())?;
        if info.name.kind() != self.kind {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ClientCertVerified::assertion())
    }

    signature_checks!();
}

#[derive(Debug)]
struct PeerServerVerifier {
    trust: Trust,
    webpki: Arc<WebPkiServerVerifier>,
    expect: PeerName,
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name checked is the peer's identity, not the address in the
        // URL: nodes and controllers move between addresses, identities
        // stay.
        let info = CertInfo::parse(end_entity).map_err(|e| e.to_rustls())?;
        if info.name != self.expect {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ));
        }
        self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            &info.name.server_name(),
            ocsp_response,
            now,
        )?;
        self.trust.check_revoked(&info).map_err(|e| e.to_rustls())?;
        Ok(ServerCertVerified::assertion())
    }

    signature_checks!();
}

/// Trusts the server whose chain includes the CA with a known
/// fingerprint, and whose certificate that CA issued to the controller.
#[derive(Debug)]
struct PinnedCaVerifier {
    ca: Fingerprint,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates.iter().find(|c| self.ca.matches(c)) else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(
                end_entity,
                intermediates,
                &PeerName::Controller.server_name(),
                ocsp_response,
                now,
            )
    }

    signature_checks!();
}

/// A server presenting `credentials`, admitting the clients `clients`
/// names, as `trust` (and its revocation set) decides.
pub fn server_config(
    credentials: &Credentials,
    trust: &Trust,
    clients: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (kind, mandatory) = match clients {
        ClientAuth::Require(kind) => (kind, true),
        ClientAuth::Optional(kind) => (kind, false),
    };
    let verifier = Arc::new(PeerClientVerifier {
        trust: trust.clone(),
        kind,
        mandatory,
    });
    let mut config = ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(credentials.chain(), credentials.key()?)?;
    // A resumed session skips the certificate check, so it would let a
    // revoked node back in: every connection does a full handshake.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Clients presenting one set of credentials to servers they name.
#[derive(Debug, Clone)]
pub struct Clients {
    base: ClientConfig,
    trust: Trust,
    webpki: Arc<WebPkiServerVerifier>,
}

impl Clients {
    /// Clients presenting `credentials`, trusting as `trust` decides.
    pub fn new(credentials: &Credentials, trust: &Trust) -> Result<Self, TlsError> {
        let webpki = WebPkiServerVerifier::builder_with_provider(trust.roots(), crate::provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut base = ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCaVerifier {
                // Replaced by `to`; trusts no one meanwhile.
                ca: Fingerprint::of(&[]),
            }))
            .with_client_auth_cert(credentials.chain(), credentials.key()?)?;
        // As on the server: no resumption past a revocation.
        base.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            base,
            trust: trust.clone(),
            webpki,
        })
    }

    /// The configuration of calls to `server` (and to no one else).
    pub fn to(&self, server: &PeerName) -> Arc<ClientConfig> {
        let mut config = self.base.clone();
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(PeerServerVerifier {
                trust: self.trust.clone(),
                webpki: self.webpki.clone(),
                expect: server.clone(),
            }));
        Arc::new(config)
    }
}

/// A client presenting `credentials` to the server `server` (and to no
/// one else), as `trust` decides.
pub fn client_config(
    credentials: &Credentials,
    trust: &Trust,
    server: &PeerName,
) -> Result<Arc<ClientConfig>, TlsError> {
    Ok(Clients::new(credentials, trust)?.to(server))
}

/// The client of a node enrolling: no certificate of its own yet, and the
/// controller's trusted only if its chain holds the CA with fingerprint
/// `ca` (from the token).
pub fn enrolment_client_config(ca: Fingerprint) -> Result<Arc<ClientConfig>, TlsError> {
    let config = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCaVerifier { ca }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A node's two configurations, from its credentials.
#[derive(Debug, Clone)]
pub struct NodeTls {
    /// Serving the node API: the controller only.
    pub server: Arc<ServerConfig>,
    /// Calling the controller (registration, image and snapshot data):
    /// the controller only.
    pub client: Arc<ClientConfig>,
}

impl NodeTls {
    /// Both configurations of the node holding `credentials`.
    pub fn new(credentials: &Credentials) -> Result<Self, TlsError> {
        let trust = credentials.trust();
        Ok(Self {
            server: server_config(
                credentials,
                &trust,
                ClientAuth::Require(PeerKind::Controller),
            )?,
            client: client_config(credentials, &trust, &PeerName::Controller)?,
        })
    }
}
