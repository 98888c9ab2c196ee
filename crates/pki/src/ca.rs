//! The cluster CA: created once by the controller (`DATA/pki/ca.pem`,
//! `ca.key` readable by root only), it signs the controller's certificate
//! and every node's. A node's certificate comes from the node's signing
//! request at enrolment: only its public key is taken from the request;
//! name, validity, usages and serial are the CA's choice.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use crate::credentials::Credentials;
use crate::files;
use crate::names::PeerName;
use crate::token::Fingerprint;
use crate::trust::CertInfo;

/// File of the CA certificate (also shipped to every node).
pub const CA_CERT_FILE: &str = "ca.pem";
/// File of the CA key.
const CA_KEY_FILE: &str = "ca.key";
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// How far back a new certificate's validity starts, so that a peer whose
/// clock is a little behind accepts it.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// Errors of the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A CA file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Only one of the CA's certificate and key exists.
    #[error(
        "{0} exists without its pair (ca.pem and ca.key belong together): restore it or remove both to make a new CA"
    )]
    Incomplete(String),
    /// The CA's certificate or key does not parse, or they do not match.
    #[error("the cluster CA in {path} is unusable: {reason}")]
    Unusable {
        /// Where it is.
        path: String,
        /// Why.
        reason: String,
    },
    /// The signing request does not parse or its signature is wrong.
    #[error("bad certificate signing request: {0}")]
    Request(rcgen::Error),
    /// Signing failed.
    #[error("could not sign a certificate: {0}")]
    Sign(rcgen::Error),
    /// The certificate just made does not parse (a bug).
    #[error("issued certificate unreadable: {0}")]
    Issued(String),
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First valid moment.
    pub not_before: SystemTime,
    /// Last valid moment.
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago until `days` from now.
    pub fn days(days: u64) -> Self {
        let now = SystemTime::now();
        Self {
            not_before: now - BACKDATE,
            not_after: now + DAY * u32::try_from(days).unwrap_or(u32::MAX),
        }
    }

    /// The CA's own: 30 years.
    pub fn ca() -> Self {
        Self::days(30 * 365)
    }

    /// The controller's and nodes': 10 years (there is no renewal short of
    /// enrolling again, so a certificate outlives the machine).
    pub fn peer() -> Self {
        Self::days(10 * 365)
    }
}

/// A certificate the CA issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// PEM text.
    pub pem: String,
    /// What it says.
    pub info: CertInfo,
}

/// The cluster CA.
pub struct ClusterCa {
    key: KeyPair,
    /// The CA certificate as rcgen signs with it.
    issuer: rcgen::Certificate,
    der: Vec<u8>,
    pem: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and exactly 16 bytes in DER: top bit clear, next one set.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn params(name: &str, validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.serial_number = Some(random_serial());
    params.not_before = validity.not_before.into();
    params.not_after = validity.not_after.into();
    params
}

/// What the CA writes into every controller and node certificate.
fn peer_params(name: &PeerName, validity: Validity) -> Result<CertificateParams, CaError> {
    let dns = name.dns_name();
    let mut params = params(&dns, validity);
    params.subject_alt_names = vec![SanType::DnsName(
        dns.clone().try_into().map_err(CaError::Sign)?,
    )];
    params.is_ca = IsCa::ExplicitNoCa;
    // QEMU's tls-creds-x509 (NBD exports between storage hosts and nodes)
    // refuses a certificate whose critical key usage lacks key
    // encipherment, whatever its key type; rustls ignores key usage.
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // The same certificate serves and dials: a node serves the node API
    // and calls the controller, the controller the reverse.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

impl ClusterCa {
    /// A new CA.
    pub fn generate() -> Result<Self, CaError> {
        Self::generate_with(Validity::ca())
    }

    fn generate_with(validity: Validity) -> Result<Self, CaError> {
        let key = KeyPair::generate().map_err(CaError::Sign)?;
        let mut params = params("mallee cluster CA", validity);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = params.self_signed(&key).map_err(CaError::Sign)?;
        let der = issuer.der().to_vec();
        let pem = issuer.pem();
        Ok(Self {
            key,
            issuer,
            der,
            pem,
        })
    }

    /// The CA whose certificate and key are `cert_pem` and `key_pem`.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("key: {e}"))?;
        let der = crate::credentials::pem_certificate(cert_pem)?;
        let info_key = crate::trust::public_key_of(&der)?;
        if info_key != key.public_key_raw() {
            return Err("the key is not the certificate's".into());
        }
        let issuer = CertificateParams::from_ca_cert_pem(cert_pem)
            .and_then(|params| params.self_signed(&key))
            .map_err(|e| format!("certificate: {e}"))?;
        Ok(Self {
            key,
            issuer,
            der,
            pem: cert_pem.to_owned(),
        })
    }

    /// The CA kept in `dir` (`ca.pem`, `ca.key`), created there when
    /// neither exists; `true` when it was created.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), CaError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| CaError::Io { path, source }
        };
        let cert = files::read(&cert_path).map_err(io(&cert_path))?;
        let key = files::read(&key_path).map_err(io(&key_path))?;
        match (cert, key) {
            (Some(cert), Some(key)) => {
                Self::from_pem(&cert, &key)
                    .map(|ca| (ca, false))
                    .map_err(|reason| CaError::Unusable {
                        path: dir.display().to_string(),
                        reason,
                    })
            }
            (None, None) => {
                files::create_private_dir(dir).map_err(io(dir))?;
                let ca = Self::generate()?;
                // The key first: a certificate without its key is useless,
                // and `Incomplete` tells the admin which one is missing.
                files::write(&key_path, ca.key.serialize_pem().as_bytes(), 0o600)
                    .map_err(io(&key_path))?;
                files::write(&cert_path, ca.pem.as_bytes(), 0o644).map_err(io(&cert_path))?;
                Ok((ca, true))
            }
            (Some(_), None) => Err(CaError::Incomplete(cert_path.display().to_string())),
            (None, Some(_)) => Err(CaError::Incomplete(key_path.display().to_string())),
        }
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.pem
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 of the CA certificate: what enrolment tokens carry.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.der)
    }

    fn finish(&self, cert: &rcgen::Certificate) -> Result<Issued, CaError> {
        let info = CertInfo::parse(cert.der()).map_err(|e| CaError::Issued(e.to_string()))?;
        Ok(Issued {
            pem: cert.pem(),
            info,
        })
    }

    /// Signs the public key of `csr_pem` (whose signature is checked) as
    /// `name`; nothing else of the request is used.
    pub fn sign_request(
        &self,
        csr_pem: &str,
        name: &PeerName,
        validity: Validity,
    ) -> Result<Issued, CaError> {
        let mut request =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(CaError::Request)?;
        request.params = peer_params(name, validity)?;
        let cert = request
            .signed_by(&self.issuer, &self.key)
            .map_err(CaError::Sign)?;
        self.finish(&cert)
    }

    /// A new key and a certificate for it naming `name`: for the
    /// controller itself and the node `mallee up` runs in-process.
    pub fn issue(&self, name: &PeerName, validity: Validity) -> Result<Credentials, CaError> {
        let key = KeyPair::generate().map_err(CaError::Sign)?;
        let cert = peer_params(name, validity)?
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(CaError::Sign)?;
        let issued = self.finish(&cert)?;
        Credentials::new(&self.pem, &issued.pem, &key.serialize_pem())
            .map_err(|e| CaError::Issued(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::KeyRequest;

    #[test]
    fn a_ca_kept_on_disk_is_the_same_ca_after_loading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        let (first, created) = ClusterCa::load_or_create(&pki).expect("create");
        assert!(created);
        let (again, created) = ClusterCa::load_or_create(&pki).expect("load");
        assert!(!created);
        assert_eq!(first.fingerprint(), again.fingerprint());
        let mode = |f: &str| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(pki.join(f))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(CA_KEY_FILE), 0o600);
        assert_eq!(mode(CA_CERT_FILE), 0o644);
        // Certificates the reloaded CA signs chain to the original one.
        let creds = again
            .issue(&PeerName::Controller, Validity::peer())
            .expect("issue");
        let trust =
            crate::Trust::new(first.certificate_pem(), crate::RevocationSet::new()).expect("trust");
        assert_eq!(
            trust.check_pem(creds.cert_pem()).expect("chain").name,
            PeerName::Controller
        );
    }

    #[test]
    fn half_a_ca_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        ClusterCa::load_or_create(dir.path()).expect("create");
        std::fs::remove_file(dir.path().join(CA_KEY_FILE)).expect("rm");
        assert!(matches!(
            ClusterCa::load_or_create(dir.path()),
            Err(CaError::Incomplete(_))
        ));
    }

    #[test]
    fn a_signed_request_gets_the_cas_name_not_its_own() {
        let ca = ClusterCa::generate().expect("ca");
        let node = PeerName::node("nd-1").expect("name");
        // The request asks to be the controller; the CA decides.
        let request = KeyRequest::new(PeerName::Controller).expect("csr");
        let issued = ca
            .sign_request(request.csr_pem(), &node, Validity::peer())
            .expect("sign");
        assert_eq!(issued.info.name, node);
        assert!(request.complete(ca.certificate_pem(), &issued.pem).is_err());
    }

    #[test]
    fn garbage_requests_are_refused() {
        let ca = ClusterCa::generate().expect("ca");
        let node = PeerName::node("nd-1").expect("name");
        let request = KeyRequest::new(node.clone()).expect("csr");
        // One base64 character of the body changed: the signature no
        // longer matches.
        let mut lines: Vec<String> = request.csr_pem().lines().map(str::to_owned).collect();
        let line = &mut lines[2];
        let flipped = if line.starts_with('A') { "B" } else { "A" };
        line.replace_range(0..1, flipped);
        let tampered = lines.join("\n");
        for bad in ["", "not a csr", ca.certificate_pem(), &tampered] {
            assert!(
                ca.sign_request(bad, &node, Validity::peer()).is_err(),
                "{bad:?} signed"
            );
        }
    }
}
