//! A command as a `metal` API request: the action, its parameters and
//! how its answer is printed.

use std::collections::BTreeMap;

use super::{MetalCmdError, MetalCommand, PickArgs, ScopeArgs, TargetArgs};

pub(super) fn p(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

fn list(out: &mut Vec<(String, String)>, name: &str, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        out.push(p(&format!("{name}.{}", i + 1), v.clone()));
    }
}

fn target(t: &TargetArgs) -> Vec<(String, String)> {
    match (&t.name, &t.ip) {
        (Some(n), _) => vec![p("Name", n.clone())],
        (None, Some(i)) => vec![p("Ip", i.clone())],
        (None, None) => Vec::new(),
    }
}

fn pick(a: &PickArgs) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(c) = a.count {
        out.push(p("Count", c.to_string()));
        list(&mut out, "Group", &a.group);
    }
    list(&mut out, "Ip", &a.ip);
    out
}

fn scope(a: &ScopeArgs) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(u) = &a.user {
        out.push(p("User", u.clone()));
    }
    list(&mut out, "Ip", &a.ip);
    out
}

fn opt(out: &mut Vec<(String, String)>, name: &str, value: Option<&String>) {
    if let Some(v) = value {
        out.push(p(name, v.clone()));
    }
}

/// How an answer is printed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shape {
    Distros,
    Profiles,
    Systems,
    Groups,
    Users,
    Instances,
    Profile,
    AnswerFile,
    Return(&'static str),
}

/// `KEY=VALUE` arguments as the `Variables` JSON object.
fn variables_json(vars: &[String]) -> String {
    let map: BTreeMap<&str, &str> = vars
        .iter()
        .map(|v| v.split_once('=').unwrap_or((v.as_str(), "")))
        .collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
}

/// Reads the files a command names (an installer profile's template).
pub(super) fn load_files(cmd: &MetalCommand) -> Result<MetalCommand, MetalCmdError> {
    let mut cmd = cmd.clone();
    if let MetalCommand::AddProfile {
        template: Some(path),
        template_text,
        ..
    } = &mut cmd
        && template_text.is_none()
    {
        *template_text = Some(
            std::fs::read_to_string(&*path)
                .map_err(|e| MetalCmdError::Local(format!("{}: {e}", path.display())))?,
        );
    }
    let vars = match &cmd {
        MetalCommand::AddProfile { var, .. } => var.as_slice(),
        MetalCommand::AddSystem(s) => s.var.as_slice(),
        MetalCommand::EditSystem(s) => s.var.as_slice(),
        _ => &[],
    };
    if let Some(bad) = vars.iter().find(|v| !v.contains('=')) {
        return Err(MetalCmdError::Local(format!(
            "--var {bad}: expected KEY=VALUE"
        )));
    }
    Ok(cmd)
}

/// The action, its parameters and how its answer is printed.
pub(super) fn request(cmd: &MetalCommand) -> (&'static str, Vec<(String, String)>, Shape) {
    use MetalCommand as C;
    match cmd {
        C::DescribeDistros => ("DescribeDistros", vec![], Shape::Distros),
        C::DescribeProfiles => ("DescribeProfiles", vec![], Shape::Profiles),
        C::DescribeSystems { name, ip } => {
            let mut out = Vec::new();
            list(&mut out, "Name", name);
            list(&mut out, "Ip", ip);
            ("DescribeSystems", out, Shape::Systems)
        }
        C::DescribeSystemGroups { group, free } => {
            let mut out = vec![p("FreeOnly", free.to_string())];
            opt(&mut out, "Group", group.as_ref());
            ("DescribeSystemGroups", out, Shape::Groups)
        }
        C::DescribeSystemUsers { user } => {
            let mut out = Vec::new();
            opt(&mut out, "User", user.as_ref());
            ("DescribeSystemUsers", out, Shape::Users)
        }
        C::SetProfile { target: t, profile } => {
            let mut out = target(t);
            out.push(p("Profile", profile.clone()));
            ("SetProfile", out, Shape::Systems)
        }
        C::EnableNetboot(t) => ("EnableNetboot", target(t), Shape::Systems),
        C::DisableNetboot(t) => ("DisableNetboot", target(t), Shape::Systems),
        C::RebootSystem(t) => ("RebootSystem", target(t), Shape::Systems),
        C::ReserveSystems { pick: a, user } => {
            let mut out = pick(a);
            out.push(p("User", user.clone()));
            ("ReserveSystems", out, Shape::Systems)
        }
        C::ReleaseSystems(a) => ("ReleaseSystems", scope(a), Shape::Systems),
        C::RunInstances {
            pick: a,
            profile,
            user,
        } => {
            let mut out = pick(a);
            out.push(p("Profile", profile.clone()));
            out.push(p("User", user.clone()));
            ("RunInstances", out, Shape::Instances)
        }
        C::DescribeInstances { user } => {
            let mut out = Vec::new();
            opt(&mut out, "User", user.as_ref());
            ("DescribeInstances", out, Shape::Instances)
        }
        C::TerminateInstances(a) => ("TerminateInstances", scope(a), Shape::Instances),
        C::AddGroup {
            name,
            description,
            wipe,
        } => {
            let mut out = vec![
                p("Name", name.clone()),
                p("Description", description.clone()),
            ];
            opt(&mut out, "Wipe", wipe.as_ref());
            ("AddGroup", out, Shape::Return("GROUP"))
        }
        C::RemoveGroup { name } => (
            "RemoveGroup",
            vec![p("Name", name.clone())],
            Shape::Return("GROUP"),
        ),
        C::AddDistro {
            name,
            kernel,
            initrd,
            kernel_args,
        } => (
            "AddDistro",
            vec![
                p("Name", name.clone()),
                p("Kernel", kernel.clone()),
                p("Initrd", initrd.clone()),
                p("KernelArgs", kernel_args.clone()),
            ],
            Shape::Return("DISTRO"),
        ),
        C::RemoveDistro { name } => (
            "RemoveDistro",
            vec![p("Name", name.clone())],
            Shape::Return("DISTRO"),
        ),
        C::AddProfile {
            name,
            location,
            sha256,
            agent_args,
            distro,
            kernel_args,
            var,
            check_in_port,
            template_text,
            ..
        } => {
            let mut out = vec![p("Name", name.clone())];
            opt(&mut out, "Location", location.as_ref());
            opt(&mut out, "Sha256", sha256.as_ref());
            if location.is_some() {
                out.push(p("AgentArgs", agent_args.clone()));
            }
            opt(&mut out, "Distro", distro.as_ref());
            opt(&mut out, "Template", template_text.as_ref());
            if distro.is_some() {
                out.push(p("KernelArgs", kernel_args.clone()));
            }
            if !var.is_empty() {
                out.push(p("Variables", variables_json(var)));
            }
            opt(&mut out, "CheckInPort", check_in_port.as_ref());
            ("AddProfile", out, Shape::Profile)
        }
        C::RenderAnswerFile { target: t, profile } => {
            let mut out = target(t);
            opt(&mut out, "Profile", profile.as_ref());
            ("RenderAnswerFile", out, Shape::AnswerFile)
        }
        C::RemoveProfile { name } => (
            "RemoveProfile",
            vec![p("Name", name.clone())],
            Shape::Return("PROFILE"),
        ),
        C::AddSystem(s) => {
            let mut out = vec![
                p("Name", s.name.clone()),
                p("Mac", s.mac.clone()),
                p("Ip", s.ip.clone()),
                p("Group", s.group.clone()),
            ];
            opt(&mut out, "Hostname", s.hostname.as_ref());
            opt(&mut out, "Disk", s.disk.as_ref());
            opt(&mut out, "Power", s.power.as_ref());
            opt(&mut out, "Wipe", s.wipe.as_ref());
            if !s.var.is_empty() {
                out.push(p("Variables", variables_json(&s.var)));
            }
            ("AddSystem", out, Shape::Systems)
        }
        C::EditSystem(s) => {
            let mut out = vec![p("Name", s.name.clone())];
            opt(&mut out, "Mac", s.mac.as_ref());
            opt(&mut out, "Ip", s.ip.as_ref());
            opt(&mut out, "Hostname", s.hostname.as_ref());
            opt(&mut out, "Group", s.group.as_ref());
            opt(&mut out, "Disk", s.disk.as_ref());
            opt(&mut out, "Power", s.power.as_ref());
            opt(&mut out, "Wipe", s.wipe.as_ref());
            if !s.var.is_empty() || s.clear_vars {
                out.push(p("Variables", variables_json(&s.var)));
            }
            ("EditSystem", out, Shape::Systems)
        }
        C::RemoveSystem { name } => (
            "RemoveSystem",
            vec![p("Name", name.clone())],
            Shape::Return("SYSTEM"),
        ),
        C::ConfirmPoweredOff(t) => ("ConfirmPoweredOff", target(t), Shape::Systems),
        C::Import { .. } | C::Lab(_) => ("", vec![], Shape::Return("")),
    }
}
