//! CreateKeyPair: generate a key pair and encode its private half the way EC2
//! returns it.
//!
//! - RSA: 2048 bits; `pem` is an unencrypted PKCS#1 PEM
//!   (`-----BEGIN RSA PRIVATE KEY-----`), as the CreateKeyPair API reference
//!   says ("an unencrypted PEM encoded PKCS#1 private key").
//! - ED25519: `pem` is an unencrypted OpenSSH private key
//!   (`-----BEGIN OPENSSH PRIVATE KEY-----`), the only PEM-armoured format
//!   OpenSSH reads ED25519 private keys from.
//! - `ppk`: an unencrypted PuTTY key file, version 2 (see [`crate::ppk`]).

use rand::RngCore as _;
use rand::rngs::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};
use rsa::{BigUint, RsaPrivateKey};
use ssh_key::LineEnding;
use ssh_key::private::{Ed25519Keypair, KeypairData, PrivateKey};

use crate::ppk::{self, PpkVersion};
use crate::{CreatedKey, KeyError, KeyFormat, KeyType, fingerprint, openssh_line, wire};

/// Size of the RSA keys CreateKeyPair generates.
const RSA_BITS: usize = 2048;

/// Generates a new key pair; see [`crate::create`].
pub(crate) fn create(
    key_type: KeyType,
    format: KeyFormat,
    comment: &str,
) -> Result<CreatedKey, KeyError> {
    match key_type {
        KeyType::Rsa => {
            let key = RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(KeyError::internal)?;
            from_rsa(key, format, comment)
        }
        KeyType::Ed25519 => {
            let mut seed = [0u8; 32];
            OsRng.fill_bytes(&mut seed);
            from_ed25519_seed(&seed, format, comment)
        }
    }
}

/// The SSH public key blob of an RSA key: `string "ssh-rsa", mpint e, mpint n`.
pub(crate) fn rsa_public_blob(key: &impl rsa::traits::PublicKeyParts) -> Vec<u8> {
    let mut w = wire::Writer::new();
    w.string(b"ssh-rsa")
        .mpint(&key.e().to_bytes_be())
        .mpint(&key.n().to_bytes_be());
    w.into_bytes()
}

/// The SSH public key blob of an ED25519 key: `string "ssh-ed25519", string key`.
pub(crate) fn ed25519_public_blob(key: &[u8; 32]) -> Vec<u8> {
    let mut w = wire::Writer::new();
    w.string(b"ssh-ed25519").string(key);
    w.into_bytes()
}

/// Encodes an existing RSA key as CreateKeyPair would return it.
///
/// The primes are first put in the order `p > q` (as OpenSSL and PuTTYgen
/// generate them, and as PuTTY expects), so the PEM, the PPK and the
/// fingerprint all describe the same encoding.
pub(crate) fn from_rsa(
    key: RsaPrivateKey,
    format: KeyFormat,
    comment: &str,
) -> Result<CreatedKey, KeyError> {
    let key = with_p_greater_than_q(key)?;
    let public_blob = rsa_public_blob(&key);
    let fingerprint = fingerprint::created_rsa(&key)?;
    let key_material = match format {
        KeyFormat::Pem => key
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(KeyError::internal)?
            .to_string(),
        KeyFormat::Ppk => {
            let [p, q] = match key.primes() {
                [p, q] => [p, q],
                _ => return Err(KeyError::Internal("RSA key without two primes".into())),
            };
            let iqmp = key
                .crt_coefficient()
                .ok_or_else(|| KeyError::Internal("q has no inverse mod p".into()))?;
            let private_blob = ppk::rsa_private_blob(
                &key.d().to_bytes_be(),
                &p.to_bytes_be(),
                &q.to_bytes_be(),
                &iqmp.to_bytes_be(),
            );
            ppk::encode(
                PpkVersion::V2,
                "ssh-rsa",
                comment,
                &public_blob,
                &private_blob,
            )
        }
    };
    Ok(CreatedKey {
        key_material,
        public_key_openssh: openssh_line("ssh-rsa", &public_blob),
        fingerprint,
    })
}

/// Reorders the primes of a two-prime key so that `p > q`.
fn with_p_greater_than_q(key: RsaPrivateKey) -> Result<RsaPrivateKey, KeyError> {
    let (p, q): (&BigUint, &BigUint) = match key.primes() {
        [p, q] => (p, q),
        _ => return Err(KeyError::Internal("RSA key without two primes".into())),
    };
    if p > q {
        return Ok(key);
    }
    let primes = vec![q.clone(), p.clone()];
    RsaPrivateKey::from_components(key.n().clone(), key.e().clone(), key.d().clone(), primes)
        .map_err(KeyError::internal)
}

/// Encodes the ED25519 key with the given 32-byte seed as CreateKeyPair would
/// return it.
pub(crate) fn from_ed25519_seed(
    seed: &[u8; 32],
    format: KeyFormat,
    comment: &str,
) -> Result<CreatedKey, KeyError> {
    let keypair = Ed25519Keypair::from_seed(seed);
    let public_blob = ed25519_public_blob(&keypair.public.0);
    let key_material = match format {
        KeyFormat::Pem => PrivateKey::new(KeypairData::Ed25519(keypair), comment)
            .and_then(|k| k.to_openssh(LineEnding::LF))
            .map_err(KeyError::internal)?
            .to_string(),
        KeyFormat::Ppk => ppk::encode(
            PpkVersion::V2,
            "ssh-ed25519",
            comment,
            &public_blob,
            &ppk::ed25519_private_blob(seed),
        ),
    };
    Ok(CreatedKey {
        key_material,
        public_key_openssh: openssh_line("ssh-ed25519", &public_blob),
        fingerprint: fingerprint::ed25519(&public_blob),
    })
}
