//! DescribeNetworkAcls on the wire: each VPC's default ACL
//! (`mallee_cloud::network_acls`) with AWS's two default entries per
//! direction, associated with every subnet of its VPC.

use mallee_cloud::network_acls::{self, NetworkAcl, association_id};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;

use super::tags::{TagsByResource, write_tag_set};
use super::{Ec2Context, Ec2Error};

/// A default ACL's entries: (rule number, action), each both ways.
const ENTRIES: [(u32, &str); 2] = [(100, "allow"), (32767, "deny")];

struct AclView<'a> {
    acl: &'a NetworkAcl,
    tags: &'a [(String, String)],
}

impl Filterable for AclView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let acl = self.acl;
        let subnets = || acl.subnets.iter();
        Some(match name {
            "network-acl-id" | "association.network-acl-id" => vec![acl.acl_id.clone()],
            "vpc-id" => vec![acl.vpc.vpc_id.clone()],
            "default" => vec!["true".into()],
            "owner-id" => vec![acl.vpc.account_id.clone()],
            "association.subnet-id" => subnets().map(|s| s.subnet_id.clone()).collect(),
            "association.association-id" => {
                subnets().map(|s| association_id(&s.subnet_id)).collect()
            }
            "entry.rule-number" => ENTRIES.iter().map(|(n, _)| n.to_string()).collect(),
            "entry.rule-action" => ENTRIES.iter().map(|(_, a)| (*a).to_owned()).collect(),
            "entry.protocol" => vec!["-1".into(), "all".into()],
            "entry.egress" => vec!["true".into(), "false".into()],
            "entry.cidr" => vec!["0.0.0.0/0".into()],
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
    "network-acl-id",
    "vpc-id",
    "default",
    "owner-id",
    "association.subnet-id",
    "association.association-id",
    "association.network-acl-id",
    "entry.rule-number",
    "entry.rule-action",
    "entry.protocol",
    "entry.egress",
    "entry.cidr",
];

/// DescribeNetworkAcls input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeNetworkAcls {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeNetworkAcls {
    /// Reads `NetworkAclId.N`, `Filter.N`, `MaxResults` (5–1000),
    /// `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, FILTERS, true)?;
        Ok(Self {
            ids: params.list("NetworkAclId")?,
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Lists the caller's ACLs.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let acls = network_acls::list(ctx.cloud, ctx.principal, &self.ids).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        let selected: Vec<AclView<'_>> = acls
            .iter()
            .map(|acl| AclView {
                acl,
                tags: tags.of(&acl.acl_id),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        let (page, next) = self.page.apply(selected, |v| v.acl.acl_id.clone());
        Ok(ctx.respond("DescribeNetworkAcls", |w| {
            w.items("networkAclSet", page, |w, view| {
                let acl = view.acl;
                w.text("networkAclId", &acl.acl_id);
                w.text("vpcId", &acl.vpc.vpc_id);
                w.text("default", true);
                let entries = [true, false]
                    .into_iter()
                    .flat_map(|egress| ENTRIES.iter().map(move |e| (egress, e)));
                w.items("entrySet", entries, |w, (egress, (number, action))| {
                    w.text("ruleNumber", number);
                    w.text("protocol", "-1");
                    w.text("ruleAction", action);
                    w.text("egress", egress);
                    w.text("cidrBlock", "0.0.0.0/0");
                });
                w.items("associationSet", &acl.subnets, |w, subnet| {
                    w.text("networkAclAssociationId", association_id(&subnet.subnet_id));
                    w.text("networkAclId", &acl.acl_id);
                    w.text("subnetId", &subnet.subnet_id);
                });
                write_tag_set(w, view.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                w.text("ownerId", &acl.vpc.account_id);
            });
            w.opt_text("nextToken", next);
        }))
    }
}
