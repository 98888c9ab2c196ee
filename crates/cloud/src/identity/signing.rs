//! Signing certificates of IAM users (UploadSigningCertificate,
//! ListSigningCertificates, UpdateSigningCertificate,
//! DeleteSigningCertificate), and certificates the cloud makes with their
//! key (`mallee admin signing-certificate create`, the administrator's at
//! first start), as Eucalyptus' `euare-usercreatecert` did. They verify
//! the signatures of bundle manifests, and the user's copy of a bundle's
//! key is wrapped for them. A certificate's id is the SHA-1 of its DER in
//! upper-case hex, so the same certificate cannot be uploaded twice.

use mallee_store::{SigningCertificate, Store, StoreError};

use super::{IdentityError, Result, users};
use crate::ids;

/// IAM's limit of signing certificates per user.
pub const MAX_CERTIFICATES_PER_USER: usize = 2;

fn no_such_certificate(id: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("The Certificate with id {id} cannot be found."))
}

/// UploadSigningCertificate: a PEM X.509 certificate with an RSA key
/// becomes an active signing certificate of the user.
pub async fn upload(
    store: &dyn Store,
    account_id: &str,
    user_name: &str,
    body: &str,
) -> Result<SigningCertificate> {
    users::load(store, account_id, user_name).await?;
    let fingerprint = mallee_bundle::keys::certificate_fingerprint(body).map_err(|e| {
        IdentityError::MalformedCertificate(format!("Certificate is not valid: {e}"))
    })?;
    mallee_bundle::keys::certificate_key(body).map_err(|e| {
        IdentityError::InvalidCertificate(format!("Certificate is not usable: {e}"))
    })?;
    if store
        .signing_certificates(account_id, Some(user_name))
        .await?
        .len()
        >= MAX_CERTIFICATES_PER_USER
    {
        return Err(IdentityError::LimitExceeded(format!(
            "Cannot exceed quota for SigningCertificatesPerUser: {MAX_CERTIFICATES_PER_USER}"
        )));
    }
    let cert = SigningCertificate {
        certificate_id: fingerprint.to_uppercase(),
        account_id: account_id.to_owned(),
        user_name: user_name.to_owned(),
        body: body.trim().to_owned() + "\n",
        active: true,
        uploaded_at: ids::now_millis(),
    };
    match store.create_signing_certificate(&cert).await {
        Ok(()) => Ok(cert),
        Err(StoreError::Conflict(_)) => Err(IdentityError::DuplicateCertificate(
            "The request was rejected because the same certificate is associated with an IAM user in the account.".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A new key pair and certificate for the user, the certificate
/// uploaded: returns it with the private key (PEM), which the cloud
/// keeps no copy of.
pub async fn create(
    store: &dyn Store,
    account_id: &str,
    user_name: &str,
) -> Result<(SigningCertificate, String)> {
    users::load(store, account_id, user_name).await?;
    let subject = format!("{user_name}@{account_id}");
    let (key_pem, cert_pem) =
        tokio::task::spawn_blocking(move || mallee_bundle::keys::new_certificate(&subject, 2048))
            .await
            .map_err(|e| IdentityError::Corrupt(e.to_string()))?
            .map_err(|e| IdentityError::Corrupt(e.to_string()))?;
    let cert = upload(store, account_id, user_name, &cert_pem).await?;
    Ok((cert, key_pem))
}

/// ListSigningCertificates.
pub async fn list(
    store: &dyn Store,
    account_id: &str,
    user_name: &str,
) -> Result<Vec<SigningCertificate>> {
    users::load(store, account_id, user_name).await?;
    Ok(store
        .signing_certificates(account_id, Some(user_name))
        .await?)
}

/// UpdateSigningCertificate (`Active` / `Inactive`).
pub async fn set_active(
    store: &dyn Store,
    account_id: &str,
    user_name: &str,
    certificate_id: &str,
    active: bool,
) -> Result<()> {
    users::load(store, account_id, user_name).await?;
    if store
        .set_signing_certificate_active(account_id, user_name, certificate_id, active)
        .await?
    {
        Ok(())
    } else {
        Err(no_such_certificate(certificate_id))
    }
}

/// DeleteSigningCertificate.
pub async fn delete(
    store: &dyn Store,
    account_id: &str,
    user_name: &str,
    certificate_id: &str,
) -> Result<()> {
    users::load(store, account_id, user_name).await?;
    if store
        .delete_signing_certificate(account_id, user_name, certificate_id)
        .await?
    {
        Ok(())
    } else {
        Err(no_such_certificate(certificate_id))
    }
}
