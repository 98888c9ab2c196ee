//! Tags on buckets and objects, as S3 keeps them: reading, replacing and
//! removing a bucket's tag set (its owner's alone) or an object's (by the
//! object's READ to read, the bucket's WRITE to change, as writing the
//! object would), and checking a tag set a request gives against S3's
//! limits with S3's messages. A tag set is checked whole before anything
//! is stored, so a refused one changes nothing.

use mallee_store::objects::Tags;

use super::acl::Permission;
use super::error::{ObjectError, Result};
use super::reads::{readable_version, version_header};
use super::versions::checked_id;
use super::{Requester, bucket_for, owned_bucket};
use crate::Cloud;

/// Most tags an object may carry.
pub const MAX_OBJECT_TAGS: usize = 10;
/// Most tags a bucket may carry.
pub const MAX_BUCKET_TAGS: usize = 50;
/// Longest key, in UTF-16 code units (S3 stores tags as UTF-16 and counts
/// so; a character outside the BMP counts twice).
const MAX_KEY_LEN: usize = 128;
/// Longest value, counted alike.
const MAX_VALUE_LEN: usize = 256;
/// Keys S3 keeps for itself.
const RESERVED_PREFIX: &str = "aws:";

/// A tag set as a request gives it: pairs in the order sent, duplicates
/// included (S3 refuses them, so they must survive parsing).
pub type TagPairs = Vec<(String, String)>;

/// What a tag set is for: the limit and some messages differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tagged {
    Object,
    Bucket,
}

/// Whether `c` may appear in a tag: letters, numbers, white space and
/// `_ . : / = + - @` (S3's `[\p{L}\p{Z}\p{N}_.:/=+\-@]`).
fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// Checks `pairs` as S3 does and returns them as a set: too many is
/// BadRequest, the rest InvalidTag.
fn checked(pairs: TagPairs, tagged: Tagged) -> Result<Tags> {
    let too_many = match tagged {
        Tagged::Object if pairs.len() > MAX_OBJECT_TAGS => {
            Some("Object tags cannot be greater than 10")
        }
        Tagged::Bucket if pairs.len() > MAX_BUCKET_TAGS => {
            Some("Bucket tag count cannot be greater than 50")
        }
        _ => None,
    };
    if let Some(message) = too_many {
        return Err(ObjectError::TooManyTags(message.into()));
    }
    let invalid = |message: &str| Err(ObjectError::InvalidTag(message.into()));
    let mut tags = Tags::new();
    for (key, value) in pairs {
        if tags.contains_key(&key) {
            return invalid("Cannot provide multiple Tags with the same key");
        }
        if key.starts_with(RESERVED_PREFIX) {
            return invalid(match tagged {
                Tagged::Object => "Your TagKey cannot be prefixed with aws:",
                Tagged::Bucket => "System tags cannot be added/updated by requester",
            });
        }
        if key.encode_utf16().count() > MAX_KEY_LEN {
            return invalid("The TagKey you have provided is too long, max 128");
        }
        if value.encode_utf16().count() > MAX_VALUE_LEN {
            return invalid("The TagValue you have provided is too long, max 256");
        }
        if key.is_empty() || !key.chars().all(allowed) {
            return invalid("The TagKey you have provided is invalid");
        }
        if !value.chars().all(allowed) {
            return invalid("The TagValue you have provided is invalid");
        }
        tags.insert(key, value);
    }
    Ok(tags)
}

/// An object's tag set from the `x-amz-tagging` header of a PutObject,
/// CopyObject or CreateMultipartUpload: a key given twice is refused as
/// the header's error, the rest as a tag set's.
pub(crate) fn header_tags(pairs: TagPairs) -> Result<Tags> {
    for (i, (key, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(earlier, _)| earlier == key) {
            return Err(ObjectError::InvalidTaggingHeader);
        }
    }
    checked(pairs, Tagged::Object)
}

/// A bucket's tag set, for its owner; NoSuchTagSet when it has none.
pub async fn bucket_tags(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<Tags> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    if bucket.tags.is_empty() {
        Err(ObjectError::NoSuchTagSet)
    } else {
        Ok(bucket.tags)
    }
}

/// Replaces a bucket's tag set (an empty one removes it).
pub async fn put_bucket_tags(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    pairs: TagPairs,
) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    let tags = checked(pairs, Tagged::Bucket)?;
    cloud
        .store
        .set_bucket_tags(&bucket.name, &tags)
        .await
        .map_err(ObjectError::from_write)
}

/// Removes a bucket's tag set (none is no error).
pub async fn delete_bucket_tags(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<()> {
    put_bucket_tags(cloud, requester, bucket, TagPairs::new()).await
}

/// The tag set of an object, or of one version (empty when it has none),
/// and the version's `x-amz-version-id`.
pub async fn object_tags(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<(Tags, Option<String>)> {
    let (bucket, object) =
        readable_version(cloud, requester, bucket, key, version_id, Permission::Read).await?;
    let header = version_header(&bucket, &object);
    Ok((object.tags, header))
}

/// Replaces the tag set of an object, or of one version (an empty one
/// removes it); returns the version's `x-amz-version-id`.
pub async fn put_object_tags(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    pairs: TagPairs,
) -> Result<Option<String>> {
    let bucket = bucket_for(cloud, requester, bucket, Permission::Write).await?;
    let version_id = version_id.map(checked_id).transpose()?;
    let tags = checked(pairs, Tagged::Object)?;
    let object = match cloud
        .store
        .object_version(&bucket.name, key, version_id)
        .await?
    {
        None if version_id.is_some() => return Err(ObjectError::NoSuchVersion),
        None => return Err(ObjectError::NoSuchKey),
        // A delete marker has no tags: naming it is not allowed, and a
        // key whose latest is one reads as missing.
        Some(marker) if marker.delete_marker => {
            return Err(match version_id {
                Some(_) => ObjectError::MethodNotAllowed {
                    version_id: marker.version_id,
                    last_modified: marker.last_modified,
                },
                None => ObjectError::DeleteMarker {
                    version_id: marker.version_id,
                },
            });
        }
        Some(object) => object,
    };
    if cloud
        .store
        .set_object_tags(&bucket.name, key, Some(&object.version_id), &tags)
        .await?
    {
        Ok(version_header(&bucket, &object))
    } else {
        Err(ObjectError::NoSuchKey)
    }
}

/// Removes the tag set of an object, or of one version.
pub async fn delete_object_tags(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Option<String>> {
    put_object_tags(cloud, requester, bucket, key, version_id, TagPairs::new()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing;
    use crate::objects::writes::{self, Body, PutObject};
    use mallee_store::ObjectMetadata;

    fn pairs(list: &[(&str, &str)]) -> TagPairs {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn numbered(n: usize) -> TagPairs {
        (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect()
    }

    /// A tag set, what it is for, and the InvalidTag message it gets.
    type Refusal<'a> = (&'a [(&'a str, &'a str)], Tagged, &'a str);

    fn invalid(message: &str) -> Result<Tags> {
        Err(ObjectError::InvalidTag(message.into()))
    }

    #[test]
    fn tag_sets_are_checked_as_s3_checks_them() {
        let at_limits = pairs(&[(&"k".repeat(128), &"v".repeat(256)), ("a b", "")]);
        assert_eq!(
            checked(at_limits.clone(), Tagged::Object).map(|t| t.len()),
            Ok(2)
        );
        assert_eq!(
            checked(numbered(10), Tagged::Object).map(|t| t.len()),
            Ok(10)
        );
        assert_eq!(
            checked(numbered(11), Tagged::Object),
            Err(ObjectError::TooManyTags(
                "Object tags cannot be greater than 10".into()
            ))
        );
        assert_eq!(
            checked(numbered(50), Tagged::Bucket).map(|t| t.len()),
            Ok(50)
        );
        assert_eq!(
            checked(numbered(51), Tagged::Bucket),
            Err(ObjectError::TooManyTags(
                "Bucket tag count cannot be greater than 50".into()
            ))
        );
        let (long_key, long_value) = ("k".repeat(129), "é".repeat(257));
        let refused: [Refusal<'_>; 9] = [
            (
                &[(&long_key, "v")],
                Tagged::Object,
                "The TagKey you have provided is too long, max 128",
            ),
            (
                &[("k", &long_value)],
                Tagged::Bucket,
                "The TagValue you have provided is too long, max 256",
            ),
            (
                &[("a", "1"), ("a", "2")],
                Tagged::Bucket,
                "Cannot provide multiple Tags with the same key",
            ),
            (
                &[("aws:x", "1")],
                Tagged::Object,
                "Your TagKey cannot be prefixed with aws:",
            ),
            (
                &[("aws:x", "1")],
                Tagged::Bucket,
                "System tags cannot be added/updated by requester",
            ),
            (
                &[("", "1")],
                Tagged::Object,
                "The TagKey you have provided is invalid",
            ),
            (
                &[("a&b", "1")],
                Tagged::Object,
                "The TagKey you have provided is invalid",
            ),
            (
                &[("a", "{x}")],
                Tagged::Object,
                "The TagValue you have provided is invalid",
            ),
            // Counted in UTF-16: 65 characters outside the BMP are 130.
            (
                &[(&"𝔸".repeat(65), "v")],
                Tagged::Object,
                "The TagKey you have provided is too long, max 128",
            ),
        ];
        for (tags, tagged, message) in refused {
            assert_eq!(checked(pairs(tags), tagged), invalid(message), "{tags:?}");
        }
        assert!(checked(pairs(&[(&"𝔸".repeat(64), "v")]), Tagged::Object).is_ok());
        assert!(checked(pairs(&[("Ключ_1 .:/=+-@", "значение")]), Tagged::Object).is_ok());
        assert_eq!(
            header_tags(pairs(&[("a", "1"), ("b", "2"), ("a", "3")])),
            Err(ObjectError::InvalidTaggingHeader)
        );
        assert_eq!(
            header_tags(numbered(11)),
            Err(ObjectError::TooManyTags(
                "Object tags cannot be greater than 10".into()
            ))
        );
    }

    #[tokio::test]
    async fn tags_are_their_owners_to_change() {
        let (cloud, alice, bob) = testing::with_bucket().await;
        assert_eq!(
            bucket_tags(&cloud, &alice, "b").await,
            Err(ObjectError::NoSuchTagSet)
        );
        put_bucket_tags(&cloud, &alice, "b", pairs(&[("team", "a")]))
            .await
            .expect("tag bucket");
        assert_eq!(
            bucket_tags(&cloud, &alice, "b").await,
            Ok(Tags::from([("team".into(), "a".into())]))
        );
        assert_eq!(
            bucket_tags(&cloud, &bob, "b").await,
            Err(ObjectError::AccessDenied)
        );
        assert_eq!(
            put_bucket_tags(&cloud, &bob, "b", TagPairs::new()).await,
            Err(ObjectError::AccessDenied)
        );
        // A refused set leaves the old one.
        assert!(matches!(
            put_bucket_tags(&cloud, &alice, "b", pairs(&[("aws:x", "1")])).await,
            Err(ObjectError::InvalidTag(_))
        ));
        assert_eq!(
            bucket_tags(&cloud, &alice, "b").await.map(|t| t.len()),
            Ok(1)
        );
        delete_bucket_tags(&cloud, &alice, "b")
            .await
            .expect("untag bucket");
        assert_eq!(
            bucket_tags(&cloud, &alice, "b").await,
            Err(ObjectError::NoSuchTagSet)
        );

        assert_eq!(
            put_object_tags(&cloud, &alice, "b", "k", None, pairs(&[("a", "1")])).await,
            Err(ObjectError::NoSuchKey)
        );
        let put = PutObject {
            bucket: "b".into(),
            key: "k".into(),
            acl: Default::default(),
            create_only: false,
            metadata: ObjectMetadata::default(),
            tags: pairs(&[("from", "put")]),
            body: Body {
                declared_size: None,
                expected_md5: None,
                stream: futures_util::stream::iter([Ok::<_, std::io::Error>(
                    bytes::Bytes::from_static(b"x"),
                )]),
            },
            encrypt: false,
            customer_key: None,
        };
        writes::put(&cloud, &alice, put).await.expect("put");
        assert_eq!(
            object_tags(&cloud, &alice, "b", "k", None).await,
            Ok(Tags::from([("from".into(), "put".into())])).map(|t| (t, None))
        );
        assert_eq!(
            object_tags(&cloud, &bob, "b", "k", None).await,
            Err(ObjectError::AccessDenied)
        );
        assert_eq!(
            put_object_tags(&cloud, &bob, "b", "k", None, TagPairs::new()).await,
            Err(ObjectError::AccessDenied)
        );
        assert_eq!(
            put_object_tags(&cloud, &alice, "b", "k", None, numbered(11)).await,
            Err(ObjectError::TooManyTags(
                "Object tags cannot be greater than 10".into()
            ))
        );
        delete_object_tags(&cloud, &alice, "b", "k", None)
            .await
            .expect("untag object");
        assert_eq!(
            object_tags(&cloud, &alice, "b", "k", None).await,
            Ok((Tags::new(), None))
        );
    }

    #[tokio::test]
    async fn uploads_check_their_tags_first_and_give_them_to_the_object() {
        use crate::objects::multipart::{self, CompletedPart};

        let (cloud, alice, _) = testing::with_bucket().await;
        let refused = testing::start_upload(&cloud, &alice, "mp", &[("a", "1"), ("a", "2")]).await;
        assert_eq!(refused.err(), Some(ObjectError::InvalidTaggingHeader));
        assert!(cloud.store.uploads("b").await.expect("uploads").is_empty());
        let upload = testing::start_upload(&cloud, &alice, "mp", &[("from", "mpu")])
            .await
            .expect("create");
        let stored = testing::upload_part(&cloud, &alice, &upload, 1, b"data".to_vec())
            .await
            .expect("part");
        let completed = CompletedPart {
            number: 1,
            etag: Some(stored.etag),
        };
        multipart::complete(&cloud, &alice, &upload, &[completed])
            .await
            .expect("complete");
        assert_eq!(
            object_tags(&cloud, &alice, "b", "mp", None).await,
            Ok(Tags::from([("from".into(), "mpu".into())])).map(|t| (t, None))
        );
    }
}
