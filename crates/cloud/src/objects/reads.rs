//! Reading objects: GetObject and HeadObject with their conditions (S3's
//! order of precedence, a 304 for a copy the caller has) and byte ranges
//! or part numbers; reading an object's ACL; and the one permission check
//! every read of an object makes, which also decides whether a missing key
//! may be told apart from a forbidden one. Every read may name a version;
//! a delete marker reads as a missing key when it is the latest, and as a
//! method not allowed when named.

use std::ops::{Range, RangeInclusive};

use mallee_blobs::ObjectReader;
use mallee_store::{Bucket, ObjectRecord, Versioning};

use super::acl::{Acl, Permission};
use super::controls::acl_allows;
use super::error::{ObjectError, Result};
use super::versions::checked_id;
use super::{Requester, bucket, open};
use crate::Cloud;

/// An ETag condition (`If-Match`, `If-None-Match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagCondition {
    /// `*`: any version.
    Any,
    /// This ETag (without quotes).
    Etag(String),
}

impl EtagCondition {
    fn matches(&self, etag: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Etag(wanted) => wanted == etag,
        }
    }
}

/// The conditions of a read or of a copy's source. Times are Unix seconds,
/// the resolution of HTTP dates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// The object must have one of these ETags.
    pub if_match: Option<EtagCondition>,
    /// The object must not have one of these ETags.
    pub if_none_match: Option<EtagCondition>,
    /// The object must have changed after this time.
    pub if_modified_since: Option<i64>,
    /// The object must not have changed after this time.
    pub if_unmodified_since: Option<i64>,
}

impl Conditions {
    /// Checks a read: a failed `If-None-Match` or `If-Modified-Since`
    /// means the caller has this version (NotModified).
    pub fn check_read(&self, object: &ObjectRecord) -> Result<()> {
        self.check(object, || ObjectError::NotModified {
            etag: object.etag.clone(),
            last_modified: object.last_modified,
        })
    }

    /// Checks a copy's source: every failed condition is
    /// PreconditionFailed.
    pub fn check_copy_source(&self, object: &ObjectRecord) -> Result<()> {
        self.check(object, || ObjectError::PreconditionFailed)
    }

    /// S3's precedence: `If-Match` overrides `If-Unmodified-Since`, and
    /// `If-None-Match` overrides `If-Modified-Since`.
    fn check(
        &self,
        object: &ObjectRecord,
        not_modified: impl FnOnce() -> ObjectError,
    ) -> Result<()> {
        let modified = object.last_modified.div_euclid(1000);
        let if_match_ok = self.if_match.as_ref().map(|c| c.matches(&object.etag));
        if if_match_ok == Some(false) {
            return Err(ObjectError::PreconditionFailed);
        }
        if if_match_ok.is_none() && self.if_unmodified_since.is_some_and(|t| modified > t) {
            return Err(ObjectError::PreconditionFailed);
        }
        let none_match_hit = self.if_none_match.as_ref().map(|c| c.matches(&object.etag));
        if none_match_hit == Some(true) {
            return Err(not_modified());
        }
        if none_match_hit.is_none() && self.if_modified_since.is_some_and(|t| modified <= t) {
            return Err(not_modified());
        }
        Ok(())
    }
}

/// The bytes a read asks for, before the object's size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// From `first` to `last` (inclusive; to the end when `None`).
    From {
        /// First byte.
        first: u64,
        /// Last byte, clamped to the object's last.
        last: Option<u64>,
    },
    /// The last `length` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The bytes of an object of `size` bytes this range selects, or
    /// InvalidRange when it selects none.
    pub fn within(self, size: u64) -> Result<Range<u64>> {
        match self {
            Self::From { first, .. } if first >= size => Err(ObjectError::InvalidRange),
            Self::From {
                first,
                last: Some(last),
            } => {
                let last = last.min(size - 1);
                if first > last {
                    return Err(ObjectError::InvalidRange);
                }
                Ok(first..last + 1)
            }
            Self::From { first, last: None } => Ok(first..size),
            Self::Suffix(0) => Err(ObjectError::InvalidRange),
            Self::Suffix(length) => Ok(size - length.min(size)..size),
        }
    }
}

/// What a GetObject or HeadObject asks for.
#[derive(Debug, Clone, Default)]
pub struct ReadObject {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// Conditions on the object.
    pub conditions: Conditions,
    /// A byte range (wins over `part_number`).
    pub range: Option<ByteRange>,
    /// One part of a multipart object (1-based; a simple object has one).
    pub part_number: Option<i32>,
    /// The version (the latest when `None`).
    pub version_id: Option<String>,
    /// The customer's key (SSE-C), which SSE-C objects need.
    pub customer_key: Option<super::sse::CustomerKey>,
}

/// An object a read found, and the bytes it returns.
#[derive(Debug, Clone)]
pub struct ObjectView {
    /// The object.
    pub object: ObjectRecord,
    /// The bytes returned, when not all of them.
    pub range: Option<Range<u64>>,
    /// The `x-amz-version-id` a read answers: the version's id, in
    /// buckets that keep versions (or kept them once).
    pub version_header: Option<String>,
    /// When a lifecycle rule makes the object expire, and the rule's id
    /// (`x-amz-expiration`; reads of the current version only).
    pub expiration: Option<(mallee_store::UnixMillis, String)>,
}

impl ObjectView {
    /// How many bytes the read returns.
    pub fn len(&self) -> u64 {
        self.range
            .as_ref()
            .map_or(self.object.size, |r| r.end - r.start)
    }

    /// Whether the read returns no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// HeadObject: the object and the bytes a GET would return.
pub async fn head(cloud: &Cloud, requester: &Requester, read: &ReadObject) -> Result<ObjectView> {
    let (bucket, object) = readable_version(
        cloud,
        requester,
        &read.bucket,
        &read.key,
        read.version_id.as_deref(),
        Permission::Read,
    )
    .await?;
    // SSE-C objects answer nothing, not even HEAD, without their key.
    super::sse::data_key(
        cloud,
        object.encryption.as_ref(),
        read.customer_key.as_ref(),
    )?;
    read.conditions.check_read(&object)?;
    let range = match (read.range, read.part_number) {
        (Some(range), _) => Some(range.within(object.size)?),
        (None, Some(n)) => Some(part_range(&object, n)?),
        (None, None) => None,
    };
    let current = read.version_id.is_none();
    Ok(ObjectView {
        version_header: version_header(&bucket, &object),
        expiration: current
            .then(|| super::lifecycle::expiration_of(&bucket, &object))
            .flatten(),
        object,
        range,
    })
}

/// GetObject: the object and a reader of the bytes asked for, opened now
/// (so a later overwrite cannot change what it yields).
pub async fn get(
    cloud: &Cloud,
    requester: &Requester,
    read: &ReadObject,
) -> Result<(ObjectView, ObjectReader)> {
    let view = head(cloud, requester, read).await?;
    let reader = open(
        cloud,
        &view.object,
        view.range.clone(),
        read.customer_key.as_ref(),
    )
    .await?;
    Ok((view, reader))
}

/// The `x-amz-version-id` answered for `object` of `bucket`: none in a
/// bucket that never kept versions.
pub fn version_header(bucket: &Bucket, object: &ObjectRecord) -> Option<String> {
    (bucket.versioning != Versioning::Unversioned).then(|| object.version_id.clone())
}

/// An object's ACL (of a version, or the latest), for requesters who may
/// read it, and the version's `x-amz-version-id`.
pub async fn acl(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<(Acl, Option<String>)> {
    let (bucket, object) = readable_version(
        cloud,
        requester,
        bucket,
        key,
        version_id,
        Permission::ReadAcp,
    )
    .await?;
    Ok((
        Acl::from_json(&object.acl_json, &object.owner_account),
        version_header(&bucket, &object),
    ))
}

/// The object (the latest, or the version `version_id`) and its bucket,
/// after checking `requester` holds `permission` on it by its ACL or a
/// bucket policy grant. Whether it is missing is told only to requesters
/// allowed to list the bucket, AccessDenied otherwise (so existence does
/// not leak), as S3 does: a missing key is NoSuchKey, a missing version
/// NoSuchVersion, and a latest delete marker NoSuchKey saying it is a
/// marker. A delete marker named by its id is MethodNotAllowed.
pub(crate) async fn readable_version(
    cloud: &Cloud,
    requester: &Requester,
    bucket_name: &str,
    key: &str,
    version_id: Option<&str>,
    permission: Permission,
) -> Result<(Bucket, ObjectRecord)> {
    let version_id = version_id.map(checked_id).transpose()?;
    let bucket = bucket(cloud, bucket_name).await?;
    let found = cloud
        .store
        .object_version(bucket_name, key, version_id)
        .await?;
    let may_list = || {
        acl_allows(
            &bucket,
            &bucket.acl_json,
            &bucket.account_id,
            requester,
            Permission::Read,
        ) || requester.granted(bucket_name, None, Permission::Read)
    };
    let object = match found {
        None => {
            return Err(match (may_list(), version_id) {
                (false, _) => ObjectError::AccessDenied,
                (true, None) => ObjectError::NoSuchKey,
                (true, Some(_)) => ObjectError::NoSuchVersion,
            });
        }
        Some(marker) if marker.delete_marker => {
            return Err(match (version_id, may_list()) {
                (Some(_), _) => ObjectError::MethodNotAllowed {
                    version_id: marker.version_id,
                    last_modified: marker.last_modified,
                },
                (None, true) => ObjectError::DeleteMarker {
                    version_id: marker.version_id,
                },
                (None, false) => ObjectError::AccessDenied,
            });
        }
        Some(object) => object,
    };
    if !acl_allows(
        &bucket,
        &object.acl_json,
        &object.owner_account,
        requester,
        permission,
    ) && !requester.granted(bucket_name, Some(key), permission)
    {
        return Err(ObjectError::AccessDenied);
    }
    Ok((bucket, object))
}

/// The bytes of part `n` (1-based) of an object.
fn part_range(object: &ObjectRecord, part_number: i32) -> Result<Range<u64>> {
    let index = usize::try_from(i64::from(part_number) - 1)
        .map_err(|_| ObjectError::PartNumberOutOfRange)?;
    let segment = object
        .segments
        .get(index)
        .ok_or(ObjectError::NoSuchPartNumber)?;
    let start: u64 = object.segments[..index].iter().map(|s| s.size).sum();
    Ok(start..start + segment.size)
}

/// The bytes of a copy's source range (`first..=last`), which must lie
/// within the source.
pub(crate) fn copy_range(range: &RangeInclusive<u64>, size: u64) -> Result<Range<u64>> {
    if *range.end() >= size {
        return Err(ObjectError::InvalidRange);
    }
    Ok(*range.start()..range.end() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::acl::AclRequest;
    use crate::objects::buckets;
    use crate::objects::testing;
    use mallee_store::{Segment, UnixMillis};

    fn object(etag: &str, last_modified: UnixMillis, parts: &[u64]) -> ObjectRecord {
        ObjectRecord {
            bucket: "b".into(),
            key: "k".into(),
            segments: parts
                .iter()
                .map(|&size| Segment {
                    blob_id: "0".repeat(32),
                    size,
                })
                .collect(),
            size: parts.iter().sum(),
            etag: etag.into(),
            last_modified,
            metadata: Default::default(),
            acl_json: String::new(),
            owner_account: "A".into(),
            tags: Default::default(),
            version_id: mallee_store::NULL_VERSION.into(),
            delete_marker: false,
            encryption: None,
        }
    }

    #[test]
    fn conditions_follow_s3_precedence() {
        let o = object("e1", 10_500, &[1]);
        let etag = |e: &str| Some(EtagCondition::Etag(e.into()));
        let ok = |c: Conditions| c.check_read(&o);
        assert_eq!(ok(Conditions::default()), Ok(()));
        assert_eq!(
            ok(Conditions {
                if_match: etag("other"),
                ..Default::default()
            }),
            Err(ObjectError::PreconditionFailed)
        );
        // If-Match wins over a failing If-Unmodified-Since.
        assert_eq!(
            ok(Conditions {
                if_match: etag("e1"),
                if_unmodified_since: Some(5),
                ..Default::default()
            }),
            Ok(())
        );
        assert_eq!(
            ok(Conditions {
                if_unmodified_since: Some(9),
                ..Default::default()
            }),
            Err(ObjectError::PreconditionFailed)
        );
        let not_modified = Err(ObjectError::NotModified {
            etag: "e1".into(),
            last_modified: 10_500,
        });
        assert_eq!(
            ok(Conditions {
                if_none_match: Some(EtagCondition::Any),
                ..Default::default()
            }),
            not_modified
        );
        assert_eq!(
            ok(Conditions {
                if_modified_since: Some(10),
                ..Default::default()
            }),
            not_modified
        );
        // If-None-Match wins over a failing If-Modified-Since.
        assert_eq!(
            ok(Conditions {
                if_none_match: etag("other"),
                if_modified_since: Some(10),
                ..Default::default()
            }),
            Ok(())
        );
        assert_eq!(
            Conditions {
                if_modified_since: Some(10),
                ..Default::default()
            }
            .check_copy_source(&o),
            Err(ObjectError::PreconditionFailed)
        );
    }

    #[test]
    fn ranges_and_parts_select_bytes_as_s3_does() {
        let from = |first, last| ByteRange::From { first, last };
        assert_eq!(from(0, Some(4)).within(10), Ok(0..5));
        assert_eq!(from(5, Some(100)).within(10), Ok(5..10));
        assert_eq!(from(5, None).within(10), Ok(5..10));
        assert_eq!(from(10, None).within(10), Err(ObjectError::InvalidRange));
        assert_eq!(from(6, Some(5)).within(10), Err(ObjectError::InvalidRange));
        assert_eq!(ByteRange::Suffix(3).within(10), Ok(7..10));
        assert_eq!(ByteRange::Suffix(30).within(10), Ok(0..10));
        assert_eq!(ByteRange::Suffix(3).within(0), Ok(0..0));
        assert_eq!(
            ByteRange::Suffix(0).within(10),
            Err(ObjectError::InvalidRange)
        );

        let multipart = object("e-2", 0, &[4, 6]);
        assert_eq!(part_range(&multipart, 1), Ok(0..4));
        assert_eq!(part_range(&multipart, 2), Ok(4..10));
        assert_eq!(
            part_range(&multipart, 3),
            Err(ObjectError::NoSuchPartNumber)
        );
        assert_eq!(
            part_range(&multipart, 0),
            Err(ObjectError::PartNumberOutOfRange)
        );
        assert_eq!(
            part_range(&multipart, i32::MIN),
            Err(ObjectError::PartNumberOutOfRange)
        );
        assert_eq!(copy_range(&(2..=5), 10), Ok(2..6));
        assert_eq!(copy_range(&(2..=10), 10), Err(ObjectError::InvalidRange));
    }

    #[tokio::test]
    async fn missing_keys_are_told_only_to_those_who_may_list() {
        let (cloud, alice, bob) = testing::with_bucket().await;
        let alice_id = alice.account().expect("account").to_owned();
        let data: Vec<u8> = (0..100u8).collect();
        testing::put(&cloud, &alice_id, "b", "k", &data, &Acl::private(&alice_id)).await;
        let read = |key: &str, range| ReadObject {
            bucket: "b".into(),
            key: key.into(),
            range,
            ..Default::default()
        };

        let (view, reader) = get(&cloud, &alice, &read("k", Some(ByteRange::Suffix(10))))
            .await
            .expect("get");
        assert_eq!(
            (view.range.clone(), view.len(), reader.len()),
            (Some(90..100), 10, 10)
        );
        assert_eq!(
            head(&cloud, &bob, &read("k", None)).await.err(),
            Some(ObjectError::AccessDenied)
        );
        assert_eq!(
            head(&cloud, &alice, &read("missing", None)).await.err(),
            Some(ObjectError::NoSuchKey)
        );
        assert_eq!(
            head(&cloud, &bob, &read("missing", None)).await.err(),
            Some(ObjectError::AccessDenied)
        );
        buckets::set_acl(
            &cloud,
            &alice,
            "b",
            AclRequest::Canned("public-read".into()),
        )
        .await
        .expect("public bucket");
        assert_eq!(
            head(&cloud, &bob, &read("missing", None)).await.err(),
            Some(ObjectError::NoSuchKey)
        );
        assert_eq!(
            acl(&cloud, &alice, "b", "k", None).await.map(|a| a.0.owner),
            Ok(alice_id)
        );
        assert_eq!(
            acl(&cloud, &bob, "b", "k", None).await.map(|a| a.0),
            Err(ObjectError::AccessDenied)
        );
    }
}
