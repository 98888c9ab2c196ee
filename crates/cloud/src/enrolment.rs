//! Enrolment: how a host becomes a node of the cloud. An administrator
//! makes a one-time token for a zone ([`create_token`]); the joining node
//! sends it with a signing request for its own key ([`enrol`]); the
//! controller checks the token (known, secret matching in constant time,
//! unused, unexpired, the zone the node asks for), signs the node's
//! certificate and spends the token in the transaction that records the
//! certificate. Anything refused records nothing. The node `mallee up`
//! runs in-process gets its certificate from the CA directly
//! ([`local_node_credentials`]). Removed nodes' certificates reach the
//! TLS layer through [`sync_revocations`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mallee_node_api::enrol::{EnrolRequest, EnrolResponse};
use mallee_node_api::version::{ApiVersion, compatible};
use mallee_pki::{Credentials, EnrolmentToken, Fingerprint, Issued, PeerName, Validity};
use mallee_store::{EnrolOutcome, EnrolmentTokenRecord, NodeCertificate, Store, StoreError};

use crate::Cloud;
use crate::ids::now_millis;

/// How long a token lasts unless told.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);
/// The node of `mallee up` gets a new certificate when its own ends sooner.
const RENEW_BEFORE_MILLIS: i64 = 30 * 24 * 60 * 60 * 1000;
/// How often the running controller reads the revocations other processes
/// (`mallee admin node remove`) recorded.
pub const REVOCATION_SYNC: Duration = Duration::from_secs(1);
/// File stem of a node's certificate and key in its `pki/` directory.
pub const NODE_STEM: &str = "node";

/// Why an enrolment (or a token) was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrolmentError {
    /// Unknown token, wrong secret, or another cluster's token (one
    /// answer for all, so the answer tells nothing about which).
    #[error("the enrolment token is not recognised")]
    NotRecognised,
    /// The token enrolled a node already.
    #[error("the enrolment token was used already (tokens enrol one node)")]
    Used,
    /// The token expired.
    #[error("the enrolment token has expired")]
    Expired,
    /// The node asked for another zone than the token's.
    #[error("the enrolment token is for zone {token}, not {asked}")]
    WrongZone {
        /// The token's zone.
        token: String,
        /// The zone asked for.
        asked: String,
    },
    /// The zone is not one of this cloud's.
    #[error("zone {0} is not a zone of this cloud")]
    UnknownZone(String),
    /// The node id is enrolled already.
    #[error("node {0} is enrolled already: remove it first (`mallee admin node remove {0}`)")]
    NodeEnrolled(String),
    /// The request is malformed (node id, signing request).
    #[error("bad enrolment request: {0}")]
    BadRequest(String),
    /// The node's version cannot work with this controller.
    #[error("{0}")]
    Incompatible(String),
    /// The CA could not sign.
    #[error("could not issue the certificate: {0}")]
    Ca(#[from] mallee_pki::CaError),
    /// The node's credentials could not be kept.
    #[error("{0}")]
    Credentials(#[from] mallee_pki::CredentialsError),
    /// The store failed.
    #[error("could not record the enrolment: {0}")]
    Store(#[from] StoreError),
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A token made by [`create_token`].
#[derive(Debug, Clone)]
pub struct CreatedToken {
    /// What the administrator hands the node.
    pub token: EnrolmentToken,
    /// The zone it enrols into.
    pub zone: String,
    /// When it stops working (Unix milliseconds).
    pub expires_at: i64,
}

/// Makes and records a one-time token enrolling a node into `zone` (one
/// of `zones`) for `ttl`, carrying the fingerprint of the CA `ca`.
pub async fn create_token(
    store: &dyn Store,
    ca: Fingerprint,
    zones: &[String],
    zone: &str,
    ttl: Duration,
) -> Result<CreatedToken, EnrolmentError> {
    if !zones.iter().any(|z| z == zone) {
        return Err(EnrolmentError::UnknownZone(zone.to_owned()));
    }
    let token = EnrolmentToken::generate(ca);
    let now = now_millis();
    let expires_at = now.saturating_add(millis(ttl));
    store
        .create_enrolment_token(&EnrolmentTokenRecord {
            token_id: token.id().to_owned(),
            secret_sha256: token.secret_sha256(),
            zone: zone.to_owned(),
            created_at: now,
            expires_at,
            used_at: None,
            used_by: None,
        })
        .await?;
    tracing::info!(token = %token.id(), zone, expires_at, "enrolment token created");
    Ok(CreatedToken {
        token,
        zone: zone.to_owned(),
        expires_at,
    })
}

fn record_of(issued: &Issued, zone: &str, token_id: Option<&str>) -> NodeCertificate {
    NodeCertificate {
        serial: issued.info.serial.clone(),
        node_id: issued.info.name.node_id().unwrap_or_default().to_owned(),
        zone: zone.to_owned(),
        fingerprint: issued.info.fingerprint.to_string(),
        issued_at: now_millis(),
        expires_at: issued.info.not_after_millis,
        token_id: token_id.map(str::to_owned),
        revoked_at: None,
    }
}

/// Exchanges a node's token and signing request for its certificate.
pub async fn enrol(cloud: &Cloud, request: &EnrolRequest) -> Result<EnrolResponse, EnrolmentError> {
    let result = check_and_sign(cloud, request).await;
    match &result {
        Ok(response) => {
            tracing::info!(node = %response.node_id, zone = %response.zone, "node enrolled")
        }
        Err(e) => tracing::warn!(node = %request.node_id, error = %e, "enrolment refused"),
    }
    result
}

async fn check_and_sign(
    cloud: &Cloud,
    request: &EnrolRequest,
) -> Result<EnrolResponse, EnrolmentError> {
    let pki = cloud.compute.nodes.pki();
    let token: EnrolmentToken = request
        .token
        .parse()
        .map_err(|_| EnrolmentError::NotRecognised)?;
    if token.ca() != pki.ca().fingerprint() {
        return Err(EnrolmentError::NotRecognised);
    }
    let record = cloud
        .store
        .enrolment_token(token.id())
        .await?
        .ok_or(EnrolmentError::NotRecognised)?;
    if !token.secret_matches(&record.secret_sha256) {
        return Err(EnrolmentError::NotRecognised);
    }
    if record.used_at.is_some() {
        return Err(EnrolmentError::Used);
    }
    let now = now_millis();
    if record.expires_at <= now {
        return Err(EnrolmentError::Expired);
    }
    if let Some(asked) = request.zone.as_deref()
        && asked != record.zone
    {
        return Err(EnrolmentError::WrongZone {
            token: record.zone,
            asked: asked.to_owned(),
        });
    }
    if !cloud.config.zones.contains(&record.zone) {
        return Err(EnrolmentError::UnknownZone(record.zone));
    }
    request
        .version
        .parse::<ApiVersion>()
        .and_then(|node| compatible(ApiVersion::current(), node))
        .map_err(|e| EnrolmentError::Incompatible(e.to_string()))?;
    let name =
        PeerName::node(&request.node_id).map_err(|e| EnrolmentError::BadRequest(e.to_string()))?;
    let issued = pki
        .ca()
        .sign_request(&request.csr_pem, &name, Validity::peer())
        .map_err(|e| EnrolmentError::BadRequest(e.to_string()))?;
    let certificate = record_of(&issued, &record.zone, Some(token.id()));
    match cloud
        .store
        .enrol_node(token.id(), now, &certificate)
        .await?
    {
        EnrolOutcome::Enrolled => Ok(EnrolResponse {
            node_id: request.node_id.clone(),
            zone: record.zone,
            certificate_pem: issued.pem,
            ca_pem: pki.ca().certificate_pem().to_owned(),
        }),
        // Spent or expired since it was read: another enrolment won.
        EnrolOutcome::TokenSpent => Err(EnrolmentError::Used),
        EnrolOutcome::NodeEnrolled => Err(EnrolmentError::NodeEnrolled(request.node_id.clone())),
    }
}

/// The credentials of the node this controller runs in-process (`mallee
/// up`), kept in `dir`: the ones there while this CA issued them to
/// `node_id` for `zone`, recorded and not revoked, usable by QEMU (for NBD
/// volumes) and not ending within 30 days; otherwise new ones, issued
/// directly, recorded and saved.
pub async fn local_node_credentials(
    cloud: &Cloud,
    dir: &Path,
    node_id: &str,
    zone: &str,
) -> Result<Credentials, EnrolmentError> {
    let pki = cloud.compute.nodes.pki();
    let name = PeerName::node(node_id).map_err(|e| EnrolmentError::BadRequest(e.to_string()))?;
    let kept = match Credentials::load(dir, NODE_STEM) {
        Ok(kept) => kept,
        Err(e) => {
            tracing::warn!(error = %e, "the node's credentials are unusable; issuing new ones");
            None
        }
    };
    if let Some(kept) = kept
        && kept.ca_fingerprint() == pki.ca().fingerprint()
        && kept.info().name == name
        && kept.info().qemu_usable
        && kept.info().not_after_millis > now_millis().saturating_add(RENEW_BEFORE_MILLIS)
        && cloud
            .store
            .node_certificate(&kept.info().serial)
            .await?
            .is_some_and(|c| c.revoked_at.is_none() && c.zone == zone)
    {
        return Ok(kept);
    }
    let credentials = pki.ca().issue(&name, Validity::peer())?;
    let issued = Issued {
        pem: credentials.cert_pem().to_owned(),
        info: credentials.info().clone(),
    };
    cloud
        .store
        .record_node_certificate(&record_of(&issued, zone, None))
        .await?;
    credentials.save(dir, NODE_STEM)?;
    tracing::info!(node = node_id, serial = %credentials.info().serial, "issued the local node's certificate");
    Ok(credentials)
}

/// Makes the TLS layer's revocation set what the store holds, now and
/// then every [`REVOCATION_SYNC`] (revocations recorded by `mallee admin
/// node remove`, another process, take effect within that).
pub fn sync_revocations(cloud: Arc<Cloud>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match cloud.store.revoked_serials().await {
                Ok(serials) => {
                    let added = cloud.compute.nodes.pki().revocations().replace(serials);
                    if added > 0 {
                        tracing::info!(added, "refusing the certificates of removed nodes");
                        cloud.compute.wake();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read revoked certificates"),
            }
            tokio::time::sleep(REVOCATION_SYNC).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use mallee_pki::{ClusterCa, KeyRequest};

    use super::*;
    use crate::testkit::{TestCloud, ZONE};

    async fn token(cloud: &Cloud, ttl: Duration) -> EnrolmentToken {
        let ca = cloud.compute.nodes.pki().ca().fingerprint();
        create_token(cloud.store.as_ref(), ca, &cloud.config.zones, ZONE, ttl)
            .await
            .expect("token")
            .token
    }

    fn request(token: &EnrolmentToken, node_id: &str) -> (KeyRequest, EnrolRequest) {
        let key = KeyRequest::new(PeerName::node(node_id).expect("id")).expect("key");
        let request = EnrolRequest {
            token: token.to_string(),
            node_id: node_id.into(),
            zone: None,
            csr_pem: key.csr_pem().to_owned(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        (key, request)
    }

    async fn certificates(cloud: &Cloud, node_id: &str) -> usize {
        cloud
            .store
            .node_certificates(node_id)
            .await
            .expect("certificates")
            .len()
    }

    #[tokio::test]
    async fn a_token_enrols_one_node_once() {
        let tc = TestCloud::new().await;
        let t = token(&tc, DEFAULT_TOKEN_TTL).await;
        let (key, first) = request(&t, "nd-1");
        let answer = enrol(&tc, &first).await.expect("enrol");
        assert_eq!(
            (answer.node_id.as_str(), answer.zone.as_str()),
            ("nd-1", ZONE)
        );
        let credentials = key
            .complete(&answer.ca_pem, &answer.certificate_pem)
            .expect("the certificate fits the key");
        assert_eq!(
            credentials.ca_fingerprint(),
            tc.compute.nodes.pki().ca().fingerprint()
        );
        let recorded = tc
            .store
            .node_certificate(&credentials.info().serial)
            .await
            .expect("get")
            .expect("recorded");
        assert_eq!(recorded.token_id.as_deref(), Some(t.id()));
        // Used: refused, nothing recorded.
        let (_, second) = request(&t, "nd-2");
        assert!(matches!(
            enrol(&tc, &second).await,
            Err(EnrolmentError::Used)
        ));
        assert_eq!(certificates(&tc, "nd-2").await, 0);
    }

    #[tokio::test]
    async fn expired_unknown_and_foreign_tokens_are_refused_and_record_nothing() {
        let tc = TestCloud::new().await;
        let expired = token(&tc, Duration::ZERO).await;
        let (_, r) = request(&expired, "nd-1");
        assert!(matches!(enrol(&tc, &r).await, Err(EnrolmentError::Expired)));
        // Never stored.
        let unknown = EnrolmentToken::generate(tc.compute.nodes.pki().ca().fingerprint());
        let (_, r) = request(&unknown, "nd-1");
        assert!(matches!(
            enrol(&tc, &r).await,
            Err(EnrolmentError::NotRecognised)
        ));
        // A stored id with another secret.
        let good = token(&tc, DEFAULT_TOKEN_TTL).await;
        let forged = good.to_string();
        let forged = format!("{}{}", &forged[..forged.len() - 4], "0000");
        let (_, mut r) = request(&good, "nd-1");
        r.token = forged;
        assert!(matches!(
            enrol(&tc, &r).await,
            Err(EnrolmentError::NotRecognised)
        ));
        // Another cluster's token with a real id.
        let other = ClusterCa::generate().expect("ca").fingerprint();
        let foreign = good
            .to_string()
            .replace(&good.ca().to_string(), &other.to_string());
        r.token = foreign;
        assert!(matches!(
            enrol(&tc, &r).await,
            Err(EnrolmentError::NotRecognised)
        ));
        r.token = "garbage".into();
        assert!(matches!(
            enrol(&tc, &r).await,
            Err(EnrolmentError::NotRecognised)
        ));
        assert_eq!(certificates(&tc, "nd-1").await, 0);
        // The good token was never spent by those attempts.
        let (_, r) = request(&good, "nd-1");
        enrol(&tc, &r).await.expect("the real token still works");
    }

    #[tokio::test]
    async fn a_wrong_zone_or_a_bad_request_leaves_the_token_unspent() {
        let tc = TestCloud::new().await;
        let t = token(&tc, DEFAULT_TOKEN_TTL).await;
        let (_, mut r) = request(&t, "nd-1");
        r.zone = Some("mallee-1b".into());
        assert!(matches!(
            enrol(&tc, &r).await,
            Err(EnrolmentError::WrongZone { .. })
        ));
        let (_, mut r) = request(&t, "nd-1");
        r.csr_pem = "not a signing request".into();
        assert!(matches!(
            enrol(&tc, &r).await,
            Err(EnrolmentError::BadRequest(_))
        ));
        let (_, mut r) = request(&t, "nd-1");
        r.node_id = "Not An Id".into();
        assert!(matches!(
            enrol(&tc, &r).await,
            Err(EnrolmentError::BadRequest(_))
        ));
        let (_, mut r) = request(&t, "nd-1");
        r.version = "99.0.0".into();
        assert!(matches!(
            enrol(&tc, &r).await,
            Err(EnrolmentError::Incompatible(_))
        ));
        assert_eq!(certificates(&tc, "nd-1").await, 0);
        let (_, mut r) = request(&t, "nd-1");
        r.zone = Some(ZONE.into());
        enrol(&tc, &r).await.expect("then it enrols");
        assert!(
            create_token(
                tc.store.as_ref(),
                t.ca(),
                &tc.config.zones,
                "nowhere-1a",
                DEFAULT_TOKEN_TTL
            )
            .await
            .is_err()
        );
    }

    #[tokio::test]
    async fn an_enrolled_node_id_is_not_enrolled_twice() {
        let tc = TestCloud::new().await;
        tc.enrol_node("nd-1", ZONE).await;
        let t = token(&tc, DEFAULT_TOKEN_TTL).await;
        let (_, r) = request(&t, "nd-1");
        assert!(matches!(
            enrol(&tc, &r).await,
            Err(EnrolmentError::NodeEnrolled(_))
        ));
        assert_eq!(certificates(&tc, "nd-1").await, 1);
    }

    #[tokio::test]
    async fn the_local_node_keeps_its_certificate_until_it_is_revoked() {
        let tc = TestCloud::new().await;
        let first = tc.enrol_node("nd-up", ZONE).await;
        assert_eq!(tc.enrol_node("nd-up", ZONE).await, first);
        crate::node_removal::remove(tc.store.as_ref(), "nd-up", false)
            .await
            .expect("remove");
        let again = tc.enrol_node("nd-up", ZONE).await;
        assert_ne!(again.serial, first.serial);
    }
}
