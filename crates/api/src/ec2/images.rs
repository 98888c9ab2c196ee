//! RegisterImage, DescribeImages, DeregisterImage and
//! Describe/Modify/ResetImageAttribute.
//!
//! An image is one object of the object store: a disk (raw or qcow2) for a
//! machine image (`ami-`), a Linux kernel (`aki-`) or an initramfs (`ari-`).
//! The type is read from the object's first bytes, as there is no bundle
//! manifest to say it. The object's size and ETag are recorded at
//! registration, so a node can tell when the object changed underneath.
//!
//! Visibility follows EC2: an account sees (and may launch) its own images,
//! public ones and those shared with it; every other image does not exist
//! for it (`InvalidAMIID.NotFound`). Only the owner changes an image; a
//! visible image of another account answers `AuthFailure`.

use std::collections::HashSet;

use futures_util::StreamExt;
use mallee_store::{
    Image, ImageBlockDevice, LaunchPermissionChange, ObjectRecord, StoreError, TagPair,
};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::s3::acl::{Acl, Permission};
use crate::xml::XmlWriter;
use mallee_cloud::Cloud;
use mallee_cloud::ids;

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error, iso8601};
use mallee_cloud::images::{
    is_account_id, is_image_id, malformed, not_found, owned_image, store_new_image,
    validate_description, validate_name, visible_image,
};

/// Bytes read from an object to decide what it holds.
const HEADER_LEN: u64 = 4096;

/// Root device name when RegisterImage gives none (EC2's default).
const DEFAULT_ROOT_DEVICE: &str = "/dev/sda1";

/// Owner aliases for images of the cloud's administrator accounts, the
/// counterpart of AWS's `amazon` images (Eucalyptus called them
/// `eucalyptus`).
const ADMIN_ALIASES: &[&str] = &["amazon", "mallee", "eucalyptus"];

/// AWS owner aliases that name nobody here.
const FOREIGN_ALIASES: &[&str] = &["aws-marketplace", "aws-backup-vault", "microsoft"];

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
fn looks_like_manifest(header: &[u8]) -> bool {
    let text = header.strip_prefix(b"\xef\xbb\xbf").unwrap_or(header);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    text.starts_with(b"<?xml") || text.starts_with(b"<manifest")
}

fn checked_image_id(params: &QueryParams, name: &str) -> Result<String, Ec2Error> {
    let id = params.required_non_empty(name)?;
    if !is_image_id(id) {
        return Err(Ec2Error::from(malformed(id)));
    }
    Ok(id.to_owned())
}

/// A store error of a change to an image that vanished meanwhile.
fn gone(image_id: &str) -> impl FnOnce(StoreError) -> Ec2Error + '_ {
    move |err| match err {
        StoreError::NotFound(_) => Ec2Error::from(not_found(&[image_id])),
        other => other.into(),
    }
}

fn invalid_location(location: &str, why: &str) -> Ec2Error {
    Ec2Error::refused(
        "InvalidManifest",
        format!("The image at ImageLocation '{location}' cannot be used: {why}"),
    )
}

/// The object behind `bucket/key` if `account_id` may read it. Missing and
/// unreadable objects answer alike, so existence does not leak.
async fn readable_object(
    cloud: &Cloud,
    account_id: &str,
    location: &str,
    bucket: &str,
    key: &str,
) -> Result<ObjectRecord, Ec2Error> {
    let unreadable =
        || invalid_location(location, "the object does not exist or you may not read it");
    let object = match cloud.store.object(bucket, key).await? {
        Some(object) => object,
        None => return Err(unreadable()),
    };
    if !Acl::from_json(&object.acl_json, &object.owner_account)
        .allows(Some(account_id), Permission::Read)
    {
        return Err(unreadable());
    }
    Ok(object)
}

/// The object's first bytes (at most [`HEADER_LEN`]).
pub(super) async fn read_header(cloud: &Cloud, object: &ObjectRecord) -> Result<Vec<u8>, Ec2Error> {
    let len = object.size.min(HEADER_LEN);
    let segments: Vec<(String, u64)> = object
        .segments
        .iter()
        .map(|s| (s.blob_id.clone(), s.size))
        .collect();
    let reader = cloud
        .blobs
        .open_object(&segments, Some(0..len))
        .await
        .map_err(|e| {
            Ec2Error::Internal(format!("reading {}/{}: {e}", object.bucket, object.key))
        })?;
    let mut stream = std::pin::pin!(reader.into_stream());
    let mut header = Vec::with_capacity(usize::try_from(len).unwrap_or_default());
    while let Some(chunk) = stream.next().await {
        header.extend_from_slice(&chunk.map_err(|e| Ec2Error::Internal(e.to_string()))?);
    }
    Ok(header)
}

/// RegisterImage input.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterImage {
    location: String,
    bucket: String,
    key: String,
    name: String,
    description: Option<String>,
    architecture: String,
    kernel_id: Option<String>,
    ramdisk_id: Option<String>,
    root_device_name: String,
    virtualization_type: Option<String>,
    tags: Vec<TagPair>,
    /// EBS images: the root's snapshot and further volumes.
    block_device_mappings: Vec<ImageBlockDevice>,
}

fn optional_image_id(params: &QueryParams, name: &str) -> Result<Option<String>, Ec2Error> {
    match params.get(name) {
        None | Some("") => Ok(None),
        Some(id) if is_image_id(id) => Ok(Some(id.to_owned())),
        Some(id) => Err(Ec2Error::from(malformed(id))),
    }
}

impl RegisterImage {
    /// Reads `ImageLocation` (`bucket/key`), `Name`, `Description`,
    /// `Architecture`, `KernelId`, `RamdiskId`, `RootDeviceName`,
    /// `VirtualizationType`, `TagSpecification.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let block_device_mappings = super::block_devices::parse(params)?;
        let root_device_name = match params.get("RootDeviceName") {
            None | Some("") => DEFAULT_ROOT_DEVICE,
            Some(d) if mallee_cloud::volumes::block_devices::is_device_name(d) => d,
            Some(other) => {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Value ({other}) for parameter rootDeviceName is invalid. Expected a device name such as /dev/sda1."
                )));
            }
        };
        let ebs_root = block_device_mappings.iter().any(|m| {
            mallee_cloud::volumes::block_devices::same_device(&m.device_name, root_device_name)
                && m.snapshot_id.is_some()
        });
        let location = match params.get("ImageLocation").filter(|l| !l.is_empty()) {
            Some(_) if ebs_root => {
                return Err(Ec2Error::InvalidParameterCombination(
                    "An image whose root device is an EBS snapshot takes no ImageLocation.".into(),
                ));
            }
            Some(location) => location,
            None if ebs_root => "",
            None => {
                if !block_device_mappings.is_empty() {
                    return Err(Ec2Error::InvalidParameterValue(format!(
                        "No block device mapping of the root device {root_device_name} names a snapshot (Ebs.SnapshotId); give one, or an ImageLocation."
                    )));
                }
                return Err(crate::query::QueryError::Missing("ImageLocation".into()).into());
            }
        };
        if !ebs_root && !block_device_mappings.is_empty() {
            return Err(Ec2Error::InvalidParameterValue(
                "Block device mappings are only supported on images whose root device is an EBS snapshot.".into(),
            ));
        }
        let metal = location.starts_with(mallee_cloud::metal::zone::LOCATION_PREFIX);
        let (bucket, key) = if ebs_root || metal {
            ("", "")
        } else {
            location
                .trim_start_matches('/')
                .split_once('/')
                .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                .ok_or_else(|| {
                    Ec2Error::InvalidParameterValue(format!(
                        "Value ({location}) for parameter ImageLocation is invalid. Expected BUCKET/KEY of an object in the object store."
                    ))
                })?
        };
        let name = params.required_non_empty("Name")?;
        validate_name(name)?;
        let description = params.get("Description").filter(|d| !d.is_empty());
        if let Some(d) = description {
            validate_description(d)?;
        }
        let architecture = match params.get("Architecture") {
            None | Some("") => "x86_64",
            Some(a @ ("x86_64" | "i386")) => a,
            Some(other) => {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Value ({other}) for parameter architecture is invalid. Valid values: i386, x86_64"
                )));
            }
        };
        let virtualization_type = match params.get("VirtualizationType") {
            None | Some("") => None,
            Some(v @ ("hvm" | "paravirtual")) => Some(v.to_owned()),
            Some(other) => {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Value ({other}) for parameter virtualizationType is invalid. Valid values: hvm, paravirtual"
                )));
            }
        };
        Ok(Self {
            location: location.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            name: name.to_owned(),
            description: description.map(str::to_owned),
            architecture: architecture.to_owned(),
            kernel_id: optional_image_id(params, "KernelId")?,
            ramdisk_id: optional_image_id(params, "RamdiskId")?,
            root_device_name: root_device_name.to_owned(),
            virtualization_type,
            tags: parse_tag_specifications(params, "image")?,
            block_device_mappings,
        })
    }

    /// Checks that the caller may use a kernel or ramdisk for a new image.
    async fn check_part(
        &self,
        ctx: &Ec2Context<'_>,
        id: &str,
        wanted: &str,
    ) -> Result<(), Ec2Error> {
        let account = &ctx.principal.account.account_id;
        let part = visible_image(ctx.cloud, account, id).await?;
        if part.image_type != wanted {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "The image {id} is a {} image, not a {wanted}.",
                part.image_type
            )));
        }
        Ok(())
    }

    /// Reads the object's header to type it, checks kernel and ramdisk, and
    /// stores the image.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        if !self.block_device_mappings.is_empty() {
            return self.register_ebs(ctx).await;
        }
        if let Some(profile) = self
            .location
            .strip_prefix(mallee_cloud::metal::zone::LOCATION_PREFIX)
        {
            let profile = profile.to_owned();
            return self.register_metal(ctx, &profile).await;
        }
        let account = &ctx.principal.account.account_id;
        let object =
            readable_object(ctx.cloud, account, &self.location, &self.bucket, &self.key).await?;
        if object.size == 0 {
            return Err(invalid_location(&self.location, "the object is empty"));
        }
        let header = read_header(ctx.cloud, &object).await?;
        if looks_like_manifest(&header) {
            return Err(invalid_location(
                &self.location,
                "it is a bundle manifest; bundled images are not supported, upload and register the disk image itself",
            ));
        }
        let kind = sniff(&header);
        let part_ids = self.kernel_id.is_some() || self.ramdisk_id.is_some();
        let virtualization_type = match kind {
            ImageKind::Kernel | ImageKind::Ramdisk => {
                if part_ids {
                    return Err(Ec2Error::InvalidParameterCombination(format!(
                        "The object at {} is a {}: KernelId and RamdiskId apply to machine images only.",
                        self.location,
                        kind.image_type()
                    )));
                }
                if self.virtualization_type.as_deref() == Some("hvm") {
                    return Err(Ec2Error::InvalidParameterCombination(format!(
                        "The object at {} is a {}, which is paravirtual only.",
                        self.location,
                        kind.image_type()
                    )));
                }
                "paravirtual"
            }
            ImageKind::MachineRaw | ImageKind::MachineQcow2 => {
                let virtualization_type = match (&self.virtualization_type, &self.kernel_id) {
                    (Some(v), _) => v.as_str(),
                    (None, Some(_)) => "paravirtual",
                    (None, None) => "hvm",
                };
                if virtualization_type == "hvm" && part_ids {
                    return Err(Ec2Error::InvalidParameterCombination(
                        "KernelId and RamdiskId cannot be used with hvm images, which boot from their own disk.".into(),
                    ));
                }
                if virtualization_type == "paravirtual" && self.kernel_id.is_none() {
                    return Err(Ec2Error::InvalidParameterCombination(
                        "A paravirtual image needs a KernelId (an aki- image).".into(),
                    ));
                }
                if let Some(kernel) = &self.kernel_id {
                    self.check_part(ctx, kernel, "kernel").await?;
                }
                if let Some(ramdisk) = &self.ramdisk_id {
                    self.check_part(ctx, ramdisk, "ramdisk").await?;
                }
                virtualization_type
            }
        };
        let image = Image {
            image_id: ids::resource_id(kind.id_prefix()),
            account_id: account.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            image_type: kind.image_type().to_owned(),
            architecture: self.architecture.clone(),
            virtualization_type: virtualization_type.to_owned(),
            root_device_name: self.root_device_name.clone(),
            root_device_type: "instance-store".into(),
            kernel_id: self.kernel_id.clone(),
            ramdisk_id: self.ramdisk_id.clone(),
            location: self.location.clone(),
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            size: object.size,
            etag: object.etag.trim_matches('"').to_owned(),
            disk_format: kind.disk_format().to_owned(),
            state: "available".into(),
            is_public: false,
            created_at: ids::now_millis(),
            launch_permissions: Vec::new(),
            block_device_mappings: Vec::new(),
        };
        store_new_image(ctx.cloud, &image, &self.tags).await?;
        Ok(ctx.respond("RegisterImage", |w| w.text("imageId", &image.image_id)))
    }
}

impl RegisterImage {
    /// Registers a bare-metal image: a profile of the bare-metal zone
    /// (`ImageLocation=metal:PROFILE`), by an administrator, launchable by
    /// every account (the profiles are the cloud's).
    async fn register_metal(self, ctx: &Ec2Context<'_>, profile: &str) -> Result<String, Ec2Error> {
        if !ctx.principal.account.is_admin {
            return Err(Ec2Error::UnauthorizedOperation);
        }
        if self.kernel_id.is_some()
            || self.ramdisk_id.is_some()
            || self.virtualization_type.as_deref() == Some("paravirtual")
        {
            return Err(Ec2Error::InvalidParameterCombination(
                "A bare-metal image installs a profile on a machine's disk: KernelId, RamdiskId and paravirtual do not apply.".into(),
            ));
        }
        let metal = ctx.cloud.compute.metal.get().ok_or_else(|| {
            invalid_location(
                &self.location,
                "bare-metal provisioning is not enabled on this cloud",
            )
        })?;
        let exists = {
            use mallee_metal::Inventory;
            metal
                .inventory()
                .profile(profile)
                .await
                .map_err(|e| Ec2Error::Internal(e.to_string()))?
                .is_some()
        };
        if !exists {
            return Err(invalid_location(
                &self.location,
                &format!("the bare-metal zone has no profile named {profile:?}"),
            ));
        }
        let account = &ctx.principal.account.account_id;
        let image = Image {
            image_id: ids::resource_id("ami"),
            account_id: account.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            image_type: "machine".into(),
            architecture: self.architecture.clone(),
            virtualization_type: "hvm".into(),
            root_device_name: self.root_device_name.clone(),
            root_device_type: "instance-store".into(),
            kernel_id: None,
            ramdisk_id: None,
            location: self.location.clone(),
            bucket: String::new(),
            key: String::new(),
            size: 0,
            etag: String::new(),
            disk_format: "none".into(),
            state: "available".into(),
            is_public: true,
            created_at: ids::now_millis(),
            launch_permissions: Vec::new(),
            block_device_mappings: Vec::new(),
        };
        store_new_image(ctx.cloud, &image, &self.tags).await?;
        Ok(ctx.respond("RegisterImage", |w| w.text("imageId", &image.image_id)))
    }

    /// Registers an EBS-backed image: every snapshot a mapping names must
    /// be one the caller may create volumes from, and completed; the
    /// root's size is at least its snapshot's.
    async fn register_ebs(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        let mut mappings = self.block_device_mappings.clone();
        for m in &mappings {
            mallee_cloud::volumes::block_devices::require_source(m)?;
        }
        for m in &mut mappings {
            let Some(snapshot_id) = &m.snapshot_id else {
                continue;
            };
            let snapshot = mallee_cloud::snapshots::access::load_restorable(
                ctx.cloud,
                ctx.principal,
                snapshot_id,
            )
            .await?;
            if snapshot.status != mallee_cloud::snapshots::SnapshotStatus::Completed {
                return Err(Ec2Error::refused(
                    "IncorrectState",
                    format!(
                        "Snapshot {snapshot_id} is in invalid state - {}",
                        snapshot.status.name()
                    ),
                ));
            }
            let smallest = snapshot.record.volume_size_gib;
            match m.volume_size_gib {
                Some(size) if size < smallest => {
                    return Err(Ec2Error::InvalidParameterValue(format!(
                        "Volume of size {size}GiB is smaller than snapshot '{snapshot_id}', expect size >= {smallest}GiB"
                    )));
                }
                Some(_) => {}
                None => m.volume_size_gib = Some(smallest),
            }
        }
        let paravirtual = match (&self.virtualization_type, &self.kernel_id) {
            (Some(v), _) => v == "paravirtual",
            (None, kernel) => kernel.is_some(),
        };
        if paravirtual && self.kernel_id.is_none() {
            return Err(Ec2Error::InvalidParameterCombination(
                "A paravirtual image needs a KernelId (an aki- image).".into(),
            ));
        }
        if !paravirtual && (self.kernel_id.is_some() || self.ramdisk_id.is_some()) {
            return Err(Ec2Error::InvalidParameterCombination(
                "KernelId and RamdiskId cannot be used with hvm images, which boot from their own disk.".into(),
            ));
        }
        if let Some(kernel) = &self.kernel_id {
            self.check_part(ctx, kernel, "kernel").await?;
        }
        if let Some(ramdisk) = &self.ramdisk_id {
            self.check_part(ctx, ramdisk, "ramdisk").await?;
        }
        let image = Image {
            image_id: ids::resource_id("ami"),
            account_id: account.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            image_type: "machine".into(),
            architecture: self.architecture.clone(),
            virtualization_type: if paravirtual { "paravirtual" } else { "hvm" }.into(),
            root_device_name: self.root_device_name.clone(),
            root_device_type: "ebs".into(),
            kernel_id: self.kernel_id.clone(),
            ramdisk_id: self.ramdisk_id.clone(),
            location: format!("{account}/{}", self.name),
            bucket: String::new(),
            key: String::new(),
            size: 0,
            etag: String::new(),
            disk_format: "none".into(),
            state: "available".into(),
            is_public: false,
            created_at: ids::now_millis(),
            launch_permissions: Vec::new(),
            block_device_mappings: mappings,
        };
        store_new_image(ctx.cloud, &image, &self.tags).await?;
        Ok(ctx.respond("RegisterImage", |w| w.text("imageId", &image.image_id)))
    }
}

/// An image with what Describe responses and filters need.
struct ImageView<'a> {
    image: &'a Image,
    tags: &'a [(String, String)],
    owner_alias: Option<&'static str>,
}

impl Filterable for ImageView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let i = self.image;
        let one = |v: &str| Some(vec![v.to_owned()]);
        match name {
            "architecture" => one(&i.architecture),
            "creation-date" => one(&iso8601(i.created_at)),
            "description" => Some(i.description.iter().cloned().collect()),
            "hypervisor" => one("xen"),
            "image-id" => one(&i.image_id),
            "image-type" => one(&i.image_type),
            "is-public" => one(if i.is_public { "true" } else { "false" }),
            "kernel-id" => Some(i.kernel_id.iter().cloned().collect()),
            "manifest-location" => one(&i.location),
            "name" => one(&i.name),
            "owner-alias" => Some(self.owner_alias.iter().map(|a| (*a).to_owned()).collect()),
            "owner-id" => one(&i.account_id),
            "platform-details" => one("Linux/UNIX"),
            "ramdisk-id" => Some(i.ramdisk_id.iter().cloned().collect()),
            "root-device-name" => one(&i.root_device_name),
            "root-device-type" => one(&i.root_device_type),
            "state" => one(&i.state),
            "usage-operation" => one("RunInstances"),
            "virtualization-type" => one(&i.virtualization_type),
            _ => None,
        }
    }
    fn tags(&self) -> &[(String, String)] {
        self.tags
    }
    fn taggable(&self) -> bool {
        true
    }
}

const FILTER_NAMES: &[&str] = &[
    "architecture",
    "creation-date",
    "description",
    "hypervisor",
    "image-id",
    "image-type",
    "is-public",
    "kernel-id",
    "manifest-location",
    "name",
    "owner-alias",
    "owner-id",
    "platform-details",
    "ramdisk-id",
    "root-device-name",
    "root-device-type",
    "state",
    "usage-operation",
    "virtualization-type",
];

fn write_image(w: &mut XmlWriter, view: &ImageView<'_>) {
    let i = view.image;
    w.text("imageId", &i.image_id);
    w.text("imageLocation", &i.location);
    w.text("imageState", &i.state);
    w.text("imageOwnerId", &i.account_id);
    w.text("creationDate", iso8601(i.created_at));
    w.text("isPublic", i.is_public);
    w.text("architecture", &i.architecture);
    w.text("imageType", &i.image_type);
    w.opt_text("kernelId", i.kernel_id.as_ref());
    w.opt_text("ramdiskId", i.ramdisk_id.as_ref());
    w.opt_text("imageOwnerAlias", view.owner_alias);
    w.text("name", &i.name);
    w.opt_text("description", i.description.as_ref());
    w.text("rootDeviceType", &i.root_device_type);
    if i.image_type == "machine" {
        w.text("rootDeviceName", &i.root_device_name);
    }
    super::block_devices::write_image_mappings(w, &i.block_device_mappings);
    w.text("virtualizationType", &i.virtualization_type);
    write_tag_set(w, view.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    w.text("hypervisor", "xen");
    w.text("platformDetails", "Linux/UNIX");
    w.text("usageOperation", "RunInstances");
}

/// DescribeImages input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeImages {
    image_ids: Vec<String>,
    owners: Vec<String>,
    executable_by: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

fn user_id_malformed(value: &str) -> Ec2Error {
    Ec2Error::refused(
        "InvalidUserID.Malformed",
        format!("Invalid user id: '{value}'"),
    )
}

impl DescribeImages {
    /// Reads `ImageId.N`, `Owner.N`, `ExecutableBy.N`, `Filter.N`,
    /// `MaxResults` (5–1000), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let image_ids = params.list("ImageId")?;
        if let Some(bad) = image_ids.iter().find(|id| !is_image_id(id)) {
            return Err(Ec2Error::from(malformed(bad)));
        }
        let owners = params.list("Owner")?;
        if let Some(bad) = owners.iter().find(|o| {
            !(o.as_str() == "self"
                || ADMIN_ALIASES.contains(&o.as_str())
                || FOREIGN_ALIASES.contains(&o.as_str())
                || is_account_id(o))
        }) {
            return Err(user_id_malformed(bad));
        }
        let executable_by = params.list("ExecutableBy")?;
        if let Some(bad) = executable_by
            .iter()
            .find(|e| !(e.as_str() == "self" || e.as_str() == "all" || is_account_id(e)))
        {
            return Err(user_id_malformed(bad));
        }
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, FILTER_NAMES, true)?;
        let page = PageRequest::parse(params, 5, 1000)?;
        if !image_ids.is_empty() && page.max_results.is_some() {
            return Err(Ec2Error::InvalidParameterCombination(
                "The parameter imageIdsSet cannot be used with the parameter maxResults".into(),
            ));
        }
        Ok(Self {
            image_ids,
            owners,
            executable_by,
            filters,
            page,
        })
    }

    fn owner_matches(&self, image: &Image, caller: &str, admins: &HashSet<String>) -> bool {
        self.owners.is_empty()
            || self.owners.iter().any(|owner| match owner.as_str() {
                "self" => image.account_id == caller,
                alias if ADMIN_ALIASES.contains(&alias) => admins.contains(&image.account_id),
                alias if FOREIGN_ALIASES.contains(&alias) => false,
                id => image.account_id == id,
            })
    }

    /// `ExecutableBy` scopes by explicit launch permission, as EC2 does:
    /// `all` is public images, `self` (or the caller's id) images shared
    /// with the caller, another account id the caller's images shared with
    /// that account (other owners' share lists are private).
    fn executable_matches(&self, image: &Image, caller: &str) -> bool {
        self.executable_by.is_empty()
            || self.executable_by.iter().any(|who| match who.as_str() {
                "all" => image.is_public,
                "self" => image.launch_permissions.iter().any(|a| a == caller),
                id if id == caller => image.launch_permissions.iter().any(|a| a == caller),
                id => {
                    image.account_id == caller && image.launch_permissions.iter().any(|a| a == id)
                }
            })
    }

    /// Lists the images the caller may launch that match every criterion.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let caller = &ctx.principal.account.account_id;
        let images = ctx.cloud.store.images_visible_to(caller).await?;
        let missing: Vec<&str> = self
            .image_ids
            .iter()
            .filter(|id| !images.iter().any(|i| &i.image_id == *id))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Ec2Error::from(not_found(&missing)));
        }
        let admins: HashSet<String> = ctx
            .cloud
            .store
            .accounts()
            .await?
            .into_iter()
            .filter(|a| a.is_admin)
            .map(|a| a.account_id)
            .collect();
        let tags = TagsByResource::load(ctx, caller).await?;
        let selected: Vec<ImageView<'_>> = images
            .iter()
            .filter(|i| self.image_ids.is_empty() || self.image_ids.contains(&i.image_id))
            .filter(|i| self.owner_matches(i, caller, &admins))
            .filter(|i| self.executable_matches(i, caller))
            .map(|i| ImageView {
                image: i,
                tags: tags.of(&i.image_id),
                owner_alias: admins.contains(&i.account_id).then_some(ADMIN_ALIASES[0]),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        let (page, next) = self.page.apply(selected, |v| v.image.image_id.clone());
        Ok(ctx.respond("DescribeImages", |w| {
            w.items("imagesSet", page, |w, view| write_image(w, &view));
            w.opt_text("nextToken", next);
        }))
    }
}

/// DeregisterImage input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeregisterImage {
    image_id: String,
}

impl DeregisterImage {
    /// Reads `ImageId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            image_id: checked_image_id(params, "ImageId")?,
        })
    }

    /// Deletes the caller's image. Instances already running keep their
    /// copy; the object itself stays in its bucket.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        owned_image(ctx.cloud, account, &self.image_id).await?;
        if !ctx
            .cloud
            .store
            .delete_image(account, &self.image_id)
            .await?
        {
            return Err(Ec2Error::from(not_found(&[&self.image_id])));
        }
        Ok(ctx.respond_true("DeregisterImage"))
    }
}

/// The attributes Describe/Modify/ResetImageAttribute name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attribute {
    Description,
    Kernel,
    Ramdisk,
    LaunchPermission,
    ProductCodes,
    BlockDeviceMapping,
}

impl Attribute {
    fn parse(value: &str) -> Result<Self, Ec2Error> {
        Ok(match value {
            "description" => Self::Description,
            "kernel" => Self::Kernel,
            "ramdisk" => Self::Ramdisk,
            "launchPermission" => Self::LaunchPermission,
            "productCodes" => Self::ProductCodes,
            "blockDeviceMapping" => Self::BlockDeviceMapping,
            other => {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Value ({other}) for parameter attribute is invalid. Valid values: description, kernel, ramdisk, launchPermission, productCodes, blockDeviceMapping"
                )));
            }
        })
    }
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
            attribute: Attribute::parse(params.required_non_empty("Attribute")?)?,
        })
    }

    /// Answers one attribute; launch permissions only to the owner.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        let image = match self.attribute {
            Attribute::LaunchPermission => owned_image(ctx.cloud, account, &self.image_id).await?,
            _ => visible_image(ctx.cloud, account, &self.image_id).await?,
        };
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

/// What ModifyImageAttribute changes: one attribute per call, as in EC2.
#[derive(Debug, Clone, PartialEq)]
enum Modification {
    Description(Option<String>),
    LaunchPermission(LaunchPermissionChange),
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
            .map(Attribute::parse)
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
        let account = &ctx.principal.account.account_id;
        owned_image(ctx.cloud, account, &self.image_id).await?;
        let store = &ctx.cloud.store;
        match &self.modification {
            Modification::Description(d) => store
                .set_image_description(&self.image_id, d.as_deref())
                .await
                .map_err(gone(&self.image_id))?,
            Modification::LaunchPermission(change) => store
                .change_launch_permissions(&self.image_id, change)
                .await
                .map_err(gone(&self.image_id))?,
        }
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
        let account = &ctx.principal.account.account_id;
        owned_image(ctx.cloud, account, &self.image_id).await?;
        ctx.cloud
            .store
            .reset_launch_permissions(&self.image_id)
            .await
            .map_err(gone(&self.image_id))?;
        Ok(ctx.respond_true("ResetImageAttribute"))
    }
}

#[cfg(test)]
mod tests {
    use mallee_cloud::images::resolve_for_launch;
    use mallee_cloud::testkit::TestCloud;
    use mallee_node_api::{Artifact, BootImage};
    use mallee_store::LaunchPermissionChange;

    use super::*;
    use crate::error::AwsError;

    fn params(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .expect("params")
    }

    fn code(err: &Ec2Error) -> String {
        err.code().into_owned()
    }

    fn cloud_code(err: &mallee_cloud::CloudError) -> String {
        code(&Ec2Error::from(err.clone()))
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

    #[test]
    fn ids_and_names() {
        assert!(is_image_id("ami-0123456789abcdef0"));
        assert!(is_image_id("aki-12345678"));
        assert!(!is_image_id("emi-12345678"));
        assert!(!is_image_id("ami-XYZ"));
        assert!(validate_name("my image (v1.0) [test]/a@b_c-d'e").is_ok());
        for bad in ["ab", "bad*name", "é-image", &"x".repeat(129)] {
            assert_eq!(
                cloud_code(&validate_name(bad).expect_err(bad)),
                "InvalidAMIName.Malformed"
            );
        }
    }

    #[test]
    fn register_parsing() {
        let ok = RegisterImage::parse(&params(&[
            ("ImageLocation", "bucket/dir/root.img"),
            ("Name", "root"),
        ]))
        .expect("parses");
        assert_eq!(
            (ok.bucket.as_str(), ok.key.as_str()),
            ("bucket", "dir/root.img")
        );
        assert_eq!(ok.architecture, "x86_64");
        assert_eq!(ok.root_device_name, "/dev/sda1");
        for (pairs, want) in [
            (vec![("Name", "root")], "MissingParameter"),
            (
                vec![("ImageLocation", "nokey"), ("Name", "root")],
                "InvalidParameterValue",
            ),
            (
                vec![("ImageLocation", "b/k"), ("Name", "x")],
                "InvalidAMIName.Malformed",
            ),
            (
                vec![
                    ("ImageLocation", "b/k"),
                    ("Name", "root"),
                    ("Architecture", "sparc"),
                ],
                "InvalidParameterValue",
            ),
            (
                vec![
                    ("ImageLocation", "b/k"),
                    ("Name", "root"),
                    ("KernelId", "vmlinuz"),
                ],
                "InvalidAMIID.Malformed",
            ),
            (
                vec![
                    ("ImageLocation", "b/k"),
                    ("Name", "root"),
                    ("VirtualizationType", "pv"),
                ],
                "InvalidParameterValue",
            ),
            (
                vec![
                    ("ImageLocation", "b/k"),
                    ("Name", "root"),
                    ("RootDeviceName", "sda"),
                ],
                "InvalidParameterValue",
            ),
            (
                vec![
                    ("ImageLocation", "b/k"),
                    ("Name", "root"),
                    ("BlockDeviceMapping.1.Ebs.SnapshotId", "snap-12345678"),
                ],
                "MissingParameter",
            ),
            (
                // An EBS root takes no ImageLocation.
                vec![
                    ("ImageLocation", "b/k"),
                    ("Name", "root"),
                    ("BlockDeviceMapping.1.DeviceName", "/dev/sda1"),
                    ("BlockDeviceMapping.1.Ebs.SnapshotId", "snap-12345678"),
                ],
                "InvalidParameterCombination",
            ),
            (
                // Data mappings only on EBS-backed images.
                vec![
                    ("ImageLocation", "b/k"),
                    ("Name", "root"),
                    ("BlockDeviceMapping.1.DeviceName", "/dev/sdf"),
                    ("BlockDeviceMapping.1.Ebs.VolumeSize", "2"),
                ],
                "InvalidParameterValue",
            ),
            (
                vec![
                    ("Name", "root"),
                    ("BlockDeviceMapping.1.DeviceName", "/dev/sdf"),
                    ("BlockDeviceMapping.1.Ebs.SnapshotId", "snap-12345678"),
                ],
                "InvalidParameterValue",
            ),
        ] {
            let err = RegisterImage::parse(&params(&pairs)).expect_err("refused");
            assert_eq!(code(&err), want, "{pairs:?}");
        }
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

    struct Fixture {
        cloud: TestCloud,
    }

    async fn fixture() -> Fixture {
        let cloud = TestCloud::new().await;
        for name in ["owner", "other"] {
            cloud.principal(name).await;
        }
        Fixture { cloud }
    }

    async fn account(cloud: &Cloud, name: &str) -> String {
        cloud
            .store
            .account_by_name(name)
            .await
            .expect("lookup")
            .expect("exists")
            .account_id
    }

    fn image(id: &str, owner: &str, image_type: &str, virt: &str) -> Image {
        Image {
            image_id: id.into(),
            account_id: owner.into(),
            name: id.into(),
            description: None,
            image_type: image_type.into(),
            architecture: "x86_64".into(),
            virtualization_type: virt.into(),
            root_device_name: "/dev/sda1".into(),
            root_device_type: "instance-store".into(),
            kernel_id: None,
            ramdisk_id: None,
            location: format!("images/{id}"),
            bucket: "images".into(),
            key: id.into(),
            size: 42,
            etag: format!("etag-{id}"),
            disk_format: if image_type == "machine" {
                "raw"
            } else {
                "none"
            }
            .into(),
            state: "available".into(),
            is_public: false,
            created_at: 1,
            launch_permissions: Vec::new(),
            block_device_mappings: Vec::new(),
        }
    }

    #[tokio::test]
    async fn resolving_for_launch() {
        let f = fixture().await;
        let cloud = &f.cloud;
        let owner = account(cloud, "owner").await;
        let other = account(cloud, "other").await;
        let (ami_pv, ami_hvm) = ("ami-00000000000000001", "ami-00000000000000002");
        let (aki, ari) = ("aki-00000000000000003", "ari-00000000000000004");
        let store = &cloud.store;
        store
            .create_image(&image(aki, &owner, "kernel", "paravirtual"), &[])
            .await
            .expect("kernel");
        store
            .create_image(&image(ari, &owner, "ramdisk", "paravirtual"), &[])
            .await
            .expect("ramdisk");
        let pv = Image {
            kernel_id: Some(aki.into()),
            ramdisk_id: Some(ari.into()),
            ..image(ami_pv, &owner, "machine", "paravirtual")
        };
        store.create_image(&pv, &[]).await.expect("pv");
        store
            .create_image(&image(ami_hvm, &owner, "machine", "hvm"), &[])
            .await
            .expect("hvm");

        let hvm = resolve_for_launch(cloud, &owner, ami_hvm, None, None)
            .await
            .expect("hvm");
        assert!(!hvm.paravirtual);
        assert_eq!(hvm.kernel_id, None);
        assert_eq!(
            hvm.boot,
            BootImage::Hvm {
                disk: Artifact {
                    bucket: "images".into(),
                    key: ami_hvm.into(),
                    size: 42,
                    etag: format!("etag-{ami_hvm}"),
                }
            }
        );
        let launch = resolve_for_launch(cloud, &owner, ami_pv, None, None)
            .await
            .expect("pv");
        assert!(launch.paravirtual);
        assert_eq!(launch.owner_id, owner);
        assert_eq!(launch.kernel_id.as_deref(), Some(aki));
        assert_eq!(launch.ramdisk_id.as_deref(), Some(ari));
        match &launch.boot {
            BootImage::Paravirtual {
                kernel,
                ramdisk,
                root,
                cmdline,
            } => {
                assert_eq!(kernel.key, aki);
                assert_eq!(ramdisk.as_ref().map(|r| r.key.as_str()), Some(ari));
                assert_eq!(root.etag, format!("etag-{ami_pv}"));
                assert_eq!(cmdline, "console=ttyS0 root=/dev/vda rw panic=-1");
            }
            other => panic!("not paravirtual: {other:?}"),
        }

        // Another account sees nothing until the image is shared; then the
        // private kernel still blocks it, until that is shared too.
        let denied = resolve_for_launch(cloud, &other, ami_pv, None, None)
            .await
            .expect_err("private");
        assert_eq!(cloud_code(&denied), "InvalidAMIID.NotFound");
        let share = LaunchPermissionChange {
            add: vec![other.clone()],
            ..Default::default()
        };
        store
            .change_launch_permissions(ami_pv, &share)
            .await
            .expect("share");
        let err = resolve_for_launch(cloud, &other, ami_pv, None, None)
            .await
            .expect_err("kernel private");
        assert_eq!(cloud_code(&err), "InvalidAMIID.NotFound");
        assert!(err.to_string().contains(aki), "{err}");
        for part in [aki, ari] {
            let public = LaunchPermissionChange {
                public: Some(true),
                ..Default::default()
            };
            store
                .change_launch_permissions(part, &public)
                .await
                .expect("publish");
        }
        resolve_for_launch(cloud, &other, ami_pv, None, None)
            .await
            .expect("shared");
        store
            .change_launch_permissions(
                ami_pv,
                &LaunchPermissionChange {
                    remove: vec![other.clone()],
                    ..Default::default()
                },
            )
            .await
            .expect("unshare");
        assert_eq!(
            cloud_code(
                &resolve_for_launch(cloud, &other, ami_pv, None, None)
                    .await
                    .expect_err("unshared")
            ),
            "InvalidAMIID.NotFound"
        );

        // Overrides: of the right type, only for paravirtual images.
        let swapped = resolve_for_launch(cloud, &owner, ami_pv, Some(ari), None)
            .await
            .expect_err("ramdisk as kernel");
        assert_eq!(cloud_code(&swapped), "InvalidParameterValue");
        let on_hvm = resolve_for_launch(cloud, &owner, ami_hvm, Some(aki), None)
            .await
            .expect_err("kernel for hvm");
        assert_eq!(cloud_code(&on_hvm), "InvalidParameterCombination");
        let without_ramdisk = Image {
            kernel_id: Some(aki.into()),
            ..image("ami-00000000000000005", &owner, "machine", "paravirtual")
        };
        store
            .create_image(&without_ramdisk, &[])
            .await
            .expect("pv2");
        let overridden =
            resolve_for_launch(cloud, &owner, "ami-00000000000000005", None, Some(ari))
                .await
                .expect("ramdisk override");
        assert_eq!(overridden.ramdisk_id.as_deref(), Some(ari));

        // Kernels are not launchable; bad and unknown ids answer as EC2.
        assert_eq!(
            cloud_code(
                &resolve_for_launch(cloud, &owner, aki, None, None)
                    .await
                    .expect_err("kernel")
            ),
            "InvalidParameterValue"
        );
        assert_eq!(
            cloud_code(
                &resolve_for_launch(cloud, &owner, "ami-bogus", None, None)
                    .await
                    .expect_err("malformed")
            ),
            "InvalidAMIID.Malformed"
        );
        assert_eq!(
            cloud_code(
                &resolve_for_launch(cloud, &owner, "ami-12345678", None, None)
                    .await
                    .expect_err("missing")
            ),
            "InvalidAMIID.NotFound"
        );
    }
}
