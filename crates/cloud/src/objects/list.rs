//! Listing a bucket's objects as ListObjects (v1 and v2) does: keys with a
//! prefix, in UTF-8 byte order, after a position; keys that have the
//! delimiter after the prefix rolled up into common prefixes; at most
//! max-keys entries, with where the next page starts. How keys and the
//! next position are written on the wire is the API's.

use mallee_store::ObjectRecord;

use super::acl::Permission;
use super::error::Result;
use super::{Requester, bucket_for, page_size};
use crate::Cloud;

/// Objects fetched from the index per round trip.
const BATCH: usize = 1000;
/// A string greater than every key that starts with a given prefix: the
/// largest code point, appended.
const AFTER_EVERYTHING: char = '\u{10FFFF}';

/// What a listing asks for.
#[derive(Debug, Clone, Default)]
pub struct ListObjects {
    /// The bucket.
    pub bucket: String,
    /// Only keys starting with this.
    pub prefix: String,
    /// Keys with this after the prefix are rolled up into common prefixes
    /// (none when empty).
    pub delimiter: String,
    /// Start after this key or common prefix (the start when empty).
    pub start_after: String,
    /// The page size asked for (at most [`super::MAX_PAGE`]).
    pub max_keys: Option<usize>,
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct Listing {
    /// Objects, by key.
    pub objects: Vec<ObjectRecord>,
    /// Common prefixes, in order.
    pub prefixes: Vec<String>,
    /// The page size used.
    pub max_keys: usize,
    /// Whether more entries follow.
    pub truncated: bool,
    /// The last key or common prefix returned.
    pub last: Option<String>,
    /// Where the next page starts (exclusive), when truncated.
    pub resume_after: Option<String>,
}

/// Lists a bucket the requester may read.
pub async fn list(cloud: &Cloud, requester: &Requester, query: &ListObjects) -> Result<Listing> {
    bucket_for(cloud, requester, &query.bucket, Permission::Read).await?;
    let (prefix, delimiter) = (query.prefix.as_str(), query.delimiter.as_str());
    let mut listing = Listing {
        max_keys: page_size(query.max_keys),
        ..Default::default()
    };
    let mut after = query.start_after.clone();
    // A position that is a common prefix skips its whole subtree.
    if common_prefix(&after, prefix, delimiter).is_some_and(|common| common == after) {
        after.push(AFTER_EVERYTHING);
    }
    'pages: loop {
        let batch = cloud
            .store
            .list_objects(&query.bucket, prefix, &after, BATCH)
            .await?;
        let full_batch = batch.len() == BATCH;
        for object in batch {
            let common = common_prefix(&object.key, prefix, delimiter);
            if let Some(common) = &common
                && listing.prefixes.last() == Some(common)
            {
                after = object.key.clone();
                continue;
            }
            if listing.objects.len() + listing.prefixes.len() == listing.max_keys {
                listing.truncated = true;
                break 'pages;
            }
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

/// The common prefix `key` rolls up into: the key up to and including the
/// first `delimiter` after `prefix`. None without a delimiter, or for keys
/// that do not start with `prefix` or have no delimiter after it.
pub(crate) fn common_prefix(key: &str, prefix: &str, delimiter: &str) -> Option<String> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = key.strip_prefix(prefix)?;
    rest.find(delimiter)
        .map(|i| key[..prefix.len() + i + delimiter.len()].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::acl::Acl;
    use crate::objects::{ObjectError, testing};

    #[test]
    fn common_prefixes_end_at_the_first_delimiter_after_the_prefix() {
        assert_eq!(common_prefix("a/b/c", "", "/").as_deref(), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", "/").as_deref(), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/", "/"), None);
        assert_eq!(common_prefix("a/b", "", ""), None);
        assert_eq!(common_prefix("x--y--z", "x", "--").as_deref(), Some("x--"));
        assert_eq!(common_prefix("b/c", "a/", "/"), None);
    }

    async fn listed(
        cloud: &Cloud,
        requester: &Requester,
        prefix: &str,
        delimiter: &str,
        start_after: &str,
        max_keys: Option<usize>,
    ) -> Listing {
        let query = ListObjects {
            bucket: "b".into(),
            prefix: prefix.into(),
            delimiter: delimiter.into(),
            start_after: start_after.into(),
            max_keys,
        };
        list(cloud, requester, &query).await.expect("list")
    }

    fn keys(listing: &Listing) -> Vec<&str> {
        listing.objects.iter().map(|o| o.key.as_str()).collect()
    }

    #[tokio::test]
    async fn listings_page_through_keys_and_common_prefixes() {
        let (cloud, alice, bob) = testing::with_bucket().await;
        let owner = alice.account().expect("account").to_owned();
        for key in ["a", "d/1", "d/2", "d/e/3", "z", "é"] {
            testing::put(&cloud, &owner, "b", key, b"x", &Acl::private(&owner)).await;
        }

        let all = listed(&cloud, &alice, "", "", "", None).await;
        assert_eq!(keys(&all), ["a", "d/1", "d/2", "d/e/3", "z", "é"]);
        assert_eq!(
            (all.max_keys, all.truncated, all.resume_after),
            (1000, false, None)
        );

        let rolled = listed(&cloud, &alice, "", "/", "", None).await;
        assert_eq!(keys(&rolled), ["a", "z", "é"]);
        assert_eq!(rolled.prefixes, ["d/"]);

        let first = listed(&cloud, &alice, "", "/", "", Some(2)).await;
        assert_eq!(
            (keys(&first), first.prefixes.clone()),
            (vec!["a"], vec!["d/".to_owned()])
        );
        assert!(first.truncated);
        assert_eq!(first.last.as_deref(), Some("d/"));
        let resume = first.resume_after.clone().expect("resume");
        let second = listed(&cloud, &alice, "", "/", &resume, Some(2)).await;
        assert_eq!(keys(&second), ["z", "é"]);
        assert!(!second.truncated);
        // A marker that is a common prefix skips its subtree too.
        let after_prefix = listed(&cloud, &alice, "", "/", "d/", None).await;
        assert_eq!(keys(&after_prefix), ["z", "é"]);

        let nested = listed(&cloud, &alice, "d/", "/", "", None).await;
        assert_eq!(
            (keys(&nested), nested.prefixes.clone()),
            (vec!["d/1", "d/2"], vec!["d/e/".to_owned()])
        );
        let none = listed(&cloud, &alice, "", "", "", Some(0)).await;
        assert!(none.truncated && none.objects.is_empty());
        assert_eq!(
            listed(&cloud, &alice, "", "", "", Some(5000))
                .await
                .max_keys,
            1000
        );

        let query = ListObjects {
            bucket: "b".into(),
            ..Default::default()
        };
        assert_eq!(
            list(&cloud, &bob, &query)
                .await
                .err()
                .map(|e| e.to_string()),
            Some(ObjectError::AccessDenied.to_string())
        );
    }
}
