//! The public access block and object ownership as operations see them:
//! public ACLs refused or ignored, public policies refused, ACLs disabled
//! with objects owned by the bucket's account, and each control its
//! owner's alone.

use bytes::Bytes;
use mallee_store::ObjectMetadata;

use super::*;
use crate::objects::acl::AclRequest;
use crate::objects::reads::{self, ReadObject};
use crate::objects::tagging::TagPairs;
use crate::objects::testing;
use crate::objects::writes::{self, Body, PutObject};
use crate::objects::{buckets, policy};

fn put_of(
    key: &str,
    acl: &str,
) -> PutObject<impl futures_util::Stream<Item = std::io::Result<Bytes>>> {
    PutObject {
        bucket: "b".into(),
        key: key.into(),
        acl: AclRequest::Canned(acl.into()),
        create_only: false,
        metadata: ObjectMetadata::default(),
        tags: TagPairs::new(),
        body: Body {
            declared_size: None,
            expected_md5: None,
            stream: futures_util::stream::iter([Ok(Bytes::from_static(b"x"))]),
        },
        encrypt: false,
        customer_key: None,
    }
}

async fn readable_by(cloud: &Cloud, requester: &Requester, key: &str) -> bool {
    let read = ReadObject {
        bucket: "b".into(),
        key: key.into(),
        ..Default::default()
    };
    reads::head(cloud, requester, &read).await.is_ok()
}

#[tokio::test]
async fn the_public_access_block_refuses_and_ignores_public_grants() {
    let (cloud, alice, bob) = testing::with_bucket().await;
    let anonymous = Requester::anonymous();
    writes::put(&cloud, &alice, put_of("public", "public-read"))
        .await
        .expect("put");
    assert!(readable_by(&cloud, &anonymous, "public").await);
    assert_eq!(
        get_access_block(&cloud, &alice, "b").await,
        Err(ObjectError::NoSuchPublicAccessBlockConfiguration)
    );
    let block = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: false,
    };
    assert_eq!(
        put_access_block(&cloud, &bob, "b", block).await,
        Err(ObjectError::AccessDenied)
    );
    put_access_block(&cloud, &alice, "b", block)
        .await
        .expect("block");
    assert_eq!(get_access_block(&cloud, &alice, "b").await, Ok(block));
    // Public grants already there count for nothing; new ones are refused.
    assert!(!readable_by(&cloud, &anonymous, "public").await);
    assert!(readable_by(&cloud, &alice, "public").await);
    assert_eq!(
        writes::put(&cloud, &alice, put_of("more", "public-read"))
            .await
            .err(),
        Some(ObjectError::AccessDenied)
    );
    assert_eq!(
        buckets::set_acl(
            &cloud,
            &alice,
            "b",
            AclRequest::Canned("public-read".into())
        )
        .await,
        Err(ObjectError::AccessDenied)
    );
    writes::put(&cloud, &alice, put_of("private", "private"))
        .await
        .expect("a private object is fine");
    let public_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
    assert_eq!(
        policy::put(&cloud, &alice, "b", public_policy).await,
        Err(ObjectError::AccessDenied)
    );
    delete_access_block(&cloud, &alice, "b")
        .await
        .expect("unblock");
    assert!(readable_by(&cloud, &anonymous, "public").await);
    policy::put(&cloud, &alice, "b", public_policy)
        .await
        .expect("policy allowed again");
}

#[tokio::test]
async fn bucket_owner_enforced_disables_acls() {
    let (cloud, alice, bob) = testing::with_bucket().await;
    // Bob may write into the bucket by its ACL.
    let bob_id = bob.account().expect("account").to_owned();
    let grant = crate::objects::acl::Grant {
        grantee: crate::objects::acl::Grantee::Account(bob_id),
        permission: Permission::Write,
    };
    buckets::set_acl(&cloud, &alice, "b", AclRequest::Grants(vec![grant]))
        .await
        .expect("grant");
    // Not while the bucket's ACL grants others.
    assert_eq!(
        put_ownership(&cloud, &alice, "b", ObjectOwnership::BucketOwnerEnforced).await,
        Err(ObjectError::InvalidBucketAclWithObjectOwnership)
    );
    let bob_object = writes::put(&cloud, &bob, put_of("by-bob", "private"))
        .await
        .expect("bob writes");
    assert_eq!(bob_object.owner_account, bob.account().expect("account"));
    buckets::set_acl(&cloud, &alice, "b", AclRequest::default())
        .await
        .expect("private again");
    assert_eq!(
        get_ownership(&cloud, &alice, "b").await,
        Err(ObjectError::OwnershipControlsNotFound)
    );
    put_ownership(&cloud, &alice, "b", ObjectOwnership::BucketOwnerEnforced)
        .await
        .expect("enforce");
    assert_eq!(
        get_ownership(&cloud, &alice, "b").await,
        Ok(ObjectOwnership::BucketOwnerEnforced)
    );
    assert_eq!(
        get_ownership(&cloud, &bob, "b").await,
        Err(ObjectError::AccessDenied)
    );
    // ACLs are refused, except the owner's full control.
    assert_eq!(
        writes::put(&cloud, &alice, put_of("k", "public-read"))
            .await
            .err(),
        Some(ObjectError::AccessControlListNotSupported)
    );
    let mine = writes::put(&cloud, &alice, put_of("k", "bucket-owner-full-control"))
        .await
        .expect("put");
    assert_eq!(mine.owner_account, alice.account().expect("account"));
    assert_eq!(
        buckets::set_acl(
            &cloud,
            &alice,
            "b",
            AclRequest::Canned("public-read".into())
        )
        .await,
        Err(ObjectError::AccessControlListNotSupported)
    );
    // The object bob wrote is the bucket owner's to read now; bob's own
    // ACL counts for nothing.
    assert!(readable_by(&cloud, &alice, "by-bob").await);
    assert!(!readable_by(&cloud, &bob, "by-bob").await);
    delete_ownership(&cloud, &alice, "b").await.expect("delete");
    assert!(readable_by(&cloud, &bob, "by-bob").await);
}
