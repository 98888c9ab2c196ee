//! A golden test of the metal API: a walkthrough of requests by an
//! administrator and two other accounts against a real store (provisioning
//! off), whose answers (XML bodies, or status, code and message) must stay
//! exactly those in `walkthrough.golden`. Times that depend on the clock
//! read `T`, the test's directory `$DIR`.
//!
//! To see a change: `MALLEE_UPDATE_GOLDEN=1 cargo test -p mallee-api
//! walkthrough` rewrites the golden file; review its diff.

use mallee_cloud::metal::Metal;
use mallee_cloud::testkit::{TestCloud, principal};

use super::{MetalAction, MetalContext, execute};
use crate::error::ApiError;
use crate::query::QueryParams;

type Step = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Who asks (`admin`, `qa`, `qb`), the action and its parameters
/// (`$DIR`: the test's directory).
const STEPS: &[Step] = &[
    ("admin", "DescribeDistros", &[]),
    ("qa", "AddGroup", &[("Name", "g")]),
    (
        "admin",
        "AddGroup",
        &[
            ("Name", "test01"),
            ("Description", "QA rack & <co>"),
            ("Wipe", "zero"),
        ],
    ),
    ("admin", "AddGroup", &[("Name", "spare")]),
    ("admin", "AddGroup", &[("Name", "bad name")]),
    ("admin", "AddGroup", &[("Name", "g2"), ("Wipe", "shred")]),
    (
        "admin",
        "AddDistro",
        &[
            ("Name", "debian12"),
            ("Kernel", "/k"),
            ("Initrd", "/i"),
            ("KernelArgs", "auto=true"),
        ],
    ),
    (
        "admin",
        "AddDistro",
        &[("Name", "debian13"), ("Kernel", "/k")],
    ),
    (
        "admin",
        "AddSystem",
        &[
            ("Name", "m1"),
            ("Mac", "52:54:00:00:00:01"),
            ("Ip", "10.254.0.11"),
            ("Group", "test01"),
            ("Variables", r#"{"slot":"u01"}"#),
        ],
    ),
    (
        "admin",
        "AddSystem",
        &[
            ("Name", "m2"),
            ("Mac", "52-54-00-00-00-02"),
            ("Ip", "10.254.0.12"),
            ("Group", "test01"),
            (
                "Power",
                r#"{"driver":"ipmi","host":"10.1.0.5","user":"root","password":"pw"}"#,
            ),
            ("Disk", "/dev/sda"),
            ("Wipe", "none"),
        ],
    ),
    (
        "admin",
        "AddSystem",
        &[
            ("Name", "m3"),
            ("Mac", "52:54:00:00:00:03"),
            ("Ip", "10.254.0.13"),
            ("Group", "test01"),
            ("Hostname", "m3-rack"),
        ],
    ),
    (
        "admin",
        "AddSystem",
        &[
            ("Name", "m4"),
            ("Mac", "52:54:00:00:00:01"),
            ("Ip", "10.254.0.14"),
            ("Group", "test01"),
        ],
    ),
    (
        "admin",
        "AddSystem",
        &[
            ("Name", "m5"),
            ("Mac", "52:54:00:00:00:05"),
            ("Ip", "10.254.0.15"),
            ("Group", "nogroup"),
        ],
    ),
    (
        "admin",
        "AddSystem",
        &[
            ("Name", "m6"),
            ("Mac", "nope"),
            ("Ip", "10.254.0.16"),
            ("Group", "test01"),
        ],
    ),
    (
        "admin",
        "AddProfile",
        &[
            ("Name", "img"),
            ("Location", "$DIR/img.raw"),
            ("AgentArgs", "console=ttyS0"),
        ],
    ),
    (
        "admin",
        "AddProfile",
        &[
            ("Name", "img2"),
            ("Location", "$DIR/img.raw"),
            (
                "Sha256",
                "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
            ),
            ("CheckInPort", "2222"),
        ],
    ),
    (
        "admin",
        "AddProfile",
        &[("Name", "missing"), ("Location", "/nonexistent/x.raw")],
    ),
    (
        "admin",
        "AddProfile",
        &[("Name", "obj"), ("Location", "object:bucket/key")],
    ),
    (
        "admin",
        "AddProfile",
        &[("Name", "rel"), ("Location", "x.raw")],
    ),
    (
        "admin",
        "AddProfile",
        &[
            ("Name", "d12"),
            ("Distro", "debian12"),
            ("Template", "hostname={{ hostname }}\nrole={{ role }}\n"),
            ("Variables", r#"{"role":"db"}"#),
            ("CheckInPort", "none"),
        ],
    ),
    (
        "admin",
        "AddProfile",
        &[("Name", "d13"), ("Distro", "nodistro"), ("Template", "x")],
    ),
    (
        "admin",
        "AddProfile",
        &[
            ("Name", "d14"),
            ("Distro", "debian12"),
            ("Template", "x"),
            ("Location", "/i"),
        ],
    ),
    ("qa", "DescribeProfiles", &[]),
    ("qa", "DescribeDistros", &[]),
    ("qa", "DescribeSystems", &[]),
    (
        "qa",
        "DescribeSystems",
        &[("Name.1", "m2"), ("Ip.1", "10.254.0.11")],
    ),
    ("qa", "DescribeSystems", &[("Name.1", "nope")]),
    ("qa", "DescribeSystemGroups", &[]),
    ("qa", "DescribeSystemGroups", &[("Group", "nope")]),
    (
        "qa",
        "ReserveSystems",
        &[
            ("Count", "1"),
            ("Group.1", "spare"),
            ("Group.2", "test01"),
            ("User", "demo"),
        ],
    ),
    (
        "qa",
        "ReserveSystems",
        &[("Count", "5"), ("Group.1", "test01"), ("User", "demo")],
    ),
    (
        "qa",
        "ReserveSystems",
        &[
            ("Count", "1"),
            ("Group.1", "test01"),
            ("Ip.1", "10.254.0.12"),
            ("User", "demo"),
        ],
    ),
    (
        "admin",
        "ReserveSystems",
        &[("Name.1", "m2"), ("User", "ops")],
    ),
    ("qb", "ReserveSystems", &[("Name.1", "m2"), ("User", "x")]),
    ("qb", "ReserveSystems", &[("Name.1", "m9"), ("User", "x")]),
    (
        "qa",
        "DescribeSystemGroups",
        &[("Group", "test01"), ("FreeOnly", "true")],
    ),
    ("qa", "DescribeSystemUsers", &[]),
    ("admin", "DescribeSystemUsers", &[]),
    ("admin", "DescribeSystemUsers", &[("User", "ops")]),
    ("qb", "DescribeInstances", &[]),
    ("qa", "DescribeInstances", &[("User", "demo")]),
    ("qa", "DescribeInstances", &[("User", "bad user")]),
    ("qb", "SetProfile", &[("Name", "m1"), ("Profile", "img")]),
    ("qa", "SetProfile", &[("Name", "m1"), ("Profile", "nope")]),
    (
        "qa",
        "SetProfile",
        &[("Ip", "10.254.0.11"), ("Profile", "img")],
    ),
    (
        "qa",
        "SetProfile",
        &[("Name", "m1"), ("Ip", "10.254.0.11"), ("Profile", "img")],
    ),
    ("qa", "EnableNetboot", &[("Name", "m1")]),
    ("qa", "DisableNetboot", &[("Name", "m1")]),
    ("qa", "EnableNetboot", &[("Name", "m3")]),
    ("qa", "RebootSystem", &[("Name", "m1")]),
    ("qb", "RebootSystem", &[("Name", "m1")]),
    (
        "qa",
        "RunInstances",
        &[
            ("Count", "1"),
            ("Group.1", "test01"),
            ("Profile", "img"),
            ("User", "demo"),
        ],
    ),
    ("qa", "ReleaseSystems", &[("User", "demo")]),
    ("qa", "TerminateInstances", &[("Ip.1", "10.254.0.13")]),
    (
        "admin",
        "EditSystem",
        &[
            ("Name", "m3"),
            ("Mac", "52:54:00:00:00:33"),
            ("Hostname", "h3"),
            ("Wipe", "group"),
            ("Variables", "{}"),
            ("Disk", ""),
        ],
    ),
    (
        "admin",
        "EditSystem",
        &[("Name", "m3"), ("Ip", "10.254.0.11")],
    ),
    ("admin", "EditSystem", &[("Name", "zz"), ("Hostname", "h")]),
    ("admin", "EditSystem", &[("Name", "m3")]),
    ("admin", "RenderAnswerFile", &[("Name", "m1")]),
    ("admin", "ConfirmPoweredOff", &[("Name", "m1")]),
    ("qa", "ConfirmPoweredOff", &[("Name", "m1")]),
    ("admin", "RemoveGroup", &[("Name", "test01")]),
    ("admin", "RemoveGroup", &[("Name", "spare")]),
    ("admin", "RemoveGroup", &[("Name", "spare")]),
    ("admin", "RemoveDistro", &[("Name", "debian12")]),
    ("admin", "RemoveProfile", &[("Name", "d12")]),
    ("admin", "RemoveDistro", &[("Name", "debian12")]),
    ("admin", "RemoveDistro", &[("Name", "debian12")]),
    ("admin", "RemoveProfile", &[("Name", "d12")]),
    ("admin", "RemoveSystem", &[("Name", "m1")]),
    ("admin", "RemoveSystem", &[("Name", "m3")]),
    ("admin", "RemoveSystem", &[("Name", "m3")]),
    ("qa", "Frobnicate", &[]),
    (
        "qa",
        "RunInstances",
        &[("Group.1", "g"), ("Profile", "p"), ("User", "u")],
    ),
    ("qa", "DescribeSystems", &[]),
    ("admin", "DescribeProfiles", &[]),
];

/// Clock-dependent times become `T` (a new system's `0` stays), the
/// test's directory `$DIR`.
fn normalise(text: &str, dir: &str) -> String {
    let text = text.replace(dir, "$DIR");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("<stateSince>") {
        let start = i + "<stateSince>".len();
        out.push_str(&rest[..start]);
        let end = rest[start..].find('<').map_or(rest.len(), |e| start + e);
        out.push_str(if &rest[start..end] == "0" { "0" } else { "T" });
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn walkthrough_answers_stay_the_same() {
    let tc = TestCloud::new().await;
    let metal = Metal::disabled(tc.store.clone(), tc.blobs.clone());
    let admin = principal(&tc, "ops", true).await;
    let qa = principal(&tc, "alpha", false).await;
    let qb = principal(&tc, "bravo", false).await;
    let dir = tc.dir.path().to_str().expect("utf-8 path").to_owned();
    std::fs::write(tc.dir.path().join("img.raw"), b"a disk image\n").expect("image");

    let mut transcript = String::new();
    for (n, (who, action, pairs)) in STEPS.iter().enumerate() {
        let caller = match *who {
            "admin" => &admin,
            "qa" => &qa,
            _ => &qb,
        };
        let params = QueryParams::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.replace("$DIR", &dir))),
        )
        .expect("params");
        let request_id = format!("req-{n}");
        let ctx = MetalContext {
            metal: &metal,
            principal: caller,
            request_id: &request_id,
        };
        let answer = match MetalAction::parse(action, &params) {
            Ok(parsed) => execute(&ctx, parsed).await,
            Err(e) => Err(e),
        };
        let shown = match answer {
            Ok(body) => format!("200 {body}"),
            Err(e) => {
                let e = ApiError::from(e);
                format!("{} {} {}", e.status.as_u16(), e.code, e.message)
            }
        };
        transcript.push_str(&format!("### {who} {action} {pairs:?}\n{shown}\n"));
    }
    let transcript = normalise(&transcript, &dir);
    let golden_path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/metal/walkthrough.golden");
    if std::env::var_os("MALLEE_UPDATE_GOLDEN").is_some() {
        std::fs::write(golden_path, &transcript).expect("write golden");
    }
    let golden = std::fs::read_to_string(golden_path).expect("golden file");
    for (i, (got, want)) in transcript.lines().zip(golden.lines()).enumerate() {
        assert_eq!(got, want, "line {} of walkthrough.golden", i + 1);
    }
    assert_eq!(transcript.lines().count(), golden.lines().count());
}
