//! Key fingerprints exactly as EC2 computes them.
//!
//! EC2 uses three different fingerprints
//! (<https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/verify-keys.html>):
//!
//! - RSA key created by EC2: SHA-1 of the DER-encoded PKCS#8 private key,
//!   lowercase hex pairs joined by `:`
//!   (`openssl pkcs8 -in key.pem -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c`).
//! - RSA key imported into EC2: MD5 of the DER-encoded SubjectPublicKeyInfo,
//!   same hex form (`openssl rsa -in key.pem -pubout -outform DER | openssl md5 -c`).
//!   The API reference calls this "the MD5 public key fingerprint as specified
//!   in section 4 of RFC 4716", but what EC2 actually hashes, and what its
//!   user guide tells users to compute, is the SubjectPublicKeyInfo DER, not
//!   the SSH wire blob (so it differs from `ssh-keygen -l -E md5`).
//! - ED25519 key, created or imported: base64 of SHA-256 of the SSH public
//!   key blob, as OpenSSH 6.8+ prints it but without the `SHA256:` prefix and
//!   with the `=` padding that EC2 keeps ("Amazon EC2 might append padding to
//!   the fingerprint with `=` characters. Other tools, such as ssh-keygen,
//!   might omit this padding").

use base64::Engine as _;
use md5::Md5;
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::KeyError;

/// Fingerprint of an RSA key pair EC2 created: SHA-1 of the PKCS#8 DER.
pub(crate) fn created_rsa(key: &RsaPrivateKey) -> Result<String, KeyError> {
    let der = key.to_pkcs8_der().map_err(KeyError::internal)?;
    Ok(colon_hex(&Sha1::digest(der.as_bytes())))
}

/// Fingerprint of an RSA public key imported into EC2: MD5 of the
/// SubjectPublicKeyInfo DER.
pub(crate) fn imported_rsa(key: &RsaPublicKey) -> Result<String, KeyError> {
    let der = key.to_public_key_der().map_err(KeyError::internal)?;
    Ok(colon_hex(&Md5::digest(der.as_bytes())))
}

/// Fingerprint of an ED25519 key, created or imported: padded base64 of
/// SHA-256 of the SSH public key blob.
pub(crate) fn ed25519(public_blob: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(public_blob))
}

/// Lowercase hex pairs joined by `:`, as `openssl dgst -c` prints them.
fn colon_hex(digest: &[u8]) -> String {
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_hex_matches_openssl_c_flag() {
        assert_eq!(colon_hex(&[0x00, 0xab, 0x7f]), "00:ab:7f");
        assert_eq!(colon_hex(&[]), "");
    }
}
