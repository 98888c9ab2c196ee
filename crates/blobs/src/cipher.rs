//! Encryption of blob files at rest: AES-256 in counter mode, so any byte
//! range of a blob can be decrypted on its own (range reads of encrypted
//! objects cost no more than plain ones) and data streams through the
//! cipher chunk by chunk, never held whole. Each blob gets its own
//! counter start, derived from its (unique, random) id, so one data key
//! can encrypt many blobs (the parts of a multipart upload) without ever
//! reusing a keystream. Integrity is the object store's business (ETags
//! and checksums over the plaintext); the data key itself travels wrapped
//! under a master key that never reaches the blob files.

use aes::Aes256;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use sha2::{Digest, Sha256};

/// AES block size.
const BLOCK: usize = 16;
/// Blocks encrypted per call (the AES-NI backend pipelines several).
const BATCH: usize = 64;

/// A data key bound to one blob: AES-256-CTR starting at a counter
/// derived from the blob id.
#[derive(Clone)]
pub struct BlobCipher {
    aes: Aes256,
    iv: u128,
}

impl std::fmt::Debug for BlobCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobCipher(..)")
    }
}

impl BlobCipher {
    /// The cipher of blob `blob_id` under the 256-bit data key `key`.
    pub fn new(key: &[u8; 32], blob_id: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"mallee blob iv\0")
            .chain_update(blob_id.as_bytes())
            .finalize();
        let mut iv = [0u8; BLOCK];
        iv.copy_from_slice(&digest[..BLOCK]);
        Self {
            aes: Aes256::new(GenericArray::from_slice(key)),
            iv: u128::from_be_bytes(iv),
        }
    }

    /// Encrypts or decrypts (the same in counter mode) `data`, which sits
    /// at byte `offset` of the blob.
    pub fn apply(&self, offset: u64, data: &mut [u8]) {
        let mut block_no = offset / BLOCK as u64;
        let mut skip = (offset % BLOCK as u64) as usize;
        let mut pos = 0;
        let mut keystream = [GenericArray::default(); BATCH];
        while pos < data.len() {
            let needed = (skip + data.len() - pos).div_ceil(BLOCK).min(BATCH);
            for (i, block) in keystream[..needed].iter_mut().enumerate() {
                let counter = self.iv.wrapping_add(u128::from(block_no) + i as u128);
                *block = GenericArray::from(counter.to_be_bytes());
            }
            self.aes.encrypt_blocks(&mut keystream[..needed]);
            for block in &keystream[..needed] {
                let take = (BLOCK - skip).min(data.len() - pos);
                for (d, k) in data[pos..pos + take]
                    .iter_mut()
                    .zip(&block[skip..skip + take])
                {
                    *d ^= k;
                }
                pos += take;
                skip = 0;
            }
            block_no += needed as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_range_decrypts_alone_and_blobs_differ() {
        let key = [7u8; 32];
        let plain: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        let cipher = BlobCipher::new(&key, "a");
        let mut whole = plain.clone();
        cipher.apply(0, &mut whole);
        assert_ne!(whole, plain);
        for (start, end) in [
            (0, 1),
            (3, 17),
            (16, 32),
            (15, 4097),
            (4999, 5000),
            (100, 5000),
        ] {
            let mut part = whole[start..end].to_vec();
            cipher.apply(start as u64, &mut part);
            assert_eq!(part, plain[start..end], "{start}..{end}");
        }
        let mut other = plain.clone();
        BlobCipher::new(&key, "b").apply(0, &mut other);
        assert_ne!(other, whole, "another blob, another keystream");
        // Encrypting in uneven chunks equals encrypting at once.
        let mut chunked = plain.clone();
        let mut at = 0;
        for len in [1, 15, 33, 1000, 3951] {
            cipher.apply(at as u64, &mut chunked[at..at + len]);
            at += len;
        }
        assert_eq!(chunked, whole);
    }

    #[tokio::test]
    async fn encrypted_blobs_hold_no_plaintext_and_read_back_by_range() {
        use futures_util::StreamExt;

        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::BlobStore::open(dir.path()).await.expect("open");
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let key = [9u8; 32];
        let body = futures_util::stream::iter(
            plain
                .chunks(70_000)
                .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let written = store
            .write_encrypted(body, crate::WriteLimits::max(1 << 20), Some(&key))
            .await
            .expect("write");
        assert_eq!(written.size, plain.len() as u64);
        let md5: [u8; 16] = md5::Md5::digest(&plain).into();
        assert_eq!(written.md5, md5, "the plaintext's MD5");
        let on_disk = std::fs::read(store.blob_path(&written.blob_id)).expect("read");
        assert_eq!(on_disk.len(), plain.len());
        // About one byte in 256 matches by chance; plaintext would match all.
        let same = on_disk.iter().zip(&plain).filter(|(a, b)| a == b).count();
        assert!(same < plain.len() / 100, "{same} bytes stored in the clear");
        let segments = [(written.blob_id.clone(), written.size)];
        for range in [None, Some(5..6), Some(262_140..262_200), Some(1..300_000)] {
            let reader = store
                .open_object_encrypted(&segments, range.clone(), Some(&key))
                .await
                .expect("open");
            let mut out = Vec::new();
            let mut stream = std::pin::pin!(reader.into_stream());
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&chunk.expect("chunk"));
            }
            let range = range.unwrap_or(0..300_000);
            assert_eq!(out, plain[range.start as usize..range.end as usize]);
        }
    }
}
