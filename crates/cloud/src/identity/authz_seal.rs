//! EC2's encoded authorization failure messages, sealed as AWS seals them:
//! the message names the policies and statements that decided a refusal,
//! which the refused caller may not be allowed to read, so it leaves the
//! cloud encrypted (AES-256-GCM under a key kept in the controller's
//! settings, shared by every controller of the cloud) and only
//! `sts:DecodeAuthorizationMessage`, itself authorised, opens it.

use base64::Engine as _;
use mallee_store::{Store, StoreResult};
use rand::RngCore;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The setting holding the key (hex).
const KEY_SETTING: &str = "authz_message_key";

/// Seals and opens encoded authorization messages.
pub struct AuthzSeal {
    key: LessSafeKey,
}

impl std::fmt::Debug for AuthzSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthzSeal(..)")
    }
}

impl AuthzSeal {
    /// The cloud's seal: its key from the settings, made on first use.
    pub async fn load(store: &dyn Store) -> StoreResult<Self> {
        if let Some(seal) = Self::from_setting(store.setting(KEY_SETTING).await?.as_deref()) {
            return Ok(seal);
        }
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        store.set_setting(KEY_SETTING, &hex::encode(key)).await?;
        // Another controller may have written its key first: the stored
        // one is the cloud's.
        Ok(
            Self::from_setting(store.setting(KEY_SETTING).await?.as_deref())
                .unwrap_or_else(|| Self::from_key(&key)),
        )
    }

    fn from_setting(value: Option<&str>) -> Option<Self> {
        let bytes: [u8; 32] = hex::decode(value?.trim()).ok()?.try_into().ok()?;
        Some(Self::from_key(&bytes))
    }

    /// A seal with `key` (tests; [`AuthzSeal::load`] otherwise).
    pub fn from_key(key: &[u8; 32]) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, key)
            .unwrap_or_else(|_| unreachable!("AES-256-GCM takes any 32-byte key"));
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// `message` sealed: base64url of a random nonce, the ciphertext and
    /// its tag.
    pub fn seal(&self, message: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut sealed = message.as_bytes().to_vec();
        if self
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .is_err()
        {
            // Only a message beyond AES-GCM's length limit fails; ours are
            // a few kilobytes.
            return String::new();
        }
        let mut out = nonce.to_vec();
        out.extend(sealed);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    /// The message `sealed` holds, if this cloud sealed it unchanged.
    pub fn open(&self, sealed: &str) -> Option<String> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed.trim())
            .ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut rest = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut rest)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_messages_open_only_unchanged_and_with_their_key() {
        let seal = AuthzSeal::from_key(&[7; 32]);
        let sealed = seal.seal("{\"allowed\":false}");
        assert!(!sealed.contains("allowed"));
        assert_ne!(
            sealed,
            seal.seal("{\"allowed\":false}"),
            "a nonce each time"
        );
        assert_eq!(seal.open(&sealed).as_deref(), Some("{\"allowed\":false}"));
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            seal.open(&String::from_utf8(tampered).expect("ascii")),
            None
        );
        let other = AuthzSeal::from_key(&[8; 32]);
        assert_eq!(other.open(&seal.seal("x")), None);
        assert_eq!(seal.open("not base64 !"), None);
        assert_eq!(seal.open(""), None);
    }
}
