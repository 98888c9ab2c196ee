// Shared by the tests that plug "instances" into VPC networks (vpc.rs,
// overlay.rs) through `include!`: an instance's interface and what the
// metadata service answers it, with test values for the rest.

/// An interface of VPC `network` (CIDR 172.31.0.0/16) on `subnet`.
fn nic_spec(
    network: &str,
    subnet: &str,
    mac: &str,
    ip: &str,
    public_ip: Option<&str>,
) -> mallee_node_api::NicSpec {
    mallee_node_api::NicSpec {
        mac: mac.into(),
        private_ip: ip.into(),
        network_id: network.into(),
        subnet_cidr: subnet.into(),
        vpc_cidr: "172.31.0.0/16".into(),
        dns_support: true,
        public_ip: public_ip.map(str::to_owned),
        domain_name: None,
        internet: Default::default(),
    }
}

/// The metadata of an instance at `ip` with `mac` and `user_data`.
fn instance_metadata(ip: &str, mac: &str, user_data: &str) -> mallee_node_api::InstanceMetadata {
    use base64::Engine;
    mallee_node_api::InstanceMetadata {
        ami_id: "ami-00000000000000001".into(),
        ami_launch_index: 0,
        reservation_id: "r-00000000000000001".into(),
        account_id: "123456789012".into(),
        instance_type: "t3.micro".into(),
        kernel_id: None,
        ramdisk_id: None,
        architecture: "x86_64".into(),
        region: "mallee-1".into(),
        availability_zone: "mallee-1a".into(),
        local_ipv4: ip.into(),
        local_hostname: format!("ip-{}", ip.replace('.', "-")),
        mac: mac.into(),
        public_ipv4: None,
        public_hostname: None,
        security_groups: vec!["default".into()],
        public_keys: Vec::new(),
        user_data_base64: Some(base64::engine::general_purpose::STANDARD.encode(user_data)),
        launch_time: "2026-01-01T00:00:00Z".into(),
        root_device_name: "/dev/sda1".into(),
        block_device_mapping: Vec::new(),
        options: mallee_node_api::MetadataOptions::default(),
        iam: None,
    }
}
