//! Conformance checks of [`crate::NodeEnrolmentIndex`]: a token enrols one
//! node, once, before it expires, however enrolments race; a node id has
//! one live enrolment; removal revokes and forgets together; registrations
//! count only with a live certificate of the node's zone.

use futures_util::future::join_all;

use crate::{EnrolOutcome, EnrolmentTokenRecord, Node, NodeCertificate, Store, StoreError};

fn token(id: &str, zone: &str, expires_at: i64) -> EnrolmentTokenRecord {
    EnrolmentTokenRecord {
        token_id: id.into(),
        secret_sha256: format!("sha-of-{id}"),
        zone: zone.into(),
        created_at: 100,
        expires_at,
        used_at: None,
        used_by: None,
    }
}

fn certificate(serial: &str, node: &str, token_id: Option<&str>) -> NodeCertificate {
    NodeCertificate {
        serial: serial.into(),
        node_id: node.into(),
        zone: "enrol-z".into(),
        fingerprint: format!("fp-{serial}"),
        issued_at: 200,
        expires_at: 9_000_000,
        token_id: token_id.map(str::to_owned),
        revoked_at: None,
    }
}

fn node(id: &str, zone: &str) -> Node {
    Node {
        node_id: id.into(),
        zone: zone.into(),
        address: "https://127.0.0.1:9".into(),
        cores_max: 2,
        cores_free: 2,
        updated_at: 300,
        version: "0.1.0".into(),
        accel: "tcg".into(),
        ..Node::default()
    }
}

/// Runs every check.
pub async fn run(store: &dyn Store) {
    tokens_enrol_once(store).await;
    racing_enrolments_spend_a_token_once(store).await;
    removal_revokes_and_forgets(store).await;
}

async fn tokens_enrol_once(store: &dyn Store) {
    store
        .create_enrolment_token(&token("t-1", "enrol-z", 1_000))
        .await
        .expect("token");
    assert!(matches!(
        store
            .create_enrolment_token(&token("t-1", "enrol-z", 1_000))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.enrolment_token("t-1").await.expect("get"),
        Some(token("t-1", "enrol-z", 1_000))
    );
    assert_eq!(store.enrolment_token("t-none").await.expect("get"), None);

    let first = certificate("0a01", "nd-e1", Some("t-1"));
    assert_eq!(
        store.enrol_node("t-1", 500, &first).await.expect("enrol"),
        EnrolOutcome::Enrolled
    );
    let spent = store
        .enrolment_token("t-1")
        .await
        .expect("get")
        .expect("some");
    assert_eq!(spent.used_at, Some(500));
    assert_eq!(spent.used_by.as_deref(), Some("nd-e1"));
    assert_eq!(
        store.node_certificate("0a01").await.expect("get"),
        Some(first.clone())
    );

    // Used, unknown and expired tokens record nothing.
    store
        .create_enrolment_token(&token("t-old", "enrol-z", 400))
        .await
        .expect("token");
    for (token_id, serial) in [("t-1", "0a02"), ("t-none", "0a03"), ("t-old", "0a04")] {
        let c = certificate(serial, "nd-e2", Some(token_id));
        assert_eq!(
            store.enrol_node(token_id, 500, &c).await.expect("enrol"),
            EnrolOutcome::TokenSpent,
            "{token_id}"
        );
        assert_eq!(store.node_certificate(serial).await.expect("get"), None);
    }
    assert_eq!(
        store
            .enrolment_token("t-old")
            .await
            .expect("get")
            .and_then(|t| t.used_at),
        None
    );

    // A node enrolled already is not enrolled twice, and the token stays
    // good for another node.
    store
        .create_enrolment_token(&token("t-2", "enrol-z", 1_000))
        .await
        .expect("token");
    let again = certificate("0a05", "nd-e1", Some("t-2"));
    assert_eq!(
        store.enrol_node("t-2", 500, &again).await.expect("enrol"),
        EnrolOutcome::NodeEnrolled
    );
    assert_eq!(
        store
            .enrolment_token("t-2")
            .await
            .expect("get")
            .and_then(|t| t.used_at),
        None
    );
    assert_eq!(
        store.node_certificates("nd-e1").await.expect("list"),
        vec![first]
    );
}

async fn racing_enrolments_spend_a_token_once(store: &dyn Store) {
    store
        .create_enrolment_token(&token("t-race", "enrol-z", 1_000))
        .await
        .expect("token");
    let certs: Vec<NodeCertificate> = (0..8)
        .map(|i| {
            certificate(
                &format!("0b{i:02}"),
                &format!("nd-race-{i}"),
                Some("t-race"),
            )
        })
        .collect();
    let outcomes = join_all(certs.iter().map(|c| store.enrol_node("t-race", 600, c))).await;
    let enrolled = outcomes
        .into_iter()
        .map(|o| o.expect("enrol"))
        .filter(|o| *o == EnrolOutcome::Enrolled)
        .count();
    assert_eq!(enrolled, 1);
    let mut recorded = 0;
    for c in &certs {
        recorded += store
            .node_certificates(&c.node_id)
            .await
            .expect("list")
            .len();
    }
    assert_eq!(recorded, 1);
}

async fn removal_revokes_and_forgets(store: &dyn Store) {
    let live = certificate("0c01", "nd-r1", None);
    store.record_node_certificate(&live).await.expect("record");
    assert!(matches!(
        store.record_node_certificate(&live).await,
        Err(StoreError::Conflict(_))
    ));
    // Registration needs a live certificate of that node and zone.
    assert!(
        store
            .register_node(&node("nd-r1", "enrol-z"), "0c01")
            .await
            .expect("register")
    );
    assert!(
        !store
            .register_node(&node("nd-r1", "other-z"), "0c01")
            .await
            .expect("wrong zone")
    );
    assert!(
        !store
            .register_node(&node("nd-r2", "enrol-z"), "0c01")
            .await
            .expect("wrong node")
    );
    assert!(
        !store
            .register_node(&node("nd-r1", "enrol-z"), "0c99")
            .await
            .expect("unknown serial")
    );
    let listed = store.nodes().await.expect("nodes");
    let recorded: Vec<&Node> = listed.iter().filter(|n| n.node_id == "nd-r1").collect();
    assert_eq!(recorded, vec![&node("nd-r1", "enrol-z")]);

    let second = certificate("0c02", "nd-r1", None);
    store
        .record_node_certificate(&second)
        .await
        .expect("record");
    let mut revoked = store.revoke_node("nd-r1", 700).await.expect("revoke");
    revoked.sort();
    assert_eq!(revoked, vec!["0c01".to_owned(), "0c02".to_owned()]);
    assert!(
        !store
            .nodes()
            .await
            .expect("nodes")
            .iter()
            .any(|n| n.node_id == "nd-r1")
    );
    let serials = store.revoked_serials().await.expect("revoked");
    assert!(serials.contains(&"0c01".to_owned()) && serials.contains(&"0c02".to_owned()));
    assert_eq!(
        store
            .node_certificate("0c01")
            .await
            .expect("get")
            .and_then(|c| c.revoked_at),
        Some(700)
    );
    // A removed node's heartbeat does not bring it back.
    assert!(
        !store
            .register_node(&node("nd-r1", "enrol-z"), "0c01")
            .await
            .expect("register revoked")
    );
    assert!(
        store
            .revoke_node("nd-r1", 800)
            .await
            .expect("again")
            .is_empty()
    );

    // It may enrol again with a new token.
    store
        .create_enrolment_token(&token("t-back", "enrol-z", 1_000))
        .await
        .expect("token");
    assert_eq!(
        store
            .enrol_node("t-back", 900, &certificate("0c03", "nd-r1", Some("t-back")))
            .await
            .expect("enrol"),
        EnrolOutcome::Enrolled
    );
}
