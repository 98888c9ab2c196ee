//! Tagging on the wire: Put/Get/DeleteBucketTagging and
//! Put/Get/DeleteObjectTagging, the `x-amz-tagging` header of writes (a
//! URL-encoded query string) and the `x-amz-tagging-count` header of
//! reads. What a tag set may hold and who may change it is
//! `mallee_cloud::objects::tagging`.

use http::HeaderValue;
use mallee_cloud::objects::tagging::{self, TagPairs};
use mallee_store::objects::Tags;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::error::s3_error;
use super::{S3Api, caller};

/// The pairs of an `x-amz-tagging` header, in order and with duplicates
/// (`a=1&b` is `a` = `1` and `b` = empty, `+` a space, as forms encode).
pub(super) fn header_pairs(header: Option<&str>) -> TagPairs {
    header.map_or_else(Vec::new, |h| {
        form_urlencoded::parse(h.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
}

/// The `x-amz-tagging-count` header of an object with tags.
pub(super) fn count_header(tags: &Tags) -> Option<(http::HeaderName, HeaderValue)> {
    (!tags.is_empty()).then(|| {
        (
            s3s::header::X_AMZ_TAGGING_COUNT,
            HeaderValue::from(tags.len()),
        )
    })
}

/// The pairs of a `<Tagging>` document; a tag without its key or value
/// does not validate.
fn document_pairs(tagging: Tagging) -> S3Result<TagPairs> {
    tagging
        .tag_set
        .into_iter()
        .map(|tag| match (tag.key, tag.value) {
            (Some(key), Some(value)) => Ok((key, value)),
            _ => Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            )),
        })
        .collect()
}

/// A tag set as a `<TagSet>`, in key order.
fn tag_set(tags: Tags) -> TagSet {
    tags.into_iter()
        .map(|(key, value)| Tag {
            key: Some(key),
            value: Some(value),
        })
        .collect()
}

pub(super) async fn put_bucket_tagging(
    api: &S3Api,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let pairs = document_pairs(input.tagging)?;
    tagging::put_bucket_tags(&api.cloud, &requester, &input.bucket, pairs)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::with_status(
        PutBucketTaggingOutput {},
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn get_bucket_tagging(
    api: &S3Api,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let tags = tagging::bucket_tags(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: tag_set(tags),
    }))
}

pub(super) async fn delete_bucket_tagging(
    api: &S3Api,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    tagging::delete_bucket_tags(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::with_status(
        DeleteBucketTaggingOutput {},
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn put_object_tagging(
    api: &S3Api,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let pairs = document_pairs(input.tagging)?;
    let version_id = tagging::put_object_tags(
        &api.cloud,
        &requester,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        pairs,
    )
    .await
    .map_err(s3_error)?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

pub(super) async fn get_object_tagging(
    api: &S3Api,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = &req.input;
    let (tags, version_id) = tagging::object_tags(
        &api.cloud,
        &caller(&req),
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
    )
    .await
    .map_err(s3_error)?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: tag_set(tags),
        version_id,
    }))
}

pub(super) async fn delete_object_tagging(
    api: &S3Api,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = &req.input;
    let version_id = tagging::delete_object_tags(
        &api.cloud,
        &caller(&req),
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
    )
    .await
    .map_err(s3_error)?;
    Ok(S3Response::with_status(
        DeleteObjectTaggingOutput { version_id },
        http::StatusCode::NO_CONTENT,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagging_headers_are_query_strings() {
        assert_eq!(
            header_pairs(Some("a=1&b&c=x%20y+z&a=2&k%3D=%26")),
            [
                ("a".to_owned(), "1".to_owned()),
                ("b".into(), String::new()),
                ("c".into(), "x y z".into()),
                ("a".into(), "2".into()),
                ("k=".into(), "&".into()),
            ]
        );
        assert!(header_pairs(None).is_empty());
        assert!(header_pairs(Some("")).is_empty());
        assert_eq!(count_header(&Tags::new()), None);
        let two = Tags::from([("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(
            count_header(&two).map(|(_, v)| v),
            Some(HeaderValue::from(2))
        );
    }
}
