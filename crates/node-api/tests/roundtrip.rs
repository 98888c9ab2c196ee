//! Every NodeAgent method travels over real HTTPS (mutual TLS) on loopback
//! and comes back intact, errors included; only the controller's
//! certificate gets in, and only with a compatible version. The agent
//! behind the server is a small in-memory one (this tests the transport,
//! not a node).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mallee_node_api::*;

#[derive(Default)]
struct MemoryAgent {
    instances: Mutex<BTreeMap<String, (InstanceSpec, VmState)>>,
    reports: Mutex<u64>,
    firewall: Mutex<Option<FirewallPolicy>>,
    overlay: Mutex<Option<Overlay>>,
    volumes: Mutex<BTreeMap<String, ObservedVolume>>,
    snapshots: Mutex<BTreeMap<String, ObservedSnapshot>>,
}

#[async_trait]
impl NodeAgent for MemoryAgent {
    async fn info(&self) -> Result<NodeInfo, NodeError> {
        Ok(NodeInfo {
            node_id: "node-1".into(),
            zone: "mallee-1a".into(),
            hostname: "h".into(),
            version: "0".into(),
            accel: "tcg (no /dev/kvm)".into(),
            underlay_ip: Some("192.0.2.7".into()),
            role: NodeRole::Storage,
        })
    }
    async fn capacity(&self) -> Result<Capacity, NodeError> {
        Ok(Capacity {
            cores_max: 2,
            cores_free: 1,
            memory_mib_max: 2048,
            memory_mib_free: 1024,
            disk_gib_max: 50,
            disk_gib_free: 40,
        })
    }
    async fn report(&self) -> Result<NodeReport, NodeError> {
        let capacity = self.capacity().await?;
        let generation = {
            let mut generation = self.reports.lock().expect("lock");
            *generation += 1;
            *generation
        };
        let instances = self
            .instances
            .lock()
            .expect("lock")
            .iter()
            .map(|(id, (spec, state))| ObservedInstance {
                instance_id: id.clone(),
                state: state.clone(),
                generation: spec.generation,
            })
            .collect();
        Ok(NodeReport {
            node_id: "node-1".into(),
            generation,
            capacity,
            instances,
            volumes: self
                .volumes
                .lock()
                .expect("lock")
                .values()
                .cloned()
                .collect(),
            snapshots: self
                .snapshots
                .lock()
                .expect("lock")
                .values()
                .cloned()
                .collect(),
        })
    }
    async fn put_instance(&self, spec: InstanceSpec) -> Result<ObservedInstance, NodeError> {
        let mut instances = self.instances.lock().expect("lock");
        if let Some((held, _)) = instances.get(&spec.instance_id)
            && held.generation > spec.generation
        {
            return Err(NodeError::Conflict(format!(
                "generation {} < {}",
                spec.generation, held.generation
            )));
        }
        let observed = ObservedInstance {
            instance_id: spec.instance_id.clone(),
            state: VmState::Pending,
            generation: spec.generation,
        };
        instances.insert(spec.instance_id.clone(), (spec, VmState::Pending));
        Ok(observed)
    }
    async fn set_desired_state(
        &self,
        id: &str,
        desired: DesiredState,
        generation: u64,
    ) -> Result<ObservedInstance, NodeError> {
        let mut instances = self.instances.lock().expect("lock");
        let (spec, state) = instances
            .get_mut(id)
            .ok_or_else(|| NodeError::NotFound(id.into()))?;
        spec.desired = desired;
        spec.generation = generation;
        *state = if desired == DesiredState::Stopped {
            VmState::Stopped
        } else {
            VmState::Running
        };
        Ok(ObservedInstance {
            instance_id: id.into(),
            state: state.clone(),
            generation,
        })
    }
    async fn reboot(&self, id: &str) -> Result<(), NodeError> {
        self.instances
            .lock()
            .expect("lock")
            .get(id)
            .map(|_| ())
            .ok_or_else(|| NodeError::NotFound(id.into()))
    }
    async fn delete_instance(&self, id: &str) -> Result<(), NodeError> {
        self.instances.lock().expect("lock").remove(id);
        Ok(())
    }
    async fn console_output(&self, id: &str) -> Result<ConsoleOutput, NodeError> {
        self.instances
            .lock()
            .expect("lock")
            .get(id)
            .ok_or_else(|| NodeError::NotFound(id.into()))?;
        Ok(ConsoleOutput {
            instance_id: id.into(),
            output: "MALLEE-GUEST: booted\n".into(),
        })
    }
    async fn put_firewall(&self, policy: FirewallPolicy) -> Result<u64, NodeError> {
        let mut held = self.firewall.lock().expect("lock");
        match held.as_ref() {
            Some(current) if current.generation > policy.generation => Ok(current.generation),
            _ => {
                let generation = policy.generation;
                *held = Some(policy);
                Ok(generation)
            }
        }
    }
    async fn put_overlay(&self, overlay: Overlay) -> Result<u64, NodeError> {
        overlay.check().map_err(NodeError::BadRequest)?;
        let mut held = self.overlay.lock().expect("lock");
        match held.as_ref() {
            Some(current) if current.generation > overlay.generation => Ok(current.generation),
            _ => {
                let generation = overlay.generation;
                *held = Some(overlay);
                Ok(generation)
            }
        }
    }
    async fn put_volume(&self, spec: VolumeSpec) -> Result<ObservedVolume, NodeError> {
        Ok(self
            .volumes
            .lock()
            .expect("lock")
            .entry(spec.volume_id.clone())
            .or_insert(ObservedVolume {
                volume_id: spec.volume_id,
                state: VolumeState::Available,
                size_gib: spec.size_gib,
                generation: spec.generation,
                export: None,
                remote: spec.remote.is_some(),
            })
            .clone())
    }
    async fn delete_volume(&self, id: &str) -> Result<(), NodeError> {
        let mut volumes = self.volumes.lock().expect("lock");
        if let Some(v) = volumes.get(id)
            && v.state != VolumeState::Available
        {
            return Err(NodeError::Conflict(format!("{id} is attached")));
        }
        volumes.remove(id);
        Ok(())
    }
    async fn export_volume(&self, spec: ExportSpec) -> Result<ObservedExport, NodeError> {
        let mut volumes = self.volumes.lock().expect("lock");
        let volume = volumes
            .get_mut(&spec.volume_id)
            .ok_or_else(|| NodeError::NotFound(spec.volume_id.clone()))?;
        match &volume.export {
            Some(e) if e.node_id != spec.node_id => Err(NodeError::Conflict(format!(
                "{} is exported to {}",
                spec.volume_id, e.node_id
            ))),
            Some(e) => Ok(e.clone()),
            None => {
                let export = ObservedExport {
                    node_id: spec.node_id,
                    export: NbdExport {
                        host: "192.0.2.7".into(),
                        port: 10809,
                        name: spec.volume_id,
                        server_node_id: "node-1".into(),
                    },
                    serving: true,
                };
                volume.export = Some(export.clone());
                Ok(export)
            }
        }
    }
    async fn unexport_volume(&self, volume_id: &str) -> Result<(), NodeError> {
        if let Some(v) = self.volumes.lock().expect("lock").get_mut(volume_id) {
            v.export = None;
        }
        Ok(())
    }
    async fn attach_volume(
        &self,
        instance_id: &str,
        attachment: VolumeAttachment,
    ) -> Result<ObservedVolume, NodeError> {
        if !self
            .instances
            .lock()
            .expect("lock")
            .contains_key(instance_id)
        {
            return Err(NodeError::NotFound(instance_id.into()));
        }
        let mut volumes = self.volumes.lock().expect("lock");
        let volume = volumes
            .get_mut(&attachment.volume_id)
            .ok_or_else(|| NodeError::NotFound(attachment.volume_id.clone()))?;
        volume.state = VolumeState::InUse {
            instance_id: instance_id.into(),
            guest_device: format!(
                "/dev/disk/by-id/virtio-{}",
                attachment.volume_id.replace('-', "")
            ),
            device: attachment.device,
        };
        volume.generation = volume.generation.max(attachment.generation);
        Ok(volume.clone())
    }
    async fn detach_volume(
        &self,
        _instance_id: &str,
        volume_id: &str,
        force: bool,
    ) -> Result<ObservedVolume, NodeError> {
        let mut volumes = self.volumes.lock().expect("lock");
        let volume = volumes
            .get_mut(volume_id)
            .ok_or_else(|| NodeError::NotFound(volume_id.into()))?;
        // The force flag travels: a forced detach is recorded in the state.
        volume.state = if force {
            VolumeState::Failed("forced".into())
        } else {
            VolumeState::Available
        };
        Ok(volume.clone())
    }
    async fn put_snapshot(&self, spec: SnapshotSpec) -> Result<ObservedSnapshot, NodeError> {
        if !self
            .volumes
            .lock()
            .expect("lock")
            .contains_key(&spec.volume_id)
        {
            return Err(NodeError::NotFound(spec.volume_id));
        }
        Ok(self
            .snapshots
            .lock()
            .expect("lock")
            .entry(spec.snapshot_id.clone())
            .or_insert(ObservedSnapshot {
                snapshot_id: spec.snapshot_id,
                volume_id: spec.volume_id,
                state: SnapshotState::Pending { progress: 0 },
                generation: spec.generation,
            })
            .clone())
    }
    async fn delete_snapshot(&self, id: &str) -> Result<(), NodeError> {
        self.snapshots.lock().expect("lock").remove(id);
        Ok(())
    }
}

fn spec(id: &str, generation: u64) -> InstanceSpec {
    let artifact = |key: &str| Artifact {
        bucket: "images".into(),
        key: key.into(),
        size: 1,
        etag: "e".into(),
    };
    InstanceSpec {
        instance_id: id.into(),
        account_id: "123456789012".into(),
        instance_type: "m1.small".into(),
        vcpus: 1,
        memory_mib: 256,
        disk_gib: 5,
        image: BootImage::Paravirtual {
            kernel: artifact("vmlinuz"),
            ramdisk: Some(artifact("initrd")),
            root: artifact("root.img"),
            cmdline: "root=/dev/vda console=ttyS0".into(),
        },
        nics: vec![NicSpec {
            mac: "d0:0d:00:00:00:01".into(),
            private_ip: "172.31.0.10".into(),
            network_id: "vpc-1".into(),
            subnet_cidr: String::new(),
            vpc_cidr: String::new(),
            dns_support: true,
            public_ip: None,
            domain_name: None,
            internet: Default::default(),
        }],
        desired: DesiredState::Running,
        generation,
        metadata: InstanceMetadata {
            ami_id: "ami-0123456789abcdef0".into(),
            ami_launch_index: 0,
            reservation_id: "r-0123456789abcdef0".into(),
            account_id: "123456789012".into(),
            instance_type: "m1.small".into(),
            kernel_id: None,
            ramdisk_id: None,
            architecture: "x86_64".into(),
            region: "mallee-1".into(),
            availability_zone: "mallee-1a".into(),
            local_ipv4: "172.31.0.10".into(),
            local_hostname: "ip-172-31-0-10.mallee-1.compute.internal".into(),
            mac: "d0:0d:00:00:00:01".into(),
            public_ipv4: None,
            public_hostname: None,
            security_groups: vec!["default".into()],
            public_keys: vec![],
            user_data_base64: None,
            launch_time: "2026-01-01T00:00:00Z".into(),
            root_device_name: "/dev/sda1".into(),
            block_device_mapping: vec![("ami".into(), "/dev/sda1".into())],
            options: MetadataOptions::default(),
            iam: None,
        },
    }
}

/// The node the tests serve, and the cluster it belongs to.
const NODE: &str = "nd-roundtrip";

struct Served {
    url: String,
    pki: mallee_pki::ControllerPki,
    node: mallee_pki::Credentials,
}

impl Served {
    /// The controller's client of the node.
    fn controller(&self) -> HttpNodeClient {
        HttpNodeClient::new(&self.url, self.pki.node_client_config(NODE))
    }
}

/// Serves a [`MemoryAgent`] as node [`NODE`] of a new cluster, over TLS
/// admitting the controller only.
async fn serve() -> Served {
    serve_agent(Arc::new(MemoryAgent::default())).await
}

/// Serves `agent` as node [`NODE`] of a new cluster.
async fn serve_agent(agent: Arc<MemoryAgent>) -> Served {
    let pki = mallee_pki::ControllerPki::in_memory().expect("pki");
    let node = pki
        .ca()
        .issue(
            &mallee_pki::PeerName::node(NODE).expect("id"),
            mallee_pki::Validity::peer(),
        )
        .expect("node certificate");
    let config = mallee_pki::tls::server_config(
        &node,
        &node.trust(),
        mallee_pki::tls::ClientAuth::Require(mallee_pki::PeerKind::Controller),
    )
    .expect("server config");
    let listener = tls::TlsListener::bind("127.0.0.1:0".parse().expect("addr"), config)
        .await
        .expect("bind");
    let url = format!("https://{}", listener.local_addr());
    let app = router(agent);
    tokio::spawn(tls::serve(listener, app, std::future::pending()));
    Served { url, pki, node }
}

/// Sends a raw request over `client` and returns the status and body.
async fn raw(
    client: &tls::HttpsClient,
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> (http::StatusCode, String) {
    use http_body_util::BodyExt;
    let response = client.request(request).await.expect("request");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn every_call_round_trips() {
    let agent = Arc::new(MemoryAgent::default());
    let served = serve_agent(agent.clone()).await;
    let node = served.controller();
    let info = node.info().await.expect("info");
    assert_eq!(info.zone, "mallee-1a");
    assert_eq!(info.underlay_ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(node.capacity().await.expect("capacity").cores_free, 1);
    let observed = node
        .put_instance(spec("i-0123456789abcdef0", 1))
        .await
        .expect("put");
    assert_eq!(observed.state, VmState::Pending);
    // Same spec again is fine; an older generation is a conflict.
    node.put_instance(spec("i-0123456789abcdef0", 2))
        .await
        .expect("put again");
    assert!(matches!(
        node.put_instance(spec("i-0123456789abcdef0", 1)).await,
        Err(NodeError::Conflict(_))
    ));
    let stopped = node
        .set_desired_state("i-0123456789abcdef0", DesiredState::Stopped, 3)
        .await
        .expect("stop");
    assert_eq!((stopped.state, stopped.generation), (VmState::Stopped, 3));
    node.reboot("i-0123456789abcdef0").await.expect("reboot");
    assert!(
        node.console_output("i-0123456789abcdef0")
            .await
            .expect("console")
            .output
            .contains("booted")
    );
    let first = node.report().await.expect("report");
    let second = node.report().await.expect("report");
    assert!(
        second.generation > first.generation,
        "report generations must increase"
    );
    assert_eq!(first.instances.len(), 1);
    node.delete_instance("i-0123456789abcdef0")
        .await
        .expect("delete");
    node.delete_instance("i-0123456789abcdef0")
        .await
        .expect("delete is idempotent");
    assert_eq!(
        node.console_output("i-0123456789abcdef0").await,
        Err(NodeError::NotFound("i-0123456789abcdef0".into()))
    );

    let policy = FirewallPolicy {
        generation: 5,
        instances: vec![InstanceFirewall {
            instance_id: "i-0123456789abcdef0".into(),
            ingress: vec![FirewallRule {
                protocol: "tcp".into(),
                from_port: Some(22),
                to_port: Some(22),
                cidrs: vec!["198.18.0.0/24".into()],
            }],
            egress: vec![FirewallRule {
                protocol: "-1".into(),
                from_port: None,
                to_port: None,
                cidrs: vec!["0.0.0.0/0".into()],
            }],
        }],
    };
    assert_eq!(node.put_firewall(policy.clone()).await, Ok(5));
    let older = FirewallPolicy {
        generation: 4,
        instances: Vec::new(),
    };
    assert_eq!(
        node.put_firewall(older).await,
        Ok(5),
        "an older policy changes nothing"
    );
    let overlay = Overlay {
        generation: 3,
        networks: vec![OverlayNetwork {
            network_id: "vpc-1".into(),
            segments: vec![Segment {
                subnet_cidr: "172.31.0.0/20".into(),
                gateway: "172.31.0.1".into(),
                vni: 11,
            }],
            peers: vec!["192.0.2.8".into()],
            remote_ports: vec![RemotePort {
                mac: "02:00:00:00:00:09".into(),
                ip: "172.31.0.9".into(),
                vni: 11,
                underlay_ip: "192.0.2.8".into(),
                dns_names: Vec::new(),
            }],
        }],
    };
    assert_eq!(node.put_overlay(overlay.clone()).await, Ok(3));
    assert_eq!(
        agent.overlay.lock().expect("lock").as_ref(),
        Some(&overlay),
        "the overlay arrives intact"
    );
    let mut wrong = overlay.clone();
    wrong.generation = 4;
    wrong.networks[0].segments[0].vni = 0;
    assert!(matches!(
        node.put_overlay(wrong).await,
        Err(NodeError::BadRequest(m)) if m.contains("out of range")
    ));

    let vol = "vol-0123456789abcdef0";
    node.put_instance(spec("i-0123456789abcdef0", 9))
        .await
        .expect("put");
    let created = node
        .put_volume(VolumeSpec {
            volume_id: vol.into(),
            size_gib: 1,
            generation: 1,
            source: None,
            remote: None,
        })
        .await
        .expect("put volume");
    assert_eq!(
        (created.state, created.size_gib),
        (VolumeState::Available, 1)
    );
    let attached = node
        .attach_volume(
            "i-0123456789abcdef0",
            VolumeAttachment {
                volume_id: vol.into(),
                device: "/dev/sdf".into(),
                generation: 2,
            },
        )
        .await
        .expect("attach");
    assert_eq!(
        attached.state,
        VolumeState::InUse {
            instance_id: "i-0123456789abcdef0".into(),
            device: "/dev/sdf".into(),
            guest_device: "/dev/disk/by-id/virtio-vol0123456789abcdef0".into(),
        }
    );
    assert_eq!(attached.generation, 2);
    let report = node.report().await.expect("report");
    assert_eq!(report.volumes, vec![attached]);
    assert!(matches!(
        node.delete_volume(vol).await,
        Err(NodeError::Conflict(_))
    ));
    assert_eq!(
        node.attach_volume(
            "i-0123456789abcdef0",
            VolumeAttachment {
                volume_id: "vol-00000000000000000".into(),
                device: "/dev/sdg".into(),
                generation: 1,
            },
        )
        .await,
        Err(NodeError::NotFound("vol-00000000000000000".into()))
    );
    let forced = node
        .detach_volume("i-0123456789abcdef0", vol, true)
        .await
        .expect("detach");
    assert_eq!(forced.state, VolumeState::Failed("forced".into()));
    let detached = node
        .detach_volume("i-0123456789abcdef0", vol, false)
        .await
        .expect("detach");
    assert_eq!(detached.state, VolumeState::Available);

    let export_spec = |node_id: &str| ExportSpec {
        volume_id: vol.into(),
        node_id: node_id.into(),
        generation: 3,
    };
    let exported = node
        .export_volume(export_spec("node-2"))
        .await
        .expect("export");
    assert_eq!(
        (exported.node_id.as_str(), exported.export.port),
        ("node-2", 10809)
    );
    assert_eq!(
        node.export_volume(export_spec("node-2")).await,
        Ok(exported.clone()),
        "exporting again changes nothing"
    );
    assert!(matches!(
        node.export_volume(export_spec("node-3")).await,
        Err(NodeError::Conflict(m)) if m.contains("node-2")
    ));
    assert_eq!(
        node.report().await.expect("report").volumes[0].export,
        Some(exported)
    );
    node.unexport_volume(vol).await.expect("unexport");
    node.unexport_volume(vol)
        .await
        .expect("unexport is idempotent");
    assert_eq!(node.report().await.expect("report").volumes[0].export, None);

    let snap = "snap-0123456789abcdef0";
    let snapshot_spec = |volume: &str| SnapshotSpec {
        snapshot_id: snap.into(),
        volume_id: volume.into(),
        generation: 3,
    };
    assert_eq!(
        node.put_snapshot(snapshot_spec("vol-00000000000000000"))
            .await,
        Err(NodeError::NotFound("vol-00000000000000000".into()))
    );
    let started = node
        .put_snapshot(snapshot_spec(vol))
        .await
        .expect("put snapshot");
    assert_eq!(
        (started.state.clone(), started.generation),
        (SnapshotState::Pending { progress: 0 }, 3)
    );
    assert_eq!(
        node.report().await.expect("report").snapshots,
        vec![started]
    );
    node.delete_snapshot(snap).await.expect("delete snapshot");
    node.delete_snapshot(snap)
        .await
        .expect("delete snapshot is idempotent");
    assert!(node.report().await.expect("report").snapshots.is_empty());

    node.delete_volume(vol).await.expect("delete volume");
    node.delete_volume(vol).await.expect("delete is idempotent");
    assert!(node.report().await.expect("report").volumes.is_empty());
}

#[test]
fn snapshot_wire_forms() {
    let state = serde_json::to_value(SnapshotState::Uploaded {
        size: 5,
        sha256: "ab".into(),
    })
    .expect("json");
    assert_eq!(
        state,
        serde_json::json!({"state": "uploaded", "detail": {"size": 5, "sha256": "ab"}})
    );
    let failed = serde_json::to_value(SnapshotState::Failed("x".into())).expect("json");
    assert_eq!(
        failed,
        serde_json::json!({"state": "failed", "detail": "x"})
    );
    let source: SnapshotSource = serde_json::from_value(serde_json::json!({
        "snapshot_id": "snap-1", "size": 3, "sha256": "cd", "format": "qcow2"
    }))
    .expect("parse");
    assert_eq!(source.format, DiskFormat::Qcow2);
    let old_volume: VolumeSpec = serde_json::from_value(serde_json::json!({
        "volume_id": "vol-1", "size_gib": 1, "generation": 1
    }))
    .expect("parse");
    assert_eq!(old_volume.source, None);
    let ebs: BootImage = serde_json::from_value(serde_json::json!({
        "kind": "ebs", "root_volume_id": "vol-1", "kernel": null, "ramdisk": null, "cmdline": ""
    }))
    .expect("parse");
    assert!(matches!(ebs, BootImage::Ebs { kernel: None, .. }));
    assert_eq!(
        DiskFormat::parse(DiskFormat::Raw.as_str()),
        Some(DiskFormat::Raw)
    );
}

#[test]
fn reports_without_volumes_still_parse() {
    let old = r#"{"node_id":"n","generation":1,"capacity":{"cores_max":1,"cores_free":1,
        "memory_mib_max":1,"memory_mib_free":1,"disk_gib_max":1,"disk_gib_free":1},"instances":[]}"#;
    let report: NodeReport = serde_json::from_str(old).expect("parse");
    assert!(report.volumes.is_empty());
}

#[tokio::test]
async fn only_the_controller_gets_in() {
    let served = serve().await;
    assert!(served.controller().info().await.is_ok());
    // A node's certificate, even of this cluster, is not the controller's.
    let as_node = mallee_pki::tls::client_config(
        &served.node,
        &served.node.trust(),
        &mallee_pki::PeerName::node(NODE).expect("id"),
    )
    .expect("config");
    let err = HttpNodeClient::new(&served.url, as_node)
        .info()
        .await
        .expect_err("a node got in");
    assert!(matches!(err, NodeError::Transport(_)), "{err:?}");
    // Another cluster's controller is refused, and refuses this node.
    let stranger = mallee_pki::ControllerPki::in_memory().expect("pki");
    let err = HttpNodeClient::new(&served.url, stranger.node_client_config(NODE))
        .capacity()
        .await
        .expect_err("another cluster got in");
    assert!(
        matches!(&err, NodeError::Transport(m) if m.contains("certificate")),
        "{err:?}"
    );
    // The controller expecting another node refuses this one's answer.
    let err = HttpNodeClient::new(&served.url, served.pki.node_client_config("nd-other"))
        .info()
        .await
        .expect_err("wrong node trusted");
    assert!(matches!(err, NodeError::Transport(_)), "{err:?}");
    // A revoked node is no longer called.
    served.pki.revocations().revoke(&served.node.info().serial);
    let err = HttpNodeClient::new(&served.url, served.pki.node_client_config(NODE))
        .info()
        .await
        .expect_err("revoked node trusted");
    assert!(
        matches!(&err, NodeError::Transport(m) if m.to_lowercase().contains("revoked")),
        "{err:?}"
    );
}

#[tokio::test]
async fn plain_http_is_refused_both_ways() {
    let served = serve().await;
    // The client will not speak HTTP.
    let plain_url = served.url.replacen("https://", "http://", 1);
    let err = HttpNodeClient::new(&plain_url, served.pki.node_client_config(NODE))
        .info()
        .await
        .expect_err("plain HTTP sent");
    assert!(matches!(err, NodeError::Transport(_)), "{err:?}");
    // The server does not answer HTTP.
    let host = served.url.trim_start_matches("https://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&host).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let _ = stream.write_all(
            format!("GET /v1/node HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        );
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("join");
    assert!(!answer.contains("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains("node-1"), "{answer}");
}

#[tokio::test]
async fn versions_and_ids_must_agree() {
    let served = serve().await;
    let client = tls::https_client(served.pki.node_client_config(NODE));
    let ours = version::ApiVersion::current();
    let request = |version: Option<String>| {
        let mut builder = http::Request::builder()
            .method("GET")
            .uri(format!("{}/v1/node", served.url));
        if let Some(v) = version {
            builder = builder.header(version::VERSION_HEADER, v);
        }
        builder.body(Default::default()).expect("request")
    };
    let (status, _) = raw(&client, request(Some(ours.to_string()))).await;
    assert_eq!(status, http::StatusCode::OK);
    // A controller one minor ahead still drives this node.
    let ahead = version::ApiVersion {
        minor: ours.minor + 1,
        ..ours
    };
    let (status, _) = raw(&client, request(Some(ahead.to_string()))).await;
    assert_eq!(status, http::StatusCode::OK);
    for bad in [
        None,
        Some("banana".to_owned()),
        Some(format!("{}.{}", ours.major, ours.minor + 2)),
        Some(format!("{}.0", ours.major + 1)),
    ] {
        let (status, body) = raw(&client, request(bad.clone())).await;
        assert_eq!(
            status,
            http::StatusCode::PRECONDITION_FAILED,
            "{bad:?}: {body}"
        );
        let error: NodeError = serde_json::from_str(&body).expect("error body");
        assert!(matches!(error, NodeError::Incompatible(_)), "{error:?}");
    }
    // A body naming another instance than the path is refused.
    let body = serde_json::to_vec(&spec("i-0000000000000000b", 1)).expect("json");
    let put = http::Request::builder()
        .method("PUT")
        .uri(format!("{}/v1/instances/i-0000000000000000a", served.url))
        .header(version::VERSION_HEADER, ours.to_string())
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request");
    let (status, body) = raw(&client, put).await;
    assert_eq!(status, http::StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn unreachable_node_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let pki = mallee_pki::ControllerPki::in_memory().expect("pki");
    assert!(matches!(
        HttpNodeClient::new(&url, pki.node_client_config(NODE))
            .info()
            .await,
        Err(NodeError::Transport(_))
    ));
}
