//! Conversions between s3s's request and response types and the object
//! store's: timestamps and HTTP dates, owners, the body of a write (its
//! Content-Length, Content-MD5 and checksums), its metadata headers, and
//! the conditions, ranges and copy sources of a request.

use std::ops::RangeInclusive;

use base64::Engine;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use mallee_cloud::Cloud;
use mallee_cloud::objects::reads::{ByteRange, Conditions, EtagCondition};
use mallee_cloud::objects::writes::Body;
use mallee_store::ObjectMetadata;
use s3s::TrailingHeaders;
use s3s::dto::{
    CopySource, ETagCondition, Metadata, Owner, Range, StreamingBlob, Timestamp, TimestampFormat,
};
use s3s::{S3Result, s3_error};

use super::{acl, checksum};

/// A store time (Unix milliseconds) as s3s writes it.
pub(super) fn timestamp(millis: i64) -> Timestamp {
    Timestamp::from(
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

/// A time as an HTTP date.
pub(super) fn http_date(ts: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

/// A time as Unix seconds, the resolution conditions compare.
fn seconds(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

/// The Owner element for an account.
pub(super) fn owner_of(account_id: &str, name: &str) -> Owner {
    Owner {
        display_name: Some(name.to_owned()),
        id: Some(acl::canonical_id(account_id)),
    }
}

/// The Owner element for an account, with its name looked up.
pub(super) async fn owner(cloud: &Cloud, account_id: &str) -> Owner {
    owner_of(account_id, &account_name(cloud, account_id).await)
}

/// The display name of an account (its id when it cannot be read).
pub(super) async fn account_name(cloud: &Cloud, account_id: &str) -> String {
    match cloud.store.account_by_id(account_id).await {
        Ok(Some(account)) => account.name,
        _ => account_id.to_owned(),
    }
}

/// The body of a PutObject or UploadPart: its declared length and MD5, and
/// its bytes, checked against the request's `x-amz-checksum-*` as they
/// stream.
pub(super) fn body(
    headers: &http::HeaderMap,
    trailer: Option<TrailingHeaders>,
    content_length: Option<i64>,
    content_md5: Option<&str>,
    body: Option<StreamingBlob>,
) -> S3Result<Body<BoxStream<'static, std::io::Result<Bytes>>>> {
    Ok(Body {
        expected_md5: decode_md5(content_md5)?,
        declared_size: declared_size(content_length),
        stream: checksum::Expected::from_request(headers, trailer).check_body(body),
    })
}

/// Decodes a Content-MD5 header.
fn decode_md5(value: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    let Some(value) = value else { return Ok(None) };
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .map(Some)
        .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))
}

/// A declared Content-Length; a negative one is refused as too large.
fn declared_size(content_length: Option<i64>) -> Option<u64> {
    content_length.map(|n| u64::try_from(n).unwrap_or(u64::MAX))
}

/// Metadata from the standard headers and `x-amz-meta-*` of a write (see
/// the `metadata_of!` macro).
pub(super) struct MetadataInput<'a> {
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_disposition: Option<&'a str>,
    pub content_language: Option<&'a str>,
    pub cache_control: Option<&'a str>,
    pub expires: Option<&'a Timestamp>,
    pub user: Option<&'a Metadata>,
}

impl MetadataInput<'_> {
    /// The metadata S3 stores for these headers.
    pub(super) fn into_metadata(self) -> ObjectMetadata {
        let own = |v: Option<&str>| v.map(str::to_owned);
        // `aws-chunked` describes the transfer, not the object: S3 drops it.
        let content_encoding = self.content_encoding.and_then(|v| {
            let kept: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
                .collect();
            (!kept.is_empty()).then(|| kept.join(","))
        });
        ObjectMetadata {
            // S3 stores this type when the writer sends none.
            content_type: Some(
                self.content_type
                    .unwrap_or("binary/octet-stream")
                    .to_owned(),
            ),
            content_encoding,
            content_disposition: own(self.content_disposition),
            content_language: own(self.content_language),
            cache_control: own(self.cache_control),
            expires: self.expires.and_then(http_date),
            user: self
                .user
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The `x-amz-meta-*` headers of a stored object.
pub(super) fn user_metadata(meta: &ObjectMetadata) -> Option<Metadata> {
    (!meta.user.is_empty()).then(|| {
        meta.user
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// The Expires header of a stored object.
pub(super) fn expires_of(meta: &ObjectMetadata) -> Option<Timestamp> {
    meta.expires
        .as_deref()
        .and_then(|s| Timestamp::parse(TimestampFormat::HttpDate, s).ok())
}

fn etag_condition(condition: &ETagCondition) -> EtagCondition {
    match condition {
        ETagCondition::Any => EtagCondition::Any,
        ETagCondition::ETag(etag) => EtagCondition::Etag(etag.value().to_owned()),
    }
}

/// The conditions of a read or of a copy source (see the
/// `copy_conditions!` macro).
pub(super) fn conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> Conditions {
    Conditions {
        if_match: if_match.map(etag_condition),
        if_none_match: if_none_match.map(etag_condition),
        if_modified_since: if_modified_since.map(seconds),
        if_unmodified_since: if_unmodified_since.map(seconds),
    }
}

/// A Range header's bytes.
pub(super) fn byte_range(range: &Range) -> ByteRange {
    match *range {
        Range::Int { first, last } => ByteRange::From { first, last },
        Range::Suffix { length } => ByteRange::Suffix(length),
    }
}

/// The source bucket and key of a copy.
pub(super) fn copy_source(source: &CopySource) -> S3Result<(String, String, Option<String>)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok((
            bucket.to_string(),
            key.to_string(),
            version_id.as_deref().map(str::to_owned),
        )),
        _ => Err(s3_error!(
            NotImplemented,
            "Access point copy sources are not supported"
        )),
    }
}

/// The `x-amz-version-id` a write answers: the new version's id, unless
/// it is the `null` version (versioning off or suspended).
pub(super) fn written_version(version_id: &str) -> Option<String> {
    (version_id != mallee_store::NULL_VERSION).then(|| version_id.to_owned())
}

/// Parses `bytes=first-last` of x-amz-copy-source-range.
pub(super) fn copy_range(value: &str) -> S3Result<RangeInclusive<u64>> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (first, last) = value
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let first: u64 = first.trim().parse().map_err(|_| invalid())?;
    let last: u64 = last.trim().parse().map_err(|_| invalid())?;
    if first > last {
        return Err(invalid());
    }
    Ok(first..=last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges_parse_first_and_last() {
        assert_eq!(copy_range("bytes=0-9").ok(), Some(0..=9));
        assert_eq!(copy_range("bytes= 5 - 5").ok(), Some(5..=5));
        for bad in ["0-9", "bytes=9-0", "bytes=a-1", "bytes=1"] {
            assert!(copy_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_drops_the_transfer_encoding_and_defaults_the_type() {
        let meta = MetadataInput {
            content_type: None,
            content_encoding: Some("gzip, aws-chunked"),
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            user: None,
        }
        .into_metadata();
        assert_eq!(meta.content_type.as_deref(), Some("binary/octet-stream"));
        assert_eq!(meta.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(declared_size(Some(-1)), Some(u64::MAX));
    }
}
