//! Real TLS handshakes (in memory) between configurations of the cluster
//! PKI: who gets in and who does not, and why.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mallee_pki::tls::{ClientAuth, client_config, enrolment_client_config, server_config};
use mallee_pki::{
    ClusterCa, ControllerPki, Credentials, Fingerprint, PeerKind, PeerName, RevocationSet, Trust,
    Validity,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

/// Runs a handshake; returns the server's view of the client's name.
fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
) -> Result<Option<PeerName>, rustls::Error> {
    // The dialled name is an address: identities, not addresses, count.
    let dialled = ServerName::try_from("192.0.2.7").expect("name");
    let mut c = ClientConnection::new(client, dialled)?;
    let mut s = ServerConnection::new(server)?;
    for _ in 0..20 {
        if !c.is_handshaking() && !s.is_handshaking() {
            let name = s
                .peer_certificates()
                .and_then(|certs| mallee_pki::CertInfo::parse(&certs[0]).ok().map(|i| i.name));
            return Ok(name);
        }
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).expect("client write");
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).expect("server read");
        }
        let server_result = s.process_new_packets().map(|_| ());
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).expect("server write");
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).expect("client read");
        }
        server_result?;
        c.process_new_packets()?;
    }
    Err(rustls::Error::General("handshake stalled".into()))
}

struct Cluster {
    controller: ControllerPki,
}

impl Cluster {
    fn new() -> Self {
        Self {
            controller: ControllerPki::in_memory().expect("pki"),
        }
    }

    fn node(&self, id: &str) -> Credentials {
        self.node_with(id, Validity::peer())
    }

    fn node_with(&self, id: &str, validity: Validity) -> Credentials {
        self.controller
            .ca()
            .issue(&PeerName::node(id).expect("id"), validity)
            .expect("issue")
    }

    /// What a node dials the controller with.
    fn node_client(&self, node: &Credentials) -> Arc<ClientConfig> {
        client_config(node, &node.trust(), &PeerName::Controller).expect("client")
    }

    /// The node API server of `node`: the controller only.
    fn node_server(&self, node: &Credentials) -> Arc<ServerConfig> {
        server_config(
            node,
            &node.trust(),
            ClientAuth::Require(PeerKind::Controller),
        )
        .expect("server")
    }
}

#[test]
fn a_node_and_the_controller_accept_each_other() {
    let cluster = Cluster::new();
    let node = cluster.node("nd-1");
    let seen = handshake(
        cluster.node_client(&node),
        cluster.controller.node_listener_config(),
    )
    .expect("node to controller");
    assert_eq!(seen, Some(PeerName::node("nd-1").expect("id")));
    let seen = handshake(
        cluster.controller.node_client_config("nd-1"),
        cluster.node_server(&node),
    )
    .expect("controller to node");
    assert_eq!(seen, Some(PeerName::Controller));
}

#[test]
fn a_certificate_of_another_ca_or_self_made_is_refused() {
    let cluster = Cluster::new();
    let other = ClusterCa::generate().expect("other CA");
    let stranger = other
        .issue(&PeerName::node("nd-1").expect("id"), Validity::peer())
        .expect("issue");
    let err = handshake(
        client_config(
            &stranger,
            &cluster.node("nd-2").trust(),
            &PeerName::Controller,
        )
        .expect("client"),
        cluster.controller.node_listener_config(),
    )
    .expect_err("another CA's node got in");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );

    // A self-signed certificate naming a node, with its key.
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec![PeerName::node("nd-1").expect("id").dns_name()])
            .expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    let real = cluster.node("nd-3");
    // Credentials refuse to hold it: it does not chain to the CA.
    assert!(Credentials::new(real.ca_pem(), &cert.pem(), &key.serialize_pem()).is_err());
    assert!(real.trust().check_pem(&cert.pem()).is_err());

    // The controller's calls refuse a node server of another CA.
    let err = handshake(
        cluster.controller.node_client_config("nd-1"),
        server_config(
            &stranger,
            &stranger.trust(),
            ClientAuth::Require(PeerKind::Controller),
        )
        .expect("server"),
    )
    .expect_err("controller trusted another CA's node");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
}

#[test]
fn a_revoked_certificate_is_refused_from_the_next_handshake_on() {
    let cluster = Cluster::new();
    let node = cluster.node("nd-1");
    let listener = cluster.controller.node_listener_config();
    handshake(cluster.node_client(&node), listener.clone()).expect("before");
    assert!(cluster.controller.revocations().revoke(&node.info().serial));
    let err =
        handshake(cluster.node_client(&node), listener.clone()).expect_err("revoked node got in");
    assert!(err.to_string().to_lowercase().contains("revoked"), "{err}");
    // And the controller no longer calls it.
    let err = handshake(
        cluster.controller.node_client_config("nd-1"),
        cluster.node_server(&node),
    )
    .expect_err("controller called a revoked node");
    assert!(err.to_string().to_lowercase().contains("revoked"), "{err}");
    // Other nodes are not affected; a new certificate of the same node is
    // a different serial.
    handshake(cluster.node_client(&cluster.node("nd-2")), listener.clone()).expect("nd-2");
    handshake(cluster.node_client(&cluster.node("nd-1")), listener.clone()).expect("new nd-1");
    // Replacing the set from the store lifts or keeps revocations.
    cluster.controller.revocations().replace(Vec::new());
    handshake(cluster.node_client(&node), listener).expect("unrevoked");
}

#[test]
fn a_resumed_session_does_not_outlive_a_revocation() {
    let cluster = Cluster::new();
    let node = cluster.node("nd-1");
    // The same configurations throughout, as a long-running process has.
    let to_controller = cluster.node_client(&node);
    let listener = cluster.controller.node_listener_config();
    let to_node = cluster.controller.node_client_config("nd-1");
    let node_server = cluster.node_server(&node);
    for _ in 0..3 {
        handshake(to_controller.clone(), listener.clone()).expect("node to controller");
        handshake(to_node.clone(), node_server.clone()).expect("controller to node");
    }
    cluster.controller.revocations().revoke(&node.info().serial);
    assert!(handshake(to_controller, listener).is_err());
    assert!(handshake(to_node, node_server).is_err());
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let cluster = Cluster::new();
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    for (what, validity) in [
        (
            "expired",
            Validity {
                not_before: now - 10 * day,
                not_after: now - day,
            },
        ),
        (
            "not yet valid",
            Validity {
                not_before: now + day,
                not_after: now + 10 * day,
            },
        ),
    ] {
        let node = cluster.node_with("nd-1", validity);
        let err = handshake(
            cluster.node_client(&node),
            cluster.controller.node_listener_config(),
        )
        .expect_err(what);
        assert!(
            err.to_string().contains("invalid peer certificate"),
            "{what}: {err}"
        );
    }
}

#[test]
fn each_side_admits_only_the_other_kind_and_the_expected_node() {
    let cluster = Cluster::new();
    let a = cluster.node("nd-a");
    let b = cluster.node("nd-b");
    // A node may not call another node's API as if it were the controller.
    let err = handshake(
        client_config(&a, &a.trust(), &PeerName::node("nd-b").expect("id")).expect("client"),
        cluster.node_server(&b),
    )
    .expect_err("a node called a node");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    // The controller calling nd-a refuses nd-b answering.
    let err = handshake(
        cluster.controller.node_client_config("nd-a"),
        cluster.node_server(&b),
    )
    .expect_err("wrong node answered");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    // An id no certificate can carry matches no node.
    assert!(
        handshake(
            cluster.controller.node_client_config("ND A"),
            cluster.node_server(&a),
        )
        .is_err()
    );
    // A node's certificate cannot pose as the controller's server.
    let err = handshake(
        cluster.node_client(&a),
        server_config(&b, &b.trust(), ClientAuth::Optional(PeerKind::Node)).expect("server"),
    )
    .expect_err("a node posed as the controller");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
}

#[test]
fn without_a_certificate_only_the_node_listener_admits_and_only_anonymously() {
    let cluster = Cluster::new();
    let ca = cluster.controller.ca().fingerprint();
    let anonymous = enrolment_client_config(ca).expect("enrol client");
    assert_eq!(
        handshake(anonymous.clone(), cluster.controller.node_listener_config())
            .expect("enrolment connection"),
        None
    );
    let node = cluster.node("nd-1");
    assert!(handshake(anonymous, cluster.node_server(&node)).is_err());
}

#[test]
fn an_enrolling_node_trusts_only_the_ca_of_its_token() {
    let cluster = Cluster::new();
    let wrong = Fingerprint::of(b"some other CA");
    let err = handshake(
        enrolment_client_config(wrong).expect("client"),
        cluster.controller.node_listener_config(),
    )
    .expect_err("unpinned CA trusted");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    // A server of the right CA that is not the controller (a node) is
    // refused too.
    let node = cluster.node("nd-1");
    let pinned = enrolment_client_config(cluster.controller.ca().fingerprint()).expect("client");
    assert!(
        handshake(
            pinned,
            server_config(&node, &node.trust(), ClientAuth::Optional(PeerKind::Node))
                .expect("server"),
        )
        .is_err()
    );
}

#[test]
fn trust_checks_chains_outside_tls_too() {
    let cluster = Cluster::new();
    let node = cluster.node("nd-1");
    let trust = Trust::new(
        cluster.controller.ca().certificate_pem(),
        RevocationSet::new(),
    )
    .expect("trust");
    assert_eq!(
        trust.check_pem(node.cert_pem()).expect("good").serial,
        node.info().serial
    );
    trust.revocations().revoke(&node.info().serial);
    assert!(trust.check_pem(node.cert_pem()).is_err());
}
