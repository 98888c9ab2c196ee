//! The volume actions through the EC2 layer: the codes refused requests
//! get, that they change nothing, and the XML of what succeeds.

use mallee_cloud::Principal;
use mallee_cloud::instances::model::{Desired, InstanceState};
use mallee_cloud::testkit::{InstanceBuilder, TestCloud, node};
use mallee_cloud::volumes::VolumeStatus;
use mallee_store::VolumeRecord;

use super::*;
use crate::error::AwsError;

const ZONE: &str = "mallee-1a";
const INSTANCE: &str = "i-0000000000000000a";

struct Fixture {
    cloud: TestCloud,
    owner: Principal,
    other: Principal,
}

async fn fixture() -> Fixture {
    let cloud = TestCloud::new().await;
    cloud.add_node(node("node-1", ZONE, 2, 2048, 100)).await;
    let owner = cloud.principal("owner").await;
    let other = cloud.principal("other").await;
    let f = Fixture {
        cloud,
        owner,
        other,
    };
    launch(&f, INSTANCE, "running").await;
    f
}

async fn launch(f: &Fixture, id: &str, state: &str) {
    launch_in(f, id, state, ZONE).await;
}

async fn launch_in(f: &Fixture, id: &str, state: &str, zone: &str) {
    let state = InstanceState::from_name(state).expect("state");
    let desired = if state == InstanceState::Stopped {
        Desired::Stopped
    } else {
        Desired::Running
    };
    InstanceBuilder::new(id, f.owner.account_id())
        .zone(zone)
        .address(
            &format!("172.31.0.{}", id.len() + usize::from(id.as_bytes()[18])),
            &format!("02:00:00:00:01:{:02x}", id.as_bytes()[18]),
        )
        .state(state, desired)
        .store(&f.cloud)
        .await;
}

async fn run_as(
    f: &Fixture,
    who: &Principal,
    action: &str,
    pairs: &[(&str, &str)],
) -> Result<String, Ec2Error> {
    let params = QueryParams::from_pairs(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>(),
    )
    .expect("params");
    let ctx = Ec2Context {
        cloud: &f.cloud.cloud,
        principal: who,
        request_id: "req",
        namespace: super::super::namespace_for(None),
    };
    let parsed = super::super::Ec2Action::parse(action, &params)?;
    super::super::execute(&ctx, parsed, false).await
}

async fn run(f: &Fixture, action: &str, pairs: &[(&str, &str)]) -> Result<String, Ec2Error> {
    run_as(f, &f.owner, action, pairs).await
}

async fn code(f: &Fixture, who: &Principal, action: &str, pairs: &[(&str, &str)]) -> String {
    let err = run_as(f, who, action, pairs)
        .await
        .expect_err("the request should fail");
    err.code().into_owned()
}

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, x)| (k.as_str(), x.as_str())).collect()
}

fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml.find(&open).expect("tag present") + open.len();
    let end = xml[start..].find('<').expect("closing tag") + start;
    &xml[start..end]
}

async fn rows(f: &Fixture) -> Vec<VolumeRecord> {
    f.cloud.store.volumes(None).await.expect("volumes")
}

/// Creates a volume and records it as the reconciler would once its
/// node has it.
async fn available_volume(f: &Fixture) -> String {
    let created = run(
        f,
        "CreateVolume",
        &[("Size", "1"), ("AvailabilityZone", ZONE)],
    )
    .await
    .expect("create");
    let id = between(&created, "volumeId").to_owned();
    let mut v = Volume::decode(f.cloud.store.volume(&id).await.expect("get").expect("row"))
        .expect("decode");
    v.status = VolumeStatus::Available;
    assert!(
        f.cloud
            .store
            .update_volume(&v.encode())
            .await
            .expect("update")
    );
    id
}

#[tokio::test]
async fn creation_checks_everything_first() {
    let f = fixture().await;
    for (pairs, expected) in [
        (
            vec![("Size", "0"), ("AvailabilityZone", ZONE)],
            "InvalidParameterValue",
        ),
        (
            vec![("Size", "16385"), ("AvailabilityZone", ZONE)],
            "InvalidParameterValue",
        ),
        (
            vec![
                ("Size", "1025"),
                ("AvailabilityZone", ZONE),
                ("VolumeType", "standard"),
            ],
            "InvalidParameterValue",
        ),
        (
            vec![
                ("Size", "1"),
                ("AvailabilityZone", ZONE),
                ("VolumeType", "floppy"),
            ],
            "InvalidParameterValue",
        ),
        (
            vec![("Size", "1"), ("AvailabilityZone", "mallee-1z")],
            "InvalidParameterValue",
        ),
        (vec![("Size", "1")], "MissingParameter"),
        (vec![("AvailabilityZone", ZONE)], "MissingParameter"),
        (
            vec![
                ("SnapshotId", "snap-0123456789abcdef0"),
                ("AvailabilityZone", ZONE),
            ],
            "InvalidSnapshot.NotFound",
        ),
        (
            vec![
                ("Size", "10"),
                ("AvailabilityZone", ZONE),
                ("VolumeType", "io1"),
            ],
            "MissingParameter",
        ),
        (
            vec![("Size", "10"), ("AvailabilityZone", ZONE), ("Iops", "500")],
            "InvalidParameterCombination",
        ),
        (
            vec![
                ("Size", "1"),
                ("AvailabilityZone", ZONE),
                ("Encrypted", "true"),
            ],
            "UnsupportedOperation",
        ),
        (
            vec![
                ("Size", "1"),
                ("AvailabilityZone", ZONE),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "k"),
            ],
            "InvalidParameterValue",
        ),
    ] {
        assert_eq!(
            code(&f, &f.owner, "CreateVolume", &pairs).await,
            expected,
            "{pairs:?}"
        );
    }
    assert!(
        rows(&f).await.is_empty(),
        "a refused creation left a volume"
    );

    let created = run(
        &f,
        "CreateVolume",
        &[
            ("Size", "16384"),
            ("AvailabilityZone", ZONE),
            ("VolumeType", "gp3"),
            ("TagSpecification.1.ResourceType", "volume"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "data"),
            ("ClientToken", "once"),
        ],
    )
    .await
    .expect("create");
    assert_eq!(between(&created, "status"), "creating");
    assert_eq!(between(&created, "iops"), "3000");
    assert_eq!(between(&created, "throughput"), "125");
    let id = between(&created, "volumeId").to_owned();
    let stored = rows(&f).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].node_id.as_str(), stored[0].size_gib),
        ("node-1", 16384)
    );
    // The same client token answers the same volume.
    let again = run(
        &f,
        "CreateVolume",
        &[
            ("Size", "16384"),
            ("AvailabilityZone", ZONE),
            ("VolumeType", "gp3"),
            ("ClientToken", "once"),
        ],
    )
    .await
    .expect("idempotent");
    assert_eq!(between(&again, "volumeId"), id);
    assert_eq!(rows(&f).await.len(), 1);

    let listed = run(
        &f,
        "DescribeVolumes",
        &[("Filter.1.Name", "tag:Name"), ("Filter.1.Value.1", "data")],
    )
    .await
    .expect("describe");
    assert!(listed.contains(&id), "{listed}");
    assert!(
        listed.contains("<attachmentSet></attachmentSet>"),
        "{listed}"
    );
    let none = run(
        &f,
        "DescribeVolumes",
        &[
            ("Filter.1.Name", "status"),
            ("Filter.1.Value.1", "available"),
        ],
    )
    .await
    .expect("describe");
    assert!(!none.contains(&id), "{none}");
    // Creating: neither attachable nor deletable yet.
    assert_eq!(
        code(
            &f,
            &f.owner,
            "AttachVolume",
            &[
                ("VolumeId", &id),
                ("InstanceId", INSTANCE),
                ("Device", "/dev/sdf")
            ]
        )
        .await,
        "IncorrectState"
    );
    assert_eq!(
        code(&f, &f.owner, "DeleteVolume", &[("VolumeId", &id)]).await,
        "IncorrectState"
    );
}

#[tokio::test]
async fn attachment_errors_change_nothing() {
    let f = fixture().await;
    let a = available_volume(&f).await;
    let b = available_volume(&f).await;
    launch(&f, "i-0000000000000000b", "pending").await;
    launch_in(&f, "i-0000000000000000c", "running", "mallee-1b").await;
    let attach = |vol: &str, instance: &str, device: &str| {
        vec![
            ("VolumeId".to_owned(), vol.to_owned()),
            ("InstanceId".to_owned(), instance.to_owned()),
            ("Device".to_owned(), device.to_owned()),
        ]
    };
    for (request, expected) in [
        (attach(&a, INSTANCE, "/dev/sda1"), "InvalidParameterValue"),
        (attach(&a, INSTANCE, "/dev/sdq"), "InvalidParameterValue"),
        (
            attach("vol-zz", INSTANCE, "/dev/sdf"),
            "InvalidVolumeID.Malformed",
        ),
        (
            attach("vol-0000000000000ffff", INSTANCE, "/dev/sdf"),
            "InvalidVolume.NotFound",
        ),
        (
            attach(&a, "i-0000000000000ffff", "/dev/sdf"),
            "InvalidInstanceID.NotFound",
        ),
        (
            attach(&a, "i-0000000000000000b", "/dev/sdf"),
            "IncorrectInstanceState",
        ),
        (
            attach(&a, "i-0000000000000000c", "/dev/sdf"),
            "InvalidVolume.ZoneMismatch",
        ),
    ] {
        assert_eq!(
            code(&f, &f.owner, "AttachVolume", &as_refs(&request)).await,
            expected,
            "{request:?}"
        );
    }
    let before = rows(&f).await;

    let attached = run(
        &f,
        "AttachVolume",
        &as_refs(&attach(&a, INSTANCE, "/dev/sdf")),
    )
    .await
    .expect("attach");
    assert_eq!(between(&attached, "status"), "attaching");
    let after_attach = rows(&f).await;
    assert_ne!(before, after_attach);

    for (action, request, expected) in [
        (
            "AttachVolume",
            attach(&a, INSTANCE, "/dev/sdg"),
            "VolumeInUse",
        ),
        (
            "AttachVolume",
            attach(&b, INSTANCE, "/dev/sdf"),
            "InvalidParameterValue",
        ),
        (
            "AttachVolume",
            attach(&b, INSTANCE, "/dev/xvdf"),
            "InvalidParameterValue",
        ),
        (
            "DeleteVolume",
            vec![("VolumeId".into(), a.clone())],
            "VolumeInUse",
        ),
        (
            "DetachVolume",
            vec![("VolumeId".into(), b.clone())],
            "IncorrectState",
        ),
        (
            "DetachVolume",
            vec![
                ("VolumeId".into(), a.clone()),
                ("InstanceId".into(), "i-0000000000000000b".into()),
            ],
            "InvalidAttachment.NotFound",
        ),
        (
            "DetachVolume",
            vec![
                ("VolumeId".into(), a.clone()),
                ("Device".into(), "/dev/sdg".into()),
            ],
            "InvalidAttachment.NotFound",
        ),
    ] {
        assert_eq!(
            code(&f, &f.owner, action, &as_refs(&request)).await,
            expected,
            "{action} {request:?}"
        );
    }
    // Another account sees and touches none of it.
    for (action, request) in [
        (
            "DescribeVolumes",
            vec![("VolumeId.1".to_owned(), a.clone())],
        ),
        ("DeleteVolume", vec![("VolumeId".into(), b.clone())]),
        ("DetachVolume", vec![("VolumeId".into(), a.clone())]),
        ("AttachVolume", attach(&b, INSTANCE, "/dev/sdh")),
        (
            "DescribeVolumeAttribute",
            vec![
                ("VolumeId".into(), a.clone()),
                ("Attribute".into(), "autoEnableIO".into()),
            ],
        ),
        (
            "ModifyVolumeAttribute",
            vec![
                ("VolumeId".into(), a.clone()),
                ("AutoEnableIO.Value".into(), "true".into()),
            ],
        ),
    ] {
        assert_eq!(
            code(&f, &f.other, action, &as_refs(&request)).await,
            "InvalidVolume.NotFound",
            "{action}"
        );
    }
    let listed = run_as(&f, &f.other, "DescribeVolumes", &[])
        .await
        .expect("describe");
    assert!(!listed.contains("vol-"), "{listed}");
    assert_eq!(
        rows(&f).await,
        after_attach,
        "a refused request changed something"
    );

    let described = run(&f, "DescribeVolumes", &[("VolumeId.1", &a)])
        .await
        .expect("describe");
    assert_eq!(between(&described, "status"), "in-use");
    assert!(
        described.contains("<device>/dev/sdf</device><status>attaching</status>"),
        "{described}"
    );
    let filtered = run(
        &f,
        "DescribeVolumes",
        &[
            ("Filter.1.Name", "attachment.instance-id"),
            ("Filter.1.Value.1", INSTANCE),
        ],
    )
    .await
    .expect("describe");
    assert!(
        filtered.contains(&a) && !filtered.contains(&b),
        "{filtered}"
    );

    // Detach: the volume stays in use until its node lets go.
    let detached = run(
        &f,
        "DetachVolume",
        &[("VolumeId", &a), ("InstanceId", INSTANCE)],
    )
    .await
    .expect("detach");
    assert_eq!(between(&detached, "status"), "detaching");
    let row = f.cloud.store.volume(&a).await.expect("get").expect("row");
    assert_eq!(
        (row.state.as_str(), row.desired.as_str()),
        ("in-use", "available")
    );
    assert_eq!(
        code(
            &f,
            &f.owner,
            "AttachVolume",
            &as_refs(&attach(&a, INSTANCE, "/dev/sdg"))
        )
        .await,
        "VolumeInUse"
    );
    run(&f, "DetachVolume", &[("VolumeId", &a), ("Force", "true")])
        .await
        .expect("force");
    let forced =
        Volume::decode(f.cloud.store.volume(&a).await.expect("get").expect("row")).expect("decode");
    assert!(forced.details.force_detach);

    // Deleting b (available) is accepted once, then shows `deleting`.
    run(&f, "DeleteVolume", &[("VolumeId", &b)])
        .await
        .expect("delete");
    run(&f, "DeleteVolume", &[("VolumeId", &b)])
        .await
        .expect("again");
    let row = f.cloud.store.volume(&b).await.expect("get").expect("row");
    assert_eq!(
        (row.state.as_str(), row.desired.as_str()),
        ("deleting", "deleted")
    );
}

#[tokio::test]
async fn status_and_attributes() {
    let f = fixture().await;
    let a = available_volume(&f).await;
    let status = run(&f, "DescribeVolumeStatus", &[("VolumeId.1", &a)])
        .await
        .expect("status");
    assert!(
        status.contains("<volumeStatus><status>ok</status>"),
        "{status}"
    );
    assert!(
        status.contains("<name>io-enabled</name><status>passed</status>"),
        "{status}"
    );
    let attr = run(
        &f,
        "DescribeVolumeAttribute",
        &[("VolumeId", &a), ("Attribute", "autoEnableIO")],
    )
    .await
    .expect("attribute");
    assert!(
        attr.contains("<autoEnableIO><value>false</value></autoEnableIO>"),
        "{attr}"
    );
    run(
        &f,
        "ModifyVolumeAttribute",
        &[("VolumeId", &a), ("AutoEnableIO.Value", "true")],
    )
    .await
    .expect("modify");
    let attr = run(
        &f,
        "DescribeVolumeAttribute",
        &[("VolumeId", &a), ("Attribute", "autoEnableIO")],
    )
    .await
    .expect("attribute");
    assert!(attr.contains("<value>true</value>"), "{attr}");
    let codes = run(
        &f,
        "DescribeVolumeAttribute",
        &[("VolumeId", &a), ("Attribute", "productCodes")],
    )
    .await
    .expect("attribute");
    assert!(codes.contains("<productCodes></productCodes>"), "{codes}");
    assert_eq!(
        code(
            &f,
            &f.owner,
            "DescribeVolumeAttribute",
            &[("VolumeId", &a), ("Attribute", "size")]
        )
        .await,
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            &f,
            &f.owner,
            "DescribeVolumeStatus",
            &[("VolumeId.1", "vol-0000000000000ffff")]
        )
        .await,
        "InvalidVolume.NotFound"
    );
}
