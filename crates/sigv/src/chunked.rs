//! Chunk signatures of `aws-chunked` bodies (S3 uploads with
//! `x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD` or
//! `…-PAYLOAD-TRAILER`). Each chunk is signed over the previous signature,
//! starting from the request's own (seed) signature:
//!
//! ```text
//! AWS4-HMAC-SHA256-PAYLOAD\n<amz-date>\n<scope>\n<previous-signature>\n<sha256("")>\n<sha256(chunk)>
//! ```
//!
//! and the optional trailer (checksum headers after the last chunk) as
//!
//! ```text
//! AWS4-HMAC-SHA256-TRAILER\n<amz-date>\n<scope>\n<previous-signature>\n<sha256(trailer)>
//! ```
//!
//! Framing (`<hex-size>;chunk-signature=<sig>\r\n<data>\r\n`) is the caller's job.

use crate::SigError;
use crate::canonical::{EMPTY_SHA256, ct_eq, hmac_sha256, sha256_hex};

/// Verifies the chain of chunk signatures of one `aws-chunked` body.
#[derive(Clone)]
pub struct ChunkVerifier {
    signing_key: [u8; 32],
    amz_date: String,
    scope: String,
    previous: String,
}

impl std::fmt::Debug for ChunkVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkVerifier")
            .field("amz_date", &self.amz_date)
            .field("scope", &self.scope)
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

impl ChunkVerifier {
    /// A verifier from the SigV4 signing key (see [`crate::signing_key`]), the
    /// request's `X-Amz-Date` (`yyyyMMddTHHmmssZ`), its credential scope
    /// (`yyyymmdd/region/service/aws4_request`) and its verified signature.
    pub fn new(
        signing_key: [u8; 32],
        amz_date: impl Into<String>,
        scope: impl Into<String>,
        seed_signature: impl Into<String>,
    ) -> Self {
        Self {
            signing_key,
            amz_date: amz_date.into(),
            scope: scope.into(),
            previous: seed_signature.into(),
        }
    }

    /// The last accepted signature (the seed before any chunk).
    pub fn previous_signature(&self) -> &str {
        &self.previous
    }

    /// The string to sign of the next chunk, given its hex SHA-256.
    pub fn chunk_string_to_sign(&self, chunk_data_sha256_hex: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{chunk_data_sha256_hex}",
            self.amz_date, self.scope, self.previous
        )
    }

    /// The signature the next chunk must carry, given its hex SHA-256.
    pub fn expected_chunk_signature(&self, chunk_data_sha256_hex: &str) -> String {
        let sts = self.chunk_string_to_sign(chunk_data_sha256_hex);
        hex::encode(hmac_sha256(&self.signing_key, sts.as_bytes()))
    }

    /// Checks the next chunk's signature (the final, empty chunk included) and
    /// on success makes it the previous signature. On failure nothing changes.
    pub fn verify_chunk(
        &mut self,
        chunk_data_sha256_hex: &str,
        chunk_signature: &str,
    ) -> Result<(), SigError> {
        let sts = self.chunk_string_to_sign(chunk_data_sha256_hex);
        self.accept(sts, chunk_signature)
    }

    /// [`ChunkVerifier::verify_chunk`] for chunk data in memory.
    pub fn verify_chunk_data(
        &mut self,
        data: &[u8],
        chunk_signature: &str,
    ) -> Result<(), SigError> {
        self.verify_chunk(&sha256_hex(data), chunk_signature)
    }

    /// Checks the trailer signature (`x-amz-trailer-signature`) of a
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` body, given the hex SHA-256
    /// of the canonical trailer: each trailing header as `name:value\n`, names
    /// lowercase.
    pub fn verify_trailer(
        &mut self,
        trailer_sha256_hex: &str,
        trailer_signature: &str,
    ) -> Result<(), SigError> {
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{trailer_sha256_hex}",
            self.amz_date, self.scope, self.previous
        );
        self.accept(sts, trailer_signature)
    }

    fn accept(&mut self, string_to_sign: String, signature: &str) -> Result<(), SigError> {
        let expected = hex::encode(hmac_sha256(&self.signing_key, string_to_sign.as_bytes()));
        if ct_eq(&expected, signature) {
            self.previous = expected;
            Ok(())
        } else {
            Err(SigError::SignatureDoesNotMatch {
                string_to_sign,
                canonical_request: String::new(),
            })
        }
    }
}
