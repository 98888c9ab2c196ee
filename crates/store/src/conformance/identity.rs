//! Conformance: IAM users (rename carries keys, compare-and-set), key
//! activation and last use, and entities.

use crate::identity::{IamEntity, IamUser, KeyLastUsed, SessionRecord};
use crate::{AccessKey, Store, StoreError};

use super::create_accounts;

fn user(account_id: &str, name: &str, id: &str) -> IamUser {
    IamUser {
        account_id: account_id.into(),
        user_name: name.into(),
        user_id: id.into(),
        details: "{}".into(),
        revision: 0,
        created_at: 5,
    }
}

fn key(id: &str, account_id: &str, user_name: &str) -> AccessKey {
    AccessKey {
        access_key_id: id.into(),
        secret_access_key: format!("secret-{id}"),
        account_id: account_id.into(),
        user_name: user_name.into(),
        active: true,
        created_at: 7,
    }
}

pub(super) async fn run(store: &dyn Store) {
    users_and_keys(store).await;
    entities(store).await;
    sessions(store).await;
    account_deletion(store).await;
}

async fn account_deletion(store: &dyn Store) {
    create_accounts(
        store,
        &[
            ("300000000009", "ident-gone"),
            ("300000000010", "ident-owns"),
        ],
    )
    .await;
    let gone = "300000000009";
    store
        .create_user(&user(gone, "ci", "AIDAGONECI"))
        .await
        .expect("user");
    store
        .create_access_key(&key("AKIAGONE1", gone, "ci"))
        .await
        .expect("key");
    store
        .create_access_key(&key("AKIAGONE2", gone, "admin"))
        .await
        .expect("admin key");
    let group = IamEntity {
        account_id: gone.into(),
        kind: "group".into(),
        name: "qa".into(),
        entity_id: "AGPAGONE".into(),
        details: "{}".into(),
        revision: 0,
        created_at: 3,
    };
    store.create_entity(&group).await.expect("group");
    assert!(store.delete_account(gone).await.expect("delete"));
    assert!(store.account_by_id(gone).await.expect("read").is_none());
    assert!(store.access_key("AKIAGONE1").await.expect("key").is_none());
    assert!(store.users(gone).await.expect("users").is_empty());
    assert!(
        store
            .entities(gone, "group")
            .await
            .expect("groups")
            .is_empty()
    );
    assert!(!store.delete_account(gone).await.expect("again"));
    // An account that owns a resource stays, whole.
    let owns = "300000000010";
    store
        .create_access_key(&key("AKIAOWNS", owns, "admin"))
        .await
        .expect("key");
    let kp = crate::KeyPair {
        key_pair_id: "key-owns".into(),
        account_id: owns.into(),
        name: "k".into(),
        key_type: "rsa".into(),
        fingerprint: "f".into(),
        public_key: "p".into(),
        created_at: 1,
    };
    store.create_key_pair(&kp, &[]).await.expect("key pair");
    assert!(matches!(
        store.delete_account(owns).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.account_by_id(owns).await.expect("read").is_some());
    assert!(
        store.access_key("AKIAOWNS").await.expect("key").is_some(),
        "nothing deleted"
    );
}

async fn sessions(store: &dyn Store) {
    let a = "300000000001";
    let session = SessionRecord {
        access_key_id: "ASIAONE".into(),
        secret_access_key: "s".into(),
        session_token: "token".into(),
        account_id: a.into(),
        user_name: "admin".into(),
        role_name: Some("reader".into()),
        session_name: "ci".into(),
        details: "{}".into(),
        expires_at: 1_000,
        created_at: 10,
    };
    store.create_session(&session).await.expect("session");
    assert!(matches!(
        store.create_session(&session).await,
        Err(StoreError::Conflict(_))
    ));
    let later = SessionRecord {
        access_key_id: "ASIATWO".into(),
        expires_at: 5_000,
        role_name: None,
        ..session.clone()
    };
    store.create_session(&later).await.expect("second");
    assert_eq!(store.session("ASIAONE").await.expect("get"), Some(session));
    assert_eq!(store.session("ASIANONE").await.expect("get"), None);
    assert_eq!(
        store.delete_expired_sessions(2_000).await.expect("expire"),
        1
    );
    assert!(store.session("ASIAONE").await.expect("get").is_none());
    assert_eq!(store.session("ASIATWO").await.expect("get"), Some(later));
}

async fn users_and_keys(store: &dyn Store) {
    create_accounts(
        store,
        &[("300000000001", "ident-a"), ("300000000002", "ident-b")],
    )
    .await;
    let a = "300000000001";
    let generation = |account: Option<crate::Account>| account.expect("account").iam_generation;
    let before = generation(store.account_by_id(a).await.expect("account"));
    store
        .create_user(&user(a, "alice", "AIDAALICE"))
        .await
        .expect("alice");
    let after = generation(store.account_by_id(a).await.expect("account"));
    assert!(
        after > before,
        "a new user changes the account's IAM generation"
    );
    store
        .create_access_key(&key("AKIAGEN", a, "admin"))
        .await
        .expect("key");
    let (_, via_key) = store
        .access_key("AKIAGEN")
        .await
        .expect("key")
        .expect("found");
    assert_eq!(
        via_key.iam_generation, after,
        "the key lookup carries the generation"
    );
    assert!(matches!(
        store.create_user(&user(a, "alice", "AIDAOTHER")).await,
        Err(StoreError::Conflict(_))
    ));
    // The same name in another account is another user.
    store
        .create_user(&user("300000000002", "alice", "AIDAALICE2"))
        .await
        .expect("alice in b");
    let names: Vec<String> = store
        .users(a)
        .await
        .expect("users")
        .into_iter()
        .map(|u| u.user_name)
        .collect();
    assert_eq!(names, ["admin", "alice"]);

    store
        .create_access_key(&key("AKIAALICE1", a, "alice"))
        .await
        .expect("key");
    store
        .create_access_key(&key("AKIAALICE2", a, "alice"))
        .await
        .expect("key 2");
    assert!(
        store
            .set_access_key_active(a, "alice", "AKIAALICE2", false)
            .await
            .expect("deactivate")
    );
    assert!(
        !store
            .set_access_key_active(a, "bob", "AKIAALICE2", false)
            .await
            .expect("not bob's")
    );
    let used = KeyLastUsed {
        at: 99,
        service: "ec2".into(),
        region: "r1".into(),
    };
    store
        .record_key_use("AKIAALICE1", &used)
        .await
        .expect("use");
    assert_eq!(
        store.key_last_used("AKIAALICE1").await.expect("last"),
        Some(used.clone())
    );
    assert_eq!(
        store.key_last_used("AKIAALICE2").await.expect("never"),
        None
    );

    // Rename: the keys follow; a stale revision changes nothing.
    let mut alice = store.user(a, "alice").await.expect("get").expect("alice");
    alice.user_name = "alicia".into();
    alice.details = r#"{"path":"/qa/"}"#.into();
    assert!(store.update_user("alice", &alice).await.expect("rename"));
    assert!(
        !store
            .update_user("alicia", &alice)
            .await
            .expect("stale revision")
    );
    assert!(store.user(a, "alice").await.expect("get").is_none());
    let alicia = store.user(a, "alicia").await.expect("get").expect("alicia");
    assert_eq!(
        (alicia.revision, alicia.details.as_str()),
        (1, r#"{"path":"/qa/"}"#)
    );
    let keys = store.user_access_keys(a, "alicia").await.expect("keys");
    assert_eq!(
        keys.iter()
            .map(|k| (k.key.access_key_id.as_str(), k.key.active))
            .collect::<Vec<_>>(),
        [("AKIAALICE1", true), ("AKIAALICE2", false)]
    );
    assert_eq!(keys[0].last_used, Some(used));
    let (found, _) = store
        .access_key("AKIAALICE1")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.user_name, "alicia");
    // Renaming onto a taken name is a conflict and changes nothing.
    let mut onto_admin = alicia.clone();
    onto_admin.user_name = "admin".into();
    assert!(matches!(
        store.update_user("alicia", &onto_admin).await,
        Err(StoreError::Conflict(_))
    ));

    assert!(
        store
            .delete_access_key(a, "alicia", "AKIAALICE2")
            .await
            .expect("delete key")
    );
    assert!(
        !store
            .delete_access_key(a, "alicia", "AKIAALICE2")
            .await
            .expect("gone")
    );
    assert!(!store.delete_user(a, "alicia", 0).await.expect("stale"));
    assert!(store.delete_user(a, "alicia", 1).await.expect("delete"));
    assert!(
        store
            .access_key("AKIAALICE1")
            .await
            .expect("lookup")
            .is_none(),
        "keys go with the user"
    );
}

async fn entities(store: &dyn Store) {
    let a = "300000000001";
    let group = IamEntity {
        account_id: a.into(),
        kind: "group".into(),
        name: "qa".into(),
        entity_id: "AGPAQA".into(),
        details: "{}".into(),
        revision: 0,
        created_at: 3,
    };
    store.create_entity(&group).await.expect("group");
    assert!(matches!(
        store.create_entity(&group).await,
        Err(StoreError::Conflict(_))
    ));
    // The same name as another kind is another entity.
    let role = IamEntity {
        kind: "role".into(),
        entity_id: "AROAQA".into(),
        ..group.clone()
    };
    store.create_entity(&role).await.expect("role named qa");
    let dup_id = IamEntity {
        name: "other".into(),
        ..group.clone()
    };
    assert!(matches!(
        store.create_entity(&dup_id).await,
        Err(StoreError::Conflict(_))
    ));

    let mut stored = store
        .entity(a, "group", "qa")
        .await
        .expect("get")
        .expect("qa");
    stored.details = r#"{"policies":{}}"#.into();
    let before = store
        .account_by_id(a)
        .await
        .expect("account")
        .expect("a")
        .iam_generation;
    assert!(store.update_entity(&stored).await.expect("update"));
    let after = store
        .account_by_id(a)
        .await
        .expect("account")
        .expect("a")
        .iam_generation;
    assert!(after > before, "a changed group changes the generation");
    assert!(!store.update_entity(&stored).await.expect("stale"));
    let now = store
        .entity(a, "group", "qa")
        .await
        .expect("get")
        .expect("qa");
    assert_eq!(
        (now.revision, now.details.as_str()),
        (1, r#"{"policies":{}}"#)
    );
    assert_eq!(store.entities(a, "group").await.expect("list").len(), 1);
    assert!(
        store
            .entities("300000000002", "group")
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        !store
            .delete_entity(a, "group", "qa", 0)
            .await
            .expect("stale")
    );
    assert!(
        store
            .delete_entity(a, "group", "qa", 1)
            .await
            .expect("delete")
    );
    assert!(store.entity(a, "group", "qa").await.expect("get").is_none());
    assert!(store.entity(a, "role", "qa").await.expect("get").is_some());
}

/// Signing certificates: per user, active or not, gone with their user.
pub(super) async fn signing_certificates(store: &dyn Store) {
    use crate::identity::SigningCertificate;
    create_accounts(store, &[("300000000020", "ident-certs")]).await;
    let account = "300000000020";
    store
        .create_user(&user(account, "bundler", "AIDACERTS"))
        .await
        .expect("user");
    let cert = |id: &str, user_name: &str, at: i64| SigningCertificate {
        certificate_id: id.into(),
        account_id: account.into(),
        user_name: user_name.into(),
        body: format!("-----BEGIN CERTIFICATE-----\n{id}\n-----END CERTIFICATE-----\n"),
        active: true,
        uploaded_at: at,
    };
    store
        .create_signing_certificate(&cert("CERT1", "bundler", 1))
        .await
        .expect("create");
    store
        .create_signing_certificate(&cert("CERT2", "admin", 2))
        .await
        .expect("create");
    assert!(matches!(
        store
            .create_signing_certificate(&cert("CERT1", "admin", 3))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .create_signing_certificate(&cert("CERT3", "nobody", 3))
            .await,
        Err(StoreError::NotFound(_))
    ));
    let ids =
        |v: Vec<SigningCertificate>| v.into_iter().map(|c| c.certificate_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .signing_certificates(account, None)
            .await
            .expect("all")),
        ["CERT1", "CERT2"]
    );
    assert_eq!(
        ids(store
            .signing_certificates(account, Some("bundler"))
            .await
            .expect("one")),
        ["CERT1"]
    );
    assert!(
        !store
            .set_signing_certificate_active(account, "admin", "CERT1", false)
            .await
            .expect("other user's")
    );
    assert!(
        store
            .set_signing_certificate_active(account, "bundler", "CERT1", false)
            .await
            .expect("deactivate")
    );
    assert!(
        !store
            .signing_certificates(account, Some("bundler"))
            .await
            .expect("one")[0]
            .active
    );
    assert!(
        store
            .delete_signing_certificate(account, "admin", "CERT2")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_signing_certificate(account, "admin", "CERT2")
            .await
            .expect("again")
    );
    let revision = store
        .user(account, "bundler")
        .await
        .expect("user")
        .expect("there")
        .revision;
    assert!(
        store
            .delete_user(account, "bundler", revision)
            .await
            .expect("delete user")
    );
    assert!(
        store
            .signing_certificates(account, None)
            .await
            .expect("all")
            .is_empty()
    );
}
