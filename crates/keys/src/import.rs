//! ImportKeyPair: parse a user's public key in any format EC2 accepts.
//!
//! The ImportKeyPair documentation lists the accepted formats as
//! "OpenSSH public key format (the format in ~/.ssh/authorized_keys)",
//! "Base64 encoded DER format" and "SSH public key file format as specified in
//! RFC 4716", for RSA keys of "1024, 2048, and 4096" bits and ED25519 keys;
//! "EC2 does not accept DSA keys". This module accepts exactly:
//!
//! - OpenSSH: `ssh-rsa AAAA... [comment]` or `ssh-ed25519 AAAA... [comment]`
//!   on one line, without authorized_keys options in front;
//! - base64 of a DER SubjectPublicKeyInfo (RSA or ED25519), or of a DER
//!   PKCS#1 `RSAPublicKey`, whitespace and line breaks allowed;
//! - RFC 4716 (`---- BEGIN SSH2 PUBLIC KEY ----`), with headers and header
//!   continuation lines;
//! - the same DER structures PEM-armoured (`-----BEGIN PUBLIC KEY-----`,
//!   `-----BEGIN RSA PUBLIC KEY-----`): base64 DER with a PEM frame, which
//!   `openssl rsa -pubout` writes. (Whether EC2 itself accepts the PEM frame is
//!   not documented.)
//!
//! RSA keys from 1024 to 4096 bits are accepted (3072, the `ssh-keygen`
//! default, included). Everything else (DSA, ECDSA, security keys, RSA below
//! 1024 or above 4096 bits, garbage) is `InvalidKey.Format`.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, RsaPublicKey};

use crate::create::{ed25519_public_blob, rsa_public_blob};
use crate::wire::Reader;
use crate::{ImportedKey, KeyError, KeyType, fingerprint, openssh_line};

/// Longest public key material EC2 accepts, in bytes.
const MAX_MATERIAL_LEN: usize = 2048;
/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 1024;
/// Largest RSA modulus accepted, in bits.
const MAX_RSA_BITS: usize = 4096;

const RFC4716_BEGIN: &str = "---- BEGIN SSH2 PUBLIC KEY ----";
const RFC4716_END: &str = "---- END SSH2 PUBLIC KEY ----";

/// Standard base64 that tolerates missing padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A parsed public key of a type EC2 accepts.
#[derive(Debug)]
enum PublicKey {
    Rsa(RsaPublicKey),
    Ed25519([u8; 32]),
}

/// Parses and fingerprints a public key; see [`crate::import`].
pub(crate) fn import(material: &[u8]) -> Result<ImportedKey, KeyError> {
    if material.len() > MAX_MATERIAL_LEN {
        return Err(KeyError::MaterialTooLong);
    }
    if !material.is_ascii() {
        return Err(KeyError::MaterialNotAscii);
    }
    let text = std::str::from_utf8(material)
        .map_err(|_| KeyError::MaterialNotAscii)?
        .trim();
    let key = if text.starts_with(RFC4716_BEGIN) {
        parse_rfc4716(text)?
    } else if text.starts_with("-----BEGIN ") {
        parse_pem(text)?
    } else if looks_like_openssh(text) {
        parse_openssh(text)?
    } else {
        parse_base64_der(text)?
    };
    match key {
        PublicKey::Rsa(rsa) => {
            let blob = rsa_public_blob(&rsa);
            Ok(ImportedKey {
                key_type: KeyType::Rsa,
                public_key_openssh: openssh_line("ssh-rsa", &blob),
                fingerprint: fingerprint::imported_rsa(&rsa)?,
            })
        }
        PublicKey::Ed25519(key) => {
            let blob = ed25519_public_blob(&key);
            Ok(ImportedKey {
                key_type: KeyType::Ed25519,
                public_key_openssh: openssh_line("ssh-ed25519", &blob),
                fingerprint: fingerprint::ed25519(&blob),
            })
        }
    }
}

/// Whether the first word is an SSH key algorithm name rather than base64.
fn looks_like_openssh(text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or_default();
    first.starts_with("ssh-")
        || first.starts_with("ecdsa-")
        || first.starts_with("sk-")
        || first.contains('@')
}

/// `algorithm base64-blob [comment]` on one line.
fn parse_openssh(text: &str) -> Result<PublicKey, KeyError> {
    if text.contains(['\n', '\r']) {
        return Err(KeyError::InvalidKeyFormat);
    }
    let mut words = text.split_whitespace();
    let algorithm = words.next().ok_or(KeyError::InvalidKeyFormat)?;
    let encoded = words.next().ok_or(KeyError::InvalidKeyFormat)?;
    let blob = BASE64
        .decode(encoded)
        .map_err(|_| KeyError::InvalidKeyFormat)?;
    let (inner_algorithm, key) = parse_ssh_blob(&blob)?;
    if inner_algorithm != algorithm {
        return Err(KeyError::InvalidKeyFormat);
    }
    Ok(key)
}

/// An RFC 4716 "SSH2 public key" file.
fn parse_rfc4716(text: &str) -> Result<PublicKey, KeyError> {
    let mut lines = text.lines().map(str::trim_end);
    if lines.next() != Some(RFC4716_BEGIN) {
        return Err(KeyError::InvalidKeyFormat);
    }
    let mut body = String::new();
    let mut in_headers = true;
    let mut continuation = false;
    let mut ended = false;
    for line in lines.by_ref() {
        if continuation {
            continuation = line.ends_with('\\');
            continue;
        }
        if line == RFC4716_END {
            ended = true;
            break;
        }
        if in_headers && line.contains(':') {
            continuation = line.ends_with('\\');
            continue;
        }
        in_headers = false;
        if line.contains(':') {
            return Err(KeyError::InvalidKeyFormat);
        }
        body.push_str(line.trim());
    }
    if !ended || lines.any(|l| !l.trim().is_empty()) {
        return Err(KeyError::InvalidKeyFormat);
    }
    let blob = BASE64
        .decode(body)
        .map_err(|_| KeyError::InvalidKeyFormat)?;
    Ok(parse_ssh_blob(&blob)?.1)
}

/// `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo) or
/// `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1).
fn parse_pem(text: &str) -> Result<PublicKey, KeyError> {
    if text.starts_with("-----BEGIN PUBLIC KEY-----") {
        if let Ok(key) = RsaPublicKey::from_public_key_pem(text) {
            return checked_rsa(key);
        }
        if let Ok(key) = VerifyingKey::from_public_key_pem(text) {
            return Ok(PublicKey::Ed25519(key.to_bytes()));
        }
    } else if text.starts_with("-----BEGIN RSA PUBLIC KEY-----")
        && let Ok(key) = RsaPublicKey::from_pkcs1_pem(text)
    {
        return checked_rsa(key);
    }
    Err(KeyError::InvalidKeyFormat)
}

/// Base64 of a DER SubjectPublicKeyInfo or PKCS#1 RSAPublicKey.
fn parse_base64_der(text: &str) -> Result<PublicKey, KeyError> {
    let compact: String = text.split_whitespace().collect();
    let der = BASE64
        .decode(compact)
        .map_err(|_| KeyError::InvalidKeyFormat)?;
    if let Ok(key) = RsaPublicKey::from_public_key_der(&der) {
        return checked_rsa(key);
    }
    if let Ok(key) = VerifyingKey::from_public_key_der(&der) {
        return Ok(PublicKey::Ed25519(key.to_bytes()));
    }
    if let Ok(key) = RsaPublicKey::from_pkcs1_der(&der) {
        return checked_rsa(key);
    }
    Err(KeyError::InvalidKeyFormat)
}

/// An SSH public key blob; returns its algorithm name and the key.
fn parse_ssh_blob(blob: &[u8]) -> Result<(&str, PublicKey), KeyError> {
    let mut r = Reader::new(blob);
    let algorithm = r.string().ok_or(KeyError::InvalidKeyFormat)?;
    let key = match algorithm {
        b"ssh-rsa" => {
            let e = r.positive_mpint().ok_or(KeyError::InvalidKeyFormat)?;
            let n = r.positive_mpint().ok_or(KeyError::InvalidKeyFormat)?;
            let key = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
                .map_err(|_| KeyError::InvalidKeyFormat)?;
            checked_rsa(key)?
        }
        b"ssh-ed25519" => {
            let bytes: [u8; 32] = r
                .string()
                .and_then(|k| k.try_into().ok())
                .ok_or(KeyError::InvalidKeyFormat)?;
            VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidKeyFormat)?;
            PublicKey::Ed25519(bytes)
        }
        _ => return Err(KeyError::InvalidKeyFormat),
    };
    if !r.is_empty() {
        return Err(KeyError::InvalidKeyFormat);
    }
    let name = std::str::from_utf8(algorithm).map_err(|_| KeyError::InvalidKeyFormat)?;
    Ok((name, key))
}

/// Applies EC2's RSA size limits.
fn checked_rsa(key: RsaPublicKey) -> Result<PublicKey, KeyError> {
    let bits = key.n().bits();
    if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        Ok(PublicKey::Rsa(key))
    } else {
        Err(KeyError::InvalidKeyFormat)
    }
}
