//! ListObjects (v1) and ListObjectsV2: prefix, delimiter with common
//! prefixes, marker / continuation token / start-after, max-keys and
//! `encoding-type=url`, in UTF-8 byte order of keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mallee_store::ObjectRecord;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::acl::Permission as Perm;
use super::{ObjectStore, caller, internal, owner_of, timestamp};

/// Objects fetched from the index per round trip.
const BATCH: usize = 1000;
/// A string greater than every key that starts with a given prefix: the
/// largest code point, appended.
const AFTER_EVERYTHING: char = '\u{10FFFF}';

/// One page of a listing.
#[derive(Debug, Default)]
pub(super) struct Listing {
    pub objects: Vec<ObjectRecord>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned.
    pub last: Option<String>,
    /// Where the next page starts (exclusive).
    pub resume_after: Option<String>,
}

/// Lists `bucket` from after `start_after`. When the position is a common
/// prefix (ends with the delimiter), its whole subtree is skipped.
pub(super) async fn list(
    store: &ObjectStore,
    bucket: &str,
    prefix: &str,
    delimiter: &str,
    start_after: &str,
    max_keys: usize,
) -> S3Result<Listing> {
    let mut listing = Listing::default();
    let mut after = start_after.to_owned();
    if !delimiter.is_empty()
        && after.len() > prefix.len()
        && after.starts_with(prefix)
        && after.ends_with(delimiter)
        && after[prefix.len()..].find(delimiter)
            == Some(after.len() - prefix.len() - delimiter.len())
    {
        after.push(AFTER_EVERYTHING);
    }
    let mut count = 0usize;
    'pages: loop {
        let batch = store
            .cloud
            .store
            .list_objects(bucket, prefix, &after, BATCH)
            .await
            .map_err(internal)?;
        let full_batch = batch.len() == BATCH;
        for object in batch {
            let common = (!delimiter.is_empty())
                .then(|| {
                    object.key[prefix.len()..]
                        .find(delimiter)
                        .map(|i| object.key[..prefix.len() + i + delimiter.len()].to_owned())
                })
                .flatten();
            if let Some(common) = &common
                && listing.prefixes.last() == Some(common)
            {
                after = object.key.clone();
                continue;
            }
            if count == max_keys {
                listing.truncated = true;
                break 'pages;
            }
            count += 1;
            match common {
                Some(common) => {
                    // Jump past the whole subtree of this common prefix.
                    after = format!("{common}{AFTER_EVERYTHING}");
                    listing.resume_after = Some(after.clone());
                    listing.last = Some(common.clone());
                    listing.prefixes.push(common);
                    continue 'pages;
                }
                None => {
                    after = object.key.clone();
                    listing.resume_after = Some(after.clone());
                    listing.last = Some(object.key.clone());
                    listing.objects.push(object);
                }
            }
        }
        if !full_batch {
            break;
        }
    }
    if !listing.truncated {
        listing.resume_after = None;
    }
    Ok(listing)
}

fn max_keys(value: Option<i32>) -> S3Result<usize> {
    match value {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(
            InvalidArgument,
            "Provided max-keys not an integer or within integer range"
        )),
        Some(n) => Ok((n as usize).min(1000)),
    }
}

fn url_encoded(encode: bool) -> impl Fn(String) -> String {
    move |s| {
        if encode {
            mallee_sigv::uri_encode(s, false)
        } else {
            s
        }
    }
}

fn wants_url(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding.map(|e| e.as_str()) {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
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

async fn owners(store: &ObjectStore, objects: &[ObjectRecord]) -> Vec<Owner> {
    let mut out = Vec::with_capacity(objects.len());
    for object in objects {
        out.push(owner_of(
            &object.owner_account,
            &store.account_name(&object.owner_account).await,
        ));
    }
    out
}

pub(super) async fn list_objects(
    store: &ObjectStore,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = &req.input;
    store
        .bucket_for(&input.bucket, &caller(&req), Perm::Read)
        .await?;
    let encode = wants_url(input.encoding_type.as_ref())?;
    let enc = url_encoded(encode);
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().unwrap_or_default();
    let marker = input.marker.clone().unwrap_or_default();
    let limit = max_keys(input.max_keys)?;
    let listing = list(store, &input.bucket, &prefix, &delimiter, &marker, limit).await?;
    let owners = owners(store, &listing.objects).await;
    let contents: Vec<Object> = listing
        .objects
        .into_iter()
        .zip(owners)
        .map(|(o, owner)| object_entry(o, Some(owner), &enc))
        .collect();
    let next_marker = (listing.truncated && !delimiter.is_empty())
        .then(|| listing.last.clone())
        .flatten()
        .map(&enc);
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket.clone()),
        prefix: Some(enc(prefix)),
        marker: Some(enc(marker)),
        max_keys: Some(limit as i32),
        is_truncated: Some(listing.truncated),
        contents: Some(contents),
        common_prefixes: Some(
            listing
                .prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(enc(p)),
                })
                .collect(),
        ),
        delimiter: (!delimiter.is_empty()).then(|| enc(delimiter)),
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
    store: &ObjectStore,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = &req.input;
    store
        .bucket_for(&input.bucket, &caller(&req), Perm::Read)
        .await?;
    let encode = wants_url(input.encoding_type.as_ref())?;
    let enc = url_encoded(encode);
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().unwrap_or_default();
    let start = match &input.continuation_token {
        Some(token) => decode_token(token)?,
        None => input.start_after.clone().unwrap_or_default(),
    };
    let limit = max_keys(input.max_keys)?;
    let listing = list(store, &input.bucket, &prefix, &delimiter, &start, limit).await?;
    let fetch_owner = input.fetch_owner.unwrap_or(false);
    let owners = if fetch_owner {
        owners(store, &listing.objects)
            .await
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None; listing.objects.len()]
    };
    let key_count = (listing.objects.len() + listing.prefixes.len()) as i32;
    let contents: Vec<Object> = listing
        .objects
        .into_iter()
        .zip(owners)
        .map(|(o, owner)| object_entry(o, owner, &enc))
        .collect();
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket.clone()),
        prefix: Some(enc(prefix)),
        max_keys: Some(limit as i32),
        key_count: Some(key_count),
        continuation_token: input.continuation_token.clone(),
        is_truncated: Some(listing.truncated),
        next_continuation_token: listing.resume_after.as_deref().map(encode_token),
        contents: Some(contents),
        common_prefixes: Some(
            listing
                .prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(enc(p)),
                })
                .collect(),
        ),
        delimiter: (!delimiter.is_empty()).then(|| enc(delimiter)),
        encoding_type: input.encoding_type.clone(),
        start_after: input.start_after.clone().map(&enc),
        ..Default::default()
    }))
}
