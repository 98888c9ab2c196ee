//! RegisterImage, DescribeImages and DeregisterImage on the wire:
//! parameters in, XML out (the image attributes are
//! [`super::image_attributes`]). What an image is, who sees and launches
//! it and how one is registered is `mallee_cloud::images`.

use mallee_cloud::images::register::{self, Registration, Source};
use mallee_cloud::images::{
    self, ListedImage, is_image_id, malformed, validate_description, validate_name,
};
use mallee_cloud::sharing::Selection;
use mallee_store::Image;

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error, iso8601};

/// Root device name when RegisterImage gives none (EC2's default).
const DEFAULT_ROOT_DEVICE: &str = "/dev/sda1";

pub(super) fn checked_image_id(params: &QueryParams, name: &str) -> Result<String, Ec2Error> {
    let id = params.required_non_empty(name)?;
    if !is_image_id(id) {
        return Err(Ec2Error::from(malformed(id)));
    }
    Ok(id.to_owned())
}

/// RegisterImage input.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterImage(Registration);

fn optional_image_id(params: &QueryParams, name: &str) -> Result<Option<String>, Ec2Error> {
    match params.get(name) {
        None | Some("") => Ok(None),
        Some(id) if is_image_id(id) => Ok(Some(id.to_owned())),
        Some(id) => Err(Ec2Error::from(malformed(id))),
    }
}

impl RegisterImage {
    /// Reads `ImageLocation` (`bucket/key`, or `metal:PROFILE`), `Name`,
    /// `Description`, `Architecture`, `KernelId`, `RamdiskId`,
    /// `RootDeviceName`, `VirtualizationType`, `BlockDeviceMapping.N` (EBS
    /// images) and `TagSpecification.N`.
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
        let source = if ebs_root {
            Source::Ebs(block_device_mappings)
        } else if let Some(profile) =
            location.strip_prefix(mallee_cloud::metal::names::LOCATION_PREFIX)
        {
            Source::Metal {
                profile: profile.to_owned(),
            }
        } else {
            let (bucket, key) = location
                .trim_start_matches('/')
                .split_once('/')
                .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                .ok_or_else(|| {
                    Ec2Error::InvalidParameterValue(format!(
                        "Value ({location}) for parameter ImageLocation is invalid. Expected BUCKET/KEY of an object in the object store."
                    ))
                })?;
            Source::Object {
                location: location.to_owned(),
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            }
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
        Ok(Self(Registration {
            source,
            name: name.to_owned(),
            description: description.map(str::to_owned),
            architecture: architecture.to_owned(),
            kernel_id: optional_image_id(params, "KernelId")?,
            ramdisk_id: optional_image_id(params, "RamdiskId")?,
            root_device_name: root_device_name.to_owned(),
            virtualization_type,
            tags: parse_tag_specifications(params, "image")?,
        }))
    }

    /// Registers the image.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let image_id = register::register(ctx.cloud, ctx.principal, self.0).await?;
        Ok(ctx.respond("RegisterImage", |w| w.text("imageId", &image_id)))
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
    // Why a failed image (a bundle that did not unbundle) failed.
    if let Some(reason) = &i.state_reason {
        w.elem("stateReason", |w| {
            w.text("code", &reason.code);
            w.text("message", &reason.message);
        });
    }
    write_tag_set(w, view.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    w.text("hypervisor", "xen");
    w.text("platformDetails", "Linux/UNIX");
    w.text("usageOperation", "RunInstances");
}

/// DescribeImages input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeImages {
    image_ids: Vec<String>,
    selection: Selection,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeImages {
    /// Reads `ImageId.N`, `Owner.N`, `ExecutableBy.N`, `Filter.N`,
    /// `MaxResults` (5–1000), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let image_ids = params.list("ImageId")?;
        if let Some(bad) = image_ids.iter().find(|id| !is_image_id(id)) {
            return Err(Ec2Error::from(malformed(bad)));
        }
        let selection = super::sharing::parse_selection(params, "ExecutableBy", true)?;
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
            selection,
            filters,
            page,
        })
    }

    /// Lists the images the caller may launch that match every criterion.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let listed =
            images::describe(ctx.cloud, ctx.principal, &self.image_ids, &self.selection).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        let selected: Vec<ImageView<'_>> = listed
            .iter()
            .map(|ListedImage { image, owner_alias }| ImageView {
                image,
                tags: tags.of(&image.image_id),
                owner_alias: *owner_alias,
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

    /// Deletes the caller's image.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        images::deregister(ctx.cloud, ctx.principal, &self.image_id).await?;
        Ok(ctx.respond_true("DeregisterImage"))
    }
}

#[cfg(test)]
mod tests {
    use mallee_cloud::Cloud;
    use mallee_cloud::images::resolve_for_launch;
    use mallee_cloud::instances::spec::{Boot as BootImage, ImageObject as Artifact};
    use mallee_cloud::testkit::TestCloud;
    use mallee_store::LaunchPermissionChange;

    use super::*;
    use crate::ec2::snapshots::DescribeSnapshots;
    use crate::error::AwsError;
    use mallee_cloud::sharing::{Owner, User};

    use crate::query::test_params as params;

    fn code(err: &Ec2Error) -> String {
        err.code().into_owned()
    }

    fn cloud_code(err: &mallee_cloud::CloudError) -> String {
        code(&Ec2Error::from(err.clone()))
    }

    /// The errors images and snapshots raise in the domain answer with the
    /// codes and statuses the EC2 files gave them before the move.
    #[test]
    fn domain_errors_keep_their_ec2_codes() {
        use mallee_cloud::{CloudError, Kind};
        let cases = [
            (
                CloudError::BadContent {
                    kind: Kind::Image,
                    message: "m".into(),
                },
                "InvalidManifest",
                400,
            ),
            (CloudError::Unauthorized, "UnauthorizedOperation", 403),
            (
                CloudError::incorrect_state(Kind::Snapshot, "m"),
                "IncorrectState",
                400,
            ),
            (
                CloudError::incorrect_state(Kind::Volume, "m"),
                "IncorrectState",
                400,
            ),
            (
                CloudError::incorrect_state(Kind::Instance, "m"),
                "IncorrectInstanceState",
                400,
            ),
            (
                CloudError::not_found(Kind::Volume, "m"),
                "InvalidVolume.NotFound",
                400,
            ),
            (
                CloudError::in_use(Kind::Snapshot, "m"),
                "InvalidSnapshot.InUse",
                400,
            ),
            (
                CloudError::duplicate(Kind::ImageName, "m"),
                "InvalidAMIName.Duplicate",
                400,
            ),
            (
                CloudError::InvalidParameter("m".into()),
                "InvalidParameter",
                400,
            ),
            (
                CloudError::malformed(Kind::ImportTask, "m"),
                "InvalidConversionTaskId.Malformed",
                400,
            ),
            (
                mallee_cloud::sharing::malformed_user("x"),
                "InvalidUserID.Malformed",
                400,
            ),
            (CloudError::internal("m"), "InternalError", 500),
        ];
        for (err, want, status) in cases {
            let ec2 = Ec2Error::from(err.clone());
            assert_eq!(
                (code(&ec2).as_str(), ec2.status().as_u16()),
                (want, status),
                "{err:?}"
            );
        }
        assert_eq!(
            Ec2Error::from(mallee_cloud::sharing::malformed_user("x")).to_string(),
            "Invalid user id: 'x'"
        );
    }

    /// DescribeImages knows AWS's image owner aliases, DescribeSnapshots
    /// does not; both read the lists through one parser.
    #[test]
    fn images_know_aws_aliases_snapshots_do_not() {
        let foreign = params(&[("Owner.1", "self"), ("Owner.2", "aws-marketplace")]);
        assert_eq!(
            crate::ec2::sharing::parse_selection(&foreign, "ExecutableBy", true).expect("images"),
            Selection {
                owners: vec![Owner::Caller, Owner::Nobody],
                users: Vec::new(),
            }
        );
        DescribeImages::parse(&foreign).expect("DescribeImages");
        let err = DescribeSnapshots::parse(&foreign).expect_err("DescribeSnapshots");
        assert_eq!(err.code(), "InvalidUserID.Malformed");
        assert_eq!(err.to_string(), "Invalid user id: 'aws-marketplace'");

        let users = params(&[
            ("RestorableBy.1", "all"),
            ("RestorableBy.2", "123456789012"),
        ]);
        assert_eq!(
            crate::ec2::sharing::parse_selection(&users, "RestorableBy", false)
                .expect("users")
                .users,
            vec![User::All, User::Account("123456789012".into())]
        );
        for (name, value) in [("ExecutableBy.1", "amazon"), ("Owner.1", "12345")] {
            let err = DescribeImages::parse(&params(&[(name, value)])).expect_err(value);
            assert_eq!(err.code(), "InvalidUserID.Malformed", "{name}={value}");
        }
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
            ok.0.source,
            Source::Object {
                location: "bucket/dir/root.img".into(),
                bucket: "bucket".into(),
                key: "dir/root.img".into(),
            }
        );
        assert_eq!(ok.0.architecture, "x86_64");
        assert_eq!(ok.0.root_device_name, "/dev/sda1");
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
            state_reason: None,
            bundle_manifest: None,
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
