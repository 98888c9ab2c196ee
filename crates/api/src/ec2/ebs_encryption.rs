//! GetEbsEncryptionByDefault, EnableEbsEncryptionByDefault and
//! DisableEbsEncryptionByDefault: the account's EBS encryption default,
//! which tools read (Terraform's `aws_ebs_encryption_by_default`). mallee
//! stores volumes unencrypted and has no key service, so the default is
//! off, disabling it changes nothing, and enabling it is refused
//! (`mallee_cloud::volumes::types`).

use mallee_cloud::volumes::types::{ENCRYPTION_BY_DEFAULT, encryption_by_default_unsupported};

use crate::query::QueryParams;

use super::{Ec2Context, Ec2Error};

/// GetEbsEncryptionByDefault input (nothing but `DryRun`).
#[derive(Debug, Clone, PartialEq)]
pub struct GetEbsEncryptionByDefault;

impl GetEbsEncryptionByDefault {
    /// Takes no parameters.
    pub fn parse(_params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self)
    }

    /// The default: off.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        Ok(ctx.respond("GetEbsEncryptionByDefault", |w| {
            w.text("ebsEncryptionByDefault", ENCRYPTION_BY_DEFAULT);
        }))
    }
}

/// DisableEbsEncryptionByDefault input.
#[derive(Debug, Clone, PartialEq)]
pub struct DisableEbsEncryptionByDefault;

impl DisableEbsEncryptionByDefault {
    /// Takes no parameters.
    pub fn parse(_params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self)
    }

    /// Already off: answers the (unchanged) default.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        Ok(ctx.respond("DisableEbsEncryptionByDefault", |w| {
            w.text("ebsEncryptionByDefault", ENCRYPTION_BY_DEFAULT);
        }))
    }
}

/// EnableEbsEncryptionByDefault input.
#[derive(Debug, Clone, PartialEq)]
pub struct EnableEbsEncryptionByDefault;

impl EnableEbsEncryptionByDefault {
    /// Takes no parameters.
    pub fn parse(_params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self)
    }

    /// Refused: nothing here encrypts volumes.
    pub async fn execute(self, _ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        Err(encryption_by_default_unsupported().into())
    }
}
