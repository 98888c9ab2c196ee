//! Lifecycle rules, as S3 keeps them: a bucket's rules (its owner's to
//! read, replace and remove; checked whole as S3 checks them before
//! anything is stored), which objects a rule's filter selects (a prefix,
//! tags, object sizes, or all of them with `And`), when a rule makes a
//! version expire, and the `x-amz-expiration` a read of a current object
//! answers. The background pass that carries the rules out is
//! [`super::lifecycle_pass`].
//!
//! S3 counts a rule's days from the version's creation (a noncurrent
//! version's from when it stopped being current; an upload's from its
//! initiation) and rounds the moment up to the next midnight UTC, so an
//! object written at 10:30 with a one-day rule expires at midnight after
//! the next day; a rule's `Date` must itself be a midnight.

use mallee_store::objects::Tags;
use mallee_store::{Bucket, BucketSetting, ObjectRecord, UnixMillis};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::error::{ObjectError, Result};
use super::{Requester, owned_bucket};
use crate::Cloud;

/// Most rules a bucket may have (S3: 1,000).
pub const MAX_RULES: usize = 1000;
/// Longest rule id.
const MAX_ID_LEN: usize = 255;
/// Most noncurrent versions a rule may keep (`NewerNoncurrentVersions`).
const MAX_NEWER_VERSIONS: u32 = 100;
/// A day in milliseconds.
pub const DAY_MILLIS: i64 = 86_400_000;

/// Which objects a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Filter {
    /// The rule's own `Prefix` (S3's older form, without `Filter`).
    LegacyPrefix(String),
    /// `Filter` with nothing in it: every object.
    All,
    /// Keys that start with this.
    Prefix(String),
    /// Objects carrying this tag.
    Tag(String, String),
    /// Objects larger than this many bytes.
    SizeGreaterThan(u64),
    /// Objects smaller than this many bytes.
    SizeLessThan(u64),
    /// Every condition given.
    And {
        /// Keys that start with this.
        prefix: Option<String>,
        /// Tags the object must all carry.
        tags: Vec<(String, String)>,
        /// Objects larger than this.
        size_greater_than: Option<u64>,
        /// Objects smaller than this.
        size_less_than: Option<u64>,
    },
}

impl Filter {
    /// The key prefix the filter requires ("" for none).
    pub fn prefix(&self) -> &str {
        match self {
            Self::LegacyPrefix(p) | Self::Prefix(p) => p,
            Self::And {
                prefix: Some(p), ..
            } => p,
            _ => "",
        }
    }

    fn tags(&self) -> Vec<(&str, &str)> {
        match self {
            Self::Tag(k, v) => vec![(k.as_str(), v.as_str())],
            Self::And { tags, .. } => tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            _ => Vec::new(),
        }
    }

    fn sizes(&self) -> (Option<u64>, Option<u64>) {
        match self {
            Self::SizeGreaterThan(n) => (Some(*n), None),
            Self::SizeLessThan(n) => (None, Some(*n)),
            Self::And {
                size_greater_than,
                size_less_than,
                ..
            } => (*size_greater_than, *size_less_than),
            _ => (None, None),
        }
    }

    /// Whether the filter names tags (S3 then refuses actions that have
    /// no tags to look at: aborting uploads, removing delete markers).
    fn has_tags(&self) -> bool {
        !self.tags().is_empty()
    }

    /// Whether the filter selects an object of `key` with `size` bytes and
    /// `tags`.
    pub fn selects(&self, key: &str, size: u64, tags: &Tags) -> bool {
        let (greater, less) = self.sizes();
        key.starts_with(self.prefix())
            && greater.is_none_or(|n| size > n)
            && less.is_none_or(|n| size < n)
            && self
                .tags()
                .iter()
                .all(|(k, v)| tags.get(*k).map(String::as_str) == Some(*v))
    }
}

/// When current versions expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// This many days after creation.
    Days(u32),
    /// At this moment (a midnight UTC).
    Date(UnixMillis),
    /// Whether delete markers left with no versions behind them are
    /// removed.
    ExpiredObjectDeleteMarker(bool),
}

/// When noncurrent versions expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    /// Days after a version stopped being current.
    pub days: u32,
    /// How many of the newest noncurrent versions are kept whatever
    /// their age.
    pub newer_versions: Option<u32>,
}

/// One lifecycle rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    /// Its id (S3 makes one up when the rule has none).
    pub id: String,
    /// `Enabled` (or `Disabled`: kept but not applied).
    pub enabled: bool,
    /// The objects it applies to.
    pub filter: Filter,
    /// Expiry of current versions.
    pub expiration: Option<Expiration>,
    /// Expiry of noncurrent versions.
    pub noncurrent_expiration: Option<NoncurrentExpiration>,
    /// Days after which uploads never completed are aborted.
    pub abort_incomplete_upload_days: Option<u32>,
}

/// A rule as a PutBucketLifecycleConfiguration gives it, before checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleRequest {
    /// `ID`.
    pub id: Option<String>,
    /// `Status`.
    pub status: String,
    /// `Filter`, parsed (`None`: no `Filter` element).
    pub filter: Option<FilterRequest>,
    /// The rule's own `Prefix`.
    pub prefix: Option<String>,
    /// `Expiration`: `Days`, `Date` and `ExpiredObjectDeleteMarker` as
    /// given.
    pub expiration: Option<(Option<i32>, Option<UnixMillis>, Option<bool>)>,
    /// `NoncurrentVersionExpiration`: `NoncurrentDays`,
    /// `NewerNoncurrentVersions`.
    pub noncurrent_expiration: Option<(Option<i32>, Option<i32>)>,
    /// `AbortIncompleteMultipartUpload`'s `DaysAfterInitiation` (with
    /// `Some(None)` for the element without it).
    pub abort_incomplete_upload: Option<Option<i32>>,
    /// Whether it has transitions (to storage classes mallee does not
    /// have).
    pub transitions: bool,
}

/// A `Filter` element as given: every child it had.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterRequest {
    /// `Prefix`.
    pub prefix: Option<String>,
    /// `Tag`.
    pub tag: Option<(String, String)>,
    /// `ObjectSizeGreaterThan`.
    pub size_greater_than: Option<i64>,
    /// `ObjectSizeLessThan`.
    pub size_less_than: Option<i64>,
    /// `And`: its prefix, tags and sizes.
    pub and: Option<AndRequest>,
}

/// An `And` element as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AndRequest {
    /// `Prefix`.
    pub prefix: Option<String>,
    /// `Tag`s.
    pub tags: Vec<(String, String)>,
    /// `ObjectSizeGreaterThan`.
    pub size_greater_than: Option<i64>,
    /// `ObjectSizeLessThan`.
    pub size_less_than: Option<i64>,
}

fn invalid(message: &str) -> ObjectError {
    ObjectError::InvalidArgument(message.into())
}

fn positive(value: Option<i32>, message: &str) -> Result<u32> {
    match value {
        Some(n) if n > 0 => Ok(n.unsigned_abs()),
        _ => Err(invalid(message)),
    }
}

fn size(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| invalid("'ObjectSize' must be a non-negative integer"))
}

fn check_sizes(greater: Option<u64>, less: Option<u64>) -> Result<()> {
    if let (Some(g), Some(l)) = (greater, less)
        && g >= l
    {
        return Err(invalid(
            "'ObjectSizeGreaterThan' must be less than 'ObjectSizeLessThan'",
        ));
    }
    if less == Some(0) {
        return Err(invalid("'ObjectSizeLessThan' must be a positive integer"));
    }
    Ok(())
}

fn filter(rule: &RuleRequest) -> Result<Filter> {
    let Some(given) = &rule.filter else {
        // Without `Filter`, the rule's own `Prefix` (S3's older form) is
        // required.
        return rule
            .prefix
            .clone()
            .map(Filter::LegacyPrefix)
            .ok_or(ObjectError::MalformedXml);
    };
    if rule.prefix.is_some() {
        return Err(ObjectError::MalformedXml);
    }
    let children = usize::from(given.prefix.is_some())
        + usize::from(given.tag.is_some())
        + usize::from(given.size_greater_than.is_some())
        + usize::from(given.size_less_than.is_some())
        + usize::from(given.and.is_some());
    if children > 1 {
        return Err(ObjectError::MalformedXml);
    }
    let filter = if let Some(prefix) = &given.prefix {
        Filter::Prefix(prefix.clone())
    } else if let Some((k, v)) = &given.tag {
        Filter::Tag(k.clone(), v.clone())
    } else if let Some(n) = given.size_greater_than {
        Filter::SizeGreaterThan(size(n)?)
    } else if let Some(n) = given.size_less_than {
        let n = size(n)?;
        check_sizes(None, Some(n))?;
        Filter::SizeLessThan(n)
    } else if let Some(and) = &given.and {
        let greater = and.size_greater_than.map(size).transpose()?;
        let less = and.size_less_than.map(size).transpose()?;
        check_sizes(greater, less)?;
        for (i, (key, _)) in and.tags.iter().enumerate() {
            if and.tags[..i].iter().any(|(k, _)| k == key) {
                return Err(invalid("Duplicate Tag Keys are not allowed."));
            }
        }
        Filter::And {
            prefix: and.prefix.clone(),
            tags: and.tags.clone(),
            size_greater_than: greater,
            size_less_than: less,
        }
    } else {
        Filter::All
    };
    if filter.tags().iter().any(|(k, _)| k.is_empty()) {
        return Err(ObjectError::InvalidTag(
            "The TagKey you have provided is invalid".into(),
        ));
    }
    Ok(filter)
}

/// A rule id S3 would make up.
fn fresh_id() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..48)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect()
}

/// Checks a rule as S3 does, with S3's messages.
fn checked(rule: RuleRequest) -> Result<LifecycleRule> {
    let enabled = match rule.status.as_str() {
        "Enabled" => true,
        "Disabled" => false,
        _ => return Err(ObjectError::MalformedXml),
    };
    if rule.id.as_ref().is_some_and(|id| id.len() > MAX_ID_LEN) {
        return Err(invalid("ID length should not exceed allowed limit of 255"));
    }
    if rule.transitions {
        return Err(ObjectError::NotImplemented(
            "Transitions to other storage classes are not supported: this cloud has one storage class."
                .into(),
        ));
    }
    let filter = filter(&rule)?;
    let expiration = match rule.expiration {
        None => None,
        Some((days, date, marker)) => {
            let given = usize::from(days.is_some())
                + usize::from(date.is_some())
                + usize::from(marker.is_some());
            if given != 1 {
                return Err(ObjectError::MalformedXml);
            }
            Some(if days.is_some() {
                Expiration::Days(positive(
                    days,
                    "'Days' for Expiration action must be a positive integer",
                )?)
            } else if let Some(date) = date {
                if date.rem_euclid(DAY_MILLIS) != 0 {
                    return Err(invalid("'Date' must be at midnight GMT"));
                }
                Expiration::Date(date)
            } else {
                if filter.has_tags() {
                    return Err(ObjectError::InvalidRequest(
                        "ExpiredObjectDeleteMarker cannot be specified with tags.".into(),
                    ));
                }
                Expiration::ExpiredObjectDeleteMarker(marker.unwrap_or(false))
            })
        }
    };
    let noncurrent_expiration = match rule.noncurrent_expiration {
        None => None,
        Some((days, newer)) => Some(NoncurrentExpiration {
            days: positive(
                days,
                "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
            )?,
            newer_versions: match newer {
                None => None,
                Some(n) if (1..=i64::from(MAX_NEWER_VERSIONS)).contains(&i64::from(n)) => {
                    Some(n.unsigned_abs())
                }
                Some(_) => {
                    return Err(invalid(
                        "'NewerNoncurrentVersions' must be an integer between 1 and 100",
                    ));
                }
            },
        }),
    };
    let abort_incomplete_upload_days = match rule.abort_incomplete_upload {
        None => None,
        Some(days) => {
            if filter.has_tags() {
                return Err(ObjectError::InvalidRequest(
                    "AbortIncompleteMultipartUpload cannot be specified with Tags.".into(),
                ));
            }
            Some(positive(
                days,
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
            )?)
        }
    };
    if expiration.is_none()
        && noncurrent_expiration.is_none()
        && abort_incomplete_upload_days.is_none()
    {
        return Err(invalid(
            "At least one action needs to be specified in a rule",
        ));
    }
    Ok(LifecycleRule {
        id: rule.id.unwrap_or_else(fresh_id),
        enabled,
        filter,
        expiration,
        noncurrent_expiration,
        abort_incomplete_upload_days,
    })
}

/// Replaces a bucket's lifecycle rules, for its owner: all of them are
/// checked before any is stored.
pub async fn put(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    rules: Vec<RuleRequest>,
) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(ObjectError::MalformedXml);
    }
    let rules = rules.into_iter().map(checked).collect::<Result<Vec<_>>>()?;
    for (i, rule) in rules.iter().enumerate() {
        if rules[..i].iter().any(|r| r.id == rule.id) {
            return Err(invalid(
                "Rule ID must be unique. Found same ID for more than one rule",
            ));
        }
    }
    let json = serde_json::to_string(&rules).map_err(ObjectError::internal)?;
    cloud
        .store
        .set_bucket_setting(&bucket.name, BucketSetting::Lifecycle, Some(&json))
        .await
        .map_err(ObjectError::from_write)
}

/// A bucket's lifecycle rules, for its owner;
/// NoSuchLifecycleConfiguration when it has none.
pub async fn get(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<Vec<LifecycleRule>> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    rules(&bucket).ok_or(ObjectError::NoSuchLifecycleConfiguration)
}

/// Removes a bucket's lifecycle rules (no error when it has none).
pub async fn delete(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    cloud
        .store
        .set_bucket_setting(&bucket.name, BucketSetting::Lifecycle, None)
        .await
        .map_err(ObjectError::from_write)
}

/// The rules stored for `bucket`, if it has any.
pub fn rules(bucket: &Bucket) -> Option<Vec<LifecycleRule>> {
    let json = bucket.setting(BucketSetting::Lifecycle)?;
    match serde_json::from_str(json) {
        Ok(rules) => Some(rules),
        Err(e) => {
            tracing::warn!(bucket = %bucket.name, error = %e, "unreadable lifecycle rules");
            None
        }
    }
}

/// `at` rounded up to the next midnight UTC (itself when it is one).
pub fn next_midnight(at: UnixMillis) -> UnixMillis {
    at.div_euclid(DAY_MILLIS)
        .saturating_add(i64::from(at.rem_euclid(DAY_MILLIS) != 0))
        .saturating_mul(DAY_MILLIS)
}

/// When something `days` days after `since` expires, as S3 counts.
pub fn after_days(since: UnixMillis, days: u32) -> UnixMillis {
    next_midnight(since.saturating_add(i64::from(days).saturating_mul(DAY_MILLIS)))
}

impl LifecycleRule {
    /// When this rule makes `object`, a current version that is not a
    /// delete marker, expire (`None`: it does not).
    pub fn current_expiry(&self, object: &ObjectRecord) -> Option<UnixMillis> {
        if !self.enabled
            || object.delete_marker
            || !self.filter.selects(&object.key, object.size, &object.tags)
        {
            return None;
        }
        match self.expiration? {
            Expiration::Days(days) => Some(after_days(object.last_modified, days)),
            Expiration::Date(date) => Some(date),
            Expiration::ExpiredObjectDeleteMarker(_) => None,
        }
    }
}

/// The `x-amz-expiration` of `object`, the current version of a key in
/// `bucket`: the earliest expiry of the rules that apply, and that rule's
/// id.
pub fn expiration_of(bucket: &Bucket, object: &ObjectRecord) -> Option<(UnixMillis, String)> {
    rules(bucket)?
        .iter()
        .filter_map(|rule| rule.current_expiry(object).map(|at| (at, rule.id.clone())))
        .min_by_key(|(at, _)| *at)
}

/// The controller setting that holds the lifecycle clock's offset in
/// milliseconds (set by `mallee admin lifecycle-clock`, for tests and
/// drills): the pass acts as if it were that much later.
pub const CLOCK_OFFSET_SETTING: &str = "objects.lifecycle-clock-offset-ms";

/// The lifecycle clock's offset from the wall clock (0 unless an
/// administrator moved it).
pub async fn clock_offset(cloud: &Cloud) -> Result<i64> {
    let offset = cloud.store.setting(CLOCK_OFFSET_SETTING).await?;
    Ok(offset.and_then(|o| o.parse().ok()).unwrap_or(0))
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
