//! `x-amz-checksum-*` verification: the CRC32, CRC32C, CRC64NVME, SHA-1 or
//! SHA-256 a client sends with an upload, as a header or as an aws-chunked
//! trailer, is checked against the body as it streams; a mismatch fails the
//! write (BadDigest) before anything is committed.

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use http::HeaderMap;
use s3s::TrailingHeaders;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::{Checksum, StreamingBlob};

/// Names of the checksum headers, in `ChecksumHasher` order.
const NAMES: [&str; 5] = [
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
    "x-amz-checksum-crc64nvme",
];

/// Marker in the stream error that the object store maps to BadDigest.
pub(super) const MISMATCH: &str = "ChecksumBadDigest";

fn fields(c: &Checksum) -> [Option<&String>; 5] {
    [
        c.checksum_crc32.as_ref(),
        c.checksum_crc32c.as_ref(),
        c.checksum_sha1.as_ref(),
        c.checksum_sha256.as_ref(),
        c.checksum_crc64nvme.as_ref(),
    ]
}

fn from_headers(headers: &HeaderMap) -> Checksum {
    let get = |i: usize| {
        headers
            .get(NAMES[i])
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
    };
    Checksum {
        checksum_crc32: get(0),
        checksum_crc32c: get(1),
        checksum_sha1: get(2),
        checksum_sha256: get(3),
        checksum_crc64nvme: get(4),
        ..Default::default()
    }
}

/// What an upload promises about its body.
pub(super) struct Expected {
    in_headers: Checksum,
    /// Algorithms announced by `x-amz-trailer`, whose values arrive after the body.
    trailer_wanted: [bool; 5],
    trailer: Option<TrailingHeaders>,
}

impl Expected {
    /// Reads the checksum headers and the `x-amz-trailer` announcement.
    pub(super) fn from_request(headers: &HeaderMap, trailer: Option<TrailingHeaders>) -> Self {
        let announced = headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let trailer_wanted = NAMES.map(|n| announced.split(',').any(|t| t.trim() == n));
        Self {
            in_headers: from_headers(headers),
            trailer_wanted,
            trailer,
        }
    }

    fn hasher(&self) -> Option<ChecksumHasher> {
        let wanted: Vec<bool> = fields(&self.in_headers)
            .iter()
            .zip(self.trailer_wanted)
            .map(|(h, t)| h.is_some() || t)
            .collect();
        if !wanted.contains(&true) {
            return None;
        }
        Some(ChecksumHasher {
            crc32: wanted[0].then(Crc32::new),
            crc32c: wanted[1].then(Crc32c::new),
            sha1: wanted[2].then(Sha1::new),
            sha256: wanted[3].then(Sha256::new),
            crc64nvme: wanted[4].then(Crc64Nvme::new),
        })
    }

    /// Wraps `body` so that it fails at its end when a checksum differs.
    pub(super) fn check<S, E>(
        self,
        body: S,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut hasher = self.hasher();
        let mut expected = Some(self);
        body.map(Some)
            .chain(futures_util::stream::once(async { None }))
            .filter_map(move |item| {
                let out = match item {
                    Some(Ok(bytes)) => {
                        if let Some(h) = hasher.as_mut() {
                            h.update(&bytes);
                        }
                        Some(Ok(bytes))
                    }
                    Some(Err(e)) => Some(Err(std::io::Error::other(e.into()))),
                    None => match (hasher.take(), expected.take()) {
                        (Some(h), Some(expected)) => expected.verify(&h.finalize()).err().map(Err),
                        _ => None,
                    },
                };
                futures_util::future::ready(out)
            })
    }

    /// A request's body (none is empty), checked.
    pub(super) fn check_body(
        self,
        body: Option<StreamingBlob>,
    ) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
        match body {
            Some(body) => self.check(body).boxed(),
            None => self
                .check(futures_util::stream::empty::<Result<Bytes, std::io::Error>>())
                .boxed(),
        }
    }

    fn verify(self, computed: &Checksum) -> Result<(), std::io::Error> {
        let trailed = self
            .trailer
            .as_ref()
            .and_then(|t| t.take())
            .map(|h| from_headers(&h))
            .unwrap_or_default();
        for (i, got) in fields(computed).into_iter().enumerate() {
            let promised = fields(&self.in_headers)[i].or(fields(&trailed)[i]);
            if let (Some(promised), Some(got)) = (promised, got)
                && promised != got
            {
                return Err(std::io::Error::other(format!("{MISMATCH}: {}", NAMES[i])));
            }
            if self.trailer_wanted[i] && promised.is_none() {
                return Err(std::io::Error::other(format!(
                    "{MISMATCH}: {} missing from the trailer",
                    NAMES[i]
                )));
            }
        }
        Ok(())
    }
}
