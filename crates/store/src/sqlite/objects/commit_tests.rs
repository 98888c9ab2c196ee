//! The SQLite committer's own behaviour, beyond the conformance suite:
//! concurrent writes share transactions, a change that breaks its batch's
//! transaction fails alone once the others are applied one by one, more
//! changes than the queue holds all land (callers wait for room), and an
//! acknowledged write is in the file when the store is opened again.

use futures_util::future::join_all;

use super::commit::QUEUE_LIMIT;
use crate::objects::{ObjectIndex, ObjectMetadata, ObjectRecord, Segment};
use crate::sqlite::SqliteStore;
use crate::{Account, Bucket, Store, StoreError, User};

const OWNER: &str = "121212121212";

async fn store_with_bucket(dir: &tempfile::TempDir) -> SqliteStore {
    let store = SqliteStore::open(&dir.path().join("mallee.db"))
        .await
        .expect("open");
    let account = Account {
        account_id: OWNER.into(),
        name: "owner".into(),
        is_admin: false,
        created_at: 1,
        iam_generation: 0,
    };
    let user = User {
        account_id: OWNER.into(),
        user_name: "admin".into(),
        user_id: format!("AIDA{OWNER}"),
        created_at: 1,
    };
    store
        .create_account(&account, &user)
        .await
        .expect("account");
    store
        .create_bucket(&Bucket {
            name: "b".into(),
            account_id: OWNER.into(),
            region: String::new(),
            acl_json: "{}".into(),
            created_at: 1,
            policy: None,
            tags: Default::default(),
            versioning: Default::default(),
            settings: Default::default(),
        })
        .await
        .expect("bucket");
    store
}

fn object(key: &str, n: usize) -> ObjectRecord {
    ObjectRecord {
        bucket: "b".into(),
        key: key.into(),
        segments: vec![Segment {
            blob_id: format!("blob-{n}"),
            size: 4,
        }],
        size: 4,
        etag: format!("etag-{n}"),
        last_modified: 2,
        metadata: ObjectMetadata::default(),
        acl_json: "{}".into(),
        owner_account: OWNER.into(),
        tags: Default::default(),
        version_id: crate::NULL_VERSION.into(),
        delete_marker: false,
        encryption: None,
    }
}

#[tokio::test]
async fn concurrent_puts_share_transactions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_bucket(&dir).await;
    let objects: Vec<ObjectRecord> = (0..64).map(|n| object(&format!("k{n}"), n)).collect();
    let before = store.committer.batches();
    for result in join_all(objects.iter().map(|o| store.put_object(o))).await {
        result.expect("put");
    }
    let batches = store.committer.batches() - before;
    assert!(
        batches < 8,
        "64 puts queued at once took {batches} transactions"
    );
    for object in &objects {
        assert_eq!(
            store.object("b", &object.key).await.expect("get").as_ref(),
            Some(object)
        );
    }
    assert_eq!(store.account_usage(OWNER).await.expect("usage"), 64 * 4);
}

#[tokio::test]
async fn a_change_that_breaks_the_batch_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_bucket(&dir).await;
    // The database itself refuses one key, part-way through its write.
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON objects WHEN NEW.key = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
    )
    .execute(&store.pool)
    .await
    .expect("trigger");
    let keys: Vec<String> = (0..16)
        .map(|n| {
            if n == 7 {
                "poison".to_owned()
            } else {
                format!("k{n}")
            }
        })
        .collect();
    let objects: Vec<ObjectRecord> = keys.iter().enumerate().map(|(n, k)| object(k, n)).collect();
    let results = join_all(objects.iter().map(|o| store.put_object(o))).await;
    for (object, result) in objects.iter().zip(results) {
        if object.key == "poison" {
            assert!(
                matches!(&result, Err(StoreError::Database(e)) if e.to_string().contains("poisoned")),
                "{result:?}"
            );
            assert_eq!(store.object("b", "poison").await.expect("get"), None);
        } else {
            result.expect("a neighbour of the broken change lands");
            assert_eq!(
                store.object("b", &object.key).await.expect("get").as_ref(),
                Some(object)
            );
        }
    }
    assert_eq!(store.account_usage(OWNER).await.expect("usage"), 15 * 4);
}

#[tokio::test]
async fn more_changes_than_the_queue_holds_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_bucket(&dir).await;
    let n = QUEUE_LIMIT + 100;
    let objects: Vec<ObjectRecord> = (0..n).map(|i| object(&format!("k{i:05}"), i)).collect();
    for result in join_all(objects.iter().map(|o| store.put_object(o))).await {
        result.expect("put");
    }
    let listed = store.list_objects("b", "", "", n + 1).await.expect("list");
    assert_eq!(listed.len(), n);
    assert_eq!(
        store.account_usage(OWNER).await.expect("usage"),
        n as u64 * 4
    );
}

#[tokio::test]
async fn acknowledged_writes_are_in_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects: Vec<ObjectRecord> = (0..32).map(|n| object(&format!("k{n}"), n)).collect();
    {
        let store = store_with_bucket(&dir).await;
        for result in join_all(objects.iter().map(|o| store.put_object(o))).await {
            result.expect("put");
        }
        let deleted = store.delete_object("b", "k3").await.expect("delete");
        assert_eq!(deleted, Some(vec!["blob-3".to_owned()]));
    }
    let store = SqliteStore::open(&dir.path().join("mallee.db"))
        .await
        .expect("reopen");
    for object in &objects {
        let found = store.object("b", &object.key).await.expect("get");
        if object.key == "k3" {
            assert_eq!(found, None);
        } else {
            assert_eq!(found.as_ref(), Some(object));
        }
    }
}
