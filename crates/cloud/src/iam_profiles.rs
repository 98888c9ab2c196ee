//! Instance profiles on instances (EC2's side of IAM roles for EC2):
//! RunInstances' `IamInstanceProfile`, Associate, Replace, Disassociate
//! and Describe of associations, and the role credentials an instance's
//! node fetches for the metadata service.
//!
//! An association lives in the instance's metadata
//! ([`crate::instances::spec::IamProfileRef`]), so changing it bumps the
//! instance's generation and its node serves the new profile at once.

use mallee_store::Store;

use crate::identity::IdentityError;
use crate::identity::profiles::{self, ProfileView};
use crate::identity::roles;
use crate::identity::sts::{self, Credentials};
use crate::instances::lifecycle;
use crate::instances::lookup;
use crate::instances::model::InstanceState;
use crate::instances::spec::IamProfileRef;
use crate::{Cloud, CloudError, Kind, Principal, ids};

/// The profile RunInstances or an association names (`Arn` or `Name`),
/// in the caller's account.
pub async fn resolve(
    cloud: &Cloud,
    account_id: &str,
    arn_or_name: &str,
) -> Result<ProfileView, CloudError> {
    profiles::resolve(&*cloud.store, account_id, arn_or_name)
        .await
        .map_err(|e| match e {
            IdentityError::NoSuchEntity(_) | IdentityError::Validation(_) => CloudError::Invalid(format!(
                "Value ({arn_or_name}) for parameter iamInstanceProfile is invalid. Invalid IAM Instance Profile name"
            )),
            other => CloudError::Internal(other.to_string()),
        })
}

/// A new association of `profile`.
pub fn association(profile: &ProfileView) -> IamProfileRef {
    IamProfileRef {
        association_id: ids::resource_id("iip-assoc"),
        arn: profile.arn.clone(),
        id: profile.id.clone(),
        role_name: profile.roles.first().map(|r| r.role_name.clone()),
    }
}

/// One association as DescribeIamInstanceProfileAssociations shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    /// `iip-assoc-…`.
    pub association_id: String,
    /// The instance.
    pub instance_id: String,
    /// The profile's ARN.
    pub arn: String,
    /// The profile's id.
    pub id: String,
}

impl Association {
    /// Association `a` of `instance_id`.
    fn of(instance_id: &str, a: &IamProfileRef) -> Self {
        Self {
            association_id: a.association_id.clone(),
            instance_id: instance_id.to_owned(),
            arn: a.arn.clone(),
            id: a.id.clone(),
        }
    }
}

fn live(state: InstanceState) -> bool {
    !matches!(
        state,
        InstanceState::ShuttingDown | InstanceState::Terminated
    )
}

/// Sets (or clears) the association of the caller's instance `id`;
/// `expect` says what must be there now: `None` nothing, `Some(a)` the
/// association `a`.
async fn set(
    cloud: &Cloud,
    caller: &Principal,
    instance_id: &str,
    expect: Option<&str>,
    next: Option<IamProfileRef>,
) -> Result<(), CloudError> {
    lifecycle::change(cloud, caller, &[instance_id.to_owned()], |i, _| {
        if !live(i.state) {
            return Err(CloudError::incorrect_state(
                Kind::Instance,
                format!("The instance '{instance_id}' is not in a state from which it can be associated."),
            ));
        }
        let current = i.details.spec.metadata.iam.as_ref().map(|a| a.association_id.as_str());
        if current != expect {
            return Err(match expect {
                // EC2 answers `IncorrectState`, not the instance's code.
                None => CloudError::incorrect_state(
                    Kind::Association,
                    format!("There is an existing association for instance {instance_id}"),
                ),
                Some(a) => no_such_association(a),
            });
        }
        i.details.spec.metadata.iam.clone_from(&next);
        i.record.generation += 1;
        Ok(true)
    })
    .await?;
    Ok(())
}

/// AssociateIamInstanceProfile.
pub async fn associate(
    cloud: &Cloud,
    caller: &Principal,
    instance_id: &str,
    arn_or_name: &str,
) -> Result<Association, CloudError> {
    lookup::one(cloud, caller, instance_id).await?;
    let profile = resolve(cloud, caller.account_id(), arn_or_name).await?;
    let a = association(&profile);
    set(cloud, caller, instance_id, None, Some(a.clone())).await?;
    Ok(Association::of(instance_id, &a))
}

fn no_such_association(association_id: &str) -> CloudError {
    CloudError::not_found(
        Kind::Association,
        format!("An association with ID {association_id} was not found."),
    )
}

/// The caller's association `association_id`, with its instance.
async fn find(
    cloud: &Cloud,
    caller: &Principal,
    association_id: &str,
) -> Result<Association, CloudError> {
    describe(cloud, caller, &[association_id.to_owned()], None)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| no_such_association(association_id))
}

/// ReplaceIamInstanceProfileAssociation.
pub async fn replace(
    cloud: &Cloud,
    caller: &Principal,
    association_id: &str,
    arn_or_name: &str,
) -> Result<Association, CloudError> {
    let instance_id = find(cloud, caller, association_id).await?.instance_id;
    let profile = resolve(cloud, caller.account_id(), arn_or_name).await?;
    let a = association(&profile);
    set(
        cloud,
        caller,
        &instance_id,
        Some(association_id),
        Some(a.clone()),
    )
    .await?;
    Ok(Association::of(&instance_id, &a))
}

/// DisassociateIamInstanceProfile: answers the association as it was.
pub async fn disassociate(
    cloud: &Cloud,
    caller: &Principal,
    association_id: &str,
) -> Result<Association, CloudError> {
    let before = find(cloud, caller, association_id).await?;
    set(
        cloud,
        caller,
        &before.instance_id,
        Some(association_id),
        None,
    )
    .await?;
    Ok(before)
}

/// DescribeIamInstanceProfileAssociations: the caller's live instances'
/// associations, optionally only `ids` and only of `instance_ids`.
pub async fn describe(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
    instance_ids: Option<&[String]>,
) -> Result<Vec<Association>, CloudError> {
    let mut out = Vec::new();
    for i in lookup::all(cloud, caller).await? {
        if !live(i.state) {
            continue;
        }
        let Some(a) = &i.details.spec.metadata.iam else {
            continue;
        };
        if !ids.is_empty() && !ids.contains(&a.association_id) {
            continue;
        }
        if instance_ids.is_some_and(|want| !want.iter().any(|w| w == i.id())) {
            continue;
        }
        out.push(Association::of(i.id(), a));
    }
    Ok(out)
}

/// Why a node gets no credentials for an instance.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The instance is not the calling node's.
    #[error("instance {0} does not run on this node")]
    NotOnNode(String),
    /// No profile, no role in it, or the role does not trust EC2.
    #[error("{0}")]
    NoRole(String),
    /// The store or the identity layer failed.
    #[error("{0}")]
    Failed(String),
}

/// Role credentials for instance `instance_id` running on `node_id`: a
/// session of its profile's role, as long as the role's trust policy lets
/// `ec2.amazonaws.com` assume it, lasting the role's longest session.
pub async fn instance_credentials(
    cloud: &Cloud,
    node_id: &str,
    instance_id: &str,
) -> Result<(String, Credentials), CredentialsError> {
    let failed = |e: &dyn std::fmt::Display| CredentialsError::Failed(e.to_string());
    let store: &dyn Store = &*cloud.store;
    let record = store
        .instance(instance_id)
        .await
        .map_err(|e| failed(&e))?
        .ok_or_else(|| CredentialsError::NotOnNode(instance_id.to_owned()))?;
    let instance =
        crate::instances::model::Instance::from_record(record).map_err(|e| failed(&e))?;
    if instance.record.node_id != node_id || !live(instance.state) {
        return Err(CredentialsError::NotOnNode(instance_id.to_owned()));
    }
    let account = instance.record.account_id.clone();
    let no_role = |why: &str| CredentialsError::NoRole(format!("instance {instance_id}: {why}"));
    let Some(assoc) = &instance.details.spec.metadata.iam else {
        return Err(no_role("no instance profile"));
    };
    let profile_name = assoc.arn.rsplit('/').next().unwrap_or_default();
    let profile = profiles::get(store, &account, profile_name)
        .await
        .map_err(|_| no_role("its instance profile no longer exists"))?;
    let Some(role) = profile.roles.first() else {
        return Err(no_role("its instance profile holds no role"));
    };
    // The profile's view carries its role's trust policy and longest
    // session: no second read of the role.
    let trust = roles::parse_trust(&role.trust).map_err(|e| failed(&e))?;
    let context = mallee_policy::Context::new();
    let req = mallee_policy::Request {
        action: "sts:AssumeRole",
        resource: &role.arn,
        caller: mallee_policy::Caller::Service("ec2.amazonaws.com"),
        canonical_user: None,
        context: &context,
    };
    if !mallee_policy::trust_allows(&req, &trust) {
        return Err(no_role(
            "its role's trust policy does not let ec2.amazonaws.com assume it",
        ));
    }
    let credentials = sts::role_session(
        store,
        &account,
        instance_id,
        &role.role_name,
        instance_id,
        role.max_session_seconds,
    )
    .await
    .map_err(|e| failed(&e))?;
    Ok((role.role_name.clone(), credentials))
}
