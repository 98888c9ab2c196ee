//! CreateTags, DeleteTags and DescribeTags on the wire, and the tag helpers
//! other actions share (`TagSpecification.N`, `tagSet`, an account's tags
//! by resource for Describe responses). Which resources may be tagged, and
//! the rules for tags, are `mallee_cloud::tags`.

use std::collections::HashMap;

use mallee_cloud::tags::{self, validate_resource_ids, validate_tag};
use mallee_store::{TagCondition, TagPair, TagQuery, TagSelector};

use crate::filter::{self, Filter, parse_filters};
use crate::pagination::PageRequest;
use crate::query::{QueryError, QueryParams};
use crate::xml::XmlWriter;

use super::{Ec2Context, Ec2Error};

/// Reads `Tag.N.Key` / `Tag.N.Value` from `params` (a request or a tag
/// specification), validating each and refusing repeated keys.
pub(crate) fn parse_tag_list(params: &QueryParams) -> Result<Vec<TagPair>, Ec2Error> {
    let mut tags: Vec<TagPair> = Vec::new();
    for tag in params.structs("Tag")? {
        let key = tag.required("Key")?.to_owned();
        let value = tag.get("Value").unwrap_or_default().to_owned();
        validate_tag(&key, Some(&value))?;
        if tags.iter().any(|t| t.key == key) {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Duplicate tag key '{key}' specified."
            )));
        }
        tags.push(TagPair { key, value });
    }
    Ok(tags)
}

/// Reads `TagSpecification.N` for a create action whose resource type is
/// `resource_type`; other types are refused as EC2 does.
pub fn parse_tag_specifications(
    params: &QueryParams,
    resource_type: &'static str,
) -> Result<Vec<TagPair>, Ec2Error> {
    let [tags] = parse_tag_specifications_of(params, [resource_type])?;
    Ok(tags)
}

/// Reads `TagSpecification.N` for an action that creates resources of
/// several types: the tags of each type of `resource_types`, in that
/// order; other types are refused as EC2 does. (Launches keep the order
/// given instead: `launch_data`.)
pub fn parse_tag_specifications_of<const N: usize>(
    params: &QueryParams,
    resource_types: [&'static str; N],
) -> Result<[Vec<TagPair>; N], Ec2Error> {
    let mut tags: [Vec<TagPair>; N] = std::array::from_fn(|_| Vec::new());
    for spec in params.structs("TagSpecification")? {
        let given = spec.required_non_empty("ResourceType")?;
        let Some(index) = resource_types.iter().position(|t| *t == given) else {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "'{given}' is not a valid taggable resource type for this operation."
            )));
        };
        let of_type = &mut tags[index];
        for tag in parse_tag_list(&spec)? {
            if of_type.iter().any(|t: &TagPair| t.key == tag.key) {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Duplicate tag key '{}' specified.",
                    tag.key
                )));
            }
            of_type.push(tag);
        }
    }
    Ok(tags)
}

/// Writes `<tagSet>` (omitted when empty, as EC2 does).
pub fn write_tag_set<'a>(w: &mut XmlWriter, tags: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let tags: Vec<_> = tags.into_iter().collect();
    if tags.is_empty() {
        return;
    }
    w.items("tagSet", tags, |w, (k, v)| {
        w.text("key", k);
        w.text("value", v);
    });
}

/// An account's tags grouped by resource, for Describe responses.
#[derive(Debug, Default)]
pub struct TagsByResource {
    by_resource: HashMap<String, Vec<(String, String)>>,
}

impl TagsByResource {
    /// Loads every tag of `account_id`.
    pub async fn load(ctx: &Ec2Context<'_>, account_id: &str) -> Result<Self, Ec2Error> {
        let mut by_resource: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for tag in ctx.cloud.store.tags(account_id).await? {
            by_resource
                .entry(tag.resource_id)
                .or_default()
                .push((tag.key, tag.value));
        }
        Ok(Self { by_resource })
    }

    /// Loads the tags of `resource_ids` only (one store query), for a
    /// Describe whose resources the store already selected.
    pub async fn load_for(ctx: &Ec2Context<'_>, resource_ids: &[String]) -> Result<Self, Ec2Error> {
        let mut by_resource: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for tag in ctx.cloud.store.resource_tags(resource_ids).await? {
            by_resource
                .entry(tag.resource_id)
                .or_default()
                .push((tag.key, tag.value));
        }
        Ok(Self { by_resource })
    }

    /// Tags of one resource.
    pub fn of(&self, resource_id: &str) -> &[(String, String)] {
        self.by_resource
            .get(resource_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

fn parse_resource_ids(params: &QueryParams) -> Result<Vec<String>, Ec2Error> {
    let ids = params.list("ResourceId")?;
    if ids.is_empty() {
        return Err(QueryError::Missing("ResourceId".into()).into());
    }
    validate_resource_ids(&ids)?;
    Ok(ids)
}

/// CreateTags input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTags {
    resource_ids: Vec<String>,
    tags: Vec<TagPair>,
}

impl CreateTags {
    /// Reads `ResourceId.N`, `Tag.N.Key`, `Tag.N.Value`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let resource_ids = parse_resource_ids(params)?;
        let tags = parse_tag_list(params)?;
        if tags.is_empty() {
            return Err(QueryError::Missing("Tag".into()).into());
        }
        Ok(Self { resource_ids, tags })
    }

    /// Tags every resource, all or none.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        tags::create(ctx.cloud, ctx.principal, &self.resource_ids, &self.tags).await?;
        Ok(ctx.respond_true("CreateTags"))
    }
}

/// DeleteTags input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteTags {
    resource_ids: Vec<String>,
    tags: Vec<TagSelector>,
}

impl DeleteTags {
    /// Reads `ResourceId.N` and optional `Tag.N.Key` / `Tag.N.Value` (a
    /// value, even empty, limits deletion to tags with that value).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let resource_ids = parse_resource_ids(params)?;
        let mut tags = Vec::new();
        for tag in params.structs("Tag")? {
            let key = tag.required("Key")?.to_owned();
            let value = tag.get("Value").map(str::to_owned);
            validate_tag(&key, value.as_deref())?;
            tags.push(TagSelector { key, value });
        }
        Ok(Self { resource_ids, tags })
    }

    /// Removes the tags, all or none.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        tags::delete(ctx.cloud, ctx.principal, &self.resource_ids, &self.tags).await?;
        Ok(ctx.respond_true("DeleteTags"))
    }
}

/// DescribeTags input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeTags {
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeTags {
    /// Reads `Filter.N`, `MaxResults` (5–1000), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        // DescribeTags takes `tag:KEY` but not `tag-key` / `tag-value`.
        const NAMES: &[&str] = &["key", "value", "resource-id", "resource-type"];
        if let Some(bad) = filters
            .iter()
            .find(|f| !f.name.starts_with("tag:") && !NAMES.contains(&f.name.as_str()))
        {
            return Err(filter::FilterError::UnknownName(bad.name.clone()).into());
        }
        Ok(Self {
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Lists the caller's tags, ordered by resource then key: the filters
    /// and the page go to the store as one query.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let conditions = self
            .filters
            .iter()
            .map(|f| {
                let values = f.values.clone();
                match f.name.strip_prefix("tag:") {
                    Some(key) => TagCondition::ResourceTag {
                        key: key.to_owned(),
                        values,
                    },
                    None => match f.name.as_str() {
                        "key" => TagCondition::Key(values),
                        "value" => TagCondition::Value(values),
                        "resource-id" => TagCondition::ResourceId(values),
                        // The only name left, as parse checked.
                        _ => TagCondition::ResourceType(values),
                    },
                }
            })
            .collect();
        let query = TagQuery {
            conditions,
            after: self.page.after.as_deref().map(|after| {
                let (resource, key) = after.split_once('\u{0}').unwrap_or((after, ""));
                (resource.to_owned(), key.to_owned())
            }),
            // One more than the page: whether another page follows.
            limit: self.page.max_results.map(|m| m + 1),
        };
        let matching = tags::find(ctx.cloud, ctx.principal, &query).await?;
        let (page, next) = self
            .page
            .apply(matching, |t| format!("{}\u{0}{}", t.resource_id, t.key));
        Ok(ctx.respond("DescribeTags", |w| {
            w.items("tagSet", page, |w, t| {
                w.text("resourceId", &t.resource_id);
                w.text("resourceType", &t.resource_type);
                w.text("key", &t.key);
                w.text("value", &t.value);
            });
            w.opt_text("nextToken", next);
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_codes_follow_prefix() {
        let code = |id: &str| {
            crate::error::AwsError::code(&Ec2Error::from(tags::not_found(id))).into_owned()
        };
        assert_eq!(code("i-12345678"), "InvalidInstanceID.NotFound");
        assert_eq!(code("eni-12345678"), "InvalidNetworkInterfaceID.NotFound");
        assert_eq!(code("zz-12345678"), "InvalidID");
    }

    use crate::query::test_params as params;

    #[test]
    fn tag_specifications_by_resource_type() {
        let p = params(&[
            ("TagSpecification.1.ResourceType", "volume"),
            ("TagSpecification.1.Tag.1.Key", "disk"),
            ("TagSpecification.1.Tag.1.Value", "data"),
            ("TagSpecification.2.ResourceType", "instance"),
            ("TagSpecification.2.Tag.1.Key", "Name"),
            ("TagSpecification.2.Tag.1.Value", "web"),
            ("TagSpecification.3.ResourceType", "network-interface"),
            ("TagSpecification.3.Tag.1.Key", "Name"),
            ("TagSpecification.3.Tag.1.Value", "nic"),
        ]);
        let [instance, volume, interface] =
            parse_tag_specifications_of(&p, ["instance", "volume", "network-interface"])
                .expect("parse");
        let pairs = |tags: &[TagPair]| -> Vec<(String, String)> {
            tags.iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect()
        };
        assert_eq!(pairs(&instance), [("Name".into(), "web".into())]);
        assert_eq!(pairs(&volume), [("disk".into(), "data".into())]);
        assert_eq!(pairs(&interface), [("Name".into(), "nic".into())]);
        // A type the action does not create is refused, as EC2 does.
        let err = parse_tag_specifications(&p, "instance").expect_err("volume refused");
        assert_eq!(
            err.to_string(),
            "'volume' is not a valid taggable resource type for this operation."
        );
        let duplicate = params(&[
            ("TagSpecification.1.ResourceType", "volume"),
            ("TagSpecification.1.Tag.1.Key", "a"),
            ("TagSpecification.2.ResourceType", "volume"),
            ("TagSpecification.2.Tag.1.Key", "a"),
        ]);
        assert!(parse_tag_specifications_of(&duplicate, ["instance", "volume"]).is_err());
    }
}
