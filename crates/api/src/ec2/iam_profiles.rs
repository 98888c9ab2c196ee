//! AssociateIamInstanceProfile, ReplaceIamInstanceProfileAssociation,
//! DisassociateIamInstanceProfile and DescribeIamInstanceProfileAssociations
//! on the wire; what they do is `mallee_cloud::iam_profiles`.

use mallee_cloud::iam_profiles::{self, Association};

use super::{Ec2Context, Ec2Error};
use crate::query::QueryParams;
use crate::xml::XmlWriter;

/// `{prefix}.Arn` or `{prefix}.Name` (RunInstances, Associate, Replace).
pub fn profile_param(params: &QueryParams, prefix: &str) -> Result<Option<String>, Ec2Error> {
    let arn = params
        .get(&format!("{prefix}.Arn"))
        .filter(|v| !v.is_empty());
    let name = params
        .get(&format!("{prefix}.Name"))
        .filter(|v| !v.is_empty());
    match (arn, name) {
        (Some(_), Some(_)) => Err(Ec2Error::InvalidParameterCombination(
            "The parameter 'iamInstanceProfile.name' may not be used in combination with 'iamInstanceProfile.arn'".into(),
        )),
        (Some(v), None) | (None, Some(v)) => Ok(Some(v.to_owned())),
        (None, None) => Ok(None),
    }
}

fn required_profile(params: &QueryParams) -> Result<String, Ec2Error> {
    profile_param(params, "IamInstanceProfile")?
        .ok_or_else(|| crate::query::QueryError::Missing("IamInstanceProfile".into()).into())
}

fn write_association(w: &mut XmlWriter, a: &Association, state: &str) {
    w.text("associationId", &a.association_id);
    w.text("instanceId", &a.instance_id);
    w.elem("iamInstanceProfile", |w| {
        w.text("arn", &a.arn);
        w.text("id", &a.id);
    });
    w.text("state", state);
}

/// AssociateIamInstanceProfile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociateIamInstanceProfile {
    instance_id: String,
    profile: String,
}

impl AssociateIamInstanceProfile {
    /// The profile it gives the instance.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Reads `InstanceId`, `IamInstanceProfile.Arn|Name`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            instance_id: params.required_non_empty("InstanceId")?.to_owned(),
            profile: required_profile(params)?,
        })
    }

    /// Associates the profile.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let a = iam_profiles::associate(ctx.cloud, ctx.principal, &self.instance_id, &self.profile)
            .await?;
        Ok(ctx.respond("AssociateIamInstanceProfile", |w| {
            w.elem("iamInstanceProfileAssociation", |w| {
                write_association(w, &a, "associating")
            });
        }))
    }
}

/// ReplaceIamInstanceProfileAssociation input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaceIamInstanceProfileAssociation {
    association_id: String,
    profile: String,
}

impl ReplaceIamInstanceProfileAssociation {
    /// The profile it gives the instance.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Reads `AssociationId`, `IamInstanceProfile.Arn|Name`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            association_id: params.required_non_empty("AssociationId")?.to_owned(),
            profile: required_profile(params)?,
        })
    }

    /// Replaces the association's profile.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let a = iam_profiles::replace(
            ctx.cloud,
            ctx.principal,
            &self.association_id,
            &self.profile,
        )
        .await?;
        Ok(ctx.respond("ReplaceIamInstanceProfileAssociation", |w| {
            w.elem("iamInstanceProfileAssociation", |w| {
                write_association(w, &a, "associating")
            });
        }))
    }
}

/// DisassociateIamInstanceProfile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisassociateIamInstanceProfile {
    association_id: String,
}

impl DisassociateIamInstanceProfile {
    /// Reads `AssociationId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            association_id: params.required_non_empty("AssociationId")?.to_owned(),
        })
    }

    /// Removes the association.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let a = iam_profiles::disassociate(ctx.cloud, ctx.principal, &self.association_id).await?;
        Ok(ctx.respond("DisassociateIamInstanceProfile", |w| {
            w.elem("iamInstanceProfileAssociation", |w| {
                write_association(w, &a, "disassociating")
            });
        }))
    }
}

/// DescribeIamInstanceProfileAssociations input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeIamInstanceProfileAssociations {
    ids: Vec<String>,
    instance_ids: Option<Vec<String>>,
    states: Option<Vec<String>>,
}

impl DescribeIamInstanceProfileAssociations {
    /// Reads `AssociationId.N` and the filters `instance-id` and `state`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let mut instance_ids = None;
        let mut states = None;
        for f in params.structs("Filter")? {
            let values = f.list("Value")?;
            match f.required("Name")? {
                "instance-id" => instance_ids = Some(values),
                "state" => states = Some(values),
                other => {
                    return Err(Ec2Error::InvalidParameterValue(format!(
                        "The filter '{other}' is invalid"
                    )));
                }
            }
        }
        Ok(Self {
            ids: params.list("AssociationId")?,
            instance_ids,
            states,
        })
    }

    /// Lists the caller's associations.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let all = iam_profiles::describe(
            ctx.cloud,
            ctx.principal,
            &self.ids,
            self.instance_ids.as_deref(),
        )
        .await?;
        let wanted = |state: &str| {
            self.states
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == state))
        };
        let shown: Vec<&Association> = if wanted("associated") {
            all.iter().collect()
        } else {
            Vec::new()
        };
        Ok(ctx.respond("DescribeIamInstanceProfileAssociations", |w| {
            w.items("iamInstanceProfileAssociationSet", shown, |w, a| {
                write_association(w, a, "associated")
            });
        }))
    }
}
