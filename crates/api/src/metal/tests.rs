//! The metal API's parsing, its authorisation gate and its error codes.

use std::collections::BTreeMap;

use http::StatusCode;
use mallee_cloud::metal::errors::from_inventory;
use mallee_cloud::metal::systems::Pick;
use mallee_metal::inventory::InventoryError;
use mallee_metal::model::{State, Wipe};

use super::instances::RunInstances;
use super::inventory::{AddGroup, AddSystem, EditSystem};
use super::profiles::AddProfile;
use super::*;
use crate::error::ApiError;
use crate::query::QueryError;

use crate::query::test_params as params;

#[test]
fn parses_run_instances_by_group_and_by_ip() {
    let a = MetalAction::parse(
        "RunInstances",
        &params(&[
            ("Count", "2"),
            ("Group.1", "test01"),
            ("Profile", "qa-centos6u3-x86_64-striped-drives"),
            ("User", "kyo_machines_for_demo"),
        ]),
    )
    .expect("parse");
    assert_eq!(
        a,
        MetalAction::RunInstances(RunInstances {
            pick: Pick::Groups {
                groups: vec!["test01".into()],
                count: 2
            },
            profile: "qa-centos6u3-x86_64-striped-drives".into(),
            user: "kyo_machines_for_demo".into(),
        })
    );
    let a = MetalAction::parse(
        "RunInstances",
        &params(&[
            ("Ip.1", "10.0.0.5"),
            ("Ip.2", "10.0.0.6"),
            ("Profile", "p"),
            ("User", "u"),
        ]),
    )
    .expect("parse");
    assert!(
        matches!(a, MetalAction::RunInstances(RunInstances { pick: Pick::Systems(t), .. }) if t.len() == 2)
    );
}

#[test]
fn refuses_ambiguous_or_incomplete_requests() {
    let both = MetalAction::parse(
        "RunInstances",
        &params(&[
            ("Count", "1"),
            ("Group.1", "g"),
            ("Ip.1", "10.0.0.5"),
            ("Profile", "p"),
            ("User", "u"),
        ]),
    );
    assert!(matches!(both, Err(MetalApiError::Invalid(_))), "{both:?}");
    let no_count = MetalAction::parse(
        "RunInstances",
        &params(&[("Group.1", "g"), ("Profile", "p"), ("User", "u")]),
    );
    assert!(
        matches!(no_count, Err(MetalApiError::Query(QueryError::Missing(ref n))) if n == "Count")
    );
    let zero = MetalAction::parse(
        "ReserveSystems",
        &params(&[("Count", "0"), ("Group.1", "g"), ("User", "u")]),
    );
    assert!(matches!(zero, Err(MetalApiError::Query(_))), "{zero:?}");
    let bad_user = MetalAction::parse("TerminateInstances", &params(&[("User", "a b")]));
    assert!(matches!(bad_user, Err(MetalApiError::Invalid(_))));
    let target = MetalAction::parse("RebootSystem", &params(&[]));
    assert!(matches!(
        target,
        Err(MetalApiError::Query(QueryError::Missing(_)))
    ));
    assert!(matches!(
        MetalAction::parse("Frobnicate", &params(&[])),
        Err(MetalApiError::InvalidAction(_))
    ));
    let rel = MetalAction::parse(
        "AddProfile",
        &params(&[("Name", "p"), ("Location", "disk.raw")]),
    );
    assert!(matches!(
        rel,
        Err(MetalApiError::Query(QueryError::Invalid { .. }))
    ));
}

#[test]
fn parses_systems_with_power_settings() {
    let a = MetalAction::parse(
        "AddSystem",
        &params(&[
            ("Name", "m1"),
            ("Mac", "52-54-00-AA-00-01"),
            ("Ip", "10.254.0.11"),
            ("Group", "test01"),
            (
                "Power",
                r#"{"driver":"ipmi","host":"10.1.0.5","user":"root","password":"pw"}"#,
            ),
        ]),
    )
    .expect("parse");
    let MetalAction::AddSystem(AddSystem(s)) = a else {
        panic!("{a:?}")
    };
    assert_eq!(s.mac.as_str(), "52:54:00:aa:00:01");
    assert_eq!(s.power.driver_name(), "ipmi");
    assert_eq!(s.state, State::Free);
    let bad = MetalAction::parse(
        "AddSystem",
        &params(&[
            ("Name", "m1"),
            ("Mac", "52:54:00:aa:00:01"),
            ("Ip", "10.254.0.11"),
            ("Group", "test01"),
            ("Power", r#"{"driver":"telepathy"}"#),
        ]),
    );
    assert!(matches!(
        bad,
        Err(MetalApiError::Query(QueryError::Invalid { .. }))
    ));
    // Every missing field at once, the driver's own example, no secret echoed.
    let incomplete = MetalAction::parse(
        "EditSystem",
        &params(&[
            ("Name", "m1"),
            ("Power", r#"{"driver":"redfish","password":"hunter2"}"#),
        ]),
    )
    .expect_err("incomplete")
    .to_string();
    assert!(
        incomplete.contains("redfish power settings: missing url, user; a complete example: {"),
        "{incomplete}"
    );
    assert!(
        !incomplete.contains("hunter2") && !incomplete.contains("ipmi"),
        "{incomplete}"
    );
    assert!(
        MetalAction::parse("EditSystem", &params(&[("Name", "m1")])).is_err(),
        "an edit that changes nothing is refused"
    );
}

#[test]
fn parses_installer_profiles_and_variables() {
    let a = MetalAction::parse(
        "AddProfile",
        &params(&[
            ("Name", "d12"),
            ("Distro", "debian12"),
            (
                "Template",
                "hostname={{ hostname }}\nrole={{ role | web }}\n",
            ),
            ("KernelArgs", "auto=true url={{ answer_url }}"),
            ("Variables", r#"{"role":"db","tz":"UTC"}"#),
            ("CheckInPort", "none"),
        ]),
    )
    .expect("installer profile");
    let MetalAction::AddProfile(AddProfile::Installer(p)) = &a else {
        panic!("{a:?}")
    };
    assert_eq!((p.name.as_str(), p.distro.as_str()), ("d12", "debian12"));
    assert_eq!(p.variables.get("role").map(String::as_str), Some("db"));
    assert_eq!(p.check_in_port, None);
    assert!(a.admin_only());

    // Image profiles keep the SSH fallback unless told otherwise.
    let a = MetalAction::parse(
        "AddProfile",
        &params(&[("Name", "img"), ("Location", "/srv/i.raw")]),
    )
    .expect("image profile");
    assert!(matches!(
        a,
        MetalAction::AddProfile(AddProfile::Image(ref p)) if p.check_in_port == Some(22)
    ));
    let a = MetalAction::parse(
        "AddProfile",
        &params(&[
            ("Name", "img"),
            ("Location", "/srv/i.raw"),
            ("CheckInPort", "2222"),
        ]),
    )
    .expect("image profile");
    assert!(matches!(
        a,
        MetalAction::AddProfile(AddProfile::Image(ref p)) if p.check_in_port == Some(2222)
    ));

    for bad in [
        // A template that does not parse.
        vec![("Name", "x"), ("Distro", "d"), ("Template", "a={{ b")],
        vec![
            ("Name", "x"),
            ("Distro", "d"),
            ("Template", "ok"),
            ("KernelArgs", "{{ bad name }}"),
        ],
        // No template.
        vec![("Name", "x"), ("Distro", "d")],
        // Both kinds at once.
        vec![
            ("Name", "x"),
            ("Distro", "d"),
            ("Template", "t"),
            ("Location", "/srv/i.raw"),
        ],
        vec![("Name", "x"), ("Location", "/i"), ("CheckInPort", "http")],
        vec![("Name", "x"), ("Location", "/i"), ("Variables", "[1]")],
        vec![
            ("Name", "x"),
            ("Location", "/i"),
            ("Variables", r#"{"bad name":"v"}"#),
        ],
    ] {
        assert!(
            MetalAction::parse("AddProfile", &params(&bad)).is_err(),
            "{bad:?}"
        );
    }

    let a = MetalAction::parse(
        "AddSystem",
        &params(&[
            ("Name", "m1"),
            ("Mac", "52:54:00:00:00:01"),
            ("Ip", "10.0.0.1"),
            ("Group", "g"),
            ("Variables", r#"{"slot":"u07"}"#),
        ]),
    )
    .expect("system");
    let MetalAction::AddSystem(AddSystem(s)) = a else {
        panic!()
    };
    assert_eq!(s.variables.get("slot").map(String::as_str), Some("u07"));
    let a = MetalAction::parse(
        "EditSystem",
        &params(&[("Name", "m1"), ("Variables", "{}")]),
    )
    .expect("clear variables");
    let MetalAction::EditSystem(EditSystem { edit, .. }) = a else {
        panic!()
    };
    assert_eq!(edit.variables, Some(BTreeMap::new()));
    let a = MetalAction::parse(
        "RenderAnswerFile",
        &params(&[("Name", "m1"), ("Profile", "d12")]),
    )
    .expect("render");
    assert!(a.admin_only());
}

#[test]
fn parses_wipe_policies() {
    let a = MetalAction::parse("AddGroup", &params(&[("Name", "test01"), ("Wipe", "zero")]))
        .expect("group");
    assert_eq!(
        a,
        MetalAction::AddGroup(AddGroup(mallee_cloud::metal::inventory::NewGroup {
            name: "test01".into(),
            description: String::new(),
            wipe: Some(Wipe::Zero),
        }))
    );
    assert!(a.admin_only());
    assert!(MetalAction::parse("AddGroup", &params(&[("Name", "g"), ("Wipe", "shred")])).is_err());
    let edit = |w: &str| {
        let a = MetalAction::parse("EditSystem", &params(&[("Name", "m1"), ("Wipe", w)]))
            .expect("edit");
        let MetalAction::EditSystem(EditSystem { edit, .. }) = a else {
            panic!("{a:?}")
        };
        edit.wipe
    };
    assert_eq!(edit("zero"), Some(Some(Wipe::Zero)));
    assert_eq!(edit("none"), Some(Some(Wipe::None)));
    assert_eq!(edit("group"), Some(None));
    let a = MetalAction::parse(
        "AddSystem",
        &params(&[
            ("Name", "m1"),
            ("Mac", "52:54:00:00:00:01"),
            ("Ip", "10.254.0.11"),
            ("Group", "test01"),
            ("Wipe", "zero"),
        ]),
    )
    .expect("add");
    let MetalAction::AddSystem(AddSystem(s)) = a else {
        panic!("{a:?}")
    };
    assert_eq!(s.wipe, Some(Wipe::Zero));
}

#[test]
fn admin_only_actions() {
    // Owner scoping is the domain's: mallee_cloud::metal::access's tests.
    assert!(
        MetalAction::parse("RemoveSystem", &params(&[("Name", "m1")]))
            .expect("parse")
            .admin_only()
    );
    assert!(
        !MetalAction::parse("DescribeInstances", &params(&[]))
            .expect("parse")
            .admin_only()
    );
}

#[test]
fn error_codes_and_statuses() {
    let e: ApiError = MetalApiError::from(from_inventory(InventoryError::NotEnoughFree {
        group: "test01".into(),
        wanted: 3,
        free: 2,
    }))
    .into();
    assert_eq!(e.code, "InsufficientSystemCapacity");
    assert!(e.message.contains("nothing reserved"), "{}", e.message);
    let e: ApiError = MetalApiError::Unauthorized("no".into()).into();
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    let e: ApiError = MetalApiError::Internal("disk on fire".into()).into();
    assert!(!e.message.contains("disk on fire"));
}

#[test]
fn admin_only_operations_are_actions() {
    for name in mallee_cloud::metal::access::ADMIN_ONLY {
        assert!(MetalAction::NAMES.contains(name), "{name} is no action");
    }
    assert_eq!(MetalAction::SERVICE, "metal");
    let a = MetalAction::parse("DisableNetboot", &params(&[("Name", "m1")])).expect("parse");
    assert_eq!(
        (a.name(), a.iam_action().as_str()),
        ("DisableNetboot", "metal:DisableNetboot")
    );
}
