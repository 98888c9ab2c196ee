//! Elastic IP attributes on the wire: DescribeAddressesAttribute,
//! ModifyAddressAttribute and ResetAddressAttribute for `domain-name`
//! (Terraform's `aws_eip` reads it on every refresh; `aws_eip_domain_name`
//! sets and resets it). Each answers `AddressAttribute` items:
//! `publicIp`, `allocationId`, `ptrRecord`. What a domain name may be is
//! `mallee_cloud::addresses::domain_names`.

use mallee_cloud::addresses::{self, domain_names};
use mallee_store::AddressRecord;

use crate::pagination::PageRequest;
use crate::query::{QueryError, QueryParams};
use crate::xml::XmlWriter;

use super::addresses::validate_prefixed;
use super::{Ec2Context, Ec2Error};

/// The one address attribute EC2 has.
const DOMAIN_NAME: &str = "domain-name";

fn check_attribute(value: &str) -> Result<(), Ec2Error> {
    if value == DOMAIN_NAME {
        Ok(())
    } else {
        Err(Ec2Error::InvalidParameterValue(format!(
            "Value ({value}) for parameter attribute is invalid. Valid values: {DOMAIN_NAME}"
        )))
    }
}

fn allocation_id(params: &QueryParams) -> Result<String, Ec2Error> {
    let id = params.required_non_empty("AllocationId")?;
    validate_prefixed(id, "eipalloc", "InvalidAllocationID.Malformed")?;
    Ok(id.to_owned())
}

/// Writes one `AddressAttribute`'s fields.
fn write_attribute(w: &mut XmlWriter, ctx: &Ec2Context<'_>, address: &AddressRecord) {
    w.text("publicIp", &address.public_ip);
    w.text("allocationId", &address.allocation_id);
    w.text("ptrRecord", domain_names::ptr_record(ctx.cloud, address));
}

/// DescribeAddressesAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeAddressesAttribute {
    allocation_ids: Vec<String>,
    page: PageRequest,
}

impl DescribeAddressesAttribute {
    /// Reads `AllocationId.N`, `Attribute` (`domain-name`), `MaxResults`
    /// (1–1000) and `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        if let Some(attribute) = params.get("Attribute") {
            check_attribute(attribute)?;
        }
        let allocation_ids = params.list("AllocationId")?;
        for id in &allocation_ids {
            validate_prefixed(id, "eipalloc", "InvalidAllocationID.Malformed")?;
        }
        Ok(Self {
            allocation_ids,
            page: PageRequest::parse(params, 1, 1000)?,
        })
    }

    /// The domain names of the caller's elastic IPs (those named, each of
    /// which must exist), by allocation id.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let mut listed =
            addresses::list(ctx.cloud, ctx.principal, &[], &self.allocation_ids).await?;
        listed.sort_by(|a, b| a.allocation_id.cmp(&b.allocation_id));
        let (page, next) = self.page.apply(listed, |a| a.allocation_id.clone());
        Ok(ctx.respond("DescribeAddressesAttribute", |w| {
            w.items("addressSet", page, |w, a| write_attribute(w, ctx, &a));
            w.opt_text("nextToken", next);
        }))
    }
}

/// ModifyAddressAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifyAddressAttribute {
    allocation_id: String,
    domain_name: String,
}

impl ModifyAddressAttribute {
    /// Reads `AllocationId` and `DomainName` (checked and made canonical).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let allocation_id = allocation_id(params)?;
        let given = params
            .get("DomainName")
            .ok_or_else(|| QueryError::Missing("DomainName".into()))?;
        Ok(Self {
            allocation_id,
            domain_name: domain_names::canonical_domain_name(given)?,
        })
    }

    /// Records the domain name.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let address = domain_names::set_domain_name(
            ctx.cloud,
            ctx.principal,
            &self.allocation_id,
            Some(self.domain_name),
        )
        .await?;
        Ok(ctx.respond("ModifyAddressAttribute", |w| {
            w.elem("address", |w| write_attribute(w, ctx, &address));
        }))
    }
}

/// ResetAddressAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct ResetAddressAttribute {
    allocation_id: String,
}

impl ResetAddressAttribute {
    /// Reads `AllocationId` and `Attribute` (`domain-name`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let allocation_id = allocation_id(params)?;
        check_attribute(params.required_non_empty("Attribute")?)?;
        Ok(Self { allocation_id })
    }

    /// Removes the domain name: the address answers its default one again.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let address =
            domain_names::set_domain_name(ctx.cloud, ctx.principal, &self.allocation_id, None)
                .await?;
        Ok(ctx.respond("ResetAddressAttribute", |w| {
            w.elem("address", |w| write_attribute(w, ctx, &address));
        }))
    }
}
