//! Eucalyptus' bootstrap service (Empyrean; SigV4 scope `bootstrap`,
//! path `/services/Empyrean`), for the one question euca2ools asks it:
//! DescribeServiceCertificates, which `euca-bundle-image` calls for the
//! cloud's `image-bundling` certificate when it is given none. Answers in
//! the Query shape (`<…Response><…Result>`), lists as `<member>`s.

use mallee_cloud::Cloud;
use mallee_cloud::images::bundled::{self, ServiceCertificate};
use sha2::Digest;

use crate::filter::{Filter, parse_filters};
use crate::iam::{IamApiError, members, respond};
use crate::query::QueryParams;

/// The XML namespace of the bootstrap service's answers.
pub const NAMESPACE: &str = "http://www.eucalyptus.com/ns/empyrean/2015-10-01/";

type Result<T, E = IamApiError> = std::result::Result<T, E>;

crate::actions::declare! {
    /// One parsed bootstrap request.
    enum BootstrapAction;
    /// Runs an action the caller was allowed.
    fn execute(BootstrapContext, IamApiError, invalid: IamApiError::InvalidAction);
    service "euserv";
    DescribeServiceCertificates => self::DescribeServiceCertificates,
}

/// What a bootstrap action runs with.
#[derive(Debug)]
pub struct BootstrapContext<'a> {
    /// The cloud.
    pub cloud: &'a Cloud,
    /// This request's id.
    pub request_id: &'a str,
}

/// DescribeServiceCertificates input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeServiceCertificates {
    der: bool,
    sha1: bool,
    filters: Vec<Filter>,
}

impl DescribeServiceCertificates {
    /// Reads `Format` (`pem`, default, or `der`), `FingerprintDigest`
    /// (`SHA-256`, default, or `SHA-1`) and `Filter.N` (`certificate-usage`,
    /// `service-type`).
    pub fn parse(params: &QueryParams) -> Result<Self> {
        let der = match params.get("Format").map(str::to_ascii_lowercase).as_deref() {
            None | Some("pem") => false,
            Some("der") => true,
            Some(other) => {
                return Err(params
                    .invalid("Format", other, "Must be pem or der.")
                    .into());
            }
        };
        let sha1 = match params
            .get("FingerprintDigest")
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("SHA-256") => false,
            Some("SHA-1") => true,
            Some(other) => {
                return Err(params
                    .invalid("FingerprintDigest", other, "Must be SHA-1 or SHA-256.")
                    .into());
            }
        };
        let filters = parse_filters(params)?;
        if let Some(f) = filters
            .iter()
            .find(|f| !matches!(f.name.as_str(), "certificate-usage" | "service-type"))
        {
            return Err(params
                .invalid(
                    "Filter.Name",
                    &f.name,
                    "Must be certificate-usage or service-type.",
                )
                .into());
        }
        Ok(Self { der, sha1, filters })
    }

    fn selects(&self, c: &ServiceCertificate) -> bool {
        self.filters.iter().all(|f| {
            let value = match f.name.as_str() {
                "certificate-usage" => c.usage,
                _ => c.service_type,
            };
            f.values.iter().any(|v| v == value)
        })
    }

    /// Lists the cloud's certificates.
    pub async fn execute(self, ctx: &BootstrapContext<'_>) -> Result<String> {
        use base64::Engine as _;
        let certificates = bundled::service_certificates(ctx.cloud.store.as_ref())
            .await
            .map_err(|e| {
                IamApiError::from(mallee_cloud::identity::IdentityError::Corrupt(
                    e.to_string(),
                ))
            })?;
        let selected: Vec<&ServiceCertificate> =
            certificates.iter().filter(|c| self.selects(c)).collect();
        Ok(respond(
            NAMESPACE,
            "DescribeServiceCertificates",
            ctx.request_id,
            |w| {
                members(w, "serviceCertificates", selected, |w, c| {
                    w.text("certificateUsage", c.usage);
                    w.text("serviceType", c.service_type);
                    if self.der {
                        w.text("certificateFormat", "der");
                        w.text(
                            "certificate",
                            base64::engine::general_purpose::STANDARD.encode(&c.der),
                        );
                    } else {
                        w.text("certificateFormat", "pem");
                        w.text("certificate", &c.pem);
                    }
                    let (name, digest) = if self.sha1 {
                        ("SHA-1", hex::encode(sha1::Sha1::digest(&c.der)))
                    } else {
                        ("SHA-256", hex::encode(sha2::Sha256::digest(&c.der)))
                    };
                    w.text("certificateFingerprintDigest", name);
                    w.text("certificateFingerprint", digest);
                });
            },
        ))
    }
}
