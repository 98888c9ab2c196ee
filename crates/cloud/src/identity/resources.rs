//! The resources an EC2 request names, as policies see them: an ARN
//! (`arn:aws:ec2:REGION:OWNER:instance/i-…`) and the resource's tags as
//! `ec2:ResourceTag/KEY` condition keys.

use std::collections::HashMap;

use mallee_policy::Context;
use mallee_store::Store;

use super::Result;
use super::authorize::Target;

/// The ARN resource type of an EC2 id, from its prefix.
fn arn_type(id: &str) -> &'static str {
    match id.split('-').next().unwrap_or_default() {
        "i" => "instance",
        "vol" => "volume",
        "snap" => "snapshot",
        "ami" | "aki" | "ari" => "image",
        "sg" => "security-group",
        "vpc" => "vpc",
        "subnet" => "subnet",
        "eni" => "network-interface",
        "eipalloc" => "elastic-ip",
        "key" => "key-pair",
        "lt" => "launch-template",
        "igw" => "internet-gateway",
        "rtb" => "route-table",
        "nat" => "natgateway",
        _ => "resource",
    }
}

/// Targets for EC2 resource ids: owned resources carry their owner's
/// account and their tags; ids nobody owns are named in the caller's
/// account (the action itself then reports them missing).
pub async fn ec2_targets(
    store: &dyn Store,
    region: &str,
    caller_account: &str,
    ids: &[String],
) -> Result<Vec<Target>> {
    let owners: HashMap<String, String> = store
        .resources(ids)
        .await?
        .into_iter()
        .map(|r| (r.resource_id, r.account_id))
        .collect();
    let mut tags: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for t in store.resource_tags(ids).await? {
        tags.entry(t.resource_id)
            .or_default()
            .push((t.key, t.value));
    }
    Ok(ids
        .iter()
        .map(|id| {
            let owner = owners.get(id).map_or(caller_account, String::as_str);
            let mut context = Context::new();
            for (k, v) in tags.get(id).into_iter().flatten() {
                context.insert(&format!("ec2:ResourceTag/{k}"), v.clone());
                context.insert(&format!("aws:ResourceTag/{k}"), v.clone());
            }
            Target {
                arn: format!("arn:aws:ec2:{region}:{owner}:{}/{id}", arn_type(id)),
                context,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::arn_type;

    #[test]
    fn arn_types() {
        assert_eq!(arn_type("i-0123"), "instance");
        assert_eq!(arn_type("vol-1"), "volume");
        assert_eq!(arn_type("ami-1"), "image");
        assert_eq!(arn_type("sg-1"), "security-group");
    }
}
