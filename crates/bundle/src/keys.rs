//! The RSA side of a bundle: the AES key and IV wrapped for a certificate
//! (PKCS#1 v1.5, as `openssl rsautl -encrypt -pkcs -certin` does), the
//! manifest's RSA-SHA1 signature, and the X.509 certificates both come
//! from. What is wrapped is the key's 32 hex characters, not its 16 bytes:
//! euca2ools and ec2-ami-tools both pass `openssl enc -K` the text they
//! later encrypt, and unwrap it back into that text.

use rand::rngs::OsRng;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, LineEnding};
use rsa::{Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha1::{Digest, Sha1};

use crate::BundleError;

/// The AES-128-CBC key and IV of one bundle.
#[derive(Clone, PartialEq, Eq)]
pub struct BundleKey {
    /// The key.
    pub key: [u8; 16],
    /// The initialisation vector.
    pub iv: [u8; 16],
}

impl std::fmt::Debug for BundleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BundleKey(..)")
    }
}

impl BundleKey {
    /// A fresh random key and IV.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 16];
        let mut iv = [0u8; 16];
        OsRng.fill_bytes(&mut key);
        OsRng.fill_bytes(&mut iv);
        Self { key, iv }
    }
}

/// An RSA private key, from PKCS#8 or PKCS#1 PEM (`BEGIN PRIVATE KEY` or
/// `BEGIN RSA PRIVATE KEY`, as `openssl genrsa` writes).
pub fn private_key(pem: &str) -> Result<RsaPrivateKey, BundleError> {
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| BundleError::Key(format!("not an RSA private key: {e}")))
}

/// The RSA public key of a PEM X.509 certificate.
pub fn certificate_key(pem: &str) -> Result<RsaPublicKey, BundleError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| BundleError::Key(format!("not a PEM certificate: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| BundleError::Key(format!("not an X.509 certificate: {e}")))?;
    RsaPublicKey::from_public_key_der(cert.public_key().raw)
        .map_err(|e| BundleError::Key(format!("the certificate's key is not RSA: {e}")))
}

/// The DER of a PEM certificate.
pub fn certificate_der(pem: &str) -> Result<Vec<u8>, BundleError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| BundleError::Key(format!("not a PEM certificate: {e}")))?;
    Ok(pem.contents)
}

/// SHA-1 fingerprint of a PEM certificate's DER, as hex: what tells two
/// certificates apart in messages.
pub fn certificate_fingerprint(pem: &str) -> Result<String, BundleError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| BundleError::Key(format!("not a PEM certificate: {e}")))?;
    Ok(hex::encode(Sha1::digest(&pem.contents)))
}

/// `value` (the key's or the IV's hex text) encrypted for `public`, hex.
pub fn wrap(public: &RsaPublicKey, value: &[u8; 16]) -> Result<String, BundleError> {
    let text = hex::encode(value);
    let wrapped = public
        .encrypt(&mut OsRng, Pkcs1v15Encrypt, text.as_bytes())
        .map_err(|e| BundleError::Key(format!("wrapping the bundle key: {e}")))?;
    Ok(hex::encode(wrapped))
}

/// The 16 bytes `wrapped` (hex) holds for `private`. A key wrapped for
/// another certificate fails here: [`BundleError::Unwrap`].
pub fn unwrap(private: &RsaPrivateKey, wrapped: &str) -> Result<[u8; 16], BundleError> {
    let bytes = hex::decode(wrapped.trim()).map_err(|_| BundleError::Unwrap)?;
    let text = private
        .decrypt(Pkcs1v15Encrypt, &bytes)
        .map_err(|_| BundleError::Unwrap)?;
    // ec2-ami-tools wraps the hex text; accept 16 raw bytes as some
    // hand-made bundles do, but nothing else.
    let raw = match text.len() {
        32 => hex::decode(&text).map_err(|_| BundleError::Unwrap)?,
        16 => text,
        _ => return Err(BundleError::Unwrap),
    };
    raw.try_into().map_err(|_| BundleError::Unwrap)
}

/// Hex RSA-SHA1 (PKCS#1 v1.5) signature of `data`.
pub fn sign(private: &RsaPrivateKey, data: &[u8]) -> Result<String, BundleError> {
    let digest = Sha1::digest(data);
    let signature = private
        .sign(Pkcs1v15Sign::new::<Sha1>(), &digest)
        .map_err(|e| BundleError::Key(format!("signing the manifest: {e}")))?;
    Ok(hex::encode(signature))
}

/// Whether `signature` (hex) is `public`'s RSA-SHA1 signature of `data`.
pub fn verify(public: &RsaPublicKey, data: &[u8], signature: &str) -> bool {
    let Ok(signature) = hex::decode(signature.trim()) else {
        return false;
    };
    public
        .verify(Pkcs1v15Sign::new::<Sha1>(), &Sha1::digest(data), &signature)
        .is_ok()
}

/// A new RSA key pair and a self-signed X.509 certificate for it, valid
/// for ten years, with `common_name` as subject: the cloud's
/// image-bundling certificate and users' signing certificates. Returns
/// (private key PEM in PKCS#8, certificate PEM).
pub fn new_certificate(common_name: &str, bits: usize) -> Result<(String, String), BundleError> {
    let private = RsaPrivateKey::new(&mut OsRng, bits)
        .map_err(|e| BundleError::Key(format!("generating an RSA key: {e}")))?;
    let key_pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| BundleError::Key(format!("encoding the RSA key: {e}")))?
        .to_string();
    let cert_pem = certificate_for(&key_pem, common_name)?;
    Ok((key_pem, cert_pem))
}

/// A self-signed certificate (RSA-SHA256) for the PKCS#8 PEM key.
pub fn certificate_for(key_pem: &str, common_name: &str) -> Result<String, BundleError> {
    let pkcs8 = private_key(key_pem)?
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| BundleError::Key(format!("encoding the RSA key: {e}")))?;
    let pair = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| BundleError::Key(format!("loading the RSA key: {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = name;
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_secs(10 * 365 * 86_400)).into();
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&BundleKey::random().key));
    params
        .self_signed(&pair)
        .map(|c| c.pem())
        .map_err(|e| BundleError::Key(format!("signing the certificate: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_sign_verify_round_trip() {
        let (key_pem, cert_pem) = new_certificate("test", 2048).expect("cert");
        let private = private_key(&key_pem).expect("key");
        let public = certificate_key(&cert_pem).expect("public");
        let key = BundleKey::random();
        let wrapped = wrap(&public, &key.key).expect("wrap");
        assert_eq!(unwrap(&private, &wrapped).expect("unwrap"), key.key);

        let (other_pem, _) = new_certificate("other", 2048).expect("cert");
        let other = private_key(&other_pem).expect("key");
        assert!(matches!(unwrap(&other, &wrapped), Err(BundleError::Unwrap)));

        let signature = sign(&private, b"data").expect("sign");
        assert!(verify(&public, b"data", &signature));
        assert!(!verify(&public, b"datA", &signature));
        assert_eq!(certificate_fingerprint(&cert_pem).expect("fp").len(), 40);
    }
}
