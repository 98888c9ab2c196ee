//! Leftovers of deleted data directories (`mallee purge --orphans`): the
//! VMs, NBD export daemons, VPC namespaces (with their taps, bridges and
//! dnsmasq), public bridges, host veths and host nftables tables that a
//! node or storage host made and whose data directory no longer exists.
//!
//! Nothing is guessed: an object is removed only when its recorded owner
//! (see [`crate::network::owner`]) is gone. A VM is mallee's when its QEMU
//! runs with a pidfile under [`RUN_ROOT`], and its owner is the instance
//! directory its serial log is written to. Objects with no recorded owner
//! (made by an older mallee) are reported and left alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mallee_util::process::run;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::agent::RUN_ROOT;
use crate::network::NetworkError;
use crate::network::owner::{Owner, OwnerState, link_alias};

/// One object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `vm`, `nbd-export`, `namespace`, `bridge`, `veth` or `nft-table`.
    pub kind: &'static str,
    /// Its name (a pid and instance id for a VM).
    pub name: String,
    /// The directory it belonged to, when recorded.
    pub owner: Option<PathBuf>,
}

/// What a purge did.
#[derive(Debug, Default)]
pub struct OrphanReport {
    /// Removed: their owner is gone.
    pub removed: Vec<Found>,
    /// Left alone: mallee's by name, but with no recorded owner (listed
    /// only in a purge of every orphan: under a directory they are
    /// nobody's business).
    pub unknown: Vec<Found>,
}

/// Removes every leftover whose owner directory is gone (only those under
/// `under`, when given).
pub async fn purge_orphans(under: Option<&Path>) -> Result<OrphanReport, NetworkError> {
    let under = under.map(|u| std::fs::canonicalize(u).unwrap_or_else(|_| u.to_owned()));
    let within = |dir: &Path| under.as_ref().is_none_or(|u| dir.starts_with(u));
    let mut report = OrphanReport::default();
    // VMs first: their taps live in the namespaces.
    for vm in mallee_vms() {
        if vm.instance_dir.exists() || !within(&vm.instance_dir) {
            continue;
        }
        stop(vm.pid).await;
        if let Some(run_dir) = vm.pidfile.parent() {
            let _ = std::fs::remove_dir_all(run_dir);
            // The node's run root, once its last VM is gone.
            if let Some(root) = run_dir.parent()
                && root != Path::new(RUN_ROOT)
            {
                let _ = std::fs::remove_dir(root);
            }
        }
        report.removed.push(Found {
            kind: "vm",
            name: format!("pid {} ({})", vm.pid, vm.instance),
            owner: Some(vm.instance_dir),
        });
    }
    // A storage host's NBD exports (qemu-storage-daemon), whose volume
    // directory is gone.
    for export in mallee_exports() {
        let gone = export.image.parent().is_none_or(|dir| !dir.exists());
        if !gone || !within(&export.image) {
            continue;
        }
        stop(export.pid).await;
        let _ = std::fs::remove_file(&export.pidfile);
        let _ = std::fs::remove_file(export.pidfile.with_extension("qmp"));
        report.removed.push(Found {
            kind: "nbd-export",
            name: format!("pid {} ({})", export.pid, export.volume),
            owner: Some(export.image),
        });
    }
    for netns in mallee_namespaces() {
        let owner = link_alias(Some(&netns), "lo")
            .await
            .as_deref()
            .and_then(Owner::parse);
        match owner {
            Some(owner) if owner.state() == OwnerState::Gone => {
                if !within(owner.dir()) {
                    continue;
                }
                remove_namespace(&netns).await?;
                report.removed.push(Found {
                    kind: "namespace",
                    name: netns,
                    owner: Some(owner.dir().to_owned()),
                });
            }
            Some(_) => {}
            None if under.is_some() => {}
            None => report.unknown.push(Found {
                kind: "namespace",
                name: netns,
                owner: None,
            }),
        }
    }
    let mut removed_bridges = Vec::new();
    for link in host_links().await? {
        if !link.name.starts_with("mlp") {
            continue;
        }
        match link.alias.as_deref().and_then(Owner::parse) {
            Some(owner @ Owner::Node { .. }) if owner.state() == OwnerState::Gone => {
                if !within(owner.dir()) {
                    continue;
                }
                delete_table(&format!("mallee_{}", link.name)).await?;
                run("ip", &["link", "del", "dev", &link.name]).await?;
                report.removed.push(Found {
                    kind: "bridge",
                    name: link.name.clone(),
                    owner: Some(owner.dir().to_owned()),
                });
                removed_bridges.push((link.name, owner.dir().to_owned()));
            }
            Some(_) => {}
            None if under.is_some() => {}
            None => report.unknown.push(Found {
                kind: "bridge",
                name: link.name,
                owner: None,
            }),
        }
    }
    // Host veths whose namespace end was not (or could not be) removed,
    // still ports of a removed bridge.
    for link in host_links().await? {
        let master = removed_bridges
            .iter()
            .find(|(b, _)| link.master.as_deref() == Some(b.as_str()));
        if link.name.starts_with("mlv")
            && let Some((_, dir)) = master
        {
            run("ip", &["link", "del", "dev", &link.name]).await?;
            report.removed.push(Found {
                kind: "veth",
                name: link.name,
                owner: Some(dir.clone()),
            });
        }
    }
    // A public bridge's host table without its bridge (deleted by hand):
    // owner unknown, so only in a purge of every orphan.
    if under.is_none() {
        let links: Vec<String> = host_links().await?.into_iter().map(|l| l.name).collect();
        for table in host_tables().await? {
            let Some(bridge) = table.strip_prefix("mallee_") else {
                continue;
            };
            if bridge.starts_with("mlp") && !links.iter().any(|l| l == bridge) {
                delete_table(&table).await?;
                report.removed.push(Found {
                    kind: "nft-table",
                    name: format!("inet {table}"),
                    owner: None,
                });
            }
        }
    }
    Ok(report)
}

/// A QEMU process of a node.
#[derive(Debug)]
struct MalleeVm {
    pid: u32,
    pidfile: PathBuf,
    instance: String,
    instance_dir: PathBuf,
}

/// The QEMU processes with a pidfile under [`RUN_ROOT`] and a serial log
/// file (the instance directory).
fn mallee_vms() -> Vec<MalleeVm> {
    proc_args()
        .into_iter()
        .filter_map(|(pid, args)| parse_vm(pid, &args))
        .collect()
}

fn parse_vm(pid: u32, args: &[String]) -> Option<MalleeVm> {
    if !args.first()?.contains("qemu-system") {
        return None;
    }
    let value = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
    let pidfile = PathBuf::from(value("-pidfile")?);
    if !pidfile.starts_with(RUN_ROOT) {
        return None;
    }
    // `file,id=serial0,path=LOG` (commas in LOG doubled).
    let serial = args
        .iter()
        .find_map(|a| a.strip_prefix("file,id=serial0,path="))?
        .replace(",,", ",");
    let instance_dir = Path::new(&serial).parent()?.to_owned();
    let instance = instance_dir.file_name()?.to_string_lossy().into_owned();
    Some(MalleeVm {
        pid,
        pidfile,
        instance,
        instance_dir,
    })
}

/// A qemu-storage-daemon of a storage host.
#[derive(Debug)]
struct MalleeExport {
    pid: u32,
    pidfile: PathBuf,
    volume: String,
    image: PathBuf,
}

/// The qemu-storage-daemon processes with a pidfile under [`RUN_ROOT`].
fn mallee_exports() -> Vec<MalleeExport> {
    proc_args()
        .into_iter()
        .filter_map(|(pid, args)| parse_export(pid, &args))
        .collect()
}

fn parse_export(pid: u32, args: &[String]) -> Option<MalleeExport> {
    if !args.first()?.contains("qemu-storage-daemon") {
        return None;
    }
    let pidfile = PathBuf::from(
        args.windows(2)
            .find(|w| w[0] == "--pidfile")
            .map(|w| w[1].clone())?,
    );
    if !pidfile.starts_with(RUN_ROOT) {
        return None;
    }
    // `driver=file,…,filename=IMAGE,…` (commas in IMAGE doubled).
    let file = args
        .iter()
        .find(|a| a.starts_with("driver=file,"))?
        .split_once("filename=")?
        .1;
    let mut image = String::new();
    let mut chars = file.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() != Some(&',') {
                break;
            }
            chars.next();
        }
        image.push(c);
    }
    let volume = pidfile.file_stem()?.to_string_lossy().into_owned();
    Some(MalleeExport {
        pid,
        pidfile,
        volume,
        image: PathBuf::from(image),
    })
}

/// Every process's pid and arguments.
fn proc_args() -> Vec<(u32, Vec<String>)> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, args))
        })
        .collect()
}

/// The network namespaces named like mallee's.
fn mallee_namespaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| n.starts_with("mallee-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Stops every process in the namespace (dnsmasq; the agent that served
/// its metadata is gone), then deletes it with its links.
async fn remove_namespace(netns: &str) -> Result<(), NetworkError> {
    if let Ok(out) = run("ip", &["netns", "pids", netns]).await {
        for pid in out.split_whitespace().filter_map(|p| p.parse().ok()) {
            stop(pid).await;
        }
    }
    run("ip", &["netns", "del", netns]).await?;
    Ok(())
}

/// SIGTERM, then SIGKILL after five seconds.
async fn stop(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    let pid = Pid::from_raw(raw);
    if kill(pid, Signal::SIGTERM).is_err() {
        return;
    }
    let alive = |pid: Pid| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
    };
    for _ in 0..250 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = kill(pid, Signal::SIGKILL);
    for _ in 0..100 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug)]
struct HostLink {
    name: String,
    alias: Option<String>,
    master: Option<String>,
}

async fn host_links() -> Result<Vec<HostLink>, NetworkError> {
    let out = run("ip", &["-j", "link", "show"]).await?;
    let links: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| NetworkError::Output {
            command: "ip -j link show".into(),
            reason: e.to_string(),
        })?;
    Ok(links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            Some(HostLink {
                name: l["ifname"].as_str()?.to_owned(),
                alias: l["ifalias"].as_str().map(str::to_owned),
                master: l["master"].as_str().map(str::to_owned),
            })
        })
        .collect())
}

/// The host's `inet` tables named `mallee_…`.
async fn host_tables() -> Result<Vec<String>, NetworkError> {
    let out = run("nft", &["-j", "list", "tables", "inet"]).await?;
    let tables: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| NetworkError::Output {
            command: "nft -j list tables inet".into(),
            reason: e.to_string(),
        })?;
    Ok(tables["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["table"]["name"].as_str())
        .filter(|n| n.starts_with("mallee_"))
        .map(str::to_owned)
        .collect())
}

async fn delete_table(table: &str) -> Result<(), NetworkError> {
    crate::network::nft_apply(
        None,
        &format!("table inet {table}\ndelete table inet {table}\n"),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vms_are_found_by_pidfile_and_serial_log() {
        let args: Vec<String> = [
            "qemu-system-x86_64",
            "-name",
            "guest=i-1",
            "-chardev",
            "file,id=serial0,path=/d/node/instances/i-0abc/console.log",
            "-pidfile",
            "/run/mallee/0123456789/i-0abc/qemu.pid",
            "-daemonize",
        ]
        .map(str::to_owned)
        .to_vec();
        let vm = parse_vm(7, &args).expect("a mallee VM");
        assert_eq!(vm.instance, "i-0abc");
        assert_eq!(vm.instance_dir, Path::new("/d/node/instances/i-0abc"));
        // Another QEMU (no pidfile under the run root) is not mallee's.
        let mut other = args.clone();
        other[6] = "/tmp/vm/qemu.pid".into();
        assert!(parse_vm(8, &other).is_none());
        let mut not_qemu = args;
        not_qemu[0] = "/usr/bin/sleep".into();
        assert!(parse_vm(9, &not_qemu).is_none());
    }

    #[test]
    fn exports_are_found_by_pidfile_and_image() {
        let args: Vec<String> = [
            "qemu-storage-daemon",
            "--blockdev",
            "driver=file,node-name=vol-1-file,filename=/d/storage/vol,,1.qcow2,cache.direct=off",
            "--pidfile",
            "/run/mallee/0123456789/nbd-exports/vol-1.pid",
            "--daemonize",
        ]
        .map(str::to_owned)
        .to_vec();
        let export = parse_export(7, &args).expect("a mallee export");
        assert_eq!(export.image, Path::new("/d/storage/vol,1.qcow2"));
        assert_eq!(export.volume, "vol-1");
        let mut elsewhere = args;
        elsewhere[4] = "/tmp/vol-1.pid".into();
        assert!(parse_export(8, &elsewhere).is_none());
    }
}
