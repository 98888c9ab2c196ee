//! Buckets: creating one (in this cloud's region, under one namespace
//! across accounts), listing an account's, looking one up, deleting one
//! that holds no objects (abandoned uploads go with it), and reading or
//! replacing a bucket's ACL.

use mallee_store::{Account, Bucket, StoreError};

use super::acl::{Acl, AclRequest, Permission};
use super::error::{ObjectError, Result};
use super::{Requester, bucket, bucket_for, owned_bucket, release_blobs};
use crate::{Cloud, ids};

/// Locations accepted besides the cloud's own region (s3cmd and old tools
/// send the legacy `US`).
const LEGACY_LOCATIONS: &[&str] = &["", "US", "us-east-1"];

/// A bucket to create.
#[derive(Debug, Clone)]
pub struct NewBucket {
    /// Its name.
    pub name: String,
    /// The location asked for (empty for none).
    pub location: String,
    /// The ACL asked for.
    pub acl: AclRequest,
}

/// An account's buckets.
#[derive(Debug, Clone)]
pub struct OwnedBuckets {
    /// The account.
    pub owner: Account,
    /// Its buckets, ordered by name.
    pub buckets: Vec<Bucket>,
}

/// The requester's account, or AccessDenied for anonymous callers, who own
/// no buckets.
fn account(requester: &Requester) -> Result<&Account> {
    requester
        .as_principal()
        .map(|principal| &principal.account)
        .ok_or(ObjectError::AccessDenied)
}

/// Creates a bucket owned by the requester.
pub async fn create(cloud: &Cloud, requester: &Requester, new: NewBucket) -> Result<Bucket> {
    let account_id = &account(requester)?.account_id;
    if new.location != cloud.config.region && !LEGACY_LOCATIONS.contains(&new.location.as_str()) {
        return Err(ObjectError::InvalidLocation);
    }
    let acl = new
        .acl
        .resolve(account_id, account_id)
        .map_err(|e| ObjectError::InvalidAcl(e.to_string()))?;
    let created = Bucket {
        name: new.name,
        account_id: account_id.clone(),
        region: new.location,
        acl_json: acl.to_json(),
        created_at: ids::now_millis(),
        policy: None,
        tags: Default::default(),
        versioning: Default::default(),
        settings: Default::default(),
    };
    match cloud.store.create_bucket(&created).await {
        Ok(()) => Ok(created),
        Err(StoreError::Conflict(_)) => {
            let existing = bucket(cloud, &created.name).await?;
            Err(if &existing.account_id == account_id {
                ObjectError::BucketAlreadyOwnedByYou
            } else {
                ObjectError::BucketAlreadyExists
            })
        }
        Err(e) => Err(ObjectError::internal(e)),
    }
}

/// The requester's buckets.
pub async fn list(cloud: &Cloud, requester: &Requester) -> Result<OwnedBuckets> {
    let owner = account(requester)?;
    Ok(OwnedBuckets {
        buckets: cloud.store.buckets(&owner.account_id).await?,
        owner: owner.clone(),
    })
}

/// The region of a bucket the requester may list.
pub async fn region(cloud: &Cloud, requester: &Requester, name: &str) -> Result<String> {
    let bucket = bucket_for(cloud, requester, name, Permission::Read).await?;
    Ok(if bucket.region.is_empty() {
        cloud.config.region.clone()
    } else {
        bucket.region
    })
}

/// The location a bucket was created with (empty for none); only its
/// owner may ask.
pub async fn location(cloud: &Cloud, requester: &Requester, name: &str) -> Result<String> {
    Ok(owned_bucket(cloud, requester, name).await?.region)
}

/// Deletes a bucket of the requester's that holds no objects, and with it
/// its policy, its tags and the multipart uploads never completed in it,
/// whose parts' blobs are deleted after the commit (as S3 aborts them).
pub async fn delete(cloud: &Cloud, requester: &Requester, name: &str) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, name).await?;
    let released = cloud
        .store
        .delete_bucket(&bucket.name)
        .await
        .map_err(ObjectError::from_write)?;
    release_blobs(cloud, released).await;
    Ok(())
}

/// A bucket's ACL, for requesters who may read it.
pub async fn acl(cloud: &Cloud, requester: &Requester, name: &str) -> Result<Acl> {
    let bucket = bucket_for(cloud, requester, name, Permission::ReadAcp).await?;
    Ok(Acl::from_json(&bucket.acl_json, &bucket.account_id))
}

/// Replaces a bucket's ACL, for requesters who may write it; the bucket's
/// owner stays its owner.
pub async fn set_acl(
    cloud: &Cloud,
    requester: &Requester,
    name: &str,
    acl: AclRequest,
) -> Result<()> {
    let bucket = bucket_for(cloud, requester, name, Permission::WriteAcp).await?;
    let acl = super::controls::acl_to_set(&bucket, &bucket.account_id, acl)?;
    cloud
        .store
        .set_bucket_acl(&bucket.name, &acl.to_json())
        .await
        .map_err(ObjectError::from_write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::acl::Grantee;
    use crate::testkit::TestCloud;

    fn new_bucket(name: &str, location: &str, acl: AclRequest) -> NewBucket {
        NewBucket {
            name: name.into(),
            location: location.into(),
            acl,
        }
    }

    #[tokio::test]
    async fn buckets_share_one_namespace_and_only_owners_delete_them() {
        let cloud = TestCloud::new().await;
        let alice = Requester::principal(cloud.principal("alice").await);
        let bob = Requester::principal(cloud.principal("bob").await);
        let anonymous = Requester::anonymous();

        let made = create(&cloud, &alice, new_bucket("b", "", AclRequest::default()))
            .await
            .expect("create");
        assert_eq!(made.account_id, alice.account().expect("account"));
        assert_eq!(
            create(&cloud, &alice, new_bucket("b", "", AclRequest::default())).await,
            Err(ObjectError::BucketAlreadyOwnedByYou)
        );
        assert_eq!(
            create(&cloud, &bob, new_bucket("b", "", AclRequest::default())).await,
            Err(ObjectError::BucketAlreadyExists)
        );
        assert_eq!(
            create(
                &cloud,
                &anonymous,
                new_bucket("c", "", AclRequest::default())
            )
            .await,
            Err(ObjectError::AccessDenied)
        );
        assert_eq!(
            create(
                &cloud,
                &bob,
                new_bucket("c", "elsewhere", AclRequest::default())
            )
            .await,
            Err(ObjectError::InvalidLocation)
        );
        assert!(matches!(
            create(
                &cloud,
                &bob,
                new_bucket("c", "", AclRequest::Canned("nope".into()))
            )
            .await,
            Err(ObjectError::InvalidAcl(_))
        ));
        create(&cloud, &bob, new_bucket("c", "US", AclRequest::default()))
            .await
            .expect("legacy location");

        let listed = list(&cloud, &alice).await.expect("list");
        assert_eq!(
            listed
                .buckets
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(
            region(&cloud, &alice, "b").await.as_deref(),
            Ok(crate::testkit::REGION)
        );
        assert_eq!(region(&cloud, &bob, "c").await.as_deref(), Ok("US"));
        assert_eq!(location(&cloud, &alice, "b").await.as_deref(), Ok(""));
        assert_eq!(
            location(&cloud, &bob, "b").await,
            Err(ObjectError::AccessDenied)
        );
        assert_eq!(
            region(&cloud, &bob, "missing").await,
            Err(ObjectError::NoSuchBucket)
        );
        assert_eq!(
            delete(&cloud, &bob, "b").await,
            Err(ObjectError::AccessDenied)
        );
        delete(&cloud, &alice, "b").await.expect("delete");
        assert_eq!(
            delete(&cloud, &alice, "b").await,
            Err(ObjectError::NoSuchBucket)
        );
    }

    #[tokio::test]
    async fn deleting_a_bucket_aborts_its_uploads_and_frees_their_parts() {
        use crate::objects::{acl::Acl, testing, writes};

        let (cloud, alice, _) = testing::with_bucket().await;
        let owner = alice.account().expect("account").to_owned();
        let upload = testing::start_upload(&cloud, &alice, "big", &[])
            .await
            .expect("create upload");
        for number in [1, 2] {
            testing::upload_part(&cloud, &alice, &upload, number, b"part".to_vec())
                .await
                .expect("part");
        }
        testing::put(&cloud, &owner, "b", "k", b"x", &Acl::private(&owner)).await;
        assert_eq!(testing::blob_files(&cloud), 3);
        let upload_exists = async || {
            cloud
                .store
                .upload(&upload.upload_id)
                .await
                .expect("upload")
                .is_some()
        };
        // An object keeps the bucket, and the upload with it.
        assert_eq!(
            delete(&cloud, &alice, "b").await,
            Err(ObjectError::BucketNotEmpty)
        );
        assert!(upload_exists().await);
        assert_eq!(testing::blob_files(&cloud), 3);
        writes::delete(&cloud, &alice, "b", "k", None)
            .await
            .expect("delete object");
        delete(&cloud, &alice, "b").await.expect("delete bucket");
        assert!(!upload_exists().await);
        assert_eq!(testing::blob_files(&cloud), 0, "part blobs were leaked");
    }

    #[tokio::test]
    async fn bucket_acls_decide_who_reads_and_writes_them() {
        let cloud = TestCloud::new().await;
        let alice = Requester::principal(cloud.principal("alice").await);
        let bob = Requester::principal(cloud.principal("bob").await);
        create(&cloud, &alice, new_bucket("b", "", AclRequest::default()))
            .await
            .expect("create");
        assert_eq!(acl(&cloud, &bob, "b").await, Err(ObjectError::AccessDenied));
        assert_eq!(
            region(&cloud, &Requester::anonymous(), "b").await,
            Err(ObjectError::AccessDenied)
        );
        set_acl(
            &cloud,
            &alice,
            "b",
            AclRequest::Canned("public-read".into()),
        )
        .await
        .expect("set");
        assert!(region(&cloud, &Requester::anonymous(), "b").await.is_ok());
        let bob_id = bob.account().expect("account").to_owned();
        set_acl(
            &cloud,
            &alice,
            "b",
            AclRequest::Policy(vec![super::super::acl::Grant {
                grantee: Grantee::Account(bob_id.clone()),
                permission: Permission::FullControl,
            }]),
        )
        .await
        .expect("policy");
        let read = acl(&cloud, &bob, "b").await.expect("bob reads");
        assert_eq!(read.owner, alice.account().expect("account"));
        assert_eq!(read.grants.len(), 1);
    }
}
