//! RegisterImage: a new image of an object of the object store, of a
//! profile of the bare-metal zone, or of EBS snapshots.
//!
//! An object image is a disk (raw or qcow2) for a machine image (`ami-`), a
//! Linux kernel (`aki-`) or an initramfs (`ari-`). The type is read from the
//! object's first bytes, as there is no bundle manifest to say it. The
//! object's size and ETag are recorded at registration, so a node can tell
//! when the object changed underneath. A bundle manifest makes a pending
//! image that [`super::bundled`] unbundles.

use mallee_store::{Image, ImageBlockDevice, TagPair};

use super::{new_machine_image, part_of_type, store_new_image};
use crate::snapshots::SnapshotStatus;
use crate::{Cloud, CloudError, Kind, Principal, ids, objects};

/// What an image object holds, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// A Linux x86 kernel (bzImage): an `aki-`.
    Kernel,
    /// An initramfs (cpio, or compressed): an `ari-`.
    Ramdisk,
    /// A raw disk: an `ami-`.
    MachineRaw,
    /// A qcow2 disk: an `ami-`.
    MachineQcow2,
}

impl ImageKind {
    /// EC2's `imageType`.
    pub fn image_type(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Ramdisk => "ramdisk",
            Self::MachineRaw | Self::MachineQcow2 => "machine",
        }
    }

    /// The id prefix.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Self::Kernel => "aki",
            Self::Ramdisk => "ari",
            Self::MachineRaw | Self::MachineQcow2 => "ami",
        }
    }

    /// The disk format a node must use for it.
    pub fn disk_format(self) -> &'static str {
        match self {
            Self::Kernel | Self::Ramdisk => "none",
            Self::MachineRaw => "raw",
            Self::MachineQcow2 => "qcow2",
        }
    }
}

/// Decides what an object holds from its first bytes (up to 4 KiB). Linux
/// x86 kernels carry `HdrS` at offset 0x202 (the boot protocol header);
/// initramfs images start with a cpio header or a compressor's magic;
/// qcow2 with `QFI\xfb`; anything else is taken as a raw disk.
pub fn sniff(header: &[u8]) -> ImageKind {
    const RAMDISK_MAGIC: &[&[u8]] = &[
        b"070701",                          // cpio newc
        b"070702",                          // cpio crc
        b"070707",                          // cpio odc
        &[0x1f, 0x8b],                      // gzip
        &[0x28, 0xb5, 0x2f, 0xfd],          // zstd
        &[0xfd, b'7', b'z', b'X', b'Z', 0], // xz
        &[0x02, 0x21, 0x4c, 0x18],          // lz4 legacy (the kernel's)
        &[0x04, 0x22, 0x4d, 0x18],          // lz4 frame
        b"BZh",                             // bzip2
        &[0x89, b'L', b'Z', b'O'],          // lzop
    ];
    if header.get(0x202..0x206) == Some(b"HdrS".as_slice()) {
        ImageKind::Kernel
    } else if header.starts_with(b"QFI\xfb") {
        ImageKind::MachineQcow2
    } else if RAMDISK_MAGIC.iter().any(|m| header.starts_with(m)) {
        ImageKind::Ramdisk
    } else {
        ImageKind::MachineRaw
    }
}

/// Whether the bytes look like a bundle manifest (XML), which is not a
/// disk: registering it as a raw disk would only fail at boot.
pub fn looks_like_manifest(header: &[u8]) -> bool {
    let text = header.strip_prefix(b"\xef\xbb\xbf").unwrap_or(header);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    text.starts_with(b"<?xml") || text.starts_with(b"<manifest")
}

/// Where a new image's content comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// An object of the object store (`ImageLocation=BUCKET/KEY`).
    Object {
        /// The location as given.
        location: String,
        /// The bucket.
        bucket: String,
        /// The object's key.
        key: String,
    },
    /// A profile of the bare-metal zone (`ImageLocation=metal:PROFILE`).
    Metal {
        /// The profile's name.
        profile: String,
    },
    /// EBS snapshots: the block device mappings, the root's snapshot among
    /// them.
    Ebs(Vec<ImageBlockDevice>),
}

/// A RegisterImage request.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// What the image is of.
    pub source: Source,
    /// The image's name (see [`super::validate_name`]).
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// `x86_64` or `i386`.
    pub architecture: String,
    /// The kernel of a paravirtual image.
    pub kernel_id: Option<String>,
    /// Its ramdisk.
    pub ramdisk_id: Option<String>,
    /// The root device's name.
    pub root_device_name: String,
    /// `hvm` or `paravirtual` when the caller says; else decided from the
    /// content and the kernel.
    pub virtualization_type: Option<String>,
    /// Tags of the new image.
    pub tags: Vec<TagPair>,
}

/// An object or profile that cannot be registered (`InvalidManifest`).
fn invalid_location(location: &str, why: &str) -> CloudError {
    CloudError::BadContent {
        kind: Kind::Image,
        message: format!("The image at ImageLocation '{location}' cannot be used: {why}"),
    }
}

const HVM_WITH_PARTS: &str =
    "KernelId and RamdiskId cannot be used with hvm images, which boot from their own disk.";
const PARAVIRTUAL_WITHOUT_KERNEL: &str = "A paravirtual image needs a KernelId (an aki- image).";

/// Registers an image for the caller and returns its id.
pub async fn register(
    cloud: &Cloud,
    caller: &Principal,
    registration: Registration,
) -> Result<String, CloudError> {
    let image = match &registration.source {
        Source::Ebs(mappings) => registration.ebs(cloud, caller, mappings).await?,
        Source::Metal { profile } => registration.metal(cloud, caller, profile).await?,
        Source::Object {
            location,
            bucket,
            key,
        } => {
            registration
                .object(cloud, caller, location, bucket, key)
                .await?
        }
    };
    store_new_image(cloud, &image, &registration.tags).await?;
    if image.bundle_manifest.is_some() {
        // The reconciler unbundles it.
        cloud.compute.wake();
    }
    Ok(image.image_id)
}

impl Registration {
    /// The virtualization type of a machine image: the caller's, else
    /// paravirtual with a kernel and hvm without; a paravirtual image needs
    /// a kernel and an hvm one takes neither kernel nor ramdisk. The kernel
    /// and ramdisk must be images of their type the caller may use.
    pub(super) async fn machine_virtualization(
        &self,
        cloud: &Cloud,
        account: &str,
    ) -> Result<&'static str, CloudError> {
        let paravirtual = match &self.virtualization_type {
            Some(v) => v == "paravirtual",
            None => self.kernel_id.is_some(),
        };
        if !paravirtual && (self.kernel_id.is_some() || self.ramdisk_id.is_some()) {
            return Err(CloudError::InvalidCombination(HVM_WITH_PARTS.into()));
        }
        if paravirtual && self.kernel_id.is_none() {
            return Err(CloudError::InvalidCombination(
                PARAVIRTUAL_WITHOUT_KERNEL.into(),
            ));
        }
        if let Some(kernel) = &self.kernel_id {
            part_of_type(cloud, account, kernel, "kernel").await?;
        }
        if let Some(ramdisk) = &self.ramdisk_id {
            part_of_type(cloud, account, ramdisk, "ramdisk").await?;
        }
        Ok(if paravirtual { "paravirtual" } else { "hvm" })
    }

    /// A new image of the caller with this request's name, description,
    /// architecture and root device.
    pub(super) fn new_image(&self, caller: &Principal, id_prefix: &str) -> Image {
        Image {
            architecture: self.architecture.clone(),
            root_device_name: self.root_device_name.clone(),
            ..new_machine_image(
                ids::resource_id(id_prefix),
                caller.account_id(),
                &self.name,
                self.description.clone(),
            )
        }
    }

    /// An image of an object the caller may read, typed by its first
    /// bytes: a machine image, or a kernel or ramdisk (paravirtual only).
    async fn object(
        &self,
        cloud: &Cloud,
        caller: &Principal,
        location: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Image, CloudError> {
        let account = caller.account_id();
        let Some(object) = objects::readable(cloud, account, bucket, key).await? else {
            return Err(invalid_location(
                location,
                "the object does not exist or you may not read it",
            ));
        };
        if object.size == 0 {
            return Err(invalid_location(location, "the object is empty"));
        }
        let header = objects::read_header(cloud, &object).await?;
        if super::bundled::is_manifest_key(key) || looks_like_manifest(&header) {
            return super::bundled::pending_image(self, cloud, caller, location, &object).await;
        }
        let kind = sniff(&header);
        let virtualization_type = match kind {
            ImageKind::Kernel | ImageKind::Ramdisk => {
                if self.kernel_id.is_some() || self.ramdisk_id.is_some() {
                    return Err(CloudError::InvalidCombination(format!(
                        "The object at {location} is a {}: KernelId and RamdiskId apply to machine images only.",
                        kind.image_type()
                    )));
                }
                if self.virtualization_type.as_deref() == Some("hvm") {
                    return Err(CloudError::InvalidCombination(format!(
                        "The object at {location} is a {}, which is paravirtual only.",
                        kind.image_type()
                    )));
                }
                "paravirtual"
            }
            ImageKind::MachineRaw | ImageKind::MachineQcow2 => {
                self.machine_virtualization(cloud, account).await?
            }
        };
        Ok(Image {
            image_type: kind.image_type().to_owned(),
            virtualization_type: virtualization_type.to_owned(),
            kernel_id: self.kernel_id.clone(),
            ramdisk_id: self.ramdisk_id.clone(),
            location: location.to_owned(),
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            size: object.size,
            etag: object.etag.trim_matches('"').to_owned(),
            disk_format: kind.disk_format().to_owned(),
            ..self.new_image(caller, kind.id_prefix())
        })
    }

    /// A bare-metal image: a profile of the bare-metal zone, registered by
    /// an administrator and launchable by every account (the profiles are
    /// the cloud's).
    async fn metal(
        &self,
        cloud: &Cloud,
        caller: &Principal,
        profile: &str,
    ) -> Result<Image, CloudError> {
        use mallee_metal::Inventory;

        if !caller.account.is_admin {
            return Err(CloudError::Unauthorized);
        }
        if self.kernel_id.is_some()
            || self.ramdisk_id.is_some()
            || self.virtualization_type.as_deref() == Some("paravirtual")
        {
            return Err(CloudError::InvalidCombination(
                "A bare-metal image installs a profile on a machine's disk: KernelId, RamdiskId and paravirtual do not apply.".into(),
            ));
        }
        let location = format!("{}{profile}", crate::metal::names::LOCATION_PREFIX);
        let metal = cloud.compute.metal.get().ok_or_else(|| {
            invalid_location(
                &location,
                "bare-metal provisioning is not enabled on this cloud",
            )
        })?;
        let exists = metal
            .inventory()
            .profile(profile)
            .await
            .map_err(CloudError::internal)?
            .is_some();
        if !exists {
            return Err(invalid_location(
                &location,
                &format!("the bare-metal zone has no profile named {profile:?}"),
            ));
        }
        Ok(Image {
            location,
            is_public: true,
            ..self.new_image(caller, "ami")
        })
    }

    /// An EBS-backed image: every snapshot a mapping names must be one the
    /// caller may create volumes from, and completed; the root's size is at
    /// least its snapshot's.
    async fn ebs(
        &self,
        cloud: &Cloud,
        caller: &Principal,
        mappings: &[ImageBlockDevice],
    ) -> Result<Image, CloudError> {
        let mut mappings = mappings.to_vec();
        for m in &mappings {
            crate::volumes::block_devices::require_source(m)?;
        }
        for m in &mut mappings {
            let Some(snapshot_id) = &m.snapshot_id else {
                continue;
            };
            let snapshot =
                crate::snapshots::access::load_restorable(cloud, caller, snapshot_id).await?;
            if snapshot.status != SnapshotStatus::Completed {
                return Err(CloudError::incorrect_state(
                    Kind::Snapshot,
                    format!(
                        "Snapshot {snapshot_id} is in invalid state - {}",
                        snapshot.status.name()
                    ),
                ));
            }
            let smallest = snapshot.record.volume_size_gib;
            match m.volume_size_gib {
                Some(size) if size < smallest => {
                    return Err(CloudError::invalid(format!(
                        "Volume of size {size}GiB is smaller than snapshot '{snapshot_id}', expect size >= {smallest}GiB"
                    )));
                }
                Some(_) => {}
                None => m.volume_size_gib = Some(smallest),
            }
        }
        let virtualization_type = self
            .machine_virtualization(cloud, caller.account_id())
            .await?;
        Ok(Image {
            virtualization_type: virtualization_type.into(),
            root_device_type: "ebs".into(),
            kernel_id: self.kernel_id.clone(),
            ramdisk_id: self.ramdisk_id.clone(),
            location: format!("{}/{}", caller.account_id(), self.name),
            block_device_mappings: mappings,
            ..self.new_image(caller, "ami")
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::objects::acl::Acl;
    use crate::objects::testing::put;
    use crate::snapshots::create::testing::snapshot;
    use crate::testkit::{TestCloud, principal};

    /// A registration of `name` from `source`, with EC2's defaults.
    pub(in crate::images) fn registration(source: Source, name: &str) -> Registration {
        Registration {
            source,
            name: name.into(),
            description: None,
            architecture: "x86_64".into(),
            kernel_id: None,
            ramdisk_id: None,
            root_device_name: "/dev/sda1".into(),
            virtualization_type: None,
            tags: Vec::new(),
        }
    }

    fn object(key: &str) -> Source {
        Source::Object {
            location: format!("b/{key}"),
            bucket: "b".into(),
            key: key.into(),
        }
    }

    fn is_bad_content(err: &CloudError, why: &str) -> bool {
        matches!(err, CloudError::BadContent { kind: Kind::Image, message } if message.ends_with(why))
    }

    async fn stored(cloud: &Cloud, id: &str) -> Image {
        cloud.store.image(id).await.expect("read").expect("stored")
    }

    #[tokio::test]
    async fn object_images_are_typed_by_their_first_bytes() {
        let cloud = TestCloud::new().await;
        let owner = cloud.principal("owner").await;
        let other = cloud.principal("other").await;
        let private = Acl::private(owner.account_id());
        let mut kernel = vec![0u8; 1024];
        kernel[0x202..0x206].copy_from_slice(b"HdrS");
        for (key, bytes) in [
            ("vmlinuz", kernel.as_slice()),
            ("disk.img", &[0u8; 2048][..]),
            ("empty", b""),
            ("bundle.xml", b"<?xml version=\"1.0\"?><manifest/>"),
        ] {
            put(&cloud, owner.account_id(), "b", key, bytes, &private).await;
        }

        let aki = register(&cloud, &owner, registration(object("vmlinuz"), "kernel"))
            .await
            .expect("kernel");
        assert!(aki.starts_with("aki-"), "{aki}");
        let image = stored(&cloud, &aki).await;
        assert_eq!(
            (
                image.image_type.as_str(),
                image.virtualization_type.as_str()
            ),
            ("kernel", "paravirtual")
        );
        let hvm = register(&cloud, &owner, registration(object("disk.img"), "hvm disk"))
            .await
            .expect("hvm");
        let image = stored(&cloud, &hvm).await;
        assert!(hvm.starts_with("ami-"), "{hvm}");
        assert_eq!(image.virtualization_type, "hvm");
        assert_eq!(image.disk_format, "raw");
        assert_eq!(image.size, 2048);
        assert!(!image.etag.contains('"'), "{}", image.etag);
        assert_eq!(image.location, "b/disk.img");
        let pv = register(
            &cloud,
            &owner,
            Registration {
                kernel_id: Some(aki.clone()),
                ..registration(object("disk.img"), "pv disk")
            },
        )
        .await
        .expect("paravirtual");
        let image = stored(&cloud, &pv).await;
        assert_eq!(image.virtualization_type, "paravirtual");
        assert_eq!(image.kernel_id.as_deref(), Some(aki.as_str()));

        let refused = [
            (
                registration(object("disk.img"), "hvm disk"),
                "duplicate name",
            ),
            (
                Registration {
                    kernel_id: Some(aki.clone()),
                    ..registration(object("vmlinuz"), "kernel with kernel")
                },
                "kernel with a kernel",
            ),
            (
                Registration {
                    virtualization_type: Some("hvm".into()),
                    ..registration(object("vmlinuz"), "hvm kernel")
                },
                "hvm kernel",
            ),
            (
                Registration {
                    virtualization_type: Some("paravirtual".into()),
                    ..registration(object("disk.img"), "no kernel")
                },
                "paravirtual without a kernel",
            ),
            (
                Registration {
                    virtualization_type: Some("hvm".into()),
                    ramdisk_id: Some(aki.clone()),
                    ..registration(object("disk.img"), "hvm with ramdisk")
                },
                "hvm with a ramdisk",
            ),
            (
                Registration {
                    kernel_id: Some(hvm.clone()),
                    ..registration(object("disk.img"), "machine as kernel")
                },
                "a machine image as kernel",
            ),
        ];
        let mut errors = Vec::new();
        for (registration, what) in refused {
            errors.push((
                register(&cloud, &owner, registration)
                    .await
                    .expect_err(what),
                what,
            ));
        }
        assert!(matches!(
            errors[0].0,
            CloudError::Duplicate {
                kind: Kind::ImageName,
                ..
            }
        ));
        for (err, what) in &errors[1..5] {
            assert!(
                matches!(err, CloudError::InvalidCombination(_)),
                "{what}: {err:?}"
            );
        }
        assert!(
            matches!(&errors[5].0, CloudError::Invalid(m) if m.contains("not a kernel")),
            "{:?}",
            errors[5]
        );

        for (who, key, why) in [
            (
                &other,
                "disk.img",
                "the object does not exist or you may not read it",
            ),
            (
                &owner,
                "missing",
                "the object does not exist or you may not read it",
            ),
            (&owner, "empty", "the object is empty"),
            (
                &owner,
                "bundle.xml",
                "invalid manifest: manifest version \"\" is not 2007-10-10",
            ),
        ] {
            let err = register(&cloud, who, registration(object(key), key))
                .await
                .expect_err(key);
            assert!(is_bad_content(&err, why), "{key}: {err:?}");
        }
    }

    #[tokio::test]
    async fn metal_images_are_the_administrators() {
        let cloud = TestCloud::new().await;
        let user = cloud.principal("user").await;
        let admin = principal(&cloud, "admin", true).await;
        let metal = || {
            registration(
                Source::Metal {
                    profile: "qa".into(),
                },
                "metal qa",
            )
        };
        assert_eq!(
            register(&cloud, &user, metal()).await,
            Err(CloudError::Unauthorized)
        );
        let err = register(&cloud, &admin, metal())
            .await
            .expect_err("no bare-metal zone");
        assert!(
            is_bad_content(&err, "bare-metal provisioning is not enabled on this cloud"),
            "{err:?}"
        );
        assert!(err.to_string().contains("'metal:qa'"), "{err}");
        let err = register(
            &cloud,
            &admin,
            Registration {
                virtualization_type: Some("paravirtual".into()),
                ..metal()
            },
        )
        .await
        .expect_err("paravirtual");
        assert!(matches!(err, CloudError::InvalidCombination(_)), "{err:?}");
    }

    #[tokio::test]
    async fn ebs_images_need_completed_snapshots_the_caller_may_use() {
        let cloud = TestCloud::new().await;
        let owner = cloud.principal("owner").await;
        let other = cloud.principal("other").await;
        let completed = snapshot(&cloud, owner.account_id(), 2, true).await;
        let pending = snapshot(&cloud, owner.account_id(), 2, false).await;
        let root = |snapshot_id: &str, size: Option<i64>| ImageBlockDevice {
            device_name: "/dev/sda1".into(),
            snapshot_id: Some(snapshot_id.into()),
            volume_size_gib: size,
            delete_on_termination: true,
            volume_type: None,
            virtual_name: None,
            no_device: false,
        };
        let ebs = |snapshot_id: &str, size| {
            registration(Source::Ebs(vec![root(snapshot_id, size)]), "ebs root")
        };

        let err = register(&cloud, &owner, ebs(pending.id(), None))
            .await
            .expect_err("pending");
        assert_eq!(
            err,
            CloudError::incorrect_state(
                Kind::Snapshot,
                format!("Snapshot {} is in invalid state - pending", pending.id())
            )
        );
        let err = register(&cloud, &owner, ebs(completed.id(), Some(1)))
            .await
            .expect_err("smaller");
        assert!(matches!(err, CloudError::Invalid(_)), "{err:?}");
        assert_eq!(
            register(&cloud, &other, ebs(completed.id(), None)).await,
            Err(crate::snapshots::access::not_found(completed.id()))
        );

        let id = register(&cloud, &owner, ebs(completed.id(), None))
            .await
            .expect("ebs");
        let image = stored(&cloud, &id).await;
        assert_eq!(image.root_device_type, "ebs");
        assert_eq!(image.virtualization_type, "hvm");
        assert_eq!(image.location, format!("{}/ebs root", owner.account_id()));
        assert_eq!(
            image.block_device_mappings,
            vec![root(completed.id(), Some(2))]
        );

        // The image now holds its snapshot.
        let err = crate::snapshots::create::delete(&cloud, &owner, completed.id())
            .await
            .expect_err("in use");
        assert_eq!(
            err,
            CloudError::in_use(
                Kind::Snapshot,
                format!(
                    "The snapshot {} is currently in use by {id}",
                    completed.id()
                )
            )
        );
    }

    #[test]
    fn sniffing() {
        let mut kernel = vec![0u8; 1024];
        kernel[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(sniff(&kernel), ImageKind::Kernel);
        assert_eq!(sniff(b"QFI\xfb\0\0\0\x03"), ImageKind::MachineQcow2);
        for ramdisk in [
            &b"070701000000"[..],
            &[0x1f, 0x8b, 8, 0],
            &[0x28, 0xb5, 0x2f, 0xfd, 0],
            &[0xfd, b'7', b'z', b'X', b'Z', 0, 0],
            &[0x02, 0x21, 0x4c, 0x18],
        ] {
            assert_eq!(sniff(ramdisk), ImageKind::Ramdisk, "{ramdisk:?}");
        }
        assert_eq!(sniff(&[0u8; 4096]), ImageKind::MachineRaw);
        assert_eq!(sniff(b""), ImageKind::MachineRaw);
        // "HdrS" anywhere but 0x202 is not a kernel.
        let mut shifted = vec![0u8; 1024];
        shifted[0x200..0x204].copy_from_slice(b"HdrS");
        assert_eq!(sniff(&shifted), ImageKind::MachineRaw);
        assert!(looks_like_manifest(b"  <?xml version=\"1.0\"?><manifest>"));
        assert!(!looks_like_manifest(&[0u8; 16]));
        assert_eq!(ImageKind::Kernel.id_prefix(), "aki");
        assert_eq!(ImageKind::MachineQcow2.disk_format(), "qcow2");
    }
}
