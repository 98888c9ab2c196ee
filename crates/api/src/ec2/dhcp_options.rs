//! CreateDhcpOptions, DescribeDhcpOptions, DeleteDhcpOptions and
//! AssociateDhcpOptions on the wire (`mallee_cloud::dhcp_options`
//! decides).

use mallee_cloud::dhcp_options;
use mallee_store::DhcpOptions;

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error};

/// A set's fields, as CreateDhcpOptions' `dhcpOptions` and
/// DescribeDhcpOptions' items carry them.
fn write_options(w: &mut XmlWriter, options: &DhcpOptions, tags: &[(String, String)]) {
    w.text("dhcpOptionsId", &options.dhcp_options_id);
    w.items(
        "dhcpConfigurationSet",
        &options.configurations,
        |w, (key, values)| {
            w.text("key", key);
            w.items("valueSet", values, |w, value| w.text("value", value));
        },
    );
    w.text("ownerId", &options.account_id);
    write_tag_set(w, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

/// CreateDhcpOptions input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateDhcpOptions {
    configurations: Vec<(String, Vec<String>)>,
    tags: Vec<mallee_store::TagPair>,
}

impl CreateDhcpOptions {
    /// Reads `DhcpConfiguration.N.Key`, `DhcpConfiguration.N.Value.M` and
    /// `TagSpecification.N` (type `dhcp-options`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let mut configurations = Vec::new();
        for option in params.structs("DhcpConfiguration")? {
            let key = option.required_non_empty("Key")?.to_owned();
            configurations.push((key, option.list("Value")?));
        }
        Ok(Self {
            configurations,
            tags: parse_tag_specifications(params, "dhcp-options")?,
        })
    }

    /// Creates the set.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let tags: Vec<(String, String)> = self
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        let options =
            dhcp_options::create(ctx.cloud, ctx.principal, self.configurations, self.tags).await?;
        Ok(ctx.respond("CreateDhcpOptions", |w| {
            w.elem("dhcpOptions", |w| write_options(w, &options, &tags));
        }))
    }
}

struct OptionsView<'a> {
    options: &'a DhcpOptions,
    tags: &'a [(String, String)],
}

impl Filterable for OptionsView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let o = self.options;
        Some(match name {
            "dhcp-options-id" => vec![o.dhcp_options_id.clone()],
            "key" => o.configurations.iter().map(|(k, _)| k.clone()).collect(),
            "value" => o
                .configurations
                .iter()
                .flat_map(|(_, v)| v.iter().cloned())
                .collect(),
            "owner-id" => vec![o.account_id.clone()],
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

const FILTERS: &[&str] = &["dhcp-options-id", "key", "value", "owner-id"];

/// DescribeDhcpOptions input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeDhcpOptions {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeDhcpOptions {
    /// Reads `DhcpOptionsId.N`, `Filter.N`, `MaxResults` (5–1000),
    /// `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, FILTERS, true)?;
        Ok(Self {
            ids: params.list("DhcpOptionsId")?,
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Lists the caller's sets.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let all = dhcp_options::list(ctx.cloud, ctx.principal, &self.ids).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        let selected: Vec<OptionsView<'_>> = all
            .iter()
            .map(|options| OptionsView {
                options,
                tags: tags.of(&options.dhcp_options_id),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        let (page, next) = self
            .page
            .apply(selected, |v| v.options.dhcp_options_id.clone());
        Ok(ctx.respond("DescribeDhcpOptions", |w| {
            w.items("dhcpOptionsSet", page, |w, view| {
                write_options(w, view.options, view.tags);
            });
            w.opt_text("nextToken", next);
        }))
    }
}

/// DeleteDhcpOptions input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteDhcpOptions {
    id: String,
}

impl DeleteDhcpOptions {
    /// Reads `DhcpOptionsId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            id: params.required_non_empty("DhcpOptionsId")?.to_owned(),
        })
    }

    /// Deletes the set unless a VPC uses it.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        dhcp_options::delete(ctx.cloud, ctx.principal, &self.id).await?;
        Ok(ctx.respond_true("DeleteDhcpOptions"))
    }
}

/// AssociateDhcpOptions input.
#[derive(Debug, Clone, PartialEq)]
pub struct AssociateDhcpOptions {
    id: String,
    vpc_id: String,
}

impl AssociateDhcpOptions {
    /// Reads `DhcpOptionsId` (a set or `default`) and `VpcId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            id: params.required_non_empty("DhcpOptionsId")?.to_owned(),
            vpc_id: params.required_non_empty("VpcId")?.to_owned(),
        })
    }

    /// Makes the VPC use the set.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        dhcp_options::associate(ctx.cloud, ctx.principal, &self.id, &self.vpc_id).await?;
        Ok(ctx.respond_true("AssociateDhcpOptions"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::test_params as params;

    #[test]
    fn configurations_keep_their_order_and_values() {
        let parsed = CreateDhcpOptions::parse(&params(&[
            ("DhcpConfiguration.1.Key", "domain-name"),
            ("DhcpConfiguration.1.Value.1", "corp.example"),
            ("DhcpConfiguration.2.Key", "domain-name-servers"),
            ("DhcpConfiguration.2.Value.1", "10.0.0.2"),
            ("DhcpConfiguration.2.Value.2", "10.0.0.3"),
        ]))
        .expect("parse");
        assert_eq!(
            parsed.configurations,
            [
                ("domain-name".to_owned(), vec!["corp.example".to_owned()]),
                (
                    "domain-name-servers".to_owned(),
                    vec!["10.0.0.2".to_owned(), "10.0.0.3".to_owned()]
                ),
            ]
        );
    }
}
