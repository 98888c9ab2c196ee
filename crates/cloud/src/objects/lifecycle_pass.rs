//! The lifecycle pass: a background task of the controller that carries
//! out every bucket's lifecycle rules ([`super::lifecycle`]). For each
//! bucket with rules it walks every key's versions and the bucket's
//! uploads and
//!
//! * hides an expired current version behind a delete marker (or deletes
//!   it, in a bucket that never kept versions);
//! * deletes noncurrent versions past their days, keeping the newest
//!   ones a rule asks to keep;
//! * removes delete markers left with no version behind them;
//! * aborts uploads not completed in time.
//!
//! Crash safety: each change is one store transaction that holds only
//! while the version is as the pass saw it (a write racing the pass is
//! never undone), and blobs are deleted only after it commits; a pass
//! killed at any point leaves either the old state or the new one, plus
//! at worst unreferenced blobs for the start-up sweep, and the next pass
//! simply decides again.
//!
//! The pass runs at start, every [`PERIOD`], and as soon as an
//! administrator moves the lifecycle clock (checked every [`POLL`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mallee_store::{
    Bucket, Expiry, ObjectRecord, ObjectVersion, UnixMillis, VersionPosition, Versioning,
};

use super::acl::Acl;
use super::error::Result;
use super::lifecycle::{Expiration, LifecycleRule, after_days, clock_offset, rules};
use super::release_blobs;
use super::versions::new_version_id;
use crate::{Cloud, ids};

/// Time between passes.
pub const PERIOD: Duration = Duration::from_secs(600);
/// Time between looks at the lifecycle clock.
pub const POLL: Duration = Duration::from_secs(2);
/// Versions read per round trip.
const BATCH: usize = 1000;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Current versions hidden behind a delete marker.
    pub markers_written: usize,
    /// Versions deleted (current ones of unversioned buckets, noncurrent
    /// ones, lone delete markers).
    pub versions_deleted: usize,
    /// Uploads aborted.
    pub uploads_aborted: usize,
}

/// Starts the lifecycle task.
/// (Through `lease::spawn`: under a leadership fence its writes are fenced.)
pub fn spawn(cloud: Arc<Cloud>) -> tokio::task::JoinHandle<()> {
    mallee_store::lease::spawn(async move {
        let mut last: Option<(Instant, i64)> = None;
        loop {
            match clock_offset(&cloud).await {
                Ok(offset) => {
                    let due =
                        last.is_none_or(|(at, seen)| seen != offset || at.elapsed() >= PERIOD);
                    if due {
                        last = Some((Instant::now(), offset));
                        match pass(&cloud, ids::now_millis() + offset).await {
                            Ok(report) if report != PassReport::default() => {
                                tracing::info!(?report, "lifecycle pass");
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "lifecycle pass failed"),
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read the lifecycle clock"),
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

/// One pass over every bucket with lifecycle rules, as if it were `now`.
pub async fn pass(cloud: &Cloud, now: UnixMillis) -> Result<PassReport> {
    let mut report = PassReport::default();
    let buckets = cloud
        .store
        .buckets_with_setting(mallee_store::BucketSetting::Lifecycle)
        .await?;
    for bucket in buckets {
        let Some(rules) = rules(&bucket) else {
            continue;
        };
        let rules: Vec<LifecycleRule> = rules.into_iter().filter(|r| r.enabled).collect();
        if rules.is_empty() {
            continue;
        }
        if let Err(e) = bucket_pass(cloud, &bucket, &rules, now, &mut report).await {
            tracing::warn!(bucket = %bucket.name, error = %e, "lifecycle pass of a bucket failed");
        }
    }
    Ok(report)
}

async fn bucket_pass(
    cloud: &Cloud,
    bucket: &Bucket,
    rules: &[LifecycleRule],
    now: UnixMillis,
    report: &mut PassReport,
) -> Result<()> {
    // Keys come in order, each key's versions newest first; a key's
    // versions may straddle two batches, so a key is judged once the
    // next key (or the end) shows up.
    let mut after = VersionPosition::default();
    let mut key_versions: Vec<ObjectVersion> = Vec::new();
    loop {
        let batch = cloud
            .store
            .list_versions(&bucket.name, "", &after, BATCH)
            .await?;
        let done = batch.len() < BATCH;
        if let Some(last) = batch.last() {
            after = VersionPosition {
                key: last.object.key.clone(),
                version_id: Some(last.object.version_id.clone()),
            };
        }
        for version in batch {
            if key_versions
                .first()
                .is_some_and(|v| v.object.key != version.object.key)
            {
                key_pass(cloud, bucket, rules, &key_versions, now, report).await?;
                key_versions.clear();
            }
            key_versions.push(version);
        }
        if done {
            break;
        }
    }
    if !key_versions.is_empty() {
        key_pass(cloud, bucket, rules, &key_versions, now, report).await?;
    }
    uploads_pass(cloud, bucket, rules, now, report).await
}

/// Applies the rules to one key's versions (newest first).
async fn key_pass(
    cloud: &Cloud,
    bucket: &Bucket,
    rules: &[LifecycleRule],
    versions: &[ObjectVersion],
    now: UnixMillis,
    report: &mut PassReport,
) -> Result<()> {
    let Some(current) = versions.first().filter(|v| v.is_latest) else {
        return Ok(());
    };
    let current = &current.object;
    if current.delete_marker {
        let lone_marker_rule = rules.iter().any(|r| {
            r.expiration == Some(Expiration::ExpiredObjectDeleteMarker(true))
                && current.key.starts_with(r.filter.prefix())
        });
        if versions.len() == 1 && lone_marker_rule {
            if expire(cloud, current, Expiry::DeleteLoneMarker).await? {
                report.versions_deleted += 1;
            }
            return Ok(());
        }
    } else if rules
        .iter()
        .filter_map(|r| r.current_expiry(current))
        .any(|at| at <= now)
    {
        let expiry = if bucket.versioning == Versioning::Unversioned {
            Expiry::DeleteCurrent
        } else {
            Expiry::Marker(Box::new(marker(bucket, current, now)))
        };
        let wrote_marker = matches!(expiry, Expiry::Marker(_));
        if expire(cloud, current, expiry).await? {
            if wrote_marker {
                report.markers_written += 1;
            } else {
                report.versions_deleted += 1;
            }
        }
        // The key changed; its noncurrent versions wait for the next pass.
        return Ok(());
    }
    // Noncurrent versions: each became noncurrent when the next newer one
    // was written.
    for (i, pair) in versions.windows(2).enumerate() {
        let (newer, version) = (&pair[0].object, &pair[1].object);
        let expired = rules.iter().any(|rule| {
            let Some(noncurrent) = rule.noncurrent_expiration else {
                return false;
            };
            let kept = noncurrent.newer_versions.map_or(0, |n| n as usize);
            i >= kept
                && (version.delete_marker
                    || rule
                        .filter
                        .selects(&version.key, version.size, &version.tags))
                && version.key.starts_with(rule.filter.prefix())
                && after_days(newer.last_modified, noncurrent.days) <= now
        });
        if expired && expire(cloud, version, Expiry::DeleteNoncurrent).await? {
            report.versions_deleted += 1;
        }
    }
    Ok(())
}

/// The delete marker an expiry writes over `current` (the bucket's
/// account writes it, as S3's lifecycle does).
fn marker(bucket: &Bucket, current: &ObjectRecord, now: UnixMillis) -> ObjectRecord {
    ObjectRecord {
        bucket: bucket.name.clone(),
        key: current.key.clone(),
        segments: Vec::new(),
        size: 0,
        etag: String::new(),
        last_modified: now,
        metadata: Default::default(),
        acl_json: Acl::private(&bucket.account_id).to_json(),
        owner_account: bucket.account_id.clone(),
        tags: Default::default(),
        version_id: new_version_id(bucket),
        delete_marker: true,
        encryption: None,
    }
}

/// Carries out one expiry; whether it happened (the version may have
/// changed since it was listed). Blobs go after the change committed.
async fn expire(cloud: &Cloud, found: &ObjectRecord, expiry: Expiry) -> Result<bool> {
    match cloud.store.expire(found, &expiry).await? {
        Some(blobs) => {
            release_blobs(cloud, blobs).await;
            Ok(true)
        }
        None => Ok(false),
    }
}

async fn uploads_pass(
    cloud: &Cloud,
    bucket: &Bucket,
    rules: &[LifecycleRule],
    now: UnixMillis,
    report: &mut PassReport,
) -> Result<()> {
    if rules
        .iter()
        .all(|r| r.abort_incomplete_upload_days.is_none())
    {
        return Ok(());
    }
    for upload in cloud.store.uploads(&bucket.name).await? {
        let expired = rules.iter().any(|rule| {
            rule.abort_incomplete_upload_days.is_some_and(|days| {
                upload.key.starts_with(rule.filter.prefix())
                    && after_days(upload.initiated, days) <= now
            })
        });
        if !expired {
            continue;
        }
        match cloud.store.abort_upload(&upload.upload_id).await {
            Ok(blobs) => {
                release_blobs(cloud, blobs).await;
                report.uploads_aborted += 1;
            }
            // Completed or aborted meanwhile.
            Err(mallee_store::StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
