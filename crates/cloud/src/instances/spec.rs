//! What the controller records about how an instance runs: its size, what
//! it boots, its interface and what the metadata service tells it. These are
//! the domain's own types, stored as JSON in the instance record's details;
//! the node API's `InstanceSpec` is made from them only when a node is told
//! ([`LaunchSpec::to_node`]), so the node protocol can change without
//! rewriting stored records. Field names match what earlier versions stored
//! (the node API's shapes then), so existing records still decode.

use mallee_node_api as node;
use serde::{Deserialize, Serialize};

/// An instance's recorded launch specification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// `i-…` id.
    pub instance_id: String,
    /// Owning account.
    pub account_id: String,
    /// Instance type name.
    pub instance_type: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory.
    pub memory_mib: u64,
    /// Root/ephemeral disk size on the node (0 for an EBS root).
    pub disk_gib: u64,
    /// What it boots.
    pub image: Boot,
    /// Its interfaces.
    pub nics: Vec<Nic>,
    /// What the metadata service answers it.
    pub metadata: Metadata,
}

/// An object of the object store a node fetches (an image part), with the
/// size and ETag recorded at registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageObject {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag the node checks its cached copy against.
    pub etag: String,
}

/// What an instance boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Boot {
    /// Kernel, optional ramdisk and root file system image.
    Paravirtual {
        /// Kernel.
        kernel: ImageObject,
        /// Ramdisk.
        ramdisk: Option<ImageObject>,
        /// Root file system image.
        root: ImageObject,
        /// Kernel command line.
        cmdline: String,
    },
    /// A BIOS-bootable disk image.
    Hvm {
        /// The disk.
        disk: ImageObject,
    },
    /// An EBS root volume, booted directly with a kernel or by BIOS.
    Ebs {
        /// `vol-…` of the root volume.
        root_volume_id: String,
        /// Kernel of a direct kernel boot.
        kernel: Option<ImageObject>,
        /// Ramdisk of a direct kernel boot.
        ramdisk: Option<ImageObject>,
        /// Kernel command line of a direct kernel boot.
        cmdline: String,
    },
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    /// MAC address.
    pub mac: String,
    /// Private IPv4.
    pub private_ip: String,
    /// The VPC it belongs to.
    pub network_id: String,
    /// Its subnet's CIDR (empty in records from before VPCs).
    #[serde(default)]
    pub subnet_cidr: String,
    /// The VPC's CIDR.
    #[serde(default)]
    pub vpc_cidr: String,
    /// The VPC's `enableDnsSupport` and `enableDnsHostnames`, as the
    /// instance's node and metadata apply them.
    #[serde(default)]
    pub dns: NicDns,
    /// Public IPv4 mapped to it.
    #[serde(default)]
    pub public_ip: Option<String>,
    /// The `domain-name` of its VPC's DHCP options set, which its DHCP
    /// hands out; `None`: the region's domain.
    #[serde(default)]
    pub domain_name: Option<String>,
    /// Where its subnet's route table sends `0.0.0.0/0`.
    #[serde(default)]
    pub internet: Internet,
}

/// How an interface reaches the public network, from its subnet's
/// effective route table (see [`crate::route_tables::internet_of`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Internet {
    /// `0.0.0.0/0` → an internet gateway attached to the VPC: its public
    /// address works both ways (records from before route tables: every
    /// default VPC had that route).
    #[default]
    Gateway,
    /// `0.0.0.0/0` → an available NAT gateway with this elastic IP:
    /// outbound only.
    Nat(String),
    /// No such route, or one to a gateway that is gone: no public traffic.
    None,
}

/// What the VPC's DNS attributes make of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicDns {
    /// The VPC's resolver answers (`enableDnsSupport`).
    pub support: bool,
    /// The interface's public address gets a public DNS name
    /// (`enableDnsHostnames`).
    pub hostnames: bool,
}

impl Default for NicDns {
    /// Both on, as in a default VPC (and in records from before them).
    fn default() -> Self {
        Self {
            support: true,
            hostnames: true,
        }
    }
}

impl From<mallee_store::VpcAttributes> for NicDns {
    fn from(a: mallee_store::VpcAttributes) -> Self {
        Self {
            support: a.dns_support,
            hostnames: a.dns_hostnames,
        }
    }
}

/// Whether IMDSv2 session tokens are required (`HttpTokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokens {
    /// IMDSv1 and IMDSv2 both answer.
    #[default]
    Optional,
    /// Only requests with a session token answer.
    Required,
}

/// The instance's metadata options (EC2's `MetadataOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataOptions {
    /// `HttpTokens`.
    pub http_tokens: Tokens,
    /// `HttpPutResponseHopLimit` (1..=64).
    pub http_put_response_hop_limit: u8,
    /// `HttpEndpoint`.
    pub http_endpoint_enabled: bool,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        Self {
            http_tokens: Tokens::Optional,
            http_put_response_hop_limit: 1,
            http_endpoint_enabled: true,
        }
    }
}

/// An SSH public key offered to the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    /// Key pair name.
    pub name: String,
    /// OpenSSH one-line public key.
    pub openssh_key: String,
}

/// What the instance metadata service tells the instance about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// `ami-…`.
    pub ami_id: String,
    /// Index in its launch.
    pub ami_launch_index: u32,
    /// `r-…`.
    pub reservation_id: String,
    /// Owning account.
    pub account_id: String,
    /// Instance type name.
    pub instance_type: String,
    /// `aki-…` of paravirtual instances.
    pub kernel_id: Option<String>,
    /// `ari-…` of paravirtual instances.
    pub ramdisk_id: Option<String>,
    /// `x86_64`.
    pub architecture: String,
    /// Region.
    pub region: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Private IPv4.
    pub local_ipv4: String,
    /// Private DNS name.
    pub local_hostname: String,
    /// MAC of the primary interface.
    pub mac: String,
    /// Public IPv4.
    pub public_ipv4: Option<String>,
    /// Public DNS name.
    pub public_hostname: Option<String>,
    /// Security group names.
    pub security_groups: Vec<String>,
    /// Public keys.
    pub public_keys: Vec<SshKey>,
    /// User data as given (base64).
    pub user_data_base64: Option<String>,
    /// Launch time (`2024-01-02T03:04:05Z`).
    pub launch_time: String,
    /// Root device name.
    pub root_device_name: String,
    /// `block-device-mapping/` entries.
    pub block_device_mapping: Vec<(String, String)>,
    /// IMDS options.
    #[serde(default)]
    pub options: MetadataOptions,
    /// The associated instance profile.
    #[serde(default)]
    pub iam: Option<IamProfileRef>,
}

/// The instance profile associated with an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamProfileRef {
    /// `iip-assoc-…`.
    pub association_id: String,
    /// The profile's ARN.
    pub arn: String,
    /// `AIPA…`.
    pub id: String,
    /// The profile's role when it was associated.
    pub role_name: Option<String>,
}

impl ImageObject {
    fn to_node(&self) -> node::Artifact {
        node::Artifact {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            size: self.size,
            etag: self.etag.clone(),
        }
    }
}

impl Boot {
    fn to_node(&self) -> node::BootImage {
        let part = |o: &Option<ImageObject>| o.as_ref().map(ImageObject::to_node);
        match self {
            Self::Paravirtual {
                kernel,
                ramdisk,
                root,
                cmdline,
            } => node::BootImage::Paravirtual {
                kernel: kernel.to_node(),
                ramdisk: part(ramdisk),
                root: root.to_node(),
                cmdline: cmdline.clone(),
            },
            Self::Hvm { disk } => node::BootImage::Hvm {
                disk: disk.to_node(),
            },
            Self::Ebs {
                root_volume_id,
                kernel,
                ramdisk,
                cmdline,
            } => node::BootImage::Ebs {
                root_volume_id: root_volume_id.clone(),
                kernel: part(kernel),
                ramdisk: part(ramdisk),
                cmdline: cmdline.clone(),
            },
        }
    }
}

impl Nic {
    fn to_node(&self) -> node::NicSpec {
        node::NicSpec {
            mac: self.mac.clone(),
            private_ip: self.private_ip.clone(),
            network_id: self.network_id.clone(),
            subnet_cidr: self.subnet_cidr.clone(),
            vpc_cidr: self.vpc_cidr.clone(),
            dns_support: self.dns.support,
            public_ip: self.public_ip.clone(),
            domain_name: self.domain_name.clone(),
            internet: match &self.internet {
                Internet::Gateway => node::InternetRoute::Gateway,
                Internet::Nat(ip) => node::InternetRoute::Nat {
                    public_ip: ip.clone(),
                },
                Internet::None => node::InternetRoute::None,
            },
        }
    }
}

impl Metadata {
    fn to_node(&self) -> node::InstanceMetadata {
        node::InstanceMetadata {
            ami_id: self.ami_id.clone(),
            ami_launch_index: self.ami_launch_index,
            reservation_id: self.reservation_id.clone(),
            account_id: self.account_id.clone(),
            instance_type: self.instance_type.clone(),
            kernel_id: self.kernel_id.clone(),
            ramdisk_id: self.ramdisk_id.clone(),
            architecture: self.architecture.clone(),
            region: self.region.clone(),
            availability_zone: self.availability_zone.clone(),
            local_ipv4: self.local_ipv4.clone(),
            local_hostname: self.local_hostname.clone(),
            mac: self.mac.clone(),
            public_ipv4: self.public_ipv4.clone(),
            public_hostname: self.public_hostname.clone(),
            security_groups: self.security_groups.clone(),
            public_keys: self
                .public_keys
                .iter()
                .map(|k| node::PublicKey {
                    name: k.name.clone(),
                    openssh_key: k.openssh_key.clone(),
                })
                .collect(),
            user_data_base64: self.user_data_base64.clone(),
            launch_time: self.launch_time.clone(),
            root_device_name: self.root_device_name.clone(),
            block_device_mapping: self.block_device_mapping.clone(),
            options: node::MetadataOptions {
                http_tokens: match self.options.http_tokens {
                    Tokens::Optional => node::HttpTokens::Optional,
                    Tokens::Required => node::HttpTokens::Required,
                },
                http_put_response_hop_limit: self.options.http_put_response_hop_limit,
                http_endpoint_enabled: self.options.http_endpoint_enabled,
            },
            iam: self.iam.as_ref().map(|p| node::IamProfileMetadata {
                instance_profile_arn: p.arn.clone(),
                instance_profile_id: p.id.clone(),
                role_name: p.role_name.clone(),
            }),
        }
    }
}

impl LaunchSpec {
    /// The node API's spec for this instance, at `generation`, driven to
    /// `desired`.
    pub fn to_node(&self, generation: u64, desired: node::DesiredState) -> node::InstanceSpec {
        node::InstanceSpec {
            instance_id: self.instance_id.clone(),
            account_id: self.account_id.clone(),
            instance_type: self.instance_type.clone(),
            vcpus: self.vcpus,
            memory_mib: self.memory_mib,
            disk_gib: self.disk_gib,
            image: self.image.to_node(),
            nics: self.nics.iter().map(Nic::to_node).collect(),
            desired,
            generation,
            metadata: self.metadata.to_node(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec stored by an earlier version (the node API's shape, with its
    /// desired state and generation) still decodes.
    #[test]
    fn specs_stored_in_the_node_api_shape_decode() {
        let stored = r#"{"instance_id":"i-0123456789abcdef0","account_id":"111111111111",
            "instance_type":"t1.micro","vcpus":1,"memory_mib":256,"disk_gib":5,
            "image":{"kind":"paravirtual","kernel":{"bucket":"b","key":"k","size":1,"etag":"e"},
              "ramdisk":null,"root":{"bucket":"b","key":"r","size":2,"etag":"f"},"cmdline":"c"},
            "nics":[{"mac":"02:00:00:00:00:01","private_ip":"172.31.0.4","network_id":"vpc-1"}],
            "desired":"running","generation":3,
            "metadata":{"ami_id":"ami-1","ami_launch_index":0,"reservation_id":"r-1",
              "account_id":"111111111111","instance_type":"t1.micro","kernel_id":"aki-1",
              "ramdisk_id":null,"architecture":"x86_64","region":"mallee-1",
              "availability_zone":"mallee-1a","local_ipv4":"172.31.0.4","local_hostname":"ip",
              "mac":"02:00:00:00:00:01","public_ipv4":null,"public_hostname":null,
              "security_groups":["default"],"public_keys":[{"name":"k","openssh_key":"ssh-ed25519 A"}],
              "user_data_base64":null,"launch_time":"2024-01-02T03:04:05Z",
              "root_device_name":"/dev/sda1","block_device_mapping":[["ami","/dev/sda1"]]}}"#;
        let spec: LaunchSpec = serde_json::from_str(stored).expect("decodes");
        assert_eq!(spec.nics[0].subnet_cidr, "");
        assert_eq!(spec.metadata.options, MetadataOptions::default());
        let sent = spec.to_node(7, node::DesiredState::Stopped);
        assert_eq!(sent.generation, 7);
        assert_eq!(sent.desired, node::DesiredState::Stopped);
        assert!(matches!(sent.image, node::BootImage::Paravirtual { .. }));
        assert_eq!(sent.metadata.public_keys[0].name, "k");
        // What is stored now decodes as the node API's spec too, so a
        // record written by this version reads like one written before.
        let written = serde_json::to_value(&spec).expect("encodes");
        assert_eq!(
            serde_json::from_value::<LaunchSpec>(written).expect("round trip"),
            spec
        );
    }
}
