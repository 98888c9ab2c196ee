//! DescribeNetworkInterfaces on the wire: each instance's primary
//! interface (`mallee_cloud::network_interfaces`) with AWS's fields and
//! filters (Terraform's `aws_security_group` destroy and `aws_subnet`
//! destroy look for interfaces by `group-id` and `subnet-id`).

use mallee_cloud::network_interfaces::{self, Interface};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::iso8601;
use super::tags::{TagsByResource, write_tag_set};
use super::{Ec2Context, Ec2Error};

struct InterfaceView<'a> {
    interface: &'a Interface,
    tags: &'a [(String, String)],
}

impl Filterable for InterfaceView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let i = self.interface;
        let record = &i.instance.record;
        let d = &i.instance.details;
        let one = |v: &str| vec![v.to_owned()];
        Some(match name {
            "network-interface-id" => one(i.id()),
            "vpc-id" => one(&d.vpc_id),
            "subnet-id" => one(&d.subnet_id),
            "availability-zone" => one(&record.zone),
            "group-id" => i.groups.iter().map(|(id, _)| id.clone()).collect(),
            "group-name" => i.groups.iter().map(|(_, name)| name.clone()).collect(),
            "attachment.instance-id" => one(&record.instance_id),
            "attachment.instance-owner-id" | "owner-id" => one(&record.account_id),
            "attachment.attachment-id" => vec![i.attachment_id()],
            "attachment.device-index" => one("0"),
            "attachment.status" => one("attached"),
            "attachment.delete-on-termination" => one("true"),
            "private-ip-address" | "addresses.private-ip-address" => one(&record.private_ip),
            "addresses.primary" => one("true"),
            "private-dns-name" => one(&d.private_dns_name),
            "mac-address" => one(&record.mac),
            "status" => one("in-use"),
            "description" => one(""),
            "interface-type" => one("interface"),
            "requester-managed" => one("false"),
            "source-dest-check" => one("true"),
            "association.public-ip" => i.public_ip().map(str::to_owned).into_iter().collect(),
            "association.allocation-id" => i
                .elastic_ip
                .iter()
                .map(|e| e.allocation_id.clone())
                .collect(),
            "association.association-id" => i
                .elastic_ip
                .iter()
                .filter_map(|e| e.association_id.clone())
                .collect(),
            _ => return None,
        })
    }
    fn tags(&self) -> &[(String, String)] {
        self.tags
    }
    fn taggable(&self) -> bool {
        true
    }
}

const FILTERS: &[&str] = &[
    "network-interface-id",
    "vpc-id",
    "subnet-id",
    "availability-zone",
    "group-id",
    "group-name",
    "attachment.instance-id",
    "attachment.instance-owner-id",
    "attachment.attachment-id",
    "attachment.device-index",
    "attachment.status",
    "attachment.delete-on-termination",
    "private-ip-address",
    "addresses.private-ip-address",
    "addresses.primary",
    "private-dns-name",
    "mac-address",
    "status",
    "owner-id",
    "description",
    "interface-type",
    "requester-managed",
    "source-dest-check",
    "association.public-ip",
    "association.allocation-id",
    "association.association-id",
];

/// The public address of an interface (`association`).
fn write_association(w: &mut XmlWriter, interface: &Interface) {
    let Some(ip) = interface.public_ip() else {
        return;
    };
    let md = &interface.instance.details.spec.metadata;
    w.elem("association", |w| {
        w.text("publicIp", ip);
        w.opt_text("publicDnsName", md.public_hostname.as_deref());
        match &interface.elastic_ip {
            Some(e) => {
                w.text("ipOwnerId", &interface.instance.record.account_id);
                w.text("allocationId", &e.allocation_id);
                w.opt_text("associationId", e.association_id.as_deref());
            }
            None => w.text("ipOwnerId", "amazon"),
        }
    });
}

fn write_interface(w: &mut XmlWriter, view: &InterfaceView<'_>) {
    let i = view.interface;
    let record = &i.instance.record;
    let d = &i.instance.details;
    w.text("networkInterfaceId", i.id());
    w.text("subnetId", &d.subnet_id);
    w.text("vpcId", &d.vpc_id);
    w.text("availabilityZone", &record.zone);
    w.text("description", "");
    w.text("ownerId", &record.account_id);
    w.text("requesterManaged", false);
    w.text("status", "in-use");
    w.text("macAddress", &record.mac);
    w.text("privateIpAddress", &record.private_ip);
    w.text("privateDnsName", &d.private_dns_name);
    w.text("sourceDestCheck", true);
    w.items("groupSet", &i.groups, |w, (id, name)| {
        w.text("groupId", id);
        w.text("groupName", name);
    });
    w.elem("attachment", |w| {
        w.text("attachmentId", i.attachment_id());
        w.text("instanceId", &record.instance_id);
        w.text("instanceOwnerId", &record.account_id);
        w.text("deviceIndex", 0);
        w.text("networkCardIndex", 0);
        w.text("status", "attached");
        w.text("attachTime", iso8601(record.created_at));
        w.text("deleteOnTermination", true);
    });
    write_association(w, i);
    write_tag_set(w, view.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    w.items("privateIpAddressesSet", [()], |w, ()| {
        w.text("privateIpAddress", &record.private_ip);
        w.text("privateDnsName", &d.private_dns_name);
        w.text("primary", true);
        write_association(w, i);
    });
    w.elem("ipv6AddressesSet", |_| {});
    w.text("interfaceType", "interface");
}

/// DescribeNetworkInterfaces input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeNetworkInterfaces {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeNetworkInterfaces {
    /// Reads `NetworkInterfaceId.N`, `Filter.N`, `MaxResults` (5–1000),
    /// `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, FILTERS, true)?;
        Ok(Self {
            ids: params.list("NetworkInterfaceId")?,
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Lists the caller's interfaces.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let interfaces = network_interfaces::list(ctx.cloud, ctx.principal, &self.ids).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        let selected: Vec<InterfaceView<'_>> = interfaces
            .iter()
            .map(|interface| InterfaceView {
                interface,
                tags: tags.of(interface.id()),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        let (page, next) = self.page.apply(selected, |v| v.interface.id().to_owned());
        Ok(ctx.respond("DescribeNetworkInterfaces", |w| {
            w.items("networkInterfaceSet", page, |w, view| {
                write_interface(w, &view);
            });
            w.opt_text("nextToken", next);
        }))
    }
}
