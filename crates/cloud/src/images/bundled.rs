//! Bundled images: RegisterImage of a bundle manifest
//! (`ImageLocation=BUCKET/PREFIX.manifest.xml`, as `euca-register` and
//! `ec2-register` send it).
//!
//! Registration reads the manifest (its type makes the id `ami-`, `aki-`
//! or `ari-`; its kernel and ramdisk are the image's unless the request
//! names others) and stores the image `pending`. The reconciler then
//! unbundles every pending bundled image in a task of its own
//! ([`pass`]): the manifest's `user` must be the owner's account, a signing
//! certificate of that account must verify the signature, the cloud's
//! private key must open the key wrapped for it; then the parts are
//! streamed from the object store through the [`mallee_bundle`] pipeline
//! (each part's SHA-1, AES, gunzip, the tar stream's SHA-1) into one
//! object of the cloud's own bucket ([`objects::system`]), and the image
//! becomes `available` backed by it, as an uploaded image is backed by its
//! object. Anything wrong ends the image `failed` with a `StateReason`
//! that names the cause; the object is only committed once every check
//! passed, so nothing partial stays.
//!
//! Crash safety: the work is keyed by the image id. A controller killed
//! mid-unbundle leaves the image `pending` and at most a temporary blob,
//! which the blob store removes at start; the next reconciler pass starts
//! the unbundle again, and the object it writes replaces any earlier one
//! of the same key, so nothing is duplicated.

use std::sync::Arc;

use bytes::Bytes;
use mallee_bundle::{BundleError, Manifest, Unbundler};
use mallee_store::{Image, StateReason, Store, StoreError, UnbundledImage};

use super::register::{ImageKind, Registration, sniff};
use crate::objects::system::{self, UNBUNDLED_BUCKET};
use crate::{Cloud, CloudError, Kind, Principal, objects};

/// The name bundle manifests end with.
pub const MANIFEST_SUFFIX: &str = ".manifest.xml";
/// Largest manifest read (a manifest of a 10 GiB image is about 200 KiB).
const MAX_MANIFEST: u64 = 4 << 20;
/// The setting holding the cloud's image-bundling key and certificate.
const CERTIFICATE_SETTING: &str = "image_bundling_certificate";
/// The StateReason code of every bundle that cannot be unbundled.
const REASON_CODE: &str = "Client.InvalidManifest";

/// The cloud's image-bundling key pair: bundles are wrapped for its
/// certificate (`cloud-cert.pem`, eucarc's `EUCALYPTUS_CERT`).
#[derive(Clone)]
pub struct CloudCertificate {
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The self-signed certificate, PEM.
    pub cert_pem: String,
}

impl std::fmt::Debug for CloudCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudCertificate").finish_non_exhaustive()
    }
}

impl CloudCertificate {
    fn from_setting(value: &str) -> Option<Self> {
        let split = value.find("-----BEGIN CERTIFICATE-----")?;
        Some(Self {
            key_pem: value[..split].to_owned(),
            cert_pem: value[split..].to_owned(),
        })
    }
}

/// The cloud's bundling certificate, made on first use and kept in the
/// settings (key and certificate in one value, so controllers racing to
/// make it can never pair one's key with another's certificate).
pub async fn cloud_certificate(store: &dyn Store) -> Result<CloudCertificate, CloudError> {
    if let Some(c) = store
        .setting(CERTIFICATE_SETTING)
        .await?
        .as_deref()
        .and_then(CloudCertificate::from_setting)
    {
        return Ok(c);
    }
    let (key_pem, cert_pem) = tokio::task::spawn_blocking(|| {
        mallee_bundle::keys::new_certificate("mallee image bundling", 2048)
    })
    .await
    .map_err(CloudError::internal)?
    .map_err(CloudError::internal)?;
    store
        .set_setting(CERTIFICATE_SETTING, &format!("{key_pem}{cert_pem}"))
        .await?;
    store
        .setting(CERTIFICATE_SETTING)
        .await?
        .as_deref()
        .and_then(CloudCertificate::from_setting)
        .ok_or_else(|| CloudError::Internal("the bundling certificate was not stored".into()))
}

/// A certificate of the cloud's services, as Eucalyptus'
/// DescribeServiceCertificates lists them (euca2ools asks it for the
/// `image-bundling` certificate of `compute`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCertificate {
    /// What it is for (`image-bundling`).
    pub usage: &'static str,
    /// The service (`compute`).
    pub service_type: &'static str,
    /// The certificate, PEM.
    pub pem: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// The cloud's service certificates: the image-bundling one.
pub async fn service_certificates(
    store: &dyn Store,
) -> Result<Vec<ServiceCertificate>, CloudError> {
    let certificate = cloud_certificate(store).await?;
    let der = mallee_bundle::keys::certificate_der(&certificate.cert_pem)
        .map_err(CloudError::internal)?;
    Ok(vec![ServiceCertificate {
        usage: "image-bundling",
        service_type: "compute",
        pem: certificate.cert_pem,
        der,
    }])
}

/// Whether `key` names a bundle manifest.
pub fn is_manifest_key(key: &str) -> bool {
    key.ends_with(MANIFEST_SUFFIX)
}

fn invalid_manifest(location: &str, why: &str) -> CloudError {
    CloudError::BadContent {
        kind: Kind::Image,
        message: format!("The manifest at ImageLocation '{location}' cannot be used: {why}"),
    }
}

/// The pending image of the manifest `object` at `location`, registered
/// by `caller` with `registration`'s name and overrides. The manifest
/// must parse; everything else is checked while unbundling.
pub(super) async fn pending_image(
    registration: &Registration,
    cloud: &Cloud,
    caller: &Principal,
    location: &str,
    object: &mallee_store::ObjectRecord,
) -> Result<Image, CloudError> {
    let text = system::read_small(cloud, object, MAX_MANIFEST)
        .await
        .map_err(|e| invalid_manifest(location, &e.to_string()))?;
    let text = String::from_utf8(text)
        .map_err(|_| invalid_manifest(location, "the manifest is not UTF-8 text"))?;
    let manifest =
        Manifest::parse(&text).map_err(|e| invalid_manifest(location, &e.to_string()))?;
    // euca2ools marks a kernel's or ramdisk's own manifest with kernel_id
    // or ramdisk_id `true`; only image ids are references.
    let reference = |id: &Option<String>| id.clone().filter(|i| super::is_image_id(i));
    let (prefix, virtualization_type, kernel_id, ramdisk_id) = match manifest.image_type.as_str() {
        "kernel" | "ramdisk" => {
            if registration.kernel_id.is_some() || registration.ramdisk_id.is_some() {
                return Err(CloudError::InvalidCombination(format!(
                    "The manifest at {location} is of a {}: KernelId and RamdiskId apply to machine images only.",
                    manifest.image_type
                )));
            }
            let prefix = if manifest.image_type == "kernel" {
                "aki"
            } else {
                "ari"
            };
            (prefix, "paravirtual".to_owned(), None, None)
        }
        "machine" => {
            let with_parts = Registration {
                kernel_id: registration
                    .kernel_id
                    .clone()
                    .or_else(|| reference(&manifest.kernel_id)),
                ramdisk_id: registration
                    .ramdisk_id
                    .clone()
                    .or_else(|| reference(&manifest.ramdisk_id)),
                ..registration.clone()
            };
            let virtualization = with_parts
                .machine_virtualization(cloud, caller.account_id())
                .await?;
            (
                "ami",
                virtualization.to_owned(),
                with_parts.kernel_id,
                with_parts.ramdisk_id,
            )
        }
        other => {
            return Err(invalid_manifest(
                location,
                &format!("image type {other:?} is not machine, kernel or ramdisk"),
            ));
        }
    };
    // The manifest says what the bundled image is built for.
    let architecture = manifest.architecture.clone();
    if !matches!(architecture.as_str(), "x86_64" | "i386") {
        return Err(invalid_manifest(
            location,
            &format!("architecture {architecture:?} is not x86_64 or i386"),
        ));
    }
    Ok(Image {
        image_type: manifest.image_type.clone(),
        virtualization_type,
        kernel_id,
        ramdisk_id,
        architecture,
        location: location.to_owned(),
        size: manifest.size,
        state: "pending".into(),
        bundle_manifest: Some(location.to_owned()),
        ..registration.new_image(caller, prefix)
    })
}

/// Why an unbundle failed: the image's StateReason, or a failure of the
/// cloud itself, after which the image stays pending and is tried again.
#[derive(Debug)]
enum Failure {
    Bundle(String),
    Cloud(CloudError),
}

impl From<BundleError> for Failure {
    fn from(e: BundleError) -> Self {
        Self::Bundle(e.to_string())
    }
}

impl From<CloudError> for Failure {
    fn from(e: CloudError) -> Self {
        Self::Cloud(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Cloud(e.into())
    }
}

/// Starts unbundling every pending bundled image that is not being
/// unbundled yet; `true` while any is pending.
pub async fn pass(cloud: &Arc<Cloud>) -> Result<bool, StoreError> {
    let pending: Vec<Image> = cloud
        .store
        .images_in_state("pending")
        .await?
        .into_iter()
        .filter(|i| i.bundle_manifest.is_some())
        .collect();
    for image in &pending {
        let key = format!("unbundle:{}", image.image_id);
        if !cloud.compute.begin_call(&key) {
            continue;
        }
        let cloud = cloud.clone();
        let image = image.clone();
        tokio::spawn(async move {
            settle(&cloud, &image).await;
            cloud.compute.end_call(&key);
        });
    }
    Ok(!pending.is_empty())
}

/// Unbundles one image and records the outcome.
async fn settle(cloud: &Cloud, image: &Image) {
    let id = &image.image_id;
    match unbundle(cloud, image).await {
        Ok(unbundled) => match cloud.store.complete_pending_image(id, &unbundled).await {
            Ok(true) => {
                tracing::info!(image = %id, size = unbundled.size, "bundled image available")
            }
            // Deregistered meanwhile: its data goes with it.
            Ok(false) => {
                if let Err(e) = system::delete(cloud, UNBUNDLED_BUCKET, id).await {
                    tracing::warn!(image = %id, error = %e, "could not delete an unbundled image");
                }
            }
            Err(e) => {
                tracing::warn!(image = %id, error = %e, "could not record an unbundled image")
            }
        },
        Err(Failure::Bundle(message)) => {
            tracing::info!(image = %id, reason = %message, "bundled image failed");
            let reason = StateReason {
                code: REASON_CODE.into(),
                message,
            };
            if let Err(e) = cloud.store.fail_pending_image(id, &reason).await {
                tracing::warn!(image = %id, error = %e, "could not record a failed bundle");
            }
        }
        Err(Failure::Cloud(e)) => {
            tracing::warn!(image = %id, error = %e, "unbundling failed; it is tried again");
        }
    }
}

/// `BUCKET/KEY` split at the first slash.
fn split_location(location: &str) -> Option<(&str, &str)> {
    location
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
}

/// Checks the bundle of `image`, streams it into the cloud's object and
/// returns what it holds.
async fn unbundle(cloud: &Cloud, image: &Image) -> Result<UnbundledImage, Failure> {
    let location = image.bundle_manifest.as_deref().unwrap_or_default();
    let account = image.account_id.as_str();
    let (bucket, key) = split_location(location)
        .ok_or_else(|| Failure::Bundle(format!("{location} is not BUCKET/KEY")))?;
    let Some(object) = objects::readable(cloud, account, bucket, key).await? else {
        return Err(Failure::Bundle(format!(
            "the manifest {location} no longer exists or may not be read"
        )));
    };
    let text = system::read_small(cloud, &object, MAX_MANIFEST).await?;
    let manifest = Manifest::parse(&String::from_utf8_lossy(&text))?;
    if manifest.user != account {
        return Err(Failure::Bundle(format!(
            "the manifest's user {} is not the registering account {account}",
            manifest.user
        )));
    }
    verify_signature(cloud, account, &manifest).await?;
    let certificate = cloud_certificate(cloud.store.as_ref()).await?;
    let private =
        mallee_bundle::keys::private_key(&certificate.key_pem).map_err(CloudError::internal)?;
    let bundle_key = manifest.cloud_key(&private)?;
    // Parts live beside the manifest.
    let dir = key.rfind('/').map_or("", |i| &key[..=i]);
    let mut parts = Vec::with_capacity(manifest.parts.len());
    for part in &manifest.parts {
        match objects::readable(cloud, account, bucket, &format!("{dir}{}", part.filename)).await? {
            Some(o) => parts.push(o),
            None => {
                return Err(Failure::Bundle(format!(
                    "part {bucket}/{dir}{} is missing or may not be read",
                    part.filename
                )));
            }
        }
    }

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let producer = async move {
        let result = produce(cloud, &manifest, &bundle_key, &parts, &tx).await;
        if let Err(e) = &result {
            // Makes the object write fail, so nothing is committed.
            let _ = tx
                .send(Err(std::io::Error::other(format!(
                    "unbundle failed: {e:?}"
                ))))
                .await;
        }
        result
    };
    let writer = system::put(cloud, UNBUNDLED_BUCKET, &image.image_id, body);
    let (header, written) = tokio::join!(producer, writer);
    let header = header?;
    let object = written?;
    let disk_format = match image.image_type.as_str() {
        "machine" => match sniff(&header) {
            ImageKind::MachineQcow2 => "qcow2",
            _ => "raw",
        },
        _ => "none",
    };
    Ok(UnbundledImage {
        bucket: object.bucket,
        key: object.key,
        size: object.size,
        etag: object.etag.trim_matches('"').to_owned(),
        disk_format: disk_format.into(),
    })
}

/// Whether an active signing certificate of the account verifies the
/// manifest.
async fn verify_signature(
    cloud: &Cloud,
    account: &str,
    manifest: &Manifest,
) -> Result<(), Failure> {
    let certificates = cloud.store.signing_certificates(account, None).await?;
    let verified = certificates
        .iter()
        .filter(|c| c.active)
        .filter_map(|c| mallee_bundle::keys::certificate_key(&c.body).ok())
        .any(|public| manifest.verify(&public));
    if verified {
        Ok(())
    } else if certificates.iter().all(|c| !c.active) {
        Err(Failure::Bundle(format!(
            "{}; account {account} has no active signing certificate",
            BundleError::Signature
        )))
    } else {
        Err(BundleError::Signature.into())
    }
}

/// Streams the parts through the unbundler into `tx`; returns the
/// image's first bytes (what tells a qcow2 disk from a raw one).
async fn produce(
    cloud: &Cloud,
    manifest: &Manifest,
    key: &mallee_bundle::BundleKey,
    parts: &[mallee_store::ObjectRecord],
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<Vec<u8>, Failure> {
    use futures_util::StreamExt;
    let mut unbundler = Unbundler::new(key, &manifest.parts);
    let mut header = Vec::new();
    let mut out = Vec::new();
    let send = |out: &mut Vec<u8>, header: &mut Vec<u8>| {
        if header.len() < objects::HEADER_LEN as usize {
            let n = (objects::HEADER_LEN as usize - header.len()).min(out.len());
            header.extend_from_slice(&out[..n]);
        }
        Bytes::from(std::mem::take(out))
    };
    for (index, part) in parts.iter().enumerate() {
        if index == 1 {
            cloud.faults.at(crate::faults::Step::UnbundlePart).await?;
        }
        unbundler.begin_part();
        let mut stream = std::pin::pin!(system::stream(cloud, part).await?);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(CloudError::internal)?;
            unbundler.push(&chunk, &mut out)?;
            if !out.is_empty() {
                let bytes = send(&mut out, &mut header);
                tx.send(Ok(bytes))
                    .await
                    .map_err(|_| CloudError::Internal("the image write stopped".into()))?;
            }
        }
        unbundler.end_part()?;
    }
    unbundler.finish(&manifest.digest, manifest.size, &mut out)?;
    if !out.is_empty() {
        let bytes = send(&mut out, &mut header);
        tx.send(Ok(bytes))
            .await
            .map_err(|_| CloudError::Internal("the image write stopped".into()))?;
    }
    Ok(header)
}

/// What DeregisterImage does beyond deleting the record: the unbundled
/// copy goes, the bundle's own objects stay (as in EC2).
pub async fn deregistered(cloud: &Cloud, image: &Image) -> Result<(), CloudError> {
    if image.bundle_manifest.is_some() && image.bucket == UNBUNDLED_BUCKET {
        system::delete(cloud, UNBUNDLED_BUCKET, &image.key).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::register::tests::registration;
    use crate::images::register::{Source, register};
    use crate::objects::acl::Acl;
    use crate::objects::testing::put;
    use crate::testkit::{TestCloud, principal};
    use mallee_bundle::{BundleKey, ManifestFields};

    /// Bundles `data` for `user` (its signing key `signer`) and the
    /// cloud, puts it into bucket `b` under `dir/`, and registers it.
    async fn bundle_and_register(
        cloud: &TestCloud,
        caller: &Principal,
        user: &str,
        data: &[u8],
        dir: &str,
        (signer_pem, user_cert): (&str, &str),
    ) -> String {
        let tmp = tempfile::tempdir().expect("tmp");
        let key = BundleKey::random();
        let bundled = mallee_bundle::pipeline::bundle(
            data,
            "disk.img",
            data.len() as u64,
            &key,
            tmp.path(),
            "disk.img",
            |_| {},
        )
        .expect("bundle");
        let cloud_cert = cloud_certificate(cloud.store.as_ref()).await.expect("cert");
        let signer = mallee_bundle::keys::private_key(signer_pem).expect("key");
        let public = mallee_bundle::keys::certificate_key(&cloud_cert.cert_pem).expect("cloud");
        let manifest = Manifest::build(
            ManifestFields {
                architecture: "x86_64".into(),
                kernel_id: None,
                ramdisk_id: None,
                block_device_mappings: Vec::new(),
                name: "disk.img".into(),
                user: user.into(),
                image_type: "machine".into(),
                digest: bundled.digest,
                size: data.len() as u64,
                parts: bundled.parts,
            },
            &key,
            &public,
            &mallee_bundle::keys::certificate_key(user_cert).expect("user cert"),
            &signer,
        )
        .expect("manifest");
        let owner = caller.account_id();
        let acl = Acl::private(owner);
        for part in &manifest.parts {
            let bytes = std::fs::read(tmp.path().join(&part.filename)).expect("part");
            put(
                cloud,
                owner,
                "b",
                &format!("{dir}/{}", part.filename),
                &bytes,
                &acl,
            )
            .await;
        }
        let key = format!("{dir}/disk.img.manifest.xml");
        put(cloud, owner, "b", &key, manifest.to_xml().as_bytes(), &acl).await;
        let source = Source::Object {
            location: format!("b/{key}"),
            bucket: "b".into(),
            key,
        };
        register(cloud, caller, registration(source, dir))
            .await
            .expect("register")
    }

    #[tokio::test]
    async fn a_bundle_unbundles_into_the_clouds_object_or_fails_with_its_reason() {
        let cloud = TestCloud::new().await;
        principal(&cloud, crate::bootstrap::ADMIN_ACCOUNT, true).await;
        let caller = cloud.principal("owner").await;
        let account = caller.account_id().to_owned();
        let (cert, key_pem) =
            crate::identity::signing::create(cloud.store.as_ref(), &account, "admin")
                .await
                .expect("signing certificate");
        assert!(cert.active);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();

        let good = bundle_and_register(
            &cloud,
            &caller,
            &account,
            &data,
            "good",
            (&key_pem, &cert.body),
        )
        .await;
        let image = cloud.store.image(&good).await.expect("get").expect("there");
        assert_eq!(image.state, "pending");
        assert_eq!(
            image.bundle_manifest.as_deref(),
            Some("b/good/disk.img.manifest.xml")
        );
        settle(&cloud, &image).await;
        let image = cloud.store.image(&good).await.expect("get").expect("there");
        assert_eq!(image.state, "available", "{:?}", image.state_reason);
        assert_eq!(
            (image.bucket.as_str(), image.key.as_str()),
            (UNBUNDLED_BUCKET, good.as_str())
        );
        assert_eq!(image.size, data.len() as u64);
        let object = cloud
            .store
            .object(UNBUNDLED_BUCKET, &good)
            .await
            .expect("object")
            .expect("stored");
        assert!(
            system::read_small(&cloud, &object, 1 << 20)
                .await
                .expect("read")
                == data
        );

        // Another account's manifest fails, and stores nothing.
        let other = bundle_and_register(
            &cloud,
            &caller,
            "999999999999",
            &data,
            "other",
            (&key_pem, &cert.body),
        )
        .await;
        let image = cloud
            .store
            .image(&other)
            .await
            .expect("get")
            .expect("there");
        settle(&cloud, &image).await;
        let image = cloud
            .store
            .image(&other)
            .await
            .expect("get")
            .expect("there");
        assert_eq!(image.state, "failed");
        let reason = image.state_reason.expect("reason");
        assert!(
            reason.message.contains("is not the registering account"),
            "{reason:?}"
        );
        assert!(
            cloud
                .store
                .object(UNBUNDLED_BUCKET, &other)
                .await
                .expect("object")
                .is_none()
        );

        // Deregistering keeps the bundle and drops the cloud's copy.
        crate::images::deregister(&cloud, &caller, &good)
            .await
            .expect("deregister");
        assert!(
            cloud
                .store
                .object(UNBUNDLED_BUCKET, &good)
                .await
                .expect("object")
                .is_none()
        );
        assert!(
            cloud
                .store
                .object("b", "good/disk.img.manifest.xml")
                .await
                .expect("o")
                .is_some()
        );
    }
}
