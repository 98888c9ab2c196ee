//! Host checks for each role (`mallee doctor`, and `mallee up` before it
//! starts anything): the programs a node needs, KVM or the TCG fallback, free
//! disk. Each failure names the Debian package that fixes it.

use std::path::{Path, PathBuf};

/// A role a host can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// API, store and scheduler.
    Controller,
    /// Runs VMs.
    Node,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Controller => "controller",
            Self::Node => "node",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The role that needs it.
    pub role: Role,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// Debian package that provides it, when a package fixes a failure.
    pub package: Option<&'static str>,
}

/// All checks of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Every check, in order.
    pub checks: Vec<Check>,
}

/// Free space below which the controller refuses to start.
pub const MIN_FREE_DISK_BYTES: u64 = 1 << 30;

/// Programs a node needs, with their Debian packages.
const NODE_PROGRAMS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("qemu-img", "qemu-utils"),
    ("nft", "nftables"),
    ("dnsmasq", "dnsmasq-base"),
    // Gratuitous ARP for a public address that moved to this node.
    ("arping", "iputils-arping"),
    // Namespaces, bridges, veths and taps.
    ("ip", "iproute2"),
];

/// Finds `program` on `path_var` (a `PATH` value).
pub fn find_program(program: &str, path_var: &str) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
}

/// Runs every check for a host whose data lives under `data_dir`.
pub fn run(data_dir: &Path) -> Report {
    let path_var = std::env::var("PATH").unwrap_or_default();
    // Programs in /usr/sbin are often missing from a user's PATH.
    let search = format!("{path_var}:/usr/sbin:/sbin");
    let mut checks = Vec::new();
    checks.push(data_dir_check(data_dir));
    checks.push(disk_check(data_dir));
    for (program, package) in NODE_PROGRAMS {
        let found = find_program(program, &search);
        checks.push(Check {
            name: (*program).to_string(),
            role: Role::Node,
            ok: found.is_some(),
            detail: found.map_or_else(|| "not found".into(), |p| p.display().to_string()),
            package: Some(package),
        });
    }
    checks.push(kvm_check(Path::new("/dev/kvm")));
    Report { checks }
}

fn data_dir_check(data_dir: &Path) -> Check {
    let probe = std::fs::create_dir_all(data_dir).and_then(|()| {
        let file = data_dir.join(".mallee-write-test");
        std::fs::write(&file, b"ok")?;
        std::fs::remove_file(&file)
    });
    Check {
        name: "data directory writable".into(),
        role: Role::Controller,
        ok: probe.is_ok(),
        detail: match probe {
            Ok(()) => data_dir.display().to_string(),
            Err(e) => format!("{}: {e}", data_dir.display()),
        },
        package: None,
    }
}

fn disk_check(data_dir: &Path) -> Check {
    let existing = data_dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let (ok, detail) = match nix::sys::statvfs::statvfs(existing) {
        Ok(stat) => {
            let free = stat.blocks_available() * stat.fragment_size();
            (
                free >= MIN_FREE_DISK_BYTES,
                format!(
                    "{} MiB free (need {} MiB)",
                    free >> 20,
                    MIN_FREE_DISK_BYTES >> 20
                ),
            )
        }
        Err(e) => (false, format!("cannot stat {}: {e}", existing.display())),
    };
    Check {
        name: "free disk".into(),
        role: Role::Controller,
        ok,
        detail,
        package: None,
    }
}

/// KVM is optional: without a usable /dev/kvm the node runs guests under
/// TCG software emulation. Whether a present /dev/kvm really boots guests is
/// decided by a test boot when the node starts (`--accel auto`).
fn kvm_check(dev: &Path) -> Check {
    let usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .is_ok();
    Check {
        name: "kvm".into(),
        role: Role::Node,
        ok: true,
        detail: if usable {
            format!(
                "{} present; a test boot at node start decides between KVM and TCG",
                dev.display()
            )
        } else {
            format!(
                "{} not usable; guests will run under TCG software emulation",
                dev.display()
            )
        },
        package: None,
    }
}

impl Report {
    /// Failed checks of `role`.
    pub fn failures(&self, role: Role) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.role == role && !c.ok)
            .collect()
    }

    /// Whether every check passed.
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The apt-get line installing every missing package of `checks`.
    pub fn apt_line(checks: &[&Check]) -> Option<String> {
        let mut packages: Vec<&str> = checks.iter().filter_map(|c| c.package).collect();
        packages.sort_unstable();
        packages.dedup();
        (!packages.is_empty()).then(|| format!("apt-get install -y {}", packages.join(" ")))
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            out.push_str(&format!(
                "{mark}  {:<10}  {:<24}  {}\n",
                c.role.as_str(),
                c.name,
                c.detail
            ));
        }
        let failed: Vec<&Check> = self.checks.iter().filter(|c| !c.ok).collect();
        if let Some(line) = Self::apt_line(&failed) {
            out.push_str(&format!(
                "\nTo install what is missing, run as root:\n  {line}\n(or `mallee doctor --fix`, which also takes QEMU from bookworm-backports on Debian 12)\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_name_their_packages() {
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            find_program("qemu-img", &empty.path().display().to_string()),
            None
        );
        let report = Report {
            checks: vec![
                Check {
                    name: "nft".into(),
                    role: Role::Node,
                    ok: false,
                    detail: String::new(),
                    package: Some("nftables"),
                },
                Check {
                    name: "qemu-img".into(),
                    role: Role::Node,
                    ok: false,
                    detail: String::new(),
                    package: Some("qemu-utils"),
                },
            ],
        };
        assert!(!report.all_ok());
        assert_eq!(
            Report::apt_line(&report.failures(Role::Node)).as_deref(),
            Some("apt-get install -y nftables qemu-utils")
        );
        assert!(
            report
                .render()
                .contains("apt-get install -y nftables qemu-utils")
        );
        assert!(report.failures(Role::Controller).is_empty());
    }

    #[test]
    fn finds_programs_on_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let program = dir.path().join("tool");
        std::fs::write(&program, "#!/bin/sh\n").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(
            find_program("tool", &dir.path().display().to_string()),
            Some(program)
        );
    }

    #[test]
    fn data_dir_and_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = run(&dir.path().join("new"));
        assert!(
            report.failures(Role::Controller).is_empty(),
            "{}",
            report.render()
        );
    }
}
