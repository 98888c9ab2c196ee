//! Lifecycle rules on the wire: Put/Get/DeleteBucketLifecycleConfiguration
//! (each rule's `Filter` given back in the form it was put), and the
//! `x-amz-expiration` header of reads. What the rules mean and the pass
//! that carries them out are `mallee_cloud::objects::lifecycle`.

use http::StatusCode;
use mallee_cloud::objects::lifecycle::{
    self, AndRequest, Expiration, Filter, FilterRequest, LifecycleRule, RuleRequest,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::dto::{http_date, timestamp};
use super::error::s3_error;
use super::{S3Api, caller};

fn millis(ts: &Timestamp) -> i64 {
    let t = time::OffsetDateTime::from(ts.clone());
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn tag_pair(tag: Tag) -> (String, String) {
    (tag.key.unwrap_or_default(), tag.value.unwrap_or_default())
}

fn rule_request(rule: LifecycleRule_) -> RuleRequest {
    RuleRequest {
        id: rule.id,
        status: rule.status.as_str().to_owned(),
        filter: rule.filter.map(|f| FilterRequest {
            prefix: f.prefix,
            tag: f.tag.map(tag_pair),
            size_greater_than: f.object_size_greater_than,
            size_less_than: f.object_size_less_than,
            and: f.and.map(|and| AndRequest {
                prefix: and.prefix,
                tags: and
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .map(tag_pair)
                    .collect(),
                size_greater_than: and.object_size_greater_than,
                size_less_than: and.object_size_less_than,
            }),
        }),
        prefix: rule.prefix,
        expiration: rule.expiration.map(|e| {
            (
                e.days,
                e.date.as_ref().map(millis),
                e.expired_object_delete_marker,
            )
        }),
        noncurrent_expiration: rule
            .noncurrent_version_expiration
            .map(|n| (n.noncurrent_days, n.newer_noncurrent_versions)),
        abort_incomplete_upload: rule
            .abort_incomplete_multipart_upload
            .map(|a| a.days_after_initiation),
        transitions: rule.transitions.is_some_and(|t| !t.is_empty())
            || rule
                .noncurrent_version_transitions
                .is_some_and(|t| !t.is_empty()),
    }
}

/// s3s's rule type, named apart from the cloud's.
type LifecycleRule_ = s3s::dto::LifecycleRule;

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: Some(key.to_owned()),
        value: Some(value.to_owned()),
    }
}

fn size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn rule_output(rule: LifecycleRule) -> LifecycleRule_ {
    let (prefix, filter) = match rule.filter {
        Filter::LegacyPrefix(p) => (Some(p), None),
        Filter::All => (None, Some(LifecycleRuleFilter::default())),
        Filter::Prefix(p) => (
            None,
            Some(LifecycleRuleFilter {
                prefix: Some(p),
                ..Default::default()
            }),
        ),
        Filter::Tag(k, v) => (
            None,
            Some(LifecycleRuleFilter {
                tag: Some(tag(&k, &v)),
                ..Default::default()
            }),
        ),
        Filter::SizeGreaterThan(n) => (
            None,
            Some(LifecycleRuleFilter {
                object_size_greater_than: Some(size(n)),
                ..Default::default()
            }),
        ),
        Filter::SizeLessThan(n) => (
            None,
            Some(LifecycleRuleFilter {
                object_size_less_than: Some(size(n)),
                ..Default::default()
            }),
        ),
        Filter::And {
            prefix,
            tags,
            size_greater_than,
            size_less_than,
        } => (
            None,
            Some(LifecycleRuleFilter {
                and: Some(LifecycleRuleAndOperator {
                    prefix,
                    tags: (!tags.is_empty()).then(|| tags.iter().map(|(k, v)| tag(k, v)).collect()),
                    object_size_greater_than: size_greater_than.map(size),
                    object_size_less_than: size_less_than.map(size),
                }),
                ..Default::default()
            }),
        ),
    };
    LifecycleRule_ {
        id: Some(rule.id),
        status: ExpirationStatus::from_static(if rule.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        prefix,
        filter,
        expiration: rule.expiration.map(|e| match e {
            Expiration::Days(d) => LifecycleExpiration {
                days: Some(i32::try_from(d).unwrap_or(i32::MAX)),
                ..Default::default()
            },
            Expiration::Date(at) => LifecycleExpiration {
                date: Some(timestamp(at)),
                ..Default::default()
            },
            Expiration::ExpiredObjectDeleteMarker(on) => LifecycleExpiration {
                expired_object_delete_marker: Some(on),
                ..Default::default()
            },
        }),
        noncurrent_version_expiration: rule.noncurrent_expiration.map(|n| {
            NoncurrentVersionExpiration {
                noncurrent_days: Some(i32::try_from(n.days).unwrap_or(i32::MAX)),
                newer_noncurrent_versions: n
                    .newer_versions
                    .map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
            }
        }),
        abort_incomplete_multipart_upload: rule.abort_incomplete_upload_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(i32::try_from(d).unwrap_or(i32::MAX)),
            }
        }),
        noncurrent_version_transitions: None,
        transitions: None,
    }
}

pub(super) async fn put_bucket_lifecycle_configuration(
    api: &S3Api,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let Some(config) = input.lifecycle_configuration else {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    };
    let rules = config.rules.into_iter().map(rule_request).collect();
    lifecycle::put(&api.cloud, &requester, &input.bucket, rules)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(
        PutBucketLifecycleConfigurationOutput::default(),
    ))
}

pub(super) async fn get_bucket_lifecycle_configuration(
    api: &S3Api,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let rules = lifecycle::get(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(rules.into_iter().map(rule_output).collect()),
        transition_default_minimum_object_size: None,
    }))
}

pub(super) async fn delete_bucket_lifecycle(
    api: &S3Api,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    lifecycle::delete(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::with_status(
        DeleteBucketLifecycleOutput {},
        StatusCode::NO_CONTENT,
    ))
}

/// The `x-amz-expiration` value for an expiry at `at` by the rule `rule_id`
/// (`expiry-date="Fri, 23 Dec 2012 00:00:00 GMT", rule-id="…"`).
pub(super) fn expiration_header(at: i64, rule_id: &str) -> Option<String> {
    let date = http_date(&timestamp(at))?;
    let rule_id = rule_id.replace('\\', "\\\\").replace('"', "\\\"");
    Some(format!("expiry-date=\"{date}\", rule-id=\"{rule_id}\""))
}
