//! One-time enrolment tokens and certificate fingerprints. A token is one
//! string an administrator copies to a new node: the SHA-256 fingerprint
//! of the cluster CA (so the node can pin the controller's CA before it
//! trusts anything), the token's id (how the controller finds it) and its
//! secret (of which the controller keeps only the SHA-256).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every token string starts with (and the format's version).
const PREFIX: &str = "mallee1";
/// Random bytes in a token id.
const ID_BYTES: usize = 8;
/// Random bytes in a token secret.
const SECRET_BYTES: usize = 32;

/// Why a string is not a token or a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `mallee1.<CA fingerprint>.<id>.<secret>`.
    #[error(
        "not an enrolment token (expected mallee1.<CA fingerprint>.<id>.<secret>, as `mallee admin node token create` prints)"
    )]
    Malformed,
    /// Not 64 hexadecimal digits.
    #[error("not a SHA-256 fingerprint (64 hexadecimal digits): {0:?}")]
    Fingerprint(String),
}

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `der`.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Whether `der` has this fingerprint (constant time).
    pub fn matches(&self, der: &[u8]) -> bool {
        Self::of(der).0.ct_eq(&self.0).into()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| TokenError::Fingerprint(s.to_owned()))?;
        Ok(Self(bytes))
    }
}

/// A one-time enrolment token.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolmentToken {
    ca: Fingerprint,
    id: String,
    secret: String,
}

impl EnrolmentToken {
    /// A new random token for the CA with fingerprint `ca`.
    pub fn generate(ca: Fingerprint) -> Self {
        Self {
            ca,
            id: hex::encode(rand::random::<[u8; ID_BYTES]>()),
            secret: hex::encode(rand::random::<[u8; SECRET_BYTES]>()),
        }
    }

    /// Fingerprint of the cluster CA the token was made by.
    pub fn ca(&self) -> Fingerprint {
        self.ca
    }

    /// The token's id (not secret: it names the token in the store and
    /// the logs).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// SHA-256 of the secret, lowercase hex: what the controller keeps.
    pub fn secret_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }

    /// Whether the secret's SHA-256 is `stored` (constant time).
    pub fn secret_matches(&self, stored: &str) -> bool {
        self.secret_sha256()
            .as_bytes()
            .ct_eq(stored.as_bytes())
            .into()
    }
}

impl fmt::Display for EnrolmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}.{}.{}.{}", self.ca, self.id, self.secret)
    }
}

impl fmt::Debug for EnrolmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrolmentToken")
            .field("ca", &self.ca)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl FromStr for EnrolmentToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('.');
        let (Some(PREFIX), Some(ca), Some(id), Some(secret), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        let hex_of = |text: &str, bytes: usize| {
            text.len() == bytes * 2 && text.bytes().all(|b| b.is_ascii_hexdigit())
        };
        if !hex_of(id, ID_BYTES) || !hex_of(secret, SECRET_BYTES) {
            return Err(TokenError::Malformed);
        }
        Ok(Self {
            ca: ca.parse().map_err(|_| TokenError::Malformed)?,
            id: id.to_ascii_lowercase(),
            secret: secret.to_ascii_lowercase(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_check_their_secret() {
        let ca = Fingerprint::of(b"a CA");
        let token = EnrolmentToken::generate(ca);
        let text = token.to_string();
        let parsed: EnrolmentToken = text.parse().expect("parse");
        assert_eq!(parsed, token);
        assert_eq!(parsed.ca(), ca);
        assert!(parsed.secret_matches(&token.secret_sha256()));
        assert!(!EnrolmentToken::generate(ca).secret_matches(&token.secret_sha256()));
        assert!(!format!("{token:?}").contains(&token.secret));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = EnrolmentToken::generate(Fingerprint::of(b"x")).to_string();
        let cut = &good[..good.len() - 1];
        let extra = format!("{good}.x");
        let other = good.replacen("mallee1", "mallee2", 1);
        for bad in ["", "mallee1", cut, &extra, &other] {
            assert_eq!(
                bad.parse::<EnrolmentToken>(),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn fingerprints_parse_from_hex() {
        let f = Fingerprint::of(b"cert");
        assert_eq!(f.to_string().parse::<Fingerprint>(), Ok(f));
        assert!(f.matches(b"cert"));
        assert!(!f.matches(b"other"));
        assert!("abc".parse::<Fingerprint>().is_err());
    }
}
