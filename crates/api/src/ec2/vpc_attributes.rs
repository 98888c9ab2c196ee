//! DescribeVpcAttribute and ModifyVpcAttribute on the wire: one attribute
//! per request, as EC2 takes them (`mallee_cloud::vpc_attributes` decides
//! and applies them).

use mallee_cloud::vpc_attributes::{self, VpcAttribute};

use crate::query::QueryParams;

use super::{Ec2Context, Ec2Error};

/// The attributes in ModifyVpcAttribute's `X.Value` form, by parameter.
const MODIFIABLE: [(&str, VpcAttribute); 3] = [
    ("EnableDnsSupport.Value", VpcAttribute::DnsSupport),
    ("EnableDnsHostnames.Value", VpcAttribute::DnsHostnames),
    (
        "EnableNetworkAddressUsageMetrics.Value",
        VpcAttribute::AddressUsageMetrics,
    ),
];

fn attribute(name: &str) -> Result<VpcAttribute, Ec2Error> {
    VpcAttribute::parse(name).ok_or_else(|| {
        Ec2Error::InvalidParameterValue(format!(
            "Value ({name}) for parameter attribute is invalid. Unknown attribute."
        ))
    })
}

/// DescribeVpcAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeVpcAttribute {
    vpc_id: String,
    attribute: VpcAttribute,
}

impl DescribeVpcAttribute {
    /// Reads `VpcId`, `Attribute`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            vpc_id: params.required_non_empty("VpcId")?.to_owned(),
            attribute: attribute(params.required_non_empty("Attribute")?)?,
        })
    }

    /// The attribute's value.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let attributes = vpc_attributes::describe(ctx.cloud, ctx.principal, &self.vpc_id).await?;
        Ok(ctx.respond("DescribeVpcAttribute", |w| {
            w.text("vpcId", &self.vpc_id);
            w.elem(self.attribute.name(), |w| {
                w.text("value", self.attribute.of(&attributes));
            });
        }))
    }
}

/// ModifyVpcAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifyVpcAttribute {
    vpc_id: String,
    attribute: VpcAttribute,
    value: bool,
}

impl ModifyVpcAttribute {
    /// Reads `VpcId` and exactly one of `EnableDnsSupport.Value`,
    /// `EnableDnsHostnames.Value`, `EnableNetworkAddressUsageMetrics.Value`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let vpc_id = params.required_non_empty("VpcId")?.to_owned();
        let given: Vec<(VpcAttribute, &str)> = MODIFIABLE
            .iter()
            .filter_map(|(param, attribute)| params.get(param).map(|v| (*attribute, v)))
            .collect();
        let (attribute, value) = match given.as_slice() {
            [one] => *one,
            [] => {
                return Err(Ec2Error::InvalidParameterCombination(
                    "No attributes specified.".into(),
                ));
            }
            several => {
                let names: Vec<&str> = several.iter().map(|(a, _)| a.name()).collect();
                return Err(Ec2Error::InvalidParameterCombination(format!(
                    "Fields for multiple attribute types specified: {}",
                    names.join(", ")
                )));
            }
        };
        let value = match value {
            "true" => true,
            "false" => false,
            other => {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Value ({other}) for parameter value is invalid. Expected 'true' or 'false'."
                )));
            }
        };
        Ok(Self {
            vpc_id,
            attribute,
            value,
        })
    }

    /// Sets it; the VPC's running instances follow a DNS attribute.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        vpc_attributes::modify(
            ctx.cloud,
            ctx.principal,
            &self.vpc_id,
            self.attribute,
            self.value,
        )
        .await?;
        Ok(ctx.respond("ModifyVpcAttribute", |w| w.text("return", true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::query::test_params as params;

    #[test]
    fn one_attribute_per_request() {
        let one = ModifyVpcAttribute::parse(&params(&[
            ("VpcId", "vpc-1"),
            ("EnableDnsHostnames.Value", "false"),
        ]))
        .expect("parses");
        assert_eq!(
            (one.attribute, one.value),
            (VpcAttribute::DnsHostnames, false)
        );
        let two = ModifyVpcAttribute::parse(&params(&[
            ("VpcId", "vpc-1"),
            ("EnableDnsSupport.Value", "true"),
            ("EnableDnsHostnames.Value", "true"),
        ]));
        assert!(
            matches!(&two, Err(Ec2Error::InvalidParameterCombination(m))
                if m == "Fields for multiple attribute types specified: enableDnsSupport, enableDnsHostnames"),
            "{two:?}"
        );
        assert!(matches!(
            ModifyVpcAttribute::parse(&params(&[
                ("VpcId", "vpc-1"),
                ("EnableDnsSupport.Value", "yes")
            ])),
            Err(Ec2Error::InvalidParameterValue(_))
        ));
        assert!(matches!(
            DescribeVpcAttribute::parse(&params(&[("VpcId", "vpc-1"), ("Attribute", "enableDns")])),
            Err(Ec2Error::InvalidParameterValue(_))
        ));
    }
}
