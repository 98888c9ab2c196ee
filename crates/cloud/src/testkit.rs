//! The one test kit for code that runs against a cloud: a [`TestCloud`]
//! (a real SQLite store and blob store in a temporary directory, no node
//! agents unless a test attaches some), accounts, nodes, and an
//! [`InstanceBuilder`] for the records RunInstances would have stored.
//! Compiled for this crate's tests and, with the `testkit` feature, for
//! other crates' tests.

use std::ops::Deref;
use std::sync::Arc;

use crate::instances::spec::{Boot, ImageObject, LaunchSpec, Metadata, MetadataOptions, Nic};
use mallee_store::{Image, InstanceRecord, Node, Reservation, sqlite::SqliteStore};

use crate::compute::Compute;
use crate::faults::Faults;
use crate::instances::model::{
    Desired, Instance, InstanceDetails, InstanceState, ShutdownBehavior,
};
use crate::{Cloud, Config, Principal};

/// The zone test clouds and instances use unless told otherwise.
pub const ZONE: &str = "mallee-1a";
/// The region of test clouds.
pub const REGION: &str = "mallee-1";

/// A cloud over a temporary directory; dropped with it.
#[derive(Debug)]
pub struct TestCloud {
    /// The cloud.
    pub cloud: Arc<Cloud>,
    /// Its data directory (kept alive as long as the cloud).
    pub dir: tempfile::TempDir,
}

impl Deref for TestCloud {
    type Target = Cloud;

    fn deref(&self) -> &Cloud {
        &self.cloud
    }
}

impl TestCloud {
    /// A cloud with the default configuration.
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// A cloud whose configuration `configure` adjusts.
    pub async fn with_config(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("store");
        let blobs = mallee_blobs::BlobStore::open(dir.path().join("objects"))
            .await
            .expect("blobs");
        let mut config = Config::new("127.0.0.1:0".parse().expect("addr"), dir.path().to_owned());
        configure(&mut config);
        let cloud = Cloud {
            store: Arc::new(store),
            config,
            instance_types: Default::default(),
            blobs: Arc::new(blobs),
            compute: Compute::new(Arc::new(
                mallee_pki::ControllerPki::in_memory().expect("pki"),
            )),
            faults: Faults::none(),
            key_use: Default::default(),
            sign_in_guard: Default::default(),
            identities: Default::default(),
            authz_seal: crate::identity::authz_seal::AuthzSeal::from_key(&[1; 32]),
            telemetry: Default::default(),
            admission: Default::default(),
            object_keys: crate::objects::sse::MasterKey::from_bytes(&[2; 32]),
        };
        Self {
            cloud: Arc::new(cloud),
            dir,
        }
    }

    /// A new account `name` (not an administrator) and its caller.
    pub async fn principal(&self, name: &str) -> Principal {
        principal(&self.cloud, name, false).await
    }

    /// Records a node of `zone` with the given room.
    pub async fn add_node(&self, node: Node) {
        self.store.upsert_node(&node).await.expect("node");
    }

    /// Issues node `node_id` of `zone` a certificate of this cloud's CA,
    /// recorded as enrolled (what its registrations need); returns what
    /// the certificate says.
    pub async fn enrol_node(&self, node_id: &str, zone: &str) -> mallee_pki::CertInfo {
        let dir = self.dir.path().join("nodes").join(node_id);
        crate::enrolment::local_node_credentials(&self.cloud, &dir, node_id, zone)
            .await
            .expect("node credentials")
            .info()
            .clone()
    }
}

/// A new account `name` of `cloud` and its caller.
pub async fn principal(cloud: &Cloud, name: &str, admin: bool) -> Principal {
    let account = crate::accounts::create_account(cloud.store.as_ref(), name, admin)
        .await
        .expect("account");
    Principal {
        account,
        user_name: "admin".into(),
        access_key_id: "AKIATEST".into(),
        session: None,
    }
}

/// A node record of `zone` with `cores`, `memory_mib` and `disk_gib`, all
/// free.
pub fn node(id: &str, zone: &str, cores: i64, memory_mib: i64, disk_gib: i64) -> Node {
    Node {
        node_id: id.into(),
        zone: zone.into(),
        address: "http://127.0.0.1:9".into(),
        cores_max: cores,
        cores_free: cores,
        memory_mib_max: memory_mib,
        memory_mib_free: memory_mib,
        disk_gib_max: disk_gib,
        disk_gib_free: disk_gib,
        updated_at: 1,
        ..Node::default()
    }
}

/// An available HVM machine image `image_id` of `account`: a 1 MiB raw disk
/// object in bucket `images`.
pub fn machine_image(image_id: &str, account: &str) -> Image {
    Image {
        image_id: image_id.into(),
        account_id: account.into(),
        name: "disk".into(),
        description: None,
        image_type: "machine".into(),
        architecture: "x86_64".into(),
        virtualization_type: "hvm".into(),
        root_device_name: "/dev/sda1".into(),
        root_device_type: "instance-store".into(),
        kernel_id: None,
        ramdisk_id: None,
        location: "images/disk.img".into(),
        bucket: "images".into(),
        key: "disk.img".into(),
        size: 1 << 20,
        etag: "etag".into(),
        disk_format: "raw".into(),
        state: "available".into(),
        is_public: false,
        created_at: 1,
        launch_permissions: Vec::new(),
        block_device_mappings: Vec::new(),
        state_reason: None,
        bundle_manifest: None,
    }
}

/// A RunInstances request for `count` t1.micro instances of `image_id`,
/// every other parameter left to its default.
pub fn run_request(image_id: &str, count: usize) -> crate::instances::launch::RunInstances {
    crate::instances::launch::RunInstances {
        image_id: image_id.into(),
        min_count: count,
        max_count: count,
        instance_type: "t1.micro".into(),
        key_name: None,
        user_data: None,
        security_groups: Vec::new(),
        security_group_ids: Vec::new(),
        zone: None,
        kernel_id: None,
        ramdisk_id: None,
        client_token: None,
        shutdown_behavior: ShutdownBehavior::Stop,
        disable_api_termination: false,
        disable_api_stop: false,
        metadata_options: crate::instances::spec::MetadataOptions::default(),
        subnet_id: None,
        associate_public_ip: None,
        tags: Vec::new(),
        volume_tags: Vec::new(),
        interface_tags: Vec::new(),
        block_device_mappings: Vec::new(),
        iam_instance_profile: None,
    }
}

/// The records of an instance as RunInstances stores them, with test
/// defaults for everything not set.
#[derive(Debug, Clone)]
pub struct InstanceBuilder {
    id: String,
    account: String,
    zone: String,
    node: String,
    network: String,
    ip: String,
    mac: String,
    public_ip: Option<String>,
    state: InstanceState,
    desired: Desired,
    behavior: ShutdownBehavior,
    vcpus: u32,
    memory_mib: u64,
    disk_gib: u64,
    instance_type: String,
    security_groups: Vec<String>,
    subnet_cidr: String,
    vpc_cidr: String,
    generation: i64,
    terminated_at: Option<i64>,
    vpc_id: String,
    subnet_id: String,
}

impl InstanceBuilder {
    /// Instance `id` of `account`: running on `node-1` in [`ZONE`], one
    /// t1.micro-sized NIC at 172.31.0.4.
    pub fn new(id: &str, account: &str) -> Self {
        Self {
            id: id.into(),
            account: account.into(),
            zone: ZONE.into(),
            node: "node-1".into(),
            network: "net".into(),
            ip: "172.31.0.4".into(),
            mac: "02:00:00:00:00:01".into(),
            public_ip: None,
            state: InstanceState::Running,
            desired: Desired::Running,
            behavior: ShutdownBehavior::Stop,
            vcpus: 1,
            memory_mib: 256,
            disk_gib: 1,
            instance_type: "t1.micro".into(),
            security_groups: vec!["default".into()],
            subnet_cidr: String::new(),
            vpc_cidr: String::new(),
            generation: 1,
            terminated_at: None,
            vpc_id: String::new(),
            subnet_id: String::new(),
        }
    }

    /// In subnet `subnet_id` of VPC `vpc_id` (its network too).
    pub fn placed_in(mut self, vpc_id: &str, subnet_id: &str) -> Self {
        self.network = vpc_id.into();
        self.vpc_id = vpc_id.into();
        self.subnet_id = subnet_id.into();
        self
    }

    /// In `zone`.
    pub fn zone(mut self, zone: &str) -> Self {
        self.zone = zone.into();
        self
    }

    /// On `node`.
    pub fn node(mut self, node: &str) -> Self {
        self.node = node.into();
        self
    }

    /// On network `network` (the VPC id for VPC instances).
    pub fn network(mut self, network: &str) -> Self {
        self.network = network.into();
        self
    }

    /// With private address `ip` and MAC `mac`.
    pub fn address(mut self, ip: &str, mac: &str) -> Self {
        self.ip = ip.into();
        self.mac = mac.into();
        self
    }

    /// With the NIC's subnet and VPC CIDRs.
    pub fn cidrs(mut self, subnet: &str, vpc: &str) -> Self {
        self.subnet_cidr = subnet.into();
        self.vpc_cidr = vpc.into();
        self
    }

    /// With public address `ip` in its launch details.
    pub fn public_ip(mut self, ip: Option<&str>) -> Self {
        self.public_ip = ip.map(str::to_owned);
        self
    }

    /// In `state`, driven toward `desired`.
    pub fn state(mut self, state: InstanceState, desired: Desired) -> Self {
        self.state = state;
        self.desired = desired;
        self
    }

    /// With `behavior` on a guest poweroff.
    pub fn behavior(mut self, behavior: ShutdownBehavior) -> Self {
        self.behavior = behavior;
        self
    }

    /// Of type `name` with `vcpus`, `memory_mib` and `disk_gib`.
    pub fn resources(mut self, name: &str, vcpus: u32, memory_mib: u64, disk_gib: u64) -> Self {
        self.instance_type = name.into();
        self.vcpus = vcpus;
        self.memory_mib = memory_mib;
        self.disk_gib = disk_gib;
        self
    }

    /// With the record at `generation` (its launch details keep 1).
    pub fn generation(mut self, generation: i64) -> Self {
        self.generation = generation;
        self
    }

    /// Terminated at `at` (milliseconds), when it is.
    pub fn terminated_at(mut self, at: Option<i64>) -> Self {
        self.terminated_at = at;
        self
    }

    /// The launch details.
    pub fn details(&self) -> InstanceDetails {
        let metadata = Metadata {
            ami_id: "ami-0123456789abcdef0".into(),
            ami_launch_index: 0,
            reservation_id: self.reservation_id(),
            account_id: self.account.clone(),
            instance_type: self.instance_type.clone(),
            kernel_id: None,
            ramdisk_id: None,
            architecture: "x86_64".into(),
            region: REGION.into(),
            availability_zone: self.zone.clone(),
            local_ipv4: self.ip.clone(),
            local_hostname: "ip".into(),
            mac: self.mac.clone(),
            public_ipv4: None,
            public_hostname: None,
            security_groups: self.security_groups.clone(),
            public_keys: Vec::new(),
            user_data_base64: None,
            launch_time: "2024-01-02T03:04:05Z".into(),
            root_device_name: "/dev/sda1".into(),
            block_device_mapping: Vec::new(),
            options: MetadataOptions::default(),
            iam: None,
        };
        let mut details = InstanceDetails {
            spec: LaunchSpec {
                instance_id: self.id.clone(),
                account_id: self.account.clone(),
                instance_type: self.instance_type.clone(),
                vcpus: self.vcpus,
                memory_mib: self.memory_mib,
                disk_gib: self.disk_gib,
                image: Boot::Hvm {
                    disk: ImageObject {
                        bucket: "images".into(),
                        key: "disk.img".into(),
                        size: 1 << 30,
                        etag: "\"etag\"".into(),
                    },
                },
                nics: vec![Nic {
                    mac: self.mac.clone(),
                    private_ip: self.ip.clone(),
                    network_id: self.network.clone(),
                    subnet_cidr: self.subnet_cidr.clone(),
                    vpc_cidr: self.vpc_cidr.clone(),
                    dns: Default::default(),
                    public_ip: None,
                    domain_name: None,
                    internet: Default::default(),
                }],
                metadata,
            },
            key_name: None,
            security_group_ids: Vec::new(),
            shutdown_behavior: self.behavior,
            disable_api_termination: false,
            disable_api_stop: false,
            virtualization_type: "hvm".into(),
            root_device_type: "instance-store".into(),
            private_dns_name: "ip".into(),
            client_token: None,
            state_reason: None,
            state_transition_reason: String::new(),
            vpc_id: self.vpc_id.clone(),
            subnet_id: self.subnet_id.clone(),
            network_interface_id: String::new(),
            evacuating: false,
        };
        crate::addresses::set_public_ip(
            &mut details,
            self.public_ip.as_deref(),
            &format!("{REGION}.compute.mallee"),
        );
        details
    }

    fn reservation_id(&self) -> String {
        format!("r-{}", self.id.trim_start_matches("i-"))
    }

    /// The stored record.
    pub fn record(&self) -> InstanceRecord {
        InstanceRecord {
            instance_id: self.id.clone(),
            reservation_id: self.reservation_id(),
            account_id: self.account.clone(),
            launch_index: 0,
            node_id: self.node.clone(),
            zone: self.zone.clone(),
            network_id: self.network.clone(),
            private_ip: self.ip.clone(),
            mac: self.mac.clone(),
            state: self.state.name().into(),
            desired: self.desired.name().into(),
            generation: self.generation,
            revision: 0,
            details: serde_json::to_string(&self.details()).expect("details serialize"),
            created_at: 1,
            updated_at: 1,
            terminated_at: self.terminated_at,
        }
    }

    /// The decoded instance.
    pub fn instance(&self) -> Instance {
        Instance::decode(self.record()).expect("record decodes")
    }

    /// Stores the instance in a reservation of its own.
    pub async fn store(&self, cloud: &Cloud) {
        let reservation = Reservation {
            reservation_id: self.reservation_id(),
            account_id: self.account.clone(),
            client_token: None,
            request_hash: "h".into(),
            created_at: 1,
        };
        cloud
            .store
            .create_reservation(&reservation, &[self.record()], &[])
            .await
            .expect("reservation");
    }
}
