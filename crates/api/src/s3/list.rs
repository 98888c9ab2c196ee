//! ListObjects (v1) and ListObjectsV2 on the wire: the marker, the
//! continuation token (the position, encoded), start-after, max-keys and
//! `encoding-type=url`. What a listing holds is
//! `mallee_cloud::objects::list`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mallee_cloud::Cloud;
use mallee_cloud::objects::list::{self, ListObjects, Listing};
use mallee_store::ObjectRecord;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::dto::{owner, timestamp};
use super::error::s3_error;
use super::{S3Api, caller};

pub(super) fn max_keys(value: Option<i32>) -> S3Result<Option<usize>> {
    value
        .map(|n| {
            usize::try_from(n).map_err(|_| {
                s3_error!(
                    InvalidArgument,
                    "Provided max-keys not an integer or within integer range"
                )
            })
        })
        .transpose()
}

/// The encoder of keys and prefixes `encoding-type` asks for.
pub(super) fn encoder(
    encoding: Option<&EncodingType>,
) -> S3Result<impl Fn(String) -> String + use<>> {
    let encode = match encoding.map(|e| e.as_str()) {
        None => false,
        Some("url") => true,
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "Invalid Encoding Method specified in Request"
            ));
        }
    };
    Ok(move |s: String| {
        if encode {
            mallee_sigv::uri_encode(s, false)
        } else {
            s
        }
    })
}

fn object_entry(
    object: ObjectRecord,
    owner: Option<Owner>,
    enc: &impl Fn(String) -> String,
) -> Object {
    Object {
        key: Some(enc(object.key)),
        last_modified: Some(timestamp(object.last_modified)),
        e_tag: Some(ETag::Strong(object.etag)),
        size: Some(object.size as i64),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        owner,
        ..Default::default()
    }
}

/// The Contents of a listing, with owners when `fetch_owner`.
async fn contents(
    cloud: &Cloud,
    objects: Vec<ObjectRecord>,
    fetch_owner: bool,
    enc: &impl Fn(String) -> String,
) -> Vec<Object> {
    let mut out = Vec::with_capacity(objects.len());
    for object in objects {
        let owner = match fetch_owner {
            true => Some(owner(cloud, &object.owner_account).await),
            false => None,
        };
        out.push(object_entry(object, owner, enc));
    }
    out
}

pub(super) fn common_prefixes(
    prefixes: Vec<String>,
    enc: &impl Fn(String) -> String,
) -> Vec<CommonPrefix> {
    prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect()
}

pub(super) async fn list_objects(
    api: &S3Api,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = &req.input;
    let enc = encoder(input.encoding_type.as_ref())?;
    let query = ListObjects {
        bucket: input.bucket.clone(),
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().unwrap_or_default(),
        start_after: input.marker.clone().unwrap_or_default(),
        max_keys: max_keys(input.max_keys)?,
    };
    let listing = list::list(&api.cloud, &caller(&req), &query)
        .await
        .map_err(s3_error)?;
    let Listing {
        objects,
        prefixes,
        max_keys,
        truncated,
        last,
        ..
    } = listing;
    let next_marker = (truncated && !query.delimiter.is_empty())
        .then_some(last)
        .flatten()
        .map(&enc);
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(query.bucket),
        prefix: Some(enc(query.prefix)),
        marker: Some(enc(query.start_after)),
        max_keys: Some(max_keys as i32),
        is_truncated: Some(truncated),
        contents: Some(contents(&api.cloud, objects, true, &enc).await),
        common_prefixes: Some(common_prefixes(prefixes, &enc)),
        delimiter: (!query.delimiter.is_empty()).then(|| enc(query.delimiter)),
        next_marker,
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}

fn encode_token(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(after.as_bytes())
}

fn decode_token(token: &str) -> S3Result<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

pub(super) async fn list_objects_v2(
    api: &S3Api,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = &req.input;
    let enc = encoder(input.encoding_type.as_ref())?;
    let start_after = match &input.continuation_token {
        Some(token) => decode_token(token)?,
        None => input.start_after.clone().unwrap_or_default(),
    };
    let query = ListObjects {
        bucket: input.bucket.clone(),
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().unwrap_or_default(),
        start_after,
        max_keys: max_keys(input.max_keys)?,
    };
    let listing = list::list(&api.cloud, &caller(&req), &query)
        .await
        .map_err(s3_error)?;
    let key_count = (listing.objects.len() + listing.prefixes.len()) as i32;
    let fetch_owner = input.fetch_owner.unwrap_or(false);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(query.bucket),
        prefix: Some(enc(query.prefix)),
        max_keys: Some(listing.max_keys as i32),
        key_count: Some(key_count),
        continuation_token: input.continuation_token.clone(),
        is_truncated: Some(listing.truncated),
        next_continuation_token: listing.resume_after.as_deref().map(encode_token),
        contents: Some(contents(&api.cloud, listing.objects, fetch_owner, &enc).await),
        common_prefixes: Some(common_prefixes(listing.prefixes, &enc)),
        delimiter: (!query.delimiter.is_empty()).then(|| enc(query.delimiter)),
        encoding_type: input.encoding_type.clone(),
        start_after: input.start_after.clone().map(&enc),
        ..Default::default()
    }))
}
