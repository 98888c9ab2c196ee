//! Images: what may be launched and by whom (EC2's visibility: an account
//! sees, and may launch, its own images, public ones and those shared with
//! it; every other image does not exist for it), DescribeImages' selection,
//! DeregisterImage, and [`resolve_for_launch`], which turns an image id
//! into what a node boots. Only the owner changes an image; a visible image
//! of another account answers `AuthFailure`. Registering is [`register`],
//! imaging an instance [`create`], the attributes [`attributes`].

pub mod attributes;
pub mod bundled;
pub mod create;
pub mod register;

use crate::instances::spec::{Boot, ImageObject};
use mallee_store::{Image, ImageBlockDevice, StoreError, TagPair};

use crate::sharing::{Admins, Grants, Selection, Shared};
use crate::{Cloud, CloudError, Kind, Principal, ids};

/// Kernel command line of paravirtual instances: the root disk is the
/// first virtio disk, the console the first serial port, and a kernel panic
/// ends the VM instead of hanging it.
pub const PARAVIRTUAL_CMDLINE: &str = "console=ttyS0 root=/dev/vda rw panic=-1";

/// Whether `id` is an image id: `ami-`, `aki-` or `ari-` and 8 or 17
/// lowercase hex digits.
pub fn is_image_id(id: &str) -> bool {
    match id.split_once('-') {
        Some(("ami" | "aki" | "ari", hex)) => {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        _ => false,
    }
}

pub fn malformed(id: &str) -> CloudError {
    CloudError::malformed(
        Kind::Image,
        format!("Invalid id: \"{id}\" (expecting \"ami-...\")"),
    )
}

pub fn not_found(ids: &[&str]) -> CloudError {
    let list = ids.join(", ");
    CloudError::not_found(
        Kind::Image,
        if ids.len() == 1 {
            format!("The image id '[{list}]' does not exist")
        } else {
            format!("The image ids '[{list}]' do not exist")
        },
    )
}

pub fn not_authorized(id: &str) -> CloudError {
    CloudError::NotOwner {
        kind: Kind::Image,
        message: format!("Not authorized for image:{id}"),
    }
}

/// AWS: 3–128 characters: letters, digits, `()[] ./-'@_`.
pub fn validate_name(name: &str) -> Result<(), CloudError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c);
    if !(3..=128).contains(&name.chars().count()) || !name.chars().all(allowed) {
        return Err(CloudError::malformed(
            Kind::ImageName,
            format!(
                "AMI name '{name}' is invalid: AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '[', ']', ' ', '.', '-', '/', ''', '@' and '_'"
            ),
        ));
    }
    Ok(())
}

/// AWS: descriptions are at most 255 characters.
pub fn validate_description(description: &str) -> Result<(), CloudError> {
    if description.chars().count() > 255 {
        return Err(CloudError::Invalid(
            "The description must be at most 255 characters long.".into(),
        ));
    }
    Ok(())
}

pub fn may_launch(image: &Image, account_id: &str) -> bool {
    image.account_id == account_id
        || image.is_public
        || image.launch_permissions.iter().any(|a| a == account_id)
}

/// The image if `account_id` may see (and so launch) it; a well-formed id of
/// an image it may not see is NotFound, as if it did not exist.
pub async fn visible_image(
    cloud: &Cloud,
    account_id: &str,
    image_id: &str,
) -> Result<Image, CloudError> {
    if !is_image_id(image_id) {
        return Err(malformed(image_id));
    }
    match cloud.store.image(image_id).await? {
        Some(image) if may_launch(&image, account_id) => Ok(image),
        _ => Err(not_found(&[image_id])),
    }
}

/// The image if `account_id` owns it: AuthFailure when it only sees it.
pub async fn owned_image(
    cloud: &Cloud,
    account_id: &str,
    image_id: &str,
) -> Result<Image, CloudError> {
    let image = visible_image(cloud, account_id, image_id).await?;
    if image.account_id != account_id {
        return Err(not_authorized(image_id));
    }
    Ok(image)
}

/// Stores a new image; a name the account already uses is
/// `InvalidAMIName.Duplicate`, a snapshot deleted meanwhile not found.
pub async fn store_new_image(
    cloud: &Cloud,
    image: &Image,
    tags: &[TagPair],
) -> Result<(), CloudError> {
    match cloud.store.create_image(image, tags).await {
        Err(StoreError::Conflict(_)) => Err(CloudError::duplicate(
            Kind::ImageName,
            format!(
                "AMI name {} is already in use by an AMI owned by your account.",
                image.name
            ),
        )),
        Err(StoreError::NotFound(id)) => Err(CloudError::not_found(
            Kind::Snapshot,
            format!("The snapshot '{id}' does not exist."),
        )),
        other => Ok(other?),
    }
}

/// A new machine image `image_id` of `account` named `name`: available,
/// private, hvm, booting from an instance store of nothing yet; callers
/// say what it is of.
fn new_machine_image(
    image_id: String,
    account: &str,
    name: &str,
    description: Option<String>,
) -> Image {
    Image {
        image_id,
        account_id: account.to_owned(),
        name: name.to_owned(),
        description,
        image_type: "machine".into(),
        architecture: "x86_64".into(),
        virtualization_type: "hvm".into(),
        root_device_name: String::new(),
        root_device_type: "instance-store".into(),
        kernel_id: None,
        ramdisk_id: None,
        location: String::new(),
        bucket: String::new(),
        key: String::new(),
        size: 0,
        etag: String::new(),
        disk_format: "none".into(),
        state: "available".into(),
        is_public: false,
        created_at: ids::now_millis(),
        launch_permissions: Vec::new(),
        block_device_mappings: Vec::new(),
        state_reason: None,
        bundle_manifest: None,
    }
}

/// An image as DescribeImages lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedImage {
    /// The image.
    pub image: Image,
    /// `amazon` when an administrator account owns it.
    pub owner_alias: Option<&'static str>,
}

/// The images the caller may see, of those named (`image_ids`, every one
/// when empty; one it may not see is not found), that `selection` selects:
/// `ExecutableBy` scopes by explicit launch permission, as in EC2.
pub async fn describe(
    cloud: &Cloud,
    caller: &Principal,
    image_ids: &[String],
    selection: &Selection,
) -> Result<Vec<ListedImage>, CloudError> {
    let caller = caller.account_id();
    let images = cloud.store.images_visible_to(caller).await?;
    let missing: Vec<&str> = image_ids
        .iter()
        .filter(|id| !images.iter().any(|i| &i.image_id == *id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(not_found(&missing));
    }
    let admins = Admins::load(cloud).await?;
    Ok(images
        .into_iter()
        .filter(|i| image_ids.is_empty() || image_ids.contains(&i.image_id))
        .filter(|i| selection.owner_selected(&i.account_id, caller, &admins))
        .filter(|i| {
            let shared = Shared {
                owner: &i.account_id,
                public: i.is_public,
                accounts: &i.launch_permissions,
            };
            selection.users_selected(&shared, caller, Grants::Explicit)
        })
        .map(|image| ListedImage {
            owner_alias: admins.alias_of(&image.account_id),
            image,
        })
        .collect())
}

/// Deletes the caller's image. Instances already running keep their copy;
/// the object itself stays in its bucket (a bundled image's bundle too;
/// the cloud's unbundled copy goes).
pub async fn deregister(
    cloud: &Cloud,
    caller: &Principal,
    image_id: &str,
) -> Result<(), CloudError> {
    let account = caller.account_id();
    let image = owned_image(cloud, account, image_id).await?;
    if !cloud.store.delete_image(account, image_id).await? {
        return Err(not_found(&[image_id]));
    }
    bundled::deregistered(cloud, &image).await
}

/// An image resolved for RunInstances: what the node boots and what the
/// instance reports about its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchImage {
    /// The `ami-…`.
    pub image_id: String,
    /// Its owner.
    pub owner_id: String,
    /// Paravirtual (kernel + ramdisk + root disk) rather than HVM.
    pub paravirtual: bool,
    /// `x86_64` or `i386`.
    pub architecture: String,
    /// Root device name (`/dev/sda1`).
    pub root_device_name: String,
    /// The kernel used (the override, else the image's), paravirtual only.
    pub kernel_id: Option<String>,
    /// The ramdisk used (the override, else the image's), if any.
    pub ramdisk_id: Option<String>,
    /// What the node boots, with the objects' size and ETag recorded at
    /// registration. For EBS-backed images a [`Boot::Ebs`] whose root
    /// volume is named per instance with [`LaunchImage::boot_from`].
    pub boot: Boot,
    /// EBS-backed images: their block device mappings (the root's
    /// snapshot first), with the snapshot data each volume starts from.
    pub ebs_mappings: Vec<(
        ImageBlockDevice,
        Option<crate::volumes::model::VolumeSource>,
    )>,
}

impl LaunchImage {
    /// Whether the image's root device is an EBS volume.
    pub fn ebs_backed(&self) -> bool {
        matches!(self.boot, Boot::Ebs { .. })
    }

    /// What an instance of this image boots, with `root_volume_id` as the
    /// root of an EBS-backed image.
    pub fn boot_from(&self, root_volume_id: &str) -> Boot {
        match &self.boot {
            Boot::Ebs {
                kernel,
                ramdisk,
                cmdline,
                ..
            } => Boot::Ebs {
                root_volume_id: root_volume_id.to_owned(),
                kernel: kernel.clone(),
                ramdisk: ramdisk.clone(),
                cmdline: cmdline.clone(),
            },
            other => other.clone(),
        }
    }
}

fn artifact(image: &Image) -> ImageObject {
    ImageObject {
        bucket: image.bucket.clone(),
        key: image.key.clone(),
        size: image.size,
        etag: image.etag.clone(),
    }
}

fn check_available(image: &Image) -> Result<(), CloudError> {
    if image.state != "available" {
        return Err(CloudError::Unavailable {
            kind: Kind::Image,
            message: format!(
                "AMI '{}' is {}, and cannot be run",
                image.image_id, image.state
            ),
        });
    }
    Ok(())
}

/// A kernel or ramdisk (`wanted`) the account may use.
async fn part_of_type(
    cloud: &Cloud,
    account_id: &str,
    id: &str,
    wanted: &str,
) -> Result<Image, CloudError> {
    let part = visible_image(cloud, account_id, id).await?;
    if part.image_type != wanted {
        return Err(CloudError::Invalid(format!(
            "The image {id} is a {} image, not a {wanted}.",
            part.image_type
        )));
    }
    Ok(part)
}

/// A kernel or ramdisk the account may launch with.
async fn launch_part(
    cloud: &Cloud,
    account_id: &str,
    id: &str,
    wanted: &str,
) -> Result<Image, CloudError> {
    let part = part_of_type(cloud, account_id, id, wanted).await?;
    check_available(&part)?;
    Ok(part)
}

/// Resolves `image_id` (with optional KernelId / RamdiskId overrides from
/// RunInstances) for a launch by `account_id`: the image, and the kernel and
/// ramdisk used, must exist, be available and be launchable by the account
/// (owned, public or shared with it; otherwise `InvalidAMIID.NotFound`); the
/// image must be a machine image.
pub async fn resolve_for_launch(
    cloud: &Cloud,
    account_id: &str,
    image_id: &str,
    kernel_override: Option<&str>,
    ramdisk_override: Option<&str>,
) -> Result<LaunchImage, CloudError> {
    let image = visible_image(cloud, account_id, image_id).await?;
    if image.image_type != "machine" {
        return Err(CloudError::Invalid(format!(
            "The image {image_id} is a {} image; only machine (ami-) images can be launched.",
            image.image_type
        )));
    }
    check_available(&image)?;
    if let Some(profile) = crate::metal::names::image_profile(&image) {
        return Err(CloudError::InvalidCombination(format!(
            "The image {image_id} is a bare-metal image (profile {profile}): launch it in the bare-metal zone {}.",
            crate::metal::names::zone_name(&cloud.config)
        )));
    }
    for id in kernel_override.iter().chain(ramdisk_override.iter()) {
        if !is_image_id(id) {
            return Err(malformed(id));
        }
    }
    let paravirtual = image.virtualization_type == "paravirtual";
    let (kernel, kernel_id, ramdisk, ramdisk_id) = if paravirtual {
        let kernel_id = kernel_override
            .map(str::to_owned)
            .or_else(|| image.kernel_id.clone())
            .ok_or_else(|| {
                CloudError::Invalid(format!(
                    "The paravirtual image {image_id} has no kernel; give a KernelId."
                ))
            })?;
        let kernel = launch_part(cloud, account_id, &kernel_id, "kernel").await?;
        let ramdisk_id = ramdisk_override
            .map(str::to_owned)
            .or_else(|| image.ramdisk_id.clone());
        let ramdisk = match &ramdisk_id {
            Some(id) => Some(launch_part(cloud, account_id, id, "ramdisk").await?),
            None => None,
        };
        (Some(kernel), Some(kernel_id), ramdisk, ramdisk_id)
    } else {
        if kernel_override.is_some() || ramdisk_override.is_some() {
            return Err(CloudError::InvalidCombination(format!(
                "The image {image_id} is an hvm image: KernelId and RamdiskId cannot be used with it."
            )));
        }
        (None, None, None, None)
    };
    let mut ebs_mappings = Vec::new();
    let boot = if image.root_device_type == "ebs" {
        for mapping in &image.block_device_mappings {
            let source = match &mapping.snapshot_id {
                None => None,
                Some(id) => {
                    let snapshot = cloud
                        .store
                        .snapshot(id)
                        .await?
                        .and_then(|r| crate::snapshots::Snapshot::decode(r).ok());
                    let Some(source) = snapshot.as_ref().and_then(|s| s.source()) else {
                        return Err(CloudError::Unavailable {
                            kind: Kind::Image,
                            message: format!(
                                "AMI '{image_id}' is unavailable: its snapshot {id} is gone."
                            ),
                        });
                    };
                    Some(source)
                }
            };
            ebs_mappings.push((mapping.clone(), source));
        }
        Boot::Ebs {
            root_volume_id: String::new(),
            kernel: kernel.as_ref().map(artifact),
            ramdisk: ramdisk.as_ref().map(artifact),
            cmdline: PARAVIRTUAL_CMDLINE.to_owned(),
        }
    } else {
        let root = artifact(&image);
        match kernel {
            Some(kernel) => Boot::Paravirtual {
                kernel: artifact(&kernel),
                ramdisk: ramdisk.as_ref().map(artifact),
                root,
                cmdline: PARAVIRTUAL_CMDLINE.to_owned(),
            },
            None => Boot::Hvm { disk: root },
        }
    };
    Ok(LaunchImage {
        image_id: image.image_id,
        owner_id: image.account_id,
        paravirtual,
        architecture: image.architecture,
        root_device_name: image.root_device_name,
        kernel_id,
        ramdisk_id,
        boot,
        ebs_mappings,
    })
}

#[cfg(test)]
mod tests {
    use mallee_store::LaunchPermissionChange;

    use super::attributes::{self, Attribute, Modification};
    use super::register::tests::registration;
    use super::register::{Source, register};
    use super::*;
    use crate::objects::acl::Acl;
    use crate::objects::testing::put;
    use crate::sharing::{Owner, User};
    use crate::testkit::{TestCloud, principal};

    /// Registers an hvm image `name` of `who` from an object of its own.
    async fn image(cloud: &Cloud, who: &Principal, name: &str) -> String {
        let key = name.replace(' ', "-");
        put(
            cloud,
            who.account_id(),
            who.account_id(),
            &key,
            &[0u8; 512],
            &Acl::private(who.account_id()),
        )
        .await;
        let source = Source::Object {
            location: format!("{}/{key}", who.account_id()),
            bucket: who.account_id().into(),
            key,
        };
        register(cloud, who, registration(source, name))
            .await
            .expect("register")
    }

    async fn listed(
        cloud: &Cloud,
        who: &Principal,
        owners: Vec<Owner>,
        users: Vec<User>,
    ) -> Vec<String> {
        let mut ids: Vec<String> = describe(cloud, who, &[], &Selection { owners, users })
            .await
            .expect("describe")
            .into_iter()
            .map(|l| l.image.image_id)
            .collect();
        ids.sort_unstable();
        ids
    }

    fn sorted(ids: &[&String]) -> Vec<String> {
        let mut ids: Vec<String> = ids.iter().map(|s| (*s).clone()).collect();
        ids.sort_unstable();
        ids
    }

    fn share(add: &str) -> Modification {
        Modification::LaunchPermission(LaunchPermissionChange {
            add: vec![add.into()],
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn describe_selects_by_owner_and_launch_permission() {
        let cloud = TestCloud::new().await;
        let owner = cloud.principal("owner").await;
        let other = cloud.principal("other").await;
        let admin = principal(&cloud, "admin", true).await;
        let shared = image(&cloud, &owner, "shared").await;
        let private = image(&cloud, &owner, "private").await;
        let public = image(&cloud, &admin, "public").await;
        let own = image(&cloud, &other, "own").await;
        attributes::modify(&cloud, &owner, &shared, &share(other.account_id()))
            .await
            .expect("share");
        let publish = Modification::LaunchPermission(LaunchPermissionChange {
            public: Some(true),
            ..Default::default()
        });
        attributes::modify(&cloud, &admin, &public, &publish)
            .await
            .expect("publish");

        assert_eq!(
            listed(&cloud, &other, vec![], vec![]).await,
            sorted(&[&shared, &public, &own])
        );
        assert_eq!(
            listed(&cloud, &other, vec![Owner::Caller], vec![]).await,
            vec![own.clone()]
        );
        assert_eq!(
            listed(&cloud, &other, vec![Owner::Admins], vec![]).await,
            vec![public.clone()]
        );
        assert!(
            listed(&cloud, &other, vec![Owner::Nobody], vec![])
                .await
                .is_empty()
        );
        assert_eq!(
            listed(&cloud, &other, vec![], vec![User::Caller]).await,
            vec![shared.clone()]
        );
        assert_eq!(
            listed(&cloud, &other, vec![], vec![User::All]).await,
            vec![public.clone()]
        );
        assert_eq!(
            listed(
                &cloud,
                &owner,
                vec![],
                vec![User::Account(other.account_id().into())]
            )
            .await,
            vec![shared.clone()]
        );
        let aliased = describe(
            &cloud,
            &other,
            std::slice::from_ref(&public),
            &Selection::default(),
        )
        .await
        .expect("by id");
        assert_eq!(aliased.len(), 1);
        assert_eq!(aliased[0].owner_alias, Some("amazon"));
        assert_eq!(
            describe(
                &cloud,
                &other,
                &[private.clone(), shared.clone()],
                &Selection::default()
            )
            .await,
            Err(not_found(&[&private]))
        );
    }

    #[tokio::test]
    async fn only_the_owner_changes_an_image() {
        let cloud = TestCloud::new().await;
        let owner = cloud.principal("owner").await;
        let other = cloud.principal("other").await;
        let id = image(&cloud, &owner, "mine").await;
        attributes::modify(&cloud, &owner, &id, &share(other.account_id()))
            .await
            .expect("share");

        let seen = attributes::describe(&cloud, &other, &id, Attribute::Description)
            .await
            .expect("visible");
        assert_eq!(seen.image_id, id);
        for result in [
            attributes::describe(&cloud, &other, &id, Attribute::LaunchPermission)
                .await
                .map(|_| ()),
            attributes::modify(&cloud, &other, &id, &Modification::Description(None)).await,
            attributes::reset_launch_permission(&cloud, &other, &id).await,
            deregister(&cloud, &other, &id).await,
        ] {
            assert_eq!(result, Err(not_authorized(&id)));
        }

        attributes::modify(
            &cloud,
            &owner,
            &id,
            &Modification::Description(Some("hello".into())),
        )
        .await
        .expect("describe");
        let image = attributes::describe(&cloud, &owner, &id, Attribute::LaunchPermission)
            .await
            .expect("owner");
        assert_eq!(image.description.as_deref(), Some("hello"));
        assert_eq!(
            image.launch_permissions,
            vec![other.account_id().to_owned()]
        );
        attributes::reset_launch_permission(&cloud, &owner, &id)
            .await
            .expect("reset");
        assert_eq!(
            attributes::describe(&cloud, &other, &id, Attribute::Description).await,
            Err(not_found(&[&id]))
        );
        deregister(&cloud, &owner, &id).await.expect("deregister");
        assert_eq!(
            deregister(&cloud, &owner, &id).await,
            Err(not_found(&[&id]))
        );
    }
}
