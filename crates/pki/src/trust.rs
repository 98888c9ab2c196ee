//! Checking a peer's certificate: it chains to the cluster CA (webpki:
//! signature, validity period, usage), names a cluster peer, and its
//! serial is not in the revocation set. The revocation set is shared: the
//! controller adds to it when an admin removes a node, and every TLS
//! verifier built on the same [`Trust`] refuses that node's certificate
//! from its next handshake on.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, RootCertStore};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::names::PeerName;
use crate::token::Fingerprint;

/// Why a certificate is not trusted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TrustError {
    /// The CA certificate itself is unusable.
    #[error("the cluster CA certificate is unusable: {0}")]
    Ca(String),
    /// The certificate does not parse.
    #[error("unreadable certificate: {0}")]
    Parse(String),
    /// The certificate is not signed by the cluster CA, has expired or is
    /// not yet valid, or may not be used for TLS.
    #[error("not a valid certificate of this cluster: {0}")]
    Chain(rustls::Error),
    /// The certificate names no cluster peer.
    #[error("the certificate names no peer of this cluster ({0})")]
    Identity(String),
    /// The certificate was revoked (its node was removed).
    #[error("the certificate of {name} (serial {serial}) is revoked")]
    Revoked {
        /// Whose it is.
        name: PeerName,
        /// Its serial.
        serial: String,
    },
}

impl TrustError {
    /// The TLS alert this becomes in a handshake.
    pub(crate) fn to_rustls(&self) -> rustls::Error {
        match self {
            Self::Chain(e) => e.clone(),
            Self::Revoked { .. } => rustls::Error::InvalidCertificate(CertificateError::Revoked),
            Self::Ca(_) | Self::Parse(_) | Self::Identity(_) => {
                rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
            }
        }
    }
}

/// What a certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Whose it is.
    pub name: PeerName,
    /// Serial number, lowercase hex: what revocation names.
    pub serial: String,
    /// First valid moment, Unix milliseconds.
    pub not_before_millis: i64,
    /// Last valid moment, Unix milliseconds.
    pub not_after_millis: i64,
    /// SHA-256 of the certificate.
    pub fingerprint: Fingerprint,
    /// Whether QEMU's TLS (GnuTLS) accepts it: its key usage, if any,
    /// allows key encipherment. Certificates issued before that was added
    /// work for the node API but not for NBD exports.
    pub qemu_usable: bool,
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, TrustError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| TrustError::Parse(e.to_string()))
}

/// The raw public key of certificate `der` (to match it with a key).
pub(crate) fn public_key_of(der: &[u8]) -> Result<Vec<u8>, String> {
    let cert = parse(der).map_err(|e| e.to_string())?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

impl CertInfo {
    /// Reads `der` (without checking who signed it).
    pub fn parse(der: &[u8]) -> Result<Self, TrustError> {
        let cert = parse(der)?;
        let names: Vec<&str> = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(name) => Some(*name),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(TrustError::Parse(e.to_string())),
        };
        let name = match names.as_slice() {
            [one] => PeerName::from_dns_name(one)
                .ok_or_else(|| TrustError::Identity(format!("it names {one}")))?,
            [] => return Err(TrustError::Identity("it carries no DNS name".into())),
            many => {
                return Err(TrustError::Identity(format!(
                    "it carries {} names",
                    many.len()
                )));
            }
        };
        let qemu_usable = match cert.key_usage() {
            Ok(Some(usage)) => usage.value.key_encipherment(),
            Ok(None) => true,
            Err(e) => return Err(TrustError::Parse(e.to_string())),
        };
        Ok(Self {
            qemu_usable,
            name,
            serial: hex::encode(cert.raw_serial()),
            not_before_millis: cert.validity().not_before.timestamp().saturating_mul(1000),
            not_after_millis: cert.validity().not_after.timestamp().saturating_mul(1000),
            fingerprint: Fingerprint::of(der),
        })
    }
}

/// Serials of revoked certificates, shared by every verifier of a
/// [`Trust`] (and its clones).
#[derive(Debug, Clone, Default)]
pub struct RevocationSet(Arc<RwLock<HashSet<String>>>);

impl RevocationSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<String>> {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `serial`; `true` when it was not there.
    pub fn revoke(&self, serial: &str) -> bool {
        self.write().insert(serial.to_ascii_lowercase())
    }

    /// Makes the set exactly `serials` (what the store holds); returns how
    /// many were added.
    pub fn replace(&self, serials: impl IntoIterator<Item = String>) -> usize {
        let new: HashSet<String> = serials
            .into_iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let mut set = self.write();
        let added = new.difference(&set).count();
        *set = new;
        added
    }

    /// Whether `serial` is revoked.
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&serial.to_ascii_lowercase())
    }
}

/// Trust in the cluster CA, with a revocation set.
#[derive(Clone)]
pub struct Trust {
    ca_fingerprint: Fingerprint,
    roots: Arc<RootCertStore>,
    chain: Arc<dyn ClientCertVerifier>,
    revocations: RevocationSet,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("ca", &self.ca_fingerprint)
            .finish_non_exhaustive()
    }
}

impl Trust {
    /// Trust in the CA certificate `ca_pem`, refusing what `revocations`
    /// holds.
    pub fn new(ca_pem: &str, revocations: RevocationSet) -> Result<Self, TrustError> {
        let der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| TrustError::Ca(e.to_string()))?;
        let ca_fingerprint = Fingerprint::of(&der);
        let mut roots = RootCertStore::empty();
        roots.add(der).map_err(|e| TrustError::Ca(e.to_string()))?;
        let roots = Arc::new(roots);
        // Optional at this layer: the TLS verifiers decide whether a peer
        // must present a certificate.
        let chain = WebPkiClientVerifier::builder_with_provider(roots.clone(), crate::provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TrustError::Ca(e.to_string()))?;
        Ok(Self {
            ca_fingerprint,
            roots,
            chain,
            revocations,
        })
    }

    /// Fingerprint of the CA.
    pub fn ca_fingerprint(&self) -> Fingerprint {
        self.ca_fingerprint
    }

    /// The revocation set checked.
    pub fn revocations(&self) -> &RevocationSet {
        &self.revocations
    }

    pub(crate) fn roots(&self) -> Arc<RootCertStore> {
        self.roots.clone()
    }

    pub(crate) fn chain_verifier(&self) -> &Arc<dyn ClientCertVerifier> {
        &self.chain
    }

    /// Refuses `info` if its serial is revoked.
    pub fn check_revoked(&self, info: &CertInfo) -> Result<(), TrustError> {
        if self.revocations.is_revoked(&info.serial) {
            return Err(TrustError::Revoked {
                name: info.name.clone(),
                serial: info.serial.clone(),
            });
        }
        Ok(())
    }

    /// Checks `end_entity` (presented with `intermediates`) at `now`:
    /// chain, validity, identity and revocation.
    pub fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<CertInfo, TrustError> {
        self.chain
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(TrustError::Chain)?;
        let info = CertInfo::parse(end_entity)?;
        self.check_revoked(&info)?;
        Ok(info)
    }

    /// [`Trust::check`] of a PEM certificate, now.
    pub fn check_pem(&self, cert_pem: &str) -> Result<CertInfo, TrustError> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TrustError::Parse(e.to_string()))?;
        self.check(&der, &[], UnixTime::now())
    }

    /// Whether the CA issued the PEM certificate to a cluster peer, at any
    /// time in its validity: what a holder of credentials checks (whether
    /// they are still valid is for each handshake to say).
    pub fn check_issued(&self, cert_pem: &str) -> Result<CertInfo, TrustError> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TrustError::Parse(e.to_string()))?;
        let info = CertInfo::parse(&der)?;
        let within = u64::try_from(info.not_before_millis / 1000).unwrap_or(0) + 1;
        self.chain
            .verify_client_cert(
                &der,
                &[],
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(within)),
            )
            .map_err(TrustError::Chain)?;
        Ok(info)
    }
}
