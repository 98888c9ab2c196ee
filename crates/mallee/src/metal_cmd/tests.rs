//! The commands' flags, requests, rendering and argv[0] names.

use super::render::{render, to_json};
use super::request::{Shape, p, request};
use super::*;
use crate::client::xml::Item;
use crate::client::xml::parse as parse_xml;

fn cli(args: &[&str]) -> MetalCli {
    MetalCli::try_parse_from(std::iter::once("metal").chain(args.iter().copied())).expect("parse")
}

#[test]
fn seed_flags() {
    let c = cli(&[
        "run-instances",
        "-n",
        "2",
        "-g",
        "test01",
        "-p",
        "qa-centos6u3-x86_64-striped-drives",
        "-u",
        "kyo_machines_for_demo",
    ]);
    let (action, params, _) = request(&c.command);
    assert_eq!(action, "RunInstances");
    assert_eq!(
        params,
        vec![
            p("Count", "2"),
            p("Group.1", "test01"),
            p("Profile", "qa-centos6u3-x86_64-striped-drives"),
            p("User", "kyo_machines_for_demo"),
        ]
    );
    let c = cli(&["terminate-instances", "-i", "10.0.0.5", "10.0.0.6"]);
    assert_eq!(
        request(&c.command).1,
        vec![p("Ip.1", "10.0.0.5"), p("Ip.2", "10.0.0.6")]
    );
    let c = cli(&["describe-system-groups", "-f", "--json"]);
    assert!(c.client.json);
    assert_eq!(request(&c.command).1, vec![p("FreeOnly", "true")]);
    assert!(
        MetalCli::try_parse_from([
            "metal",
            "set-profile",
            "-n",
            "a",
            "-i",
            "1.2.3.4",
            "-p",
            "x"
        ])
        .is_err(),
        "-n and -i together"
    );
    assert!(
        MetalCli::try_parse_from(["metal", "run-instances", "-p", "x", "-u", "u"]).is_err(),
        "nothing picked"
    );
}

#[test]
fn installer_profiles_and_variables() {
    let dir = std::env::temp_dir().join(format!("mallee-metal-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let tmpl = dir.join("answer.tmpl");
    std::fs::write(&tmpl, "hostname={{ hostname }}\n").expect("write");
    let c = cli(&[
        "add-profile",
        "d12",
        "--distro",
        "debian12",
        "--template",
        tmpl.to_str().expect("path"),
        "--kernel-args",
        "url={{ answer_url }}",
        "--var",
        "role=web",
        "--var",
        "tz=UTC",
        "--check-in-port",
        "none",
    ]);
    let cmd = load_files(&c.command).expect("load");
    let (action, params, _) = request(&cmd);
    assert_eq!(action, "AddProfile");
    assert_eq!(
        params,
        vec![
            p("Name", "d12"),
            p("Distro", "debian12"),
            p("Template", "hostname={{ hostname }}\n"),
            p("KernelArgs", "url={{ answer_url }}"),
            p("Variables", r#"{"role":"web","tz":"UTC"}"#),
            p("CheckInPort", "none"),
        ]
    );
    // An image profile, or an installer one: not both, not neither.
    for bad in [
        vec!["add-profile", "x"],
        vec![
            "add-profile",
            "x",
            "--location",
            "/i",
            "--distro",
            "d",
            "--template",
            "t",
        ],
        vec!["add-profile", "x", "--distro", "d"],
    ] {
        assert!(
            MetalCli::try_parse_from(std::iter::once("metal").chain(bad.iter().copied())).is_err(),
            "{bad:?}"
        );
    }
    let c = cli(&[
        "add-profile",
        "x",
        "--distro",
        "d",
        "--template",
        "/nonexistent/t",
    ]);
    assert!(
        load_files(&c.command).is_err(),
        "the template file must exist"
    );
    let c = cli(&[
        "add-system",
        "--name",
        "m1",
        "--mac",
        "52:54:00:00:00:01",
        "--ip",
        "10.0.0.1",
        "--group",
        "g",
        "--var",
        "slot=u07",
    ]);
    assert!(
        request(&c.command)
            .1
            .contains(&p("Variables", r#"{"slot":"u07"}"#))
    );
    let c = cli(&["edit-system", "--name", "m1", "--clear-vars"]);
    assert_eq!(
        request(&c.command).1,
        vec![p("Name", "m1"), p("Variables", "{}")]
    );
    let c = cli(&["edit-system", "--name", "m1", "--var", "novalue"]);
    assert!(load_files(&c.command).is_err(), "KEY=VALUE");
    let c = cli(&["render-answer-file", "-n", "m1", "-p", "d12"]);
    assert_eq!(
        request(&c.command).1,
        vec![p("Name", "m1"), p("Profile", "d12")]
    );
    let xml = "<RenderAnswerFileResponse><requestId>r</requestId><name>m1</name><profile>d12</profile><answerFile>hostname=m1\nrole=&lt;db&gt;\n</answerFile></RenderAnswerFileResponse>";
    assert_eq!(
        render(Shape::AnswerFile, &parse_xml(xml).expect("xml"), &[]),
        vec!["hostname=m1\nrole=<db>"]
    );

    // Import: an installer profile with its template in a file next to
    // the import file, and a system's variables.
    let rack = dir.join("rack.json");
    std::fs::write(
        &rack,
        r#"{"distros":[{"name":"debian12","kernel":"/k","initrd":"/i","kernel_args":"url={{ answer_url }}"}],
            "profiles":[{"name":"d12","distro":"debian12","template_file":"answer.tmpl",
                         "variables":{"role":"web"},"check_in_port":null},
                        {"name":"img","location":"/srv/i.raw"}],
            "systems":[{"name":"m1","mac":"52:54:00:00:00:01","ip":"10.0.0.1","group":"g",
                        "variables":{"slot":"u07"}}]}"#,
    )
    .expect("write");
    let cmds = import_commands(&rack).expect("import");
    let params: Vec<_> = cmds.iter().map(|c| request(c).1).collect();
    assert!(
        params[1].contains(&p("Template", "hostname={{ hostname }}\n")),
        "{params:?}"
    );
    assert!(params[1].contains(&p("CheckInPort", "none")), "{params:?}");
    assert!(
        params[1].contains(&p("Variables", r#"{"role":"web"}"#)),
        "{params:?}"
    );
    assert!(
        !params[2].iter().any(|(k, _)| k == "CheckInPort"),
        "{params:?}"
    );
    assert!(
        params[3].contains(&p("Variables", r#"{"slot":"u07"}"#)),
        "{params:?}"
    );
    std::fs::write(&rack, r#"{"profiles":[{"name":"bad","distro":"d"}]}"#).expect("write");
    assert!(
        import_commands(&rack).is_err(),
        "an installer profile needs a template"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn argv0_names() {
    assert_eq!(
        argv0_command(std::ffi::OsStr::new(
            "/usr/local/bin/metaleuca-describe-instances"
        )),
        Some("describe-instances".into())
    );
    assert_eq!(argv0_command(std::ffi::OsStr::new("mallee")), None);
    assert_eq!(argv0_command(std::ffi::OsStr::new("metaleuca-")), None);
}

#[test]
fn renders_answers_as_lines_and_json() {
    let xml = "<?xml version=\"1.0\"?><RunInstancesResponse xmlns=\"x\"><requestId>r</requestId><instancesSet><item><name>m1</name><ip>10.254.0.11</ip><owner>demo</owner><profile>p</profile><state>provisioning</state><instanceState>pending</instanceState><step>powering-on</step></item><item><name>m2</name><ip>10.254.0.12</ip><owner>demo</owner><profile>p</profile><state>failed</state><instanceState>failed</instanceState><reason>timeout: a &amp; b</reason></item></instancesSet></RunInstancesResponse>";
    assert_eq!(
        render(Shape::Instances, &parse_xml(xml).expect("xml"), &[]),
        vec![
            "INSTANCE\tm1\tp\t10.254.0.11\tpending\tdemo\tpowering-on",
            "INSTANCE\tm2\tp\t10.254.0.12\tfailed\tdemo\ttimeout: a & b",
        ]
    );
    let j = to_json(Shape::Instances, &parse_xml(xml).expect("xml"));
    assert_eq!(j[1]["reason"], "timeout: a & b");
    assert_eq!(
        parse_xml("<a></a>").expect("xml").items("instancesSet"),
        Vec::<Item>::new()
    );
}

#[test]
fn renders_groups_profiles_and_returns() {
    let groups = parse_xml(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeSystemGroupsResponse xmlns=\"x\"><requestId>r</requestId><groupSet><item><name>test01</name><description>QA rack &amp; co</description><wipe>zero</wipe><total>3</total><free>1</free></item></groupSet><systemSet><item><name>m3</name><mac>52:54:00:00:00:03</mac><ip>10.254.0.13</ip><group>test01</group><powerDriver>qemu</powerDriver><netboot>false</netboot><state>free</state></item></systemSet></DescribeSystemGroupsResponse>",
    )
    .expect("xml");
    assert_eq!(
        render(Shape::Groups, &groups, &[]),
        [
            "GROUP\ttest01\t3\t1\tQA rack & co\tzero",
            "SYSTEM\ttest01\tm3\t10.254.0.13\tfree\t"
        ]
    );
    let j = to_json(Shape::Groups, &groups);
    assert_eq!(j["groups"][0]["description"], "QA rack & co");
    assert_eq!(j["systems"][0]["netboot"], "false");
    assert!(
        j["systems"][0].get("owner").is_none(),
        "absent fields stay absent"
    );
    assert_eq!(
        render(Shape::Systems, &groups, &[]),
        ["SYSTEM\tm3\t52:54:00:00:00:03\t10.254.0.13\ttest01\tqemu\tfree\t\t\tlocal\t"]
    );

    let added = parse_xml("<AddProfileResponse><requestId>r</requestId><name>img</name><kind>image</kind><location>/srv/img.raw</location><size>13</size><sha256>ab12</sha256></AddProfileResponse>").expect("xml");
    assert_eq!(
        render(Shape::Profile, &added, &[]),
        ["PROFILE\timg\t/srv/img.raw\t13\tab12"]
    );
    assert_eq!(
        to_json(Shape::Profile, &added).to_string(),
        r#"{"kind":"image","location":"/srv/img.raw","name":"img","sha256":"ab12","size":"13"}"#
    );
    let done = parse_xml("<RemoveSystemResponse><requestId>r</requestId><return>true</return></RemoveSystemResponse>").expect("xml");
    assert_eq!(
        render(Shape::Return("SYSTEM"), &done, &[p("Name", "m1")]),
        ["SYSTEM\tm1"]
    );
    assert_eq!(
        to_json(Shape::Return("SYSTEM"), &done).to_string(),
        r#"{"return":"true"}"#
    );
}
