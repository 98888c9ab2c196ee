//! The metadata tree one instance sees: `/` (the API versions), then
//! `latest/` (and every dated version) with `meta-data/`, `user-data` and
//! `dynamic/instance-identity/document`, built from the instance's
//! registration and what is live (its role's credentials, the API
//! endpoint), in EC2's layout and order.

use base64::Engine;
use mallee_node_api::{IamProfileMetadata, InstanceCredentials};

use super::Registered;

/// The API versions listed at `/`, as EC2 lists them. Every one is served
/// with the current layout, which is what clients asking for a dated
/// version (cloud-init asks for 2009-04-04 and later ones) rely on.
const VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "2011-01-01",
    "2011-05-01",
    "2012-01-12",
    "2014-02-25",
    "2014-11-05",
    "2015-10-20",
    "2016-04-19",
    "2016-06-30",
    "2016-09-02",
    "2018-03-28",
    "2018-08-17",
    "2018-09-24",
    "2019-10-01",
    "2020-10-27",
    "2021-01-03",
    "2021-03-23",
    "2021-07-15",
    "2022-09-24",
    "latest",
];

/// A node of the metadata tree.
#[derive(Debug)]
pub(super) enum Node {
    Dir(Vec<Child>),
    Text(String),
    Bytes(Vec<u8>),
}

#[derive(Debug)]
pub(super) struct Child {
    /// Path segment.
    name: String,
    /// Line in the parent's listing.
    label: String,
    node: Node,
}

fn file(name: &str, value: impl Into<String>) -> Child {
    Child {
        name: name.to_owned(),
        label: name.to_owned(),
        node: Node::Text(value.into()),
    }
}

fn dir(name: &str, children: Vec<Child>) -> Child {
    Child {
        name: name.to_owned(),
        label: format!("{name}/"),
        node: Node::Dir(children),
    }
}

pub(super) fn listing(children: &[Child]) -> String {
    children
        .iter()
        .map(|c| c.label.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Resolves a request path. Directories answer with or without a trailing
/// slash, as EC2's do.
pub(super) fn lookup(instance: &Registered, path: &str, live: &Live<'_>) -> Option<Node> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let Some(version) = segments.next() else {
        return Some(Node::Dir(
            VERSIONS
                .iter()
                .map(|v| Child {
                    name: (*v).to_owned(),
                    label: (*v).to_owned(),
                    node: Node::Dir(Vec::new()),
                })
                .collect(),
        ));
    };
    if !VERSIONS.contains(&version) {
        return None;
    }
    let mut node = Node::Dir(version_tree(instance, live));
    for segment in segments {
        let Node::Dir(children) = node else {
            return None;
        };
        node = children.into_iter().find(|c| c.name == segment)?.node;
    }
    Some(node)
}

/// `/latest/` and what is below it, for one instance.
fn version_tree(instance: &Registered, live: &Live<'_>) -> Vec<Child> {
    let md = &instance.metadata;
    let plain = |name: &str, node| Child {
        name: name.to_owned(),
        label: name.to_owned(),
        node,
    };
    let mut top = vec![
        plain(
            "dynamic",
            Node::Dir(vec![dir(
                "instance-identity",
                vec![file("document", identity_document(instance))],
            )]),
        ),
        plain("meta-data", Node::Dir(meta_data(instance, live))),
    ];
    if let Some(user_data) = md.user_data_base64.as_deref() {
        match base64::engine::general_purpose::STANDARD.decode(user_data.trim()) {
            Ok(bytes) => top.push(plain("user-data", Node::Bytes(bytes))),
            Err(e) => tracing::warn!(instance = %instance.instance_id, error = %e,
                "user data is not valid base64; not served"),
        }
    }
    top
}

/// What the metadata tree shows besides the instance's registration.
pub(super) struct Live<'a> {
    /// The role credentials, when they were asked for.
    pub(super) credentials: Option<&'a InstanceCredentials>,
    /// The URL instances reach the cloud's API at, once the node knows it.
    pub(super) api_endpoint: Option<&'a str>,
}

fn meta_data(instance: &Registered, live: &Live<'_>) -> Vec<Child> {
    let md = &instance.metadata;
    let mut block_devices = md.block_device_mapping.clone();
    if block_devices.is_empty() && !md.root_device_name.is_empty() {
        block_devices = vec![
            ("ami".to_owned(), md.root_device_name.clone()),
            ("root".to_owned(), md.root_device_name.clone()),
        ];
    }
    let mut interface = vec![
        file("device-number", "0"),
        file("local-hostname", md.local_hostname.clone()),
        file("local-ipv4s", md.local_ipv4.clone()),
        file("mac", md.mac.clone()),
        file("owner-id", md.account_id.clone()),
    ];
    if let Some(name) = &md.public_hostname {
        interface.push(file("public-hostname", name.clone()));
    }
    if let Some(ip) = &md.public_ipv4 {
        interface.push(file("public-ipv4s", ip.clone()));
    }
    interface.push(file("security-groups", md.security_groups.join("\n")));

    let mut items = vec![
        file("ami-id", md.ami_id.clone()),
        file("ami-launch-index", md.ami_launch_index.to_string()),
        file("ami-manifest-path", "(unknown)"),
        dir(
            "block-device-mapping",
            block_devices
                .iter()
                .map(|(name, device)| file(name, device.clone()))
                .collect(),
        ),
        file("hostname", md.local_hostname.clone()),
        file("instance-action", "none"),
        file("instance-id", instance.instance_id.clone()),
        file("instance-life-cycle", "on-demand"),
        file("instance-type", md.instance_type.clone()),
    ];
    if let Some(kernel) = &md.kernel_id {
        items.push(file("kernel-id", kernel.clone()));
    }
    items.extend([
        file("local-hostname", md.local_hostname.clone()),
        file("local-ipv4", md.local_ipv4.clone()),
        file("mac", md.mac.clone()),
        dir(
            "network",
            vec![dir(
                "interfaces",
                vec![dir("macs", vec![dir(&md.mac, interface)])],
            )],
        ),
        dir(
            "placement",
            vec![
                file("availability-zone", md.availability_zone.clone()),
                file("region", md.region.clone()),
            ],
        ),
        file(
            "profile",
            if md.kernel_id.is_some() {
                "default-paravirtual"
            } else {
                "default-hvm"
            },
        ),
    ]);
    if let Some(name) = &md.public_hostname {
        items.push(file("public-hostname", name.clone()));
    }
    if let Some(ip) = &md.public_ipv4 {
        items.push(file("public-ipv4", ip.clone()));
    }
    if !md.public_keys.is_empty() {
        items.push(dir(
            "public-keys",
            md.public_keys
                .iter()
                .enumerate()
                .map(|(i, key)| Child {
                    name: i.to_string(),
                    label: format!("{i}={}", key.name),
                    node: Node::Dir(vec![file("openssh-key", key.openssh_key.clone())]),
                })
                .collect(),
        ));
    }
    if let Some(ramdisk) = &md.ramdisk_id {
        items.push(file("ramdisk-id", ramdisk.clone()));
    }
    items.extend([
        file("reservation-id", md.reservation_id.clone()),
        file("security-groups", md.security_groups.join("\n")),
        dir("services", {
            // What SDKs and tools compare against to build endpoints.
            let mut services = vec![file("domain", "amazonaws.com")];
            if let Some(url) = live.api_endpoint {
                // mallee's own: where this cloud's services answer.
                services.push(dir(
                    "endpoints",
                    ["ec2", "iam", "s3", "sts"]
                        .iter()
                        .map(|service| file(service, url))
                        .collect(),
                ));
            }
            services.push(file("partition", "aws"));
            services
        }),
    ]);
    if let Some(iam) = &md.iam {
        // After `hostname`, as EC2 lists it.
        let at = items
            .iter()
            .position(|c| c.name.as_str() > "iam")
            .unwrap_or(items.len());
        items.insert(at, iam_dir(iam, live.credentials));
    }
    items
}

/// Whether `path` is the instance's `iam/security-credentials/ROLE`.
pub(super) fn credentials_requested(instance: &Registered, path: &str) -> bool {
    let Some(role) = instance
        .metadata
        .iam
        .as_ref()
        .and_then(|i| i.role_name.as_deref())
    else {
        return false;
    };
    path.split_once("/meta-data/iam/security-credentials/")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == role)
}

/// `iam/info` and `iam/security-credentials/ROLE`, as EC2 serves them.
fn iam_dir(iam: &IamProfileMetadata, credentials: Option<&InstanceCredentials>) -> Child {
    let now = time::OffsetDateTime::now_utc();
    let stamp = |t: time::OffsetDateTime| {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    let at = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .map(stamp)
            .unwrap_or_default()
    };
    let info = serde_json::json!({
        "Code": "Success",
        "LastUpdated": stamp(now),
        "InstanceProfileArn": iam.instance_profile_arn,
        "InstanceProfileId": iam.instance_profile_id,
    });
    let mut roles = Vec::new();
    if let Some(role) = &iam.role_name {
        let body = match credentials {
            Some(c) => serde_json::json!({
                "Code": "Success",
                "LastUpdated": at(c.issued_at),
                "Type": "AWS-HMAC",
                "AccessKeyId": c.access_key_id,
                "SecretAccessKey": c.secret_access_key,
                "Token": c.token,
                "Expiration": at(c.expires_at),
            })
            .to_string(),
            // Listed without being fetched: its body is only built when
            // asked for.
            None => String::new(),
        };
        roles.push(file(role, body));
    }
    dir(
        "iam",
        vec![
            file(
                "info",
                serde_json::to_string_pretty(&info).unwrap_or_default(),
            ),
            dir("security-credentials", roles),
        ],
    )
}

/// `dynamic/instance-identity/document`, with EC2's fields (unsigned: there
/// is no `signature` or `pkcs7` beside it).
fn identity_document(instance: &Registered) -> String {
    let md = &instance.metadata;
    let document = serde_json::json!({
        "accountId": md.account_id,
        "architecture": md.architecture,
        "availabilityZone": md.availability_zone,
        "billingProducts": null,
        "devpayProductCodes": null,
        "marketplaceProductCodes": null,
        "imageId": md.ami_id,
        "instanceId": instance.instance_id,
        "instanceType": md.instance_type,
        "kernelId": md.kernel_id,
        "pendingTime": md.launch_time,
        "privateIp": md.local_ipv4,
        "ramdiskId": md.ramdisk_id,
        "region": md.region,
        "version": "2017-09-30",
    });
    serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".to_owned())
}
