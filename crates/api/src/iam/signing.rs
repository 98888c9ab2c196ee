//! UploadSigningCertificate, ListSigningCertificates,
//! UpdateSigningCertificate and DeleteSigningCertificate on the wire: the
//! X.509 certificates bundle manifests are signed with
//! (`mallee_cloud::identity::signing`).

use mallee_cloud::identity::signing;
use mallee_cloud::ids::iso8601;
use mallee_store::SigningCertificate;

use super::{IamApiError, IamContext, Page};
use crate::query::QueryParams;
use crate::xml::XmlWriter;

type Result<T, E = IamApiError> = std::result::Result<T, E>;

fn write_certificate(w: &mut XmlWriter, c: &SigningCertificate) {
    w.text("UserName", &c.user_name);
    w.text("CertificateId", &c.certificate_id);
    w.text("CertificateBody", &c.body);
    w.text("Status", if c.active { "Active" } else { "Inactive" });
    w.text("UploadDate", iso8601(c.uploaded_at));
}

/// UploadSigningCertificate input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSigningCertificate {
    user: Option<String>,
    body: String,
}

impl UploadSigningCertificate {
    /// Reads `UserName`, `CertificateBody`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: params.get("UserName").map(str::to_owned),
            body: params.required_non_empty("CertificateBody")?.to_owned(),
        })
    }

    /// Stores the certificate as an active one of the user.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let user = ctx.user_or_caller(self.user)?;
        let cert = signing::upload(&*ctx.cloud.store, ctx.account(), &user, &self.body).await?;
        Ok(ctx.respond("UploadSigningCertificate", |w| {
            w.elem("Certificate", |w| write_certificate(w, &cert));
        }))
    }
}

/// ListSigningCertificates input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSigningCertificates {
    user: Option<String>,
    page: Page,
}

impl ListSigningCertificates {
    /// Reads `UserName`, `Marker`, `MaxItems`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: params.get("UserName").map(str::to_owned),
            page: Page::parse(params)?,
        })
    }

    /// Lists the user's certificates.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let user = ctx.user_or_caller(self.user)?;
        let all = signing::list(&*ctx.cloud.store, ctx.account(), &user).await?;
        Ok(ctx.respond("ListSigningCertificates", |w| {
            self.page.write(w, "Certificates", &all, write_certificate);
        }))
    }
}

/// UpdateSigningCertificate input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSigningCertificate {
    user: Option<String>,
    certificate_id: String,
    active: bool,
}

impl UpdateSigningCertificate {
    /// Reads `UserName`, `CertificateId`, `Status` (`Active`, `Inactive`).
    pub fn parse(params: &QueryParams) -> Result<Self> {
        let active = super::users::active_status(params)?;
        Ok(Self {
            user: params.get("UserName").map(str::to_owned),
            certificate_id: params.required_non_empty("CertificateId")?.to_owned(),
            active,
        })
    }

    /// Activates or deactivates the certificate.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let user = ctx.user_or_caller(self.user)?;
        signing::set_active(
            &*ctx.cloud.store,
            ctx.account(),
            &user,
            &self.certificate_id,
            self.active,
        )
        .await?;
        Ok(ctx.respond("UpdateSigningCertificate", |_| {}))
    }
}

/// DeleteSigningCertificate input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteSigningCertificate {
    user: Option<String>,
    certificate_id: String,
}

impl DeleteSigningCertificate {
    /// Reads `UserName`, `CertificateId`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: params.get("UserName").map(str::to_owned),
            certificate_id: params.required_non_empty("CertificateId")?.to_owned(),
        })
    }

    /// Deletes the certificate.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let user = ctx.user_or_caller(self.user)?;
        signing::delete(
            &*ctx.cloud.store,
            ctx.account(),
            &user,
            &self.certificate_id,
        )
        .await?;
        Ok(ctx.respond("DeleteSigningCertificate", |_| {}))
    }
}
