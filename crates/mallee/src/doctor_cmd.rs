//! `mallee doctor [--fix]`: the host checks of every role, and with
//! `--fix` the Debian packages that the failed checks name installed with
//! apt-get (as root, printing every command before it runs), then the
//! checks again.
//!
//! On Debian 12 (bookworm) QEMU comes from bookworm-backports, as on the
//! machines mallee is tested on (and as `.ci/run` installs it): QEMU 10,
//! whose `qemu-storage-daemon` and `qemu-nbd` the volumes use. The
//! backports source is added when missing (and said so).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use mallee_cloud::doctor::{self, Report};

/// The packages that come from backports on bookworm.
const BACKPORTS_PACKAGES: &[&str] = &["qemu-system-x86", "qemu-utils"];
/// The backports source line, and the file it goes to when missing.
const BACKPORTS_LINE: &str = "deb http://deb.debian.org/debian bookworm-backports main";
const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/mallee-backports.list";

/// What `--fix` does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Add the backports source first (`BACKPORTS_FILE`).
    pub add_backports: bool,
    /// The commands, each program then arguments.
    pub commands: Vec<Vec<String>>,
}

/// The plan installing `packages` on a host whose Debian codename is
/// `codename`, with the backports source already configured or not.
pub fn plan(packages: &[&str], codename: Option<&str>, backports_configured: bool) -> Plan {
    let mut packages: Vec<&str> = packages.to_vec();
    packages.sort_unstable();
    packages.dedup();
    if packages.is_empty() {
        return Plan {
            add_backports: false,
            commands: Vec::new(),
        };
    }
    let bookworm = codename == Some("bookworm");
    let (backports, plain): (Vec<&str>, Vec<&str>) = packages
        .iter()
        .partition(|p| bookworm && BACKPORTS_PACKAGES.contains(p));
    let install = |target: Option<&str>, list: &[&str]| {
        let mut cmd: Vec<String> = ["apt-get", "install", "-y", "-q", "--no-install-recommends"]
            .map(str::to_owned)
            .to_vec();
        if let Some(target) = target {
            cmd.extend(["-t".to_owned(), target.to_owned()]);
        }
        cmd.extend(list.iter().map(|p| (*p).to_owned()));
        cmd
    };
    let mut commands = vec![vec![
        "apt-get".to_owned(),
        "update".to_owned(),
        "-q".to_owned(),
    ]];
    if !backports.is_empty() {
        // All of QEMU from one release: the parts present are upgraded to
        // match the missing ones.
        commands.push(install(Some("bookworm-backports"), BACKPORTS_PACKAGES));
    }
    if !plain.is_empty() {
        commands.push(install(None, &plain));
    }
    Plan {
        add_backports: !backports.is_empty() && !backports_configured,
        commands,
    }
}

/// `mallee doctor [--fix]` on `data_dir`: exits 0 only when every check
/// passes (after the fix, with `--fix`).
pub fn run(data_dir: &Path, fix: bool) -> ExitCode {
    let report = doctor::run(data_dir);
    print!("{}", report.render());
    if report.all_ok() {
        return ExitCode::SUCCESS;
    }
    if !fix {
        return ExitCode::FAILURE;
    }
    match install(&report) {
        Ok(()) => {}
        Err(message) => {
            eprintln!("mallee: {message}");
            return ExitCode::FAILURE;
        }
    }
    println!("\nmallee: the checks again:");
    let report = doctor::run(data_dir);
    print!("{}", report.render());
    if report.all_ok() {
        ExitCode::SUCCESS
    } else {
        eprintln!("mallee: some checks still fail, and no package fixes them (see above)");
        ExitCode::FAILURE
    }
}

/// Installs the packages `report`'s failures name.
fn install(report: &Report) -> Result<(), String> {
    let packages: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .filter_map(|c| c.package)
        .collect();
    if packages.is_empty() {
        return Err("no package fixes the failed checks (see above)".into());
    }
    if !Path::new("/usr/bin/apt-get").exists() {
        return Err(format!(
            "apt-get not found: install the equivalents of these Debian packages: {}",
            packages.join(" ")
        ));
    }
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let plan = plan(&packages, codename().as_deref(), backports_configured());
    if !root {
        let commands: Vec<String> = plan.commands.iter().map(|c| c.join(" ")).collect();
        return Err(format!(
            "installing packages needs root: run `sudo mallee doctor --fix` (it would run: {})",
            commands.join("; ")
        ));
    }
    if plan.add_backports {
        println!(
            "mallee: adding the bookworm-backports source ({BACKPORTS_FILE}: {BACKPORTS_LINE})"
        );
        std::fs::write(BACKPORTS_FILE, format!("{BACKPORTS_LINE}\n"))
            .map_err(|e| format!("cannot write {BACKPORTS_FILE}: {e}"))?;
    }
    for command in &plan.commands {
        println!("mallee: running: {}", command.join(" "));
        // apt and dpkg need the system directories on PATH (ldconfig,
        // start-stop-daemon), whatever PATH this was started with.
        let path = std::env::var("PATH").unwrap_or_default();
        let status = Command::new(Path::new("/usr/bin").join(&command[0]))
            .args(&command[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env(
                "PATH",
                format!("{path}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            )
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", command[0]))?;
        if !status.success() {
            return Err(format!("`{}` failed ({status})", command.join(" ")));
        }
    }
    Ok(())
}

/// The Debian codename of this host (`bookworm`), from /etc/os-release.
fn codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_owned())
}

/// Whether an apt source already names bookworm-backports.
fn backports_configured() -> bool {
    let mut files = vec![std::path::PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(entries.filter_map(Result::ok).map(|e| e.path()));
    }
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines()
                .any(|l| !l.trim_start().starts_with('#') && l.contains("bookworm-backports"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(plan: &Plan) -> Vec<String> {
        plan.commands.iter().map(|c| c.join(" ")).collect()
    }

    #[test]
    fn qemu_comes_from_backports_on_bookworm() {
        let p = plan(
            &["nftables", "qemu-system-x86", "nftables"],
            Some("bookworm"),
            false,
        );
        assert!(p.add_backports);
        assert_eq!(
            joined(&p),
            [
                "apt-get update -q",
                "apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils",
                "apt-get install -y -q --no-install-recommends nftables",
            ]
        );
        // Configured already: not added again.
        assert!(!plan(&["qemu-utils"], Some("bookworm"), true).add_backports);
    }

    #[test]
    fn elsewhere_everything_comes_from_the_release_and_nothing_missing_does_nothing() {
        let p = plan(&["qemu-utils", "dnsmasq-base"], Some("trixie"), false);
        assert!(!p.add_backports);
        assert_eq!(
            joined(&p),
            [
                "apt-get update -q",
                "apt-get install -y -q --no-install-recommends dnsmasq-base qemu-utils",
            ]
        );
        assert!(plan(&[], Some("bookworm"), false).commands.is_empty());
    }
}
