//! Instance calls Terraform's `aws_instance` and Ansible's `ec2_instance`
//! make beside the attributes: ModifyInstanceMetadataOptions,
//! DescribeInstanceCreditSpecifications and GetPasswordData. What they
//! may change is `mallee_cloud::instances::attributes`.

use mallee_cloud::ids;
use mallee_cloud::instances::attributes;

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;

use super::instances::{parse_metadata_change, validate_instance_id, write_metadata_options};
use super::{Ec2Context, Ec2Error};

/// ModifyInstanceMetadataOptions input.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifyInstanceMetadataOptions {
    id: String,
    change: attributes::MetadataOptionsChange,
}

impl ModifyInstanceMetadataOptions {
    /// Reads `InstanceId`, `HttpTokens`, `HttpPutResponseHopLimit`,
    /// `HttpEndpoint` (and `HttpProtocolIpv6`, `InstanceMetadataTags`,
    /// which may only be `disabled`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = params.required_non_empty("InstanceId")?.to_owned();
        validate_instance_id(&id)?;
        Ok(Self {
            id,
            change: parse_metadata_change(params, "")?,
        })
    }

    /// Changes the options; they reach the instance's metadata service
    /// with its next spec, so the answer says `pending` as AWS's does.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let options =
            attributes::modify_metadata_options(ctx.cloud, ctx.principal, &self.id, self.change)
                .await?;
        Ok(ctx.respond("ModifyInstanceMetadataOptions", |w| {
            w.text("instanceId", &self.id);
            write_metadata_options(w, "instanceMetadataOptions", "pending", &options);
        }))
    }
}

/// One instance's credit option, as filters see it.
struct Credit<'a> {
    instance_id: &'a str,
}

impl Filterable for Credit<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        (name == "instance-id").then(|| vec![self.instance_id.to_owned()])
    }
}

/// DescribeInstanceCreditSpecifications input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeInstanceCreditSpecifications {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeInstanceCreditSpecifications {
    /// Reads `InstanceId.N`, `Filter.N` (`instance-id`), `MaxResults`
    /// (5–1000) and `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, &["instance-id"], false)?;
        let ids = params.list("InstanceId")?;
        for id in &ids {
            validate_instance_id(id)?;
        }
        Ok(Self {
            ids,
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// The credit option of each named instance (`standard`: no type is
    /// burstable).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let mut credits =
            attributes::credit_specifications(ctx.cloud, ctx.principal, &self.ids).await?;
        credits.retain(|(id, _)| filter::matches(&self.filters, &Credit { instance_id: id }));
        credits.sort();
        let (page, next) = self.page.apply(credits, |(id, _)| id.clone());
        Ok(ctx.respond("DescribeInstanceCreditSpecifications", |w| {
            w.items(
                "instanceCreditSpecificationSet",
                page,
                |w, (id, credits)| {
                    w.text("instanceId", id);
                    w.text("cpuCredits", credits);
                },
            );
            w.opt_text("nextToken", next);
        }))
    }
}

/// GetPasswordData input.
#[derive(Debug, Clone, PartialEq)]
pub struct GetPasswordData {
    id: String,
}

impl GetPasswordData {
    /// Reads `InstanceId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = params.required_non_empty("InstanceId")?.to_owned();
        validate_instance_id(&id)?;
        Ok(Self { id })
    }

    /// The instance's (empty) password data.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let data = attributes::password_data(ctx.cloud, ctx.principal, &self.id).await?;
        Ok(ctx.respond("GetPasswordData", |w| {
            w.text("instanceId", &self.id);
            w.text("timestamp", ids::iso8601(ids::now_millis()));
            w.text("passwordData", &data);
        }))
    }
}
