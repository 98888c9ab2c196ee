//! What one peer holds: its key, its certificate and the cluster CA's
//! certificate, kept as PEM files in a directory (`ca.pem`, `NAME.pem`,
//! `NAME.key`, the key readable by its owner only); and the key and
//! signing request a node makes before it enrols.

use std::path::Path;

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::ca::CA_CERT_FILE;
use crate::files;
use crate::names::PeerName;
use crate::token::Fingerprint;
use crate::trust::{CertInfo, RevocationSet, Trust};

/// Errors of credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Some of the files exist, not all.
    #[error("{0} is missing (the certificate, its key and ca.pem belong together)")]
    Incomplete(String),
    /// The certificate, key or CA do not parse or do not belong together.
    #[error("{0}")]
    Invalid(String),
    /// A key or signing request could not be made.
    #[error("could not make a key: {0}")]
    Key(rcgen::Error),
}

/// The DER of the first certificate in `pem`.
pub(crate) fn pem_certificate(pem: &str) -> Result<Vec<u8>, String> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|der| der.to_vec())
        .map_err(|e| format!("not a PEM certificate: {e}"))
}

/// A peer's key and certificate, with the CA that signed it. Made only
/// through [`Credentials::new`], so the three always belong together.
#[derive(Clone)]
pub struct Credentials {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    info: CertInfo,
    ca_fingerprint: Fingerprint,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("name", &self.info.name)
            .field("serial", &self.info.serial)
            .field("ca", &self.ca_fingerprint)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials from PEM text, checked: the certificate was issued by
    /// the CA to a cluster peer (expired or not: handshakes refuse expired
    /// certificates), and `key_pem` is its key.
    pub fn new(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, CredentialsError> {
        let trust = Trust::new(ca_pem, RevocationSet::new())
            .map_err(|e| CredentialsError::Invalid(e.to_string()))?;
        let info = trust
            .check_issued(cert_pem)
            .map_err(|e| CredentialsError::Invalid(format!("the certificate: {e}")))?;
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| CredentialsError::Invalid(format!("the key: {e}")))?;
        let cert_key = crate::trust::public_key_of(
            &pem_certificate(cert_pem).map_err(CredentialsError::Invalid)?,
        )
        .map_err(CredentialsError::Invalid)?;
        if cert_key != key.public_key_raw() {
            return Err(CredentialsError::Invalid(
                "the key does not belong to the certificate".into(),
            ));
        }
        Ok(Self {
            ca_pem: ca_pem.to_owned(),
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            info,
            ca_fingerprint: trust.ca_fingerprint(),
        })
    }

    /// The credentials kept in `dir` as `ca.pem`, `{stem}.pem` and
    /// `{stem}.key`; `None` when none of them exists.
    pub fn load(dir: &Path, stem: &str) -> Result<Option<Self>, CredentialsError> {
        let paths = [
            dir.join(CA_CERT_FILE),
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        ];
        let read = |path: &Path| {
            files::read(path).map_err(|source| CredentialsError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        let [ca, cert, key] = [read(&paths[0])?, read(&paths[1])?, read(&paths[2])?];
        match (ca, cert, key) {
            // Nothing, or only the CA (the controller's directory holds
            // the CA before its own certificate).
            (_, None, None) => Ok(None),
            (Some(ca), Some(cert), Some(key)) => Self::new(&ca, &cert, &key)
                .map(Some)
                .map_err(|e| CredentialsError::Invalid(format!("{}: {e}", dir.display()))),
            (ca, cert, _) => {
                let missing = if ca.is_none() {
                    &paths[0]
                } else if cert.is_none() {
                    &paths[1]
                } else {
                    &paths[2]
                };
                Err(CredentialsError::Incomplete(missing.display().to_string()))
            }
        }
    }

    /// Writes them to `dir` (created owner-only if missing) as `ca.pem`,
    /// `{stem}.pem` and `{stem}.key` (mode 0600).
    pub fn save(&self, dir: &Path, stem: &str) -> Result<(), CredentialsError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| CredentialsError::Io { path, source }
        };
        files::create_private_dir(dir).map_err(io(dir))?;
        let ca = dir.join(CA_CERT_FILE);
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        files::write(&key, self.key_pem.as_bytes(), 0o600).map_err(io(&key))?;
        files::write(&cert, self.cert_pem.as_bytes(), 0o644).map_err(io(&cert))?;
        files::write(&ca, self.ca_pem.as_bytes(), 0o644).map_err(io(&ca))
    }

    /// What the certificate says (name, serial, expiry).
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Fingerprint of the CA they chain to.
    pub fn ca_fingerprint(&self) -> Fingerprint {
        self.ca_fingerprint
    }

    /// A trust anchored at their CA (with no revocations known).
    pub fn trust(&self) -> Trust {
        // `new` parsed this CA already.
        Trust::new(&self.ca_pem, RevocationSet::new()).expect("checked CA")
    }

    /// Writes them as QEMU's `tls-creds-x509` object reads a directory
    /// (`ca-cert.pem`, then `server-cert.pem`/`server-key.pem` or
    /// `client-cert.pem`/`client-key.pem`; the key mode 0600, the directory
    /// owner-only): what qemu-storage-daemon serves NBD exports with, and
    /// what a node's QEMU connects to them with. QEMU checks the peer
    /// against the cluster CA and, as a client, the server's name (the
    /// certificate's DNS name, [`PeerName::dns_name`]).
    pub fn write_qemu_tls_dir(
        &self,
        dir: &Path,
        endpoint: QemuTlsEndpoint,
    ) -> Result<(), CredentialsError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| CredentialsError::Io { path, source }
        };
        files::create_private_dir(dir).map_err(io(dir))?;
        let side = match endpoint {
            QemuTlsEndpoint::Server => "server",
            QemuTlsEndpoint::Client => "client",
        };
        let key = dir.join(format!("{side}-key.pem"));
        let cert = dir.join(format!("{side}-cert.pem"));
        let ca = dir.join("ca-cert.pem");
        files::write(&key, self.key_pem.as_bytes(), 0o600).map_err(io(&key))?;
        files::write(&cert, self.cert_pem.as_bytes(), 0o644).map_err(io(&cert))?;
        files::write(&ca, self.ca_pem.as_bytes(), 0o644).map_err(io(&ca))
    }

    /// The chain a TLS peer presents: the certificate, then the CA (so a
    /// node that only knows the CA's fingerprint can find it).
    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .chain(CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()))
            .filter_map(Result::ok)
            .collect()
    }

    pub(crate) fn key(&self) -> Result<PrivateKeyDer<'static>, CredentialsError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| CredentialsError::Invalid(format!("the key: {e}")))
    }
}

/// Which side of a TLS connection QEMU's credentials are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuTlsEndpoint {
    /// The side that listens (qemu-storage-daemon's NBD server).
    Server,
    /// The side that connects (a VM's NBD client).
    Client,
}

/// A fresh key and the signing request for it, naming `name`: what a node
/// sends when it enrols. The key never leaves the node.
pub struct KeyRequest {
    key: KeyPair,
    name: PeerName,
    csr_pem: String,
}

impl std::fmt::Debug for KeyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRequest")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl KeyRequest {
    /// A new key and its signing request.
    pub fn new(name: PeerName) -> Result<Self, CredentialsError> {
        let key = KeyPair::generate().map_err(CredentialsError::Key)?;
        let csr_pem = CertificateParams::new(vec![name.dns_name()])
            .and_then(|params| params.serialize_request(&key))
            .and_then(|csr| csr.pem())
            .map_err(CredentialsError::Key)?;
        Ok(Self { key, name, csr_pem })
    }

    /// The signing request, PEM.
    pub fn csr_pem(&self) -> &str {
        &self.csr_pem
    }

    /// The credentials made of this key and the certificate the CA
    /// returned, checked: it must be for this key and name and chain to
    /// `ca_pem`.
    pub fn complete(self, ca_pem: &str, cert_pem: &str) -> Result<Credentials, CredentialsError> {
        let credentials = Credentials::new(ca_pem, cert_pem, &self.key.serialize_pem())?;
        if credentials.info.name != self.name {
            return Err(CredentialsError::Invalid(format!(
                "the certificate names {}, not {}",
                credentials.info.name, self.name
            )));
        }
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{ClusterCa, Validity};

    #[test]
    fn credentials_survive_a_round_trip_through_files() {
        let ca = ClusterCa::generate().expect("ca");
        let node = PeerName::node("nd-7").expect("name");
        let creds = ca.issue(&node, Validity::peer()).expect("issue");
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        assert!(Credentials::load(&pki, "node").expect("load").is_none());
        creds.save(&pki, "node").expect("save");
        let loaded = Credentials::load(&pki, "node")
            .expect("load")
            .expect("some");
        assert_eq!(loaded.info(), creds.info());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(pki.join("node.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_file(pki.join("node.key")).expect("rm");
        assert!(matches!(
            Credentials::load(&pki, "node"),
            Err(CredentialsError::Incomplete(_))
        ));
    }

    #[test]
    fn a_key_and_a_certificate_must_belong_together() {
        let ca = ClusterCa::generate().expect("ca");
        let node = PeerName::node("nd-7").expect("name");
        let a = ca.issue(&node, Validity::peer()).expect("a");
        let b = ca.issue(&node, Validity::peer()).expect("b");
        assert!(Credentials::new(a.ca_pem(), a.cert_pem(), &b.key_pem).is_err());
        // A certificate of another CA does not chain.
        let other = ClusterCa::generate().expect("other");
        assert!(Credentials::new(other.certificate_pem(), a.cert_pem(), &a.key_pem).is_err());
    }

    #[test]
    fn a_request_completes_with_its_own_certificate_only() {
        let ca = ClusterCa::generate().expect("ca");
        let node = PeerName::node("nd-9").expect("name");
        let request = KeyRequest::new(node.clone()).expect("request");
        let issued = ca
            .sign_request(request.csr_pem(), &node, Validity::peer())
            .expect("sign");
        let creds = request
            .complete(ca.certificate_pem(), &issued.pem)
            .expect("complete");
        assert_eq!(creds.info().name, node);
        // Someone else's certificate does not fit this key.
        let other = KeyRequest::new(node.clone()).expect("request");
        assert!(other.complete(ca.certificate_pem(), &issued.pem).is_err());
    }
}
