//! RunInstances, DescribeInstances and DescribeInstanceStatus, and the
//! instance XML they (and the lifecycle actions) share.
//!
//! RunInstances records the whole reservation (placement, addresses, launch
//! details, tags) in one store transaction and returns `pending`; the
//! reconciler then starts each instance on its node. A crash before the
//! commit leaves nothing; after it, the reconciler finishes the launch.

use std::collections::HashMap;

use base64::Engine;
use mallee_cloud::instances::attributes::MetadataOptionsChange;
use mallee_cloud::instances::spec::{MetadataOptions, Tokens as HttpTokens};
use mallee_store::{InstanceRecord, VolumeRecord};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::xml::XmlWriter;
use mallee_cloud::CloudError;
use mallee_cloud::instances::describe::{self, InstanceStatus};
use mallee_cloud::instances::lookup;
use mallee_cloud::instances::model::{Instance, InstanceState};
use mallee_cloud::volumes::Volume;

use super::tags::{TagsByResource, write_tag_set};
use super::{Ec2Context, Ec2Error, iso8601};
use mallee_cloud::instances::launch;
use mallee_cloud::launch_templates::data::ProfileRef;
use mallee_cloud::launch_templates::{self, LaunchRequest, VersionRef};

use super::launch_data::{self, Source};

/// EC2 limits user data to 16 KiB (before base64).
const MAX_USER_DATA: usize = 16 * 1024;

/// Checks that `id` looks like an instance id (`i-` + 8 or 17 hex digits).
pub fn validate_instance_id(id: &str) -> Result<(), Ec2Error> {
    let ok = id.strip_prefix("i-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(Ec2Error::refused(
            "InvalidInstanceID.Malformed",
            format!("Invalid id: \"{id}\""),
        ))
    }
}

/// `InvalidInstanceID.NotFound` for `ids`, worded as EC2 words it.
pub fn instances_not_found(ids: &[&str]) -> Ec2Error {
    CloudError::instances_not_found(ids).into()
}

/// Reads `InstanceId.N` (at least one when `required`), validating each.
pub fn parse_instance_ids(params: &QueryParams, required: bool) -> Result<Vec<String>, Ec2Error> {
    let ids = params.list("InstanceId")?;
    if required && ids.is_empty() {
        return Err(crate::query::QueryError::Missing("InstanceId".into()).into());
    }
    for id in &ids {
        validate_instance_id(id)?;
    }
    Ok(ids)
}

/// The caller's instances named by `ids` (every one must exist), in the
/// order given, decoded.
pub async fn load_owned(ctx: &Ec2Context<'_>, ids: &[String]) -> Result<Vec<Instance>, Ec2Error> {
    Ok(lookup::owned(ctx.cloud, ctx.principal, ids).await?)
}

/// Decodes a record, mapping corruption to an internal error.
pub fn decode(record: InstanceRecord) -> Result<Instance, Ec2Error> {
    Ok(Instance::from_record(record)?)
}

/// RunInstances input: the domain's request.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInstances(LaunchRequest);

fn invalid(message: impl Into<String>) -> Ec2Error {
    Ec2Error::InvalidParameterValue(message.into())
}

fn count(params: &QueryParams, name: &str) -> Result<usize, Ec2Error> {
    let value = params
        .int(name)?
        .ok_or_else(|| crate::query::QueryError::Missing(name.into()))?;
    usize::try_from(value)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            invalid(format!(
                "Value ({value}) for parameter {} is invalid. Expected a positive integer.",
                name.to_ascii_lowercase()
            ))
        })
}

/// Writes `name` as an `InstanceMetadataOptionsResponse` in `state`
/// (`applied`, or `pending` while a change travels to the node).
pub(crate) fn write_metadata_options(
    w: &mut XmlWriter,
    name: &str,
    state: &str,
    o: &MetadataOptions,
) {
    w.elem(name, |w| {
        w.text("state", state);
        w.text(
            "httpTokens",
            match o.http_tokens {
                HttpTokens::Optional => "optional",
                HttpTokens::Required => "required",
            },
        );
        w.text("httpPutResponseHopLimit", o.http_put_response_hop_limit);
        w.text(
            "httpEndpoint",
            if o.http_endpoint_enabled {
                "enabled"
            } else {
                "disabled"
            },
        );
        w.text("httpProtocolIpv6", "disabled");
        w.text("instanceMetadataTags", "disabled");
    });
}

/// Reads `{prefix}HttpTokens`, `{prefix}HttpPutResponseHopLimit` (1–64),
/// `{prefix}HttpEndpoint`, and refuses what mallee's metadata service
/// does not serve (`{prefix}HttpProtocolIpv6`, `{prefix}InstanceMetadataTags`
/// enabled).
pub(crate) fn parse_metadata_change(
    params: &QueryParams,
    prefix: &str,
) -> Result<MetadataOptionsChange, Ec2Error> {
    let mut change = MetadataOptionsChange::default();
    for (name, what) in [
        ("HttpProtocolIpv6", "An IPv6 metadata endpoint"),
        ("InstanceMetadataTags", "Instance tags in the metadata"),
    ] {
        match params.get(&format!("{prefix}{name}")) {
            None | Some("disabled") => {}
            Some("enabled") => {
                return Err(Ec2Error::refused(
                    "UnsupportedOperation",
                    format!("{what} is not supported."),
                ));
            }
            Some(other) => {
                return Err(invalid(format!(
                    "Value ({other}) for parameter {name} is invalid. Valid values: enabled, disabled"
                )));
            }
        }
    }
    if let Some(tokens) = params.get(&format!("{prefix}HttpTokens")) {
        change.http_tokens = Some(match tokens {
            "optional" => HttpTokens::Optional,
            "required" => HttpTokens::Required,
            other => {
                return Err(invalid(format!(
                    "Value ({other}) for parameter HttpTokens is invalid. Valid values: optional, required"
                )));
            }
        });
    }
    if let Some(limit) = params.int(&format!("{prefix}HttpPutResponseHopLimit"))? {
        change.http_put_response_hop_limit = Some(u8::try_from(limit)
            .ok()
            .filter(|l| (1..=64).contains(l))
            .ok_or_else(|| {
                invalid(format!(
                    "Value ({limit}) for parameter HttpPutResponseHopLimit is invalid. Valid values: 1-64"
                ))
            })?);
    }
    if let Some(endpoint) = params.get(&format!("{prefix}HttpEndpoint")) {
        change.http_endpoint_enabled = Some(match endpoint {
            "enabled" => true,
            "disabled" => false,
            other => {
                return Err(invalid(format!(
                    "Value ({other}) for parameter HttpEndpoint is invalid. Valid values: enabled, disabled"
                )));
            }
        });
    }
    Ok(change)
}

/// Validates base64 user data and its decoded size.
pub fn validate_user_data(data: &str) -> Result<(), Ec2Error> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| invalid("Invalid BASE64 encoding of user data."))?;
    if decoded.len() > MAX_USER_DATA {
        return Err(invalid(format!(
            "User data is limited to {MAX_USER_DATA} bytes"
        )));
    }
    Ok(())
}

impl RunInstances {
    /// Reads the RunInstances parameters mallee supports, and the launch
    /// template (`LaunchTemplate.*`) they start from.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let template = params.member("LaunchTemplate");
        let template = match super::launch_templates::template_ref(&template, false)? {
            None => None,
            Some(by) => {
                let version = match template.get("Version").filter(|v| !v.is_empty()) {
                    None => VersionRef::Default,
                    Some(v) => super::launch_templates::version_ref(v, "LaunchTemplate.Version")?,
                };
                Some((by, version))
            }
        };
        let data = launch_data::parse(params, Source::RunInstances)?;
        if template.is_none() && data.image_id.is_none() {
            return Err(crate::query::QueryError::Missing("ImageId".into()).into());
        }
        let min_count = count(params, "MinCount")?;
        let max_count = count(params, "MaxCount")?;
        if min_count > max_count {
            return Err(invalid(format!(
                "Value ({min_count}) for parameter minCount is invalid. minCount must be less than or equal to maxCount ({max_count})."
            )));
        }
        let client_token = params.get("ClientToken").filter(|t| !t.is_empty());
        if let Some(token) = client_token
            && (token.len() > 64 || !token.is_ascii())
        {
            return Err(invalid(
                "Value for parameter clientToken is invalid. It must be at most 64 ASCII characters.",
            ));
        }
        let request = LaunchRequest {
            data,
            min_count,
            max_count,
            client_token: client_token.map(str::to_owned),
            template,
        };
        if request.template.is_none() {
            // Without a template everything is known now: refuse a bad
            // combination before anything is authorised or looked up.
            request.data.clone().into_run(min_count, max_count, None)?;
        }
        Ok(Self(request))
    }

    /// The instance profile the request itself gives the instances (one
    /// from its launch template is found by [`Self::template_profile`]).
    pub fn iam_instance_profile(&self) -> Option<String> {
        self.0.data.iam_instance_profile.as_ref().map(|p| match p {
            ProfileRef::Arn(v) | ProfileRef::Name(v) => v.clone(),
        })
    }

    /// The instance profile the launch gets from its template when the
    /// request names none itself.
    pub async fn template_profile(
        &self,
        cloud: &mallee_cloud::Cloud,
        principal: &mallee_cloud::Principal,
    ) -> Result<Option<String>, Ec2Error> {
        if self.0.template.is_none() || self.0.data.iam_instance_profile.is_some() {
            return Ok(None);
        }
        let run = launch_templates::resolve_launch(cloud, principal, self.0.clone()).await?;
        Ok(run.iam_instance_profile)
    }

    /// Launches (or answers a retry) and writes the reservation.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let launched = launch_templates::run(ctx.cloud, ctx.principal, self.0).await?;
        respond_launched(ctx, &launched).await
    }
}

/// The RunInstances answer for a reservation: new instances carry the
/// request's tags, a retried request's carry what the store has.
pub(crate) async fn respond_launched(
    ctx: &Ec2Context<'_>,
    launched: &launch::Launched,
) -> Result<String, Ec2Error> {
    let account = &ctx.principal.account.account_id;
    let reservation_id = &launched.reservation.reservation_id;
    match &launched.tags {
        Some(tags) => {
            let tags: Vec<(String, String)> = tags
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect();
            Ok(ctx.respond("RunInstances", |w| {
                write_reservation_body(
                    w,
                    reservation_id,
                    account,
                    &launched.instances,
                    |_| &tags,
                    &HashMap::new(),
                );
            }))
        }
        None => {
            let tags = TagsByResource::load(ctx, account).await?;
            Ok(ctx.respond("RunInstances", |w| {
                write_reservation_body(
                    w,
                    reservation_id,
                    account,
                    &launched.instances,
                    |id| tags.of(id),
                    &HashMap::new(),
                );
            }))
        }
    }
}

/// `reservationId`, `ownerId`, `groupSet`, `instancesSet` of one reservation.
pub(crate) fn write_reservation_body<'t>(
    w: &mut XmlWriter,
    reservation_id: &str,
    owner: &str,
    instances: &[Instance],
    tags: impl Fn(&str) -> &'t [(String, String)],
    volumes: &HashMap<String, Vec<VolumeRecord>>,
) {
    w.text("reservationId", reservation_id);
    w.text("ownerId", owner);
    // EC2 leaves the reservation's groupSet empty for VPC instances.
    w.elem("groupSet", |_| {});
    w.items("instancesSet", instances, |w, i| {
        write_instance(
            w,
            i,
            tags(i.id()),
            volumes.get(i.id()).map_or(&[][..], Vec::as_slice),
        );
    });
}

/// One `instancesSet` item as DescribeInstances shows it.
pub fn write_instance(
    w: &mut XmlWriter,
    instance: &Instance,
    tags: &[(String, String)],
    volumes: &[VolumeRecord],
) {
    let d = &instance.details;
    let md = &d.spec.metadata;
    w.text("instanceId", instance.id());
    w.text("imageId", &md.ami_id);
    write_state(w, "instanceState", instance.state);
    let live = instance.state != InstanceState::Terminated;
    w.text(
        "privateDnsName",
        if live {
            d.private_dns_name.as_str()
        } else {
            ""
        },
    );
    let public = md.public_ipv4.as_deref().filter(|_| live);
    w.text(
        "dnsName",
        md.public_hostname.as_deref().filter(|_| live).unwrap_or(""),
    );
    w.text("reason", &d.state_transition_reason);
    w.opt_text("keyName", d.key_name.as_deref());
    w.text("amiLaunchIndex", md.ami_launch_index);
    w.elem("productCodes", |_| {});
    w.text("instanceType", &d.spec.instance_type);
    w.text("launchTime", iso8601(instance.record.created_at));
    w.elem("placement", |w| {
        w.text("availabilityZone", &instance.record.zone);
        w.text("groupName", "");
        w.text("tenancy", "default");
    });
    w.opt_text("kernelId", md.kernel_id.as_deref());
    w.opt_text("ramdiskId", md.ramdisk_id.as_deref());
    w.elem("monitoring", |w| w.text("state", "disabled"));
    if live {
        w.text("privateIpAddress", &instance.record.private_ip);
    }
    w.opt_text("ipAddress", public);
    write_group_set(w, instance);
    if let Some(reason) = &d.state_reason {
        w.elem("stateReason", |w| {
            w.text("code", &reason.code);
            w.text("message", &reason.message);
        });
    }
    w.text("architecture", &md.architecture);
    w.text("rootDeviceType", &d.root_device_type);
    w.text("rootDeviceName", &md.root_device_name);
    w.elem("blockDeviceMapping", |w| {
        for v in volumes {
            w.elem("item", |w| {
                w.opt_text("deviceName", v.device.as_deref());
                w.elem("ebs", |w| {
                    w.text("volumeId", &v.volume_id);
                    w.text("status", v.attach_state.as_deref().unwrap_or("attached"));
                    w.opt_text("attachTime", v.attach_time.map(iso8601));
                    let delete_on_termination =
                        Volume::decode(v.clone()).is_ok_and(|v| v.details.delete_on_termination);
                    w.text("deleteOnTermination", delete_on_termination);
                });
            });
        }
    });
    w.text("virtualizationType", &d.virtualization_type);
    w.text("clientToken", d.client_token.as_deref().unwrap_or(""));
    write_tag_set(w, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    w.text("hypervisor", "xen");
    if !d.vpc_id.is_empty() {
        w.text("vpcId", &d.vpc_id);
        w.text("subnetId", &d.subnet_id);
        w.text("sourceDestCheck", "true");
    }
    w.elem("networkInterfaceSet", |w| {
        if d.network_interface_id.is_empty() || !live {
            return;
        }
        w.elem("item", |w| {
            w.text("networkInterfaceId", &d.network_interface_id);
            w.text("subnetId", &d.subnet_id);
            w.text("vpcId", &d.vpc_id);
            w.text("description", "");
            w.text("ownerId", &instance.record.account_id);
            w.text("status", "in-use");
            w.text("macAddress", &instance.record.mac);
            w.text("privateIpAddress", &instance.record.private_ip);
            w.text("privateDnsName", &d.private_dns_name);
            w.text("sourceDestCheck", "true");
            write_group_set(w, instance);
            w.elem("attachment", |w| {
                w.text(
                    "attachmentId",
                    d.network_interface_id.replacen("eni-", "eni-attach-", 1),
                );
                w.text("deviceIndex", 0);
                w.text("status", "attached");
                w.text("attachTime", iso8601(instance.record.created_at));
                w.text("deleteOnTermination", "true");
            });
            if let Some(ip) = &md.public_ipv4 {
                w.elem("association", |w| {
                    w.text("publicIp", ip);
                    w.opt_text("publicDnsName", md.public_hostname.as_deref());
                    w.text("ipOwnerId", "amazon");
                });
            }
            w.items("privateIpAddressesSet", [()], |w, ()| {
                w.text("privateIpAddress", &instance.record.private_ip);
                w.text("privateDnsName", &d.private_dns_name);
                w.text("primary", "true");
                if let Some(ip) = &md.public_ipv4 {
                    w.elem("association", |w| {
                        w.text("publicIp", ip);
                        w.opt_text("publicDnsName", md.public_hostname.as_deref());
                        w.text("ipOwnerId", "amazon");
                    });
                }
            });
            w.text("interfaceType", "interface");
        });
    });
    w.text("ebsOptimized", "false");
    if let Some(p) = &md.iam {
        w.elem("iamInstanceProfile", |w| {
            w.text("arn", &p.arn);
            w.text("id", &p.id);
        });
    }
    w.elem("cpuOptions", |w| {
        w.text("coreCount", d.spec.vcpus);
        w.text("threadsPerCore", 1);
    });
    write_metadata_options(w, "metadataOptions", "applied", &md.options);
    // Private names are always the IP-based `ip-10-0-0-5…` kind; mallee's
    // resolvers have no resource-based (`i-….REGION.compute.internal`)
    // names.
    w.elem("privateDnsNameOptions", |w| {
        w.text("hostnameType", "ip-name");
        w.text("enableResourceNameDnsARecord", false);
        w.text("enableResourceNameDnsAAAARecord", false);
    });
    w.text("platformDetails", "Linux/UNIX");
    w.text("usageOperation", "RunInstances");
}

/// `groupSet`: the instance's security groups, ids with names.
fn write_group_set(w: &mut XmlWriter, instance: &Instance) {
    let d = &instance.details;
    let names = &d.spec.metadata.security_groups;
    w.elem("groupSet", |w| {
        for (index, name) in names.iter().enumerate() {
            w.elem("item", |w| {
                w.opt_text("groupId", d.security_group_ids.get(index));
                w.text("groupName", name);
            });
        }
    });
}

/// `<name><code>16</code><name>running</name></name>`.
pub fn write_state(w: &mut XmlWriter, element: &str, state: InstanceState) {
    w.elem(element, |w| {
        w.text("code", state.code());
        w.text("name", state.name());
    });
}

/// An instance with its tags, as filters see it.
struct InstanceView<'a> {
    instance: &'a Instance,
    tags: &'a [(String, String)],
}

const INSTANCE_FILTERS: &[&str] = &[
    "instance-id",
    "instance-state-name",
    "instance-state-code",
    "image-id",
    "instance-type",
    "key-name",
    "ip-address",
    "private-ip-address",
    "private-dns-name",
    "dns-name",
    "availability-zone",
    "reservation-id",
    "owner-id",
    "architecture",
    "root-device-type",
    "root-device-name",
    "virtualization-type",
    "kernel-id",
    "ramdisk-id",
    "launch-index",
    "client-token",
    "group-name",
    "instance.group-name",
    "hypervisor",
    "state-reason-code",
    "metadata-options.http-tokens",
    "vpc-id",
    "subnet-id",
    "network-interface.network-interface-id",
    "instance.group-id",
    "group-id",
];

impl Filterable for InstanceView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let i = self.instance;
        let d = &i.details;
        let md = &d.spec.metadata;
        let one = |v: &str| Some(vec![v.to_owned()]);
        let live = i.state != InstanceState::Terminated;
        match name {
            "instance-id" => one(i.id()),
            "instance-state-name" => one(i.state.name()),
            "instance-state-code" => one(&i.state.code().to_string()),
            "image-id" => one(&md.ami_id),
            "instance-type" => one(&d.spec.instance_type),
            "key-name" => Some(d.key_name.iter().cloned().collect()),
            "ip-address" => Some(if live {
                md.public_ipv4.iter().cloned().collect()
            } else {
                Vec::new()
            }),
            "dns-name" => Some(if live {
                md.public_hostname.iter().cloned().collect()
            } else {
                Vec::new()
            }),
            "private-ip-address" => Some(if live {
                vec![i.record.private_ip.clone()]
            } else {
                Vec::new()
            }),
            "private-dns-name" => one(&d.private_dns_name),
            "availability-zone" => one(&i.record.zone),
            "reservation-id" => one(&i.record.reservation_id),
            "owner-id" => one(&i.record.account_id),
            "architecture" => one(&md.architecture),
            "root-device-type" => one(&d.root_device_type),
            "root-device-name" => one(&md.root_device_name),
            "virtualization-type" => one(&d.virtualization_type),
            "kernel-id" => Some(md.kernel_id.iter().cloned().collect()),
            "ramdisk-id" => Some(md.ramdisk_id.iter().cloned().collect()),
            "launch-index" => one(&md.ami_launch_index.to_string()),
            "client-token" => Some(d.client_token.iter().cloned().collect()),
            "group-name" | "instance.group-name" => Some(md.security_groups.clone()),
            "hypervisor" => one("xen"),
            "state-reason-code" => Some(d.state_reason.iter().map(|r| r.code.clone()).collect()),
            "vpc-id" => one(&d.vpc_id),
            "subnet-id" => one(&d.subnet_id),
            "network-interface.network-interface-id" => one(&d.network_interface_id),
            "group-id" | "instance.group-id" => Some(d.security_group_ids.clone()),
            "metadata-options.http-tokens" => one(match md.options.http_tokens {
                HttpTokens::Optional => "optional",
                HttpTokens::Required => "required",
            }),
            _ => None,
        }
    }

    fn tags(&self) -> &[(String, String)] {
        self.tags
    }

    fn taggable(&self) -> bool {
        true
    }
}

/// DescribeInstances input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeInstances {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeInstances {
    /// Reads `InstanceId.N`, `Filter.N`, `MaxResults` (5–1000), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, INSTANCE_FILTERS, true)?;
        let ids = parse_instance_ids(params, false)?;
        let page = PageRequest::parse(params, 5, 1000)?;
        if !ids.is_empty() && page.max_results.is_some() {
            return Err(Ec2Error::InvalidParameterCombination(
                "The parameter instancesSet cannot be used with the parameter maxResults".into(),
            ));
        }
        Ok(Self { ids, filters, page })
    }

    /// Lists the caller's instances grouped by reservation. The store
    /// selects and pages them where it can answer every filter
    /// (`instance_query`); the filters are applied again here, which also
    /// covers those it cannot answer.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        let query = super::instance_query::query(&self.ids, &self.filters, &self.page);
        let described = describe::matching(ctx.cloud, ctx.principal, &query).await?;
        let mut instances = described.instances;
        let ids: Vec<String> = instances.iter().map(|i| i.id().to_owned()).collect();
        let tags = TagsByResource::load_for(ctx, &ids).await?;
        instances.retain(|i| {
            filter::matches(
                &self.filters,
                &InstanceView {
                    instance: i,
                    tags: tags.of(i.id()),
                },
            )
        });
        instances.sort_by(|a, b| a.id().cmp(b.id()));
        let (page, next) = self.page.apply(instances, |i| i.id().to_owned());
        // Reservations in launch order, instances by launch index.
        let mut reservations: Vec<(String, Vec<Instance>)> = Vec::new();
        let mut sorted = page;
        sorted.sort_by(|a, b| {
            (
                a.record.created_at,
                &a.record.reservation_id,
                a.record.launch_index,
            )
                .cmp(&(
                    b.record.created_at,
                    &b.record.reservation_id,
                    b.record.launch_index,
                ))
        });
        for instance in sorted {
            match reservations.last_mut() {
                Some((id, list)) if *id == instance.record.reservation_id => list.push(instance),
                _ => reservations.push((instance.record.reservation_id.clone(), vec![instance])),
            }
        }
        Ok(ctx.respond("DescribeInstances", |w| {
            w.items("reservationSet", &reservations, |w, (id, list)| {
                write_reservation_body(w, id, account, list, |i| tags.of(i), &described.volumes);
            });
            w.opt_text("nextToken", next.as_deref());
        }))
    }
}

/// DescribeInstanceStatus input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeInstanceStatus {
    ids: Vec<String>,
    filters: Vec<Filter>,
    include_all: bool,
    page: PageRequest,
}

struct StatusView<'a>(&'a InstanceStatus);

impl Filterable for StatusView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let i = &self.0.instance;
        let (system, instance) = (self.0.system, self.0.instance_check);
        match name {
            "availability-zone" => Some(vec![i.record.zone.clone()]),
            "instance-state-name" => Some(vec![i.state.name().to_owned()]),
            "instance-state-code" => Some(vec![i.state.code().to_string()]),
            "instance-status.status" => Some(vec![instance.status().to_owned()]),
            "system-status.status" => Some(vec![system.status().to_owned()]),
            "instance-status.reachability" => Some(vec![instance.reachability().to_owned()]),
            "system-status.reachability" => Some(vec![system.reachability().to_owned()]),
            _ => None,
        }
    }
}

impl DescribeInstanceStatus {
    /// Reads `InstanceId.N`, `Filter.N`, `IncludeAllInstances`, paging.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(
            &filters,
            &[
                "availability-zone",
                "instance-state-name",
                "instance-state-code",
                "instance-status.status",
                "system-status.status",
                "instance-status.reachability",
                "system-status.reachability",
            ],
            false,
        )?;
        Ok(Self {
            ids: parse_instance_ids(params, false)?,
            filters,
            include_all: params.bool("IncludeAllInstances")?.unwrap_or(false),
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Status of the caller's running instances (all with
    /// `IncludeAllInstances`).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let mut statuses =
            describe::statuses(ctx.cloud, ctx.principal, &self.ids, self.include_all).await?;
        statuses.retain(|s| filter::matches(&self.filters, &StatusView(s)));
        statuses.sort_by(|a, b| a.instance.id().cmp(b.instance.id()));
        let (page, next) = self.page.apply(statuses, |s| s.instance.id().to_owned());
        Ok(ctx.respond("DescribeInstanceStatus", |w| {
            w.items("instanceStatusSet", &page, |w, s| {
                let i = &s.instance;
                w.text("instanceId", i.id());
                w.text("availabilityZone", &i.record.zone);
                write_state(w, "instanceState", i.state);
                for (element, check) in [
                    ("systemStatus", s.system),
                    ("instanceStatus", s.instance_check),
                ] {
                    w.elem(element, |w| {
                        w.text("status", check.status());
                        w.items("details", [()], |w, ()| {
                            w.text("name", "reachability");
                            w.text("status", check.reachability());
                        });
                    });
                }
            });
            w.opt_text("nextToken", next.as_deref());
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_options_change_only_what_is_given() {
        let params = |pairs: &[(&str, &str)]| {
            QueryParams::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .expect("params")
        };
        let change = parse_metadata_change(
            &params(&[
                ("HttpTokens", "required"),
                ("InstanceMetadataTags", "disabled"),
            ]),
            "",
        )
        .expect("parse");
        assert_eq!(
            change,
            MetadataOptionsChange {
                http_tokens: Some(HttpTokens::Required),
                ..MetadataOptionsChange::default()
            }
        );
        let code = |pairs: &[(&str, &str)]| {
            crate::error::AwsError::code(
                &parse_metadata_change(&params(pairs), "").expect_err("bad"),
            )
            .into_owned()
        };
        assert_eq!(
            code(&[("HttpPutResponseHopLimit", "0")]),
            "InvalidParameterValue"
        );
        assert_eq!(code(&[("HttpEndpoint", "on")]), "InvalidParameterValue");
        assert_eq!(
            code(&[("HttpProtocolIpv6", "enabled")]),
            "UnsupportedOperation"
        );
        assert_eq!(
            code(&[("InstanceMetadataTags", "enabled")]),
            "UnsupportedOperation"
        );
        let launch = RunInstances::parse(&params(&[
            ("ImageId", "ami-0123456789abcdef0"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("MetadataOptions.HttpPutResponseHopLimit", "2"),
        ]))
        .expect("launch")
        .0
        .data
        .into_run(1, 1, None)
        .expect("run")
        .metadata_options;
        assert_eq!(
            (launch.http_tokens, launch.http_put_response_hop_limit),
            (HttpTokens::Optional, 2)
        );
    }

    #[test]
    fn instance_ids_are_checked() {
        assert!(validate_instance_id("i-0123456789abcdef0").is_ok());
        assert!(validate_instance_id("i-12345678").is_ok());
        assert!(validate_instance_id("i-xyz").is_err());
        assert!(validate_instance_id("ami-0123456789abcdef0").is_err());
    }

    #[test]
    fn user_data_must_be_base64_and_small() {
        assert!(validate_user_data("IyEvYmluL3NoCg==").is_ok());
        assert!(validate_user_data("not base64!").is_err());
        let big = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; MAX_USER_DATA + 1]);
        assert!(validate_user_data(&big).is_err());
    }

    #[test]
    fn retries_hash_alike_and_other_requests_do_not() {
        let params = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("ImageId".to_owned(), "ami-0123456789abcdef0".to_owned()),
                ("MinCount".to_owned(), "1".to_owned()),
                ("MaxCount".to_owned(), "1".to_owned()),
            ];
            pairs.extend(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            QueryParams::from_pairs(pairs).expect("params")
        };
        let a = RunInstances::parse(&params(&[("ClientToken", "a")])).expect("parse");
        let b = RunInstances::parse(&params(&[("ClientToken", "b")])).expect("parse");
        let c = RunInstances::parse(&params(&[("InstanceType", "m1.large")])).expect("parse");
        let hash = |r: RunInstances| {
            r.0.data
                .into_run(1, 1, r.0.client_token)
                .expect("run")
                .request_hash()
        };
        let a = hash(a);
        assert_eq!(a, hash(b));
        assert_ne!(a, hash(c));
    }
}
