//! [`NodeAgent`] over HTTPS with the controller's certificate: what the
//! controller uses to drive a node.

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::tls::{HttpsClient, https_client};
use crate::version::{ApiVersion, VERSION_HEADER};
use crate::{
    Capacity, ConsoleOutput, DesiredState, DesiredStateChange, ExportSpec, FirewallPolicy,
    InstanceSpec, NodeAgent, NodeError, NodeInfo, NodeReport, ObservedExport, ObservedInstance,
    ObservedSnapshot, ObservedVolume, Overlay, SnapshotSpec, VolumeAttachment, VolumeSpec,
};

/// Largest response body accepted from a node.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// A node reached at `base_url` (`https://host:port`).
#[derive(Debug, Clone)]
pub struct HttpNodeClient {
    base_url: String,
    version: String,
    http: HttpsClient,
}

impl HttpNodeClient {
    /// A client for the node at `base_url`, connecting with `tls` (which
    /// presents the controller's certificate and expects the node's; see
    /// `mallee_pki::ControllerPki::node_client_config`). A plain `http://`
    /// URL fails every call.
    pub fn new(base_url: &str, tls: std::sync::Arc<rustls::ClientConfig>) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            version: ApiVersion::current().to_string(),
            http: https_client(tls),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, NodeError> {
        let bytes = self.send(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| NodeError::Transport(format!("bad response from node: {e}")))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Bytes, NodeError> {
        let payload = match body {
            Some(b) => Bytes::from(
                serde_json::to_vec(b).map_err(|e| NodeError::BadRequest(e.to_string()))?,
            ),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url))
            .header(VERSION_HEADER, &self.version)
            .header(header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(payload))
            .map_err(|e| NodeError::BadRequest(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| NodeError::Transport(crate::tls::error_chain(&e)))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| NodeError::Transport(e.to_string()))?
            .to_bytes();
        if status.is_success() {
            return Ok(body);
        }
        Err(serde_json::from_slice::<NodeError>(&body)
            .unwrap_or_else(|_| NodeError::Transport(format!("node answered {status}"))))
    }
}

/// Instance and volume ids are a prefix, `-` and hex; anything else cannot
/// name one, and is dropped rather than allowed to change the path.
fn safe_id(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

fn instance_path(id: &str, rest: &str) -> String {
    format!("/v1/instances/{}{rest}", safe_id(id))
}

#[async_trait]
impl NodeAgent for HttpNodeClient {
    async fn info(&self) -> Result<NodeInfo, NodeError> {
        self.call(Method::GET, "/v1/node", None::<&()>).await
    }

    async fn capacity(&self) -> Result<Capacity, NodeError> {
        self.call(Method::GET, "/v1/capacity", None::<&()>).await
    }

    async fn report(&self) -> Result<NodeReport, NodeError> {
        self.call(Method::GET, "/v1/report", None::<&()>).await
    }

    async fn put_instance(&self, spec: InstanceSpec) -> Result<ObservedInstance, NodeError> {
        self.call(
            Method::PUT,
            &instance_path(&spec.instance_id, ""),
            Some(&spec),
        )
        .await
    }

    async fn set_desired_state(
        &self,
        instance_id: &str,
        desired: DesiredState,
        generation: u64,
    ) -> Result<ObservedInstance, NodeError> {
        let change = DesiredStateChange {
            desired,
            generation,
        };
        self.call(
            Method::PUT,
            &instance_path(instance_id, "/desired-state"),
            Some(&change),
        )
        .await
    }

    async fn reboot(&self, instance_id: &str) -> Result<(), NodeError> {
        self.send(
            Method::POST,
            &instance_path(instance_id, "/reboot"),
            None::<&()>,
        )
        .await
        .map(|_| ())
    }

    async fn delete_instance(&self, instance_id: &str) -> Result<(), NodeError> {
        self.send(Method::DELETE, &instance_path(instance_id, ""), None::<&()>)
            .await
            .map(|_| ())
    }

    async fn console_output(&self, instance_id: &str) -> Result<ConsoleOutput, NodeError> {
        self.call(
            Method::GET,
            &instance_path(instance_id, "/console"),
            None::<&()>,
        )
        .await
    }

    async fn put_firewall(&self, policy: FirewallPolicy) -> Result<u64, NodeError> {
        self.call(Method::PUT, "/v1/firewall", Some(&policy)).await
    }

    async fn put_overlay(&self, overlay: Overlay) -> Result<u64, NodeError> {
        self.call(Method::PUT, "/v1/overlay", Some(&overlay)).await
    }

    async fn put_volume(&self, spec: VolumeSpec) -> Result<ObservedVolume, NodeError> {
        let path = format!("/v1/volumes/{}", safe_id(&spec.volume_id));
        self.call(Method::PUT, &path, Some(&spec)).await
    }

    async fn delete_volume(&self, volume_id: &str) -> Result<(), NodeError> {
        let path = format!("/v1/volumes/{}", safe_id(volume_id));
        self.send(Method::DELETE, &path, None::<&()>)
            .await
            .map(|_| ())
    }

    async fn attach_volume(
        &self,
        instance_id: &str,
        attachment: VolumeAttachment,
    ) -> Result<ObservedVolume, NodeError> {
        let rest = format!("/volumes/{}", safe_id(&attachment.volume_id));
        self.call(
            Method::PUT,
            &instance_path(instance_id, &rest),
            Some(&attachment),
        )
        .await
    }

    async fn detach_volume(
        &self,
        instance_id: &str,
        volume_id: &str,
        force: bool,
    ) -> Result<ObservedVolume, NodeError> {
        let rest = format!("/volumes/{}?force={force}", safe_id(volume_id));
        self.call(
            Method::DELETE,
            &instance_path(instance_id, &rest),
            None::<&()>,
        )
        .await
    }

    async fn export_volume(&self, spec: ExportSpec) -> Result<ObservedExport, NodeError> {
        let path = format!("/v1/volumes/{}/export", safe_id(&spec.volume_id));
        self.call(Method::PUT, &path, Some(&spec)).await
    }

    async fn unexport_volume(&self, volume_id: &str) -> Result<(), NodeError> {
        let path = format!("/v1/volumes/{}/export", safe_id(volume_id));
        self.send(Method::DELETE, &path, None::<&()>)
            .await
            .map(|_| ())
    }

    async fn put_snapshot(&self, spec: SnapshotSpec) -> Result<ObservedSnapshot, NodeError> {
        let path = format!("/v1/snapshots/{}", safe_id(&spec.snapshot_id));
        self.call(Method::PUT, &path, Some(&spec)).await
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), NodeError> {
        let path = format!("/v1/snapshots/{}", safe_id(snapshot_id));
        self.send(Method::DELETE, &path, None::<&()>)
            .await
            .map(|_| ())
    }
}
