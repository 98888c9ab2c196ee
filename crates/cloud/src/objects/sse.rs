//! Server-side encryption with keys the cloud manages (SSE-S3): a
//! bucket's default encryption (its owner's to set, read and remove),
//! what a write asks for (`x-amz-server-side-encryption: AES256`, or the
//! bucket's default), and the keys.
//!
//! Every encrypted object (or multipart upload) gets its own random data
//! key; the blob files hold only ciphertext (`mallee_blobs::BlobCipher`,
//! streamed, any range readable on its own), and the record keeps the
//! data key wrapped (AES key wrap, RFC 3394) under the cloud's master key.
//! The master key is a file of its own under the data directory
//! (`keys/objects.key`, mode 0600), never in the database or beside the
//! object files, so a copy of either alone reveals no data. It is created
//! once, atomically (temporary file, fsync, rename, directory fsync), so a
//! crash while creating it leaves no key or the whole key; a record is
//! committed only after its data is durable, as for every object.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aes::Aes256;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};
use mallee_store::{Bucket, BucketSetting, ObjectEncryption};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::error::{ObjectError, Result};
use super::{Requester, owned_bucket};
use crate::Cloud;

/// S3's name of the one algorithm.
pub const AES256: &str = "AES256";
/// The master key's file under the data directory.
pub const MASTER_KEY_FILE: &str = "keys/objects.key";
/// RFC 3394's default initial value.
const WRAP_IV: u64 = 0xA6A6_A6A6_A6A6_A6A6;

/// The cloud's master key for object data keys.
#[derive(Clone)]
pub struct MasterKey(Aes256);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A master key from its bytes (tests).
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        Self(Aes256::new(GenericArray::from_slice(key)))
    }

    /// The key kept at `path` (hex), created there first if absent.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        std::io::Error::other(format!(
                            "{} does not hold a 256-bit key in hex",
                            path.display()
                        ))
                    })?;
                Ok(Self::from_bytes(&bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                let dir = path.parent().unwrap_or(Path::new("."));
                std::fs::create_dir_all(dir)?;
                let tmp = mallee_util::durable::temp_path(path);
                let mut guard = mallee_util::durable::TempGuard::new(tmp.clone());
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)?;
                file.write_all(hex::encode(key).as_bytes())?;
                file.sync_all()?;
                drop(file);
                // Another process may have made it meanwhile: keep theirs.
                if path.exists() {
                    return Self::load_or_create(path);
                }
                std::fs::rename(&tmp, path)?;
                guard.disarm();
                mallee_util::durable::sync_dir(dir)?;
                Ok(Self::from_bytes(&key))
            }
            Err(e) => Err(e),
        }
    }

    /// Wraps a data key (RFC 3394).
    pub fn wrap(&self, key: &[u8; 32]) -> [u8; 40] {
        let mut r = [[0u8; 8]; 4];
        for (i, chunk) in key.chunks(8).enumerate() {
            r[i].copy_from_slice(chunk);
        }
        let mut a = WRAP_IV;
        for j in 0..6u64 {
            for (i, ri) in r.iter_mut().enumerate() {
                let mut block = [0u8; 16];
                block[..8].copy_from_slice(&a.to_be_bytes());
                block[8..].copy_from_slice(ri);
                let mut b = GenericArray::from(block);
                self.0.encrypt_block(&mut b);
                let t = 4 * j + i as u64 + 1;
                a = u64::from_be_bytes(b[..8].try_into().unwrap_or_default()) ^ t;
                ri.copy_from_slice(&b[8..]);
            }
        }
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&a.to_be_bytes());
        for (i, ri) in r.iter().enumerate() {
            out[8 + 8 * i..16 + 8 * i].copy_from_slice(ri);
        }
        out
    }

    /// Unwraps a data key; `None` when it was not wrapped under this key
    /// (or was altered).
    pub fn unwrap(&self, wrapped: &[u8]) -> Option<[u8; 32]> {
        if wrapped.len() != 40 {
            return None;
        }
        let mut a = u64::from_be_bytes(wrapped[..8].try_into().ok()?);
        let mut r = [[0u8; 8]; 4];
        for (i, ri) in r.iter_mut().enumerate() {
            ri.copy_from_slice(&wrapped[8 + 8 * i..16 + 8 * i]);
        }
        for j in (0..6u64).rev() {
            for i in (0..4usize).rev() {
                let t = 4 * j + i as u64 + 1;
                let mut block = [0u8; 16];
                block[..8].copy_from_slice(&(a ^ t).to_be_bytes());
                block[8..].copy_from_slice(&r[i]);
                let mut b = GenericArray::from(block);
                self.0.decrypt_block(&mut b);
                a = u64::from_be_bytes(b[..8].try_into().ok()?);
                r[i].copy_from_slice(&b[8..]);
            }
        }
        if a != WRAP_IV {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, ri) in r.iter().enumerate() {
            key[8 * i..8 * i + 8].copy_from_slice(ri);
        }
        Some(key)
    }
}

/// A bucket's default encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    /// `BucketKeyEnabled`, kept as given (it changes nothing here: every
    /// object has its own data key).
    pub bucket_key_enabled: bool,
}

/// The encryption a write asks for with `x-amz-server-side-encryption`.
pub fn requested(header: Option<&str>) -> Result<bool> {
    match header {
        None => Ok(false),
        Some(AES256) => Ok(true),
        Some("aws:kms" | "aws:kms:dsse") => Err(ObjectError::NotImplemented(
            "SSE-KMS is not supported: this cloud has no key management service; use AES256."
                .into(),
        )),
        Some(_) => Err(ObjectError::InvalidArgument(
            "The encryption method specified is not supported".into(),
        )),
    }
}

/// The default encryption of `bucket`, if it has one.
pub fn default_of(bucket: &Bucket) -> Option<BucketEncryption> {
    let json = bucket.setting(BucketSetting::Encryption)?;
    serde_json::from_str(json).ok()
}

/// A customer's key (SSE-C), checked: the three
/// `x-amz-server-side-encryption-customer-*` headers a request sent.
#[derive(Clone)]
pub struct CustomerKey {
    key: [u8; 32],
    /// The key's MD5, base64 (what answers show).
    pub md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CustomerKey(md5 {})", self.md5)
    }
}

/// The customer key of a request's SSE-C headers (`None` when it sent
/// none), checked as S3 checks them.
pub fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
) -> Result<Option<CustomerKey>> {
    use base64::Engine as _;
    use md5::Digest as _;
    let (algorithm, key, key_md5) = match (algorithm, key, key_md5) {
        (None, None, None) => return Ok(None),
        (Some(a), Some(k), Some(m)) => (a, k, m),
        _ => {
            return Err(ObjectError::InvalidArgument(
                "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key and its MD5.".into(),
            ));
        }
    };
    if algorithm != AES256 {
        return Err(ObjectError::InvalidArgument(
            "The requested encryption algorithm is not valid, must be AES256.".into(),
        ));
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let key: [u8; 32] = engine
        .decode(key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| {
            ObjectError::InvalidArgument(
                "The secret key was invalid for the specified algorithm.".into(),
            )
        })?;
    let md5 = engine.encode(md5::Md5::digest(key));
    if md5 != key_md5 {
        return Err(ObjectError::InvalidArgument(
            "The calculated MD5 hash of the key did not match the hash that was provided.".into(),
        ));
    }
    Ok(Some(CustomerKey { key, md5 }))
}

/// The encryption of a new object (or upload) in `bucket` whose request
/// asked for SSE-S3 (`asked`), brought a customer key (SSE-C, which wins
/// over the bucket's default), or neither: a fresh data key, wrapped under
/// the master key (or the customer's), when anything wants it.
pub fn for_new(
    cloud: &Cloud,
    bucket: &Bucket,
    asked: bool,
    customer: Option<&CustomerKey>,
) -> Result<Option<(ObjectEncryption, [u8; 32])>> {
    if asked && customer.is_some() {
        return Err(ObjectError::InvalidArgument(
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified".into(),
        ));
    }
    if !asked && customer.is_none() && default_of(bucket).is_none() {
        return Ok(None);
    }
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let record = match customer {
        Some(customer) => ObjectEncryption {
            algorithm: AES256.into(),
            wrapped_key: Some(hex::encode(MasterKey::from_bytes(&customer.key).wrap(&key))),
            customer_key_digest: Some(customer.md5.clone()),
        },
        None => ObjectEncryption {
            algorithm: AES256.into(),
            wrapped_key: Some(hex::encode(cloud.object_keys.wrap(&key))),
            customer_key_digest: None,
        },
    };
    Ok(Some((record, key)))
}

/// Whether data encrypted as `encryption` needs its customer's key.
pub fn is_customer(encryption: Option<&ObjectEncryption>) -> bool {
    encryption.is_some_and(|e| e.customer_key_digest.is_some())
}

/// The data key of data encrypted as `encryption` says (`None`: stored in
/// the clear), with the customer's key the request brought: SSE-C data
/// needs it (without it S3's 400 InvalidRequest, with another key 403
/// AccessDenied), and other data refuses one.
pub fn data_key(
    cloud: &Cloud,
    encryption: Option<&ObjectEncryption>,
    customer: Option<&CustomerKey>,
) -> Result<Option<[u8; 32]>> {
    let Some(encryption) = encryption else {
        return match customer {
            Some(_) => Err(not_applicable()),
            None => Ok(None),
        };
    };
    let wrapped = encryption
        .wrapped_key
        .as_deref()
        .ok_or_else(|| ObjectError::internal("no wrapped data key"))?;
    let wrapped = hex::decode(wrapped).map_err(ObjectError::internal)?;
    match (encryption.customer_key_digest.is_some(), customer) {
        (true, None) => Err(ObjectError::InvalidRequest(
            "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.".into(),
        )),
        (true, Some(customer)) => MasterKey::from_bytes(&customer.key)
            .unwrap(&wrapped)
            .map(Some)
            .ok_or(ObjectError::AccessDenied),
        (false, Some(_)) => Err(not_applicable()),
        (false, None) => cloud.object_keys.unwrap(&wrapped).map(Some).ok_or_else(|| {
            ObjectError::internal("a data key does not unwrap under the master key")
        }),
    }
}

fn not_applicable() -> ObjectError {
    ObjectError::InvalidRequest(
        "The encryption parameters are not applicable to this object.".into(),
    )
}

/// Sets a bucket's default encryption, for its owner.
pub async fn put_default(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    algorithm: &str,
    bucket_key_enabled: bool,
) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    requested(Some(algorithm))?;
    let json = serde_json::to_string(&BucketEncryption { bucket_key_enabled })
        .map_err(ObjectError::internal)?;
    cloud
        .store
        .set_bucket_setting(&bucket.name, BucketSetting::Encryption, Some(&json))
        .await
        .map_err(ObjectError::from_write)
}

/// A bucket's default encryption, for its owner;
/// EncryptionConfigurationNotFound when it has none.
pub async fn get_default(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
) -> Result<BucketEncryption> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    default_of(&bucket).ok_or(ObjectError::EncryptionConfigurationNotFound)
}

/// Removes a bucket's default encryption (objects already written stay
/// encrypted).
pub async fn delete_default(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    cloud
        .store
        .set_bucket_setting(&bucket.name, BucketSetting::Encryption, None)
        .await
        .map_err(ObjectError::from_write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_wrap_matches_rfc_3394_and_refuses_other_keys() {
        // RFC 3394 4.6: 256 bits of key data with a 256-bit KEK.
        let kek: [u8; 32] =
            hex::decode("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
                .expect("hex")
                .try_into()
                .expect("32");
        let data: [u8; 32] =
            hex::decode("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
                .expect("hex")
                .try_into()
                .expect("32");
        let master = MasterKey::from_bytes(&kek);
        let wrapped = master.wrap(&data);
        assert_eq!(
            hex::encode_upper(wrapped),
            "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"
        );
        assert_eq!(master.unwrap(&wrapped), Some(data));
        assert_eq!(MasterKey::from_bytes(&[0; 32]).unwrap(&wrapped), None);
        let mut altered = wrapped;
        altered[20] ^= 1;
        assert_eq!(master.unwrap(&altered), None);
    }

    #[test]
    fn the_master_key_is_made_once_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(MASTER_KEY_FILE);
        let first = MasterKey::load_or_create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = MasterKey::load_or_create(&path).expect("load");
        let key = [5u8; 32];
        assert_eq!(again.unwrap(&first.wrap(&key)), Some(key));
        std::fs::write(&path, "nonsense").expect("write");
        assert!(
            MasterKey::load_or_create(&path).is_err(),
            "never replaced silently"
        );
    }
}

#[cfg(test)]
#[path = "sse_tests.rs"]
mod object_tests;
