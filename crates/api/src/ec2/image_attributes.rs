//! Describe/Modify/ResetImageAttribute on the wire: which attribute is
//! asked for, the launch-permission changes in both of EC2's forms
//! (`LaunchPermission.Add.N.*` and the legacy `Attribute`/`OperationType`/
//! `UserId.N`), and the answer's XML. What they mean is
//! `mallee_cloud::images::attributes`.

use mallee_cloud::images::attributes::{self, Attribute, Modification};
use mallee_cloud::images::validate_description;
use mallee_cloud::sharing::is_account_id;
use mallee_store::LaunchPermissionChange;

use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::images::checked_image_id;
use super::{Ec2Context, Ec2Error};

/// The attribute `value` names.
fn parse_attribute(value: &str) -> Result<Attribute, Ec2Error> {
    Ok(match value {
        "description" => Attribute::Description,
        "kernel" => Attribute::Kernel,
        "ramdisk" => Attribute::Ramdisk,
        "launchPermission" => Attribute::LaunchPermission,
        "productCodes" => Attribute::ProductCodes,
        "blockDeviceMapping" => Attribute::BlockDeviceMapping,
        other => {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({other}) for parameter attribute is invalid. Valid values: description, kernel, ramdisk, launchPermission, productCodes, blockDeviceMapping"
            )));
        }
    })
}

/// DescribeImageAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeImageAttribute {
    image_id: String,
    attribute: Attribute,
}

fn write_value(w: &mut XmlWriter, name: &str, value: Option<&String>) {
    w.elem(name, |w| w.opt_text("value", value));
}

impl DescribeImageAttribute {
    /// Reads `ImageId` and `Attribute`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            image_id: checked_image_id(params, "ImageId")?,
            attribute: parse_attribute(params.required_non_empty("Attribute")?)?,
        })
    }

    /// Answers one attribute; launch permissions only to the owner.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let image =
            attributes::describe(ctx.cloud, ctx.principal, &self.image_id, self.attribute).await?;
        Ok(ctx.respond("DescribeImageAttribute", |w| {
            w.text("imageId", &image.image_id);
            match self.attribute {
                Attribute::Description => write_value(w, "description", image.description.as_ref()),
                Attribute::Kernel => write_value(w, "kernel", image.kernel_id.as_ref()),
                Attribute::Ramdisk => write_value(w, "ramdisk", image.ramdisk_id.as_ref()),
                Attribute::LaunchPermission => w.elem("launchPermission", |w| {
                    if image.is_public {
                        w.elem("item", |w| w.text("group", "all"));
                    }
                    for account in &image.launch_permissions {
                        w.elem("item", |w| w.text("userId", account));
                    }
                }),
                Attribute::ProductCodes => w.elem("productCodes", |_| {}),
                Attribute::BlockDeviceMapping => {
                    super::block_devices::write_image_mappings(w, &image.block_device_mappings);
                }
            }
        }))
    }
}

/// ModifyImageAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifyImageAttribute {
    image_id: String,
    modification: Modification,
}

/// Adds one launch permission entry (`Group` or `UserId`) to `change`.
fn permission_entry(
    change: &mut LaunchPermissionChange,
    add: bool,
    group: Option<&str>,
    user_id: Option<&str>,
) -> Result<(), Ec2Error> {
    let item_error = |value: &str, kind: &str| {
        Ec2Error::refused(
            "InvalidAMIAttributeItemValue",
            format!("Invalid attribute item value \"{value}\" for {kind} item type."),
        )
    };
    if let Some(group) = group {
        if group != "all" {
            return Err(item_error(group, "group"));
        }
        change.public = Some(add);
    }
    if let Some(user) = user_id {
        if !is_account_id(user) {
            return Err(item_error(user, "userId"));
        }
        let list = if add {
            &mut change.add
        } else {
            &mut change.remove
        };
        list.push(user.to_owned());
    }
    Ok(())
}

impl ModifyImageAttribute {
    /// Reads `ImageId` and one of: `Description.Value` (or
    /// `Attribute=description` with `Value`); `LaunchPermission.Add.N` /
    /// `LaunchPermission.Remove.N` with `Group` (`all`) or `UserId`; the
    /// older `Attribute=launchPermission`, `OperationType=add|remove`,
    /// `UserId.N`, `UserGroup.N` that euca2ools sends.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let image_id = checked_image_id(params, "ImageId")?;
        let attribute = params
            .get("Attribute")
            .filter(|a| !a.is_empty())
            .map(parse_attribute)
            .transpose()?;
        if let Some(a) = attribute
            && !matches!(a, Attribute::Description | Attribute::LaunchPermission)
        {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({}) for parameter attribute is invalid. Only description and launchPermission can be modified.",
                params.get("Attribute").unwrap_or_default()
            )));
        }
        let description = params.get("Description.Value").or_else(|| {
            (attribute == Some(Attribute::Description))
                .then(|| params.get("Value"))
                .flatten()
        });
        let mut change = LaunchPermissionChange::default();
        for (list, add) in [
            ("LaunchPermission.Add", true),
            ("LaunchPermission.Remove", false),
        ] {
            for entry in params.structs(list)? {
                if entry.get("OrganizationArn").is_some()
                    || entry.get("OrganizationalUnitArn").is_some()
                {
                    return Err(Ec2Error::InvalidParameterValue(
                        "Organizations are not supported; share with Group=all or a UserId.".into(),
                    ));
                }
                permission_entry(&mut change, add, entry.get("Group"), entry.get("UserId"))?;
            }
        }
        let legacy_users = params.list("UserId")?;
        let legacy_groups = params.list("UserGroup")?;
        if !legacy_users.is_empty() || !legacy_groups.is_empty() {
            let add = match params.get("OperationType") {
                Some("add") => true,
                Some("remove") => false,
                Some(other) => {
                    return Err(Ec2Error::InvalidParameterValue(format!(
                        "Value ({other}) for parameter operationType is invalid. Valid values: add, remove"
                    )));
                }
                None => {
                    return Err(crate::query::QueryError::Missing("OperationType".into()).into());
                }
            };
            for group in &legacy_groups {
                permission_entry(&mut change, add, Some(group), None)?;
            }
            for user in &legacy_users {
                permission_entry(&mut change, add, None, Some(user))?;
            }
        }
        let permissions_given = change != LaunchPermissionChange::default();
        let modification = match (description, permissions_given) {
            (Some(_), true) => {
                return Err(Ec2Error::InvalidParameterCombination(
                    "Fields for multiple attribute types specified: description, launchPermission"
                        .into(),
                ));
            }
            (Some(d), false) => {
                validate_description(d)?;
                Modification::Description(Some(d.to_owned()).filter(|d| !d.is_empty()))
            }
            (None, true) => Modification::LaunchPermission(change),
            (None, false) => {
                return Err(Ec2Error::InvalidParameterCombination(
                    "No attributes specified.".into(),
                ));
            }
        };
        Ok(Self {
            image_id,
            modification,
        })
    }

    /// Applies the change to the caller's image.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        attributes::modify(ctx.cloud, ctx.principal, &self.image_id, &self.modification).await?;
        Ok(ctx.respond_true("ModifyImageAttribute"))
    }
}

/// ResetImageAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct ResetImageAttribute {
    image_id: String,
}

impl ResetImageAttribute {
    /// Reads `ImageId` and `Attribute` (only `launchPermission` can be
    /// reset, as in EC2).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let image_id = checked_image_id(params, "ImageId")?;
        let attribute = params.required_non_empty("Attribute")?;
        if attribute != "launchPermission" {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({attribute}) for parameter attribute is invalid. Only launchPermission can be reset."
            )));
        }
        Ok(Self { image_id })
    }

    /// Makes the image private and shared with nobody.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        attributes::reset_launch_permission(ctx.cloud, ctx.principal, &self.image_id).await?;
        Ok(ctx.respond_true("ResetImageAttribute"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AwsError;
    use crate::query::test_params as params;

    fn code(err: &Ec2Error) -> String {
        err.code().into_owned()
    }

    #[test]
    fn modify_parsing() {
        let id = ("ImageId", "ami-0123456789abcdef0");
        let parsed = |pairs: &[(&str, &str)]| ModifyImageAttribute::parse(&params(pairs));
        let modern = parsed(&[
            id,
            ("LaunchPermission.Add.1.Group", "all"),
            ("LaunchPermission.Add.2.UserId", "123456789012"),
            ("LaunchPermission.Remove.1.UserId", "210987654321"),
        ])
        .expect("modern");
        assert_eq!(
            modern.modification,
            Modification::LaunchPermission(LaunchPermissionChange {
                add: vec!["123456789012".into()],
                remove: vec!["210987654321".into()],
                public: Some(true),
            })
        );
        let legacy = parsed(&[
            id,
            ("Attribute", "launchPermission"),
            ("OperationType", "remove"),
            ("UserGroup.1", "all"),
            ("UserId.1", "123456789012"),
        ])
        .expect("legacy");
        assert_eq!(
            legacy.modification,
            Modification::LaunchPermission(LaunchPermissionChange {
                add: vec![],
                remove: vec!["123456789012".into()],
                public: Some(false),
            })
        );
        let description = parsed(&[id, ("Attribute", "description"), ("Value", "hello")])
            .expect("legacy description");
        assert_eq!(
            description.modification,
            Modification::Description(Some("hello".into()))
        );
        for (pairs, want) in [
            (vec![id], "InvalidParameterCombination"),
            (
                vec![id, ("LaunchPermission.Add.1.Group", "everyone")],
                "InvalidAMIAttributeItemValue",
            ),
            (
                vec![id, ("LaunchPermission.Add.1.UserId", "12")],
                "InvalidAMIAttributeItemValue",
            ),
            (vec![id, ("UserId.1", "123456789012")], "MissingParameter"),
            (
                vec![
                    id,
                    ("Description.Value", "d"),
                    ("LaunchPermission.Add.1.Group", "all"),
                ],
                "InvalidParameterCombination",
            ),
            (
                vec![id, ("Attribute", "kernel"), ("Value", "aki-12345678")],
                "InvalidParameterValue",
            ),
            (
                vec![("ImageId", "i-12345678"), ("Description.Value", "d")],
                "InvalidAMIID.Malformed",
            ),
        ] {
            let err = parsed(&pairs).expect_err("refused");
            assert_eq!(code(&err), want, "{pairs:?}");
        }
    }
}
