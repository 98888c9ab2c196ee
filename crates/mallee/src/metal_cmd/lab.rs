//! `mallee metal lab up N` and `mallee metal lab down`: a bare-metal zone
//! without a rack. `up` builds N QEMU machines (empty disks, PXE first) on
//! a bridge in a network namespace ([`mallee_metal::lab::Lab`]), saves the
//! lab in `DATA_DIR/metal-lab`, writes the inventory file that registers
//! them (their group, the qemu power settings, and the test image as a
//! profile) and prints the `mallee up` command that serves them and
//! imports that file at its start; `--start` runs it. `down` removes all
//! of it, whatever is left.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mallee_cloud::metal::mallee_metal::PowerSpec;
use mallee_cloud::metal::mallee_metal::lab::{self, Lab};
use mallee_qemu::AccelRequest;
use serde_json::json;

/// The lab's directory in a data directory.
pub const LAB_DIR: &str = "metal-lab";
/// The inventory file `up` writes there.
pub const RACK_FILE: &str = "rack.json";
/// The namespace a lab is in unless told otherwise.
pub const DEFAULT_NETNS: &str = "mallee-lab";

/// `mallee metal lab …`.
#[derive(Subcommand, Debug, Clone)]
pub enum LabCommand {
    /// Build N QEMU machines on a provisioning bridge in a network
    /// namespace and print the `mallee up` command that serves them.
    Up(LabUpArgs),
    /// Remove the lab: its QEMUs, the processes in its namespace (the
    /// controller's dnsmasq), the namespace with its bridge and taps, and
    /// its directory. Nothing to remove is not an error.
    Down {
        /// The namespace, if the lab's directory is gone (default: the
        /// saved lab's, else mallee-lab).
        #[arg(long)]
        netns: Option<String>,
    },
}

/// `mallee metal lab up`.
#[derive(Args, Debug, Clone)]
pub struct LabUpArgs {
    /// How many machines (m1, m2, …).
    #[arg(value_parser = clap::value_parser!(u8).range(1..=100))]
    count: u8,
    /// Their group.
    #[arg(long, default_value = "test01")]
    group: String,
    /// The network namespace the bridge and the machines are in.
    #[arg(long, default_value = DEFAULT_NETNS)]
    netns: String,
    /// The controller's address on the provisioning bridge, ADDRESS/PREFIX;
    /// m1 gets ADDRESS+10, m2 ADDRESS+11, ….
    #[arg(long, default_value = "10.254.0.1/24")]
    address: String,
    /// Port of the controller's provisioning HTTP server.
    #[arg(long, default_value_t = 8780)]
    http_port: u16,
    /// Directory with the deploy agent and the test image
    /// (guest/metal/build.sh's output). Built there with
    /// guest/metal/build.sh (from the current directory) when it has no
    /// deploy agent yet.
    #[arg(long, default_value = "target/metal-images")]
    images: PathBuf,
    /// The profile registered for the test image (installed.raw).
    #[arg(long, default_value = "qa-debian")]
    profile: String,
    /// Accelerator of the machines: auto (KVM when a probe guest boots
    /// under it, as the node agent decides), kvm or tcg.
    #[arg(long, default_value = "auto")]
    accel: AccelRequest,
    /// Memory of each machine, MiB.
    #[arg(long, default_value_t = 256)]
    memory_mib: u32,
    /// Disk of each machine, MiB (empty qcow2).
    #[arg(long, default_value_t = 256)]
    disk_mib: u64,
    /// Run the printed `mallee up` command instead of printing it.
    #[arg(long)]
    start: bool,
}

/// The error of a lab command, as the user sees it.
fn err(context: &str, e: impl std::fmt::Display) -> String {
    format!("{context}: {e}")
}

/// Runs `mallee metal lab …` for data directory `data_dir`.
pub async fn run(command: &LabCommand, data_dir: &Path) -> Result<ExitCode, String> {
    let dir = absolute(&data_dir.join(LAB_DIR))?;
    match command {
        LabCommand::Up(args) => up(args, data_dir, &dir).await,
        LabCommand::Down { netns } => down(netns.as_deref(), &dir).await,
    }
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| err(&p.display().to_string(), e))
}

/// Machine `i` (from 0): its name, MAC and address.
fn machine_identity(i: u8, address: Ipv4Addr) -> (String, String, Ipv4Addr) {
    let n = i + 1;
    let ip = Ipv4Addr::from(u32::from(address) + 10 + u32::from(i));
    (format!("m{n}"), format!("52:54:00:4d:00:{n:02x}"), ip)
}

async fn up(args: &LabUpArgs, data_dir: &Path, dir: &Path) -> Result<ExitCode, String> {
    let (address, prefix) = args
        .address
        .split_once('/')
        .and_then(|(a, p)| Some((a.parse::<Ipv4Addr>().ok()?, p.parse::<u8>().ok()?)))
        .filter(|(_, p)| (8..=24).contains(p))
        .ok_or_else(|| {
            format!(
                "--address {}: want ADDRESS/PREFIX, prefix 8 to 24",
                args.address
            )
        })?;
    if Lab::load(dir).map_err(|e| e.to_string())?.is_some() {
        return Err(format!(
            "a lab is already up in {} (mallee metal lab down removes it)",
            dir.display()
        ));
    }
    if Path::new("/run/netns").join(&args.netns).exists() {
        return Err(format!(
            "network namespace {} exists: another lab? (mallee metal lab down --netns {} removes it)",
            args.netns, args.netns
        ));
    }
    let images = absolute(&args.images)?;
    ensure_images(&images)?;
    let accel = resolve_accel(args.accel, dir).await?;
    let mut lab = Lab::create(&args.netns, address, prefix, dir)
        .await
        .map_err(|e| err("create the lab", e))?;
    lab.accel = accel;
    lab.memory_mib = args.memory_mib;
    // Saved before the machines, so that `down` finds a half-made lab.
    lab.save().map_err(|e| e.to_string())?;
    println!(
        "LAB\t{}\t{}/{}\t{}",
        lab.netns,
        lab.address,
        lab.prefix,
        dir.display()
    );
    let mut systems = Vec::new();
    for i in 0..args.count {
        let (name, mac, ip) = machine_identity(i, address);
        let machine = match lab.add_machine(&name, args.disk_mib).await {
            Ok(m) => m,
            Err(e) => {
                lab.save().map_err(|e| e.to_string())?;
                return Err(err(&format!("add machine {name}"), e));
            }
        };
        println!(
            "MACHINE\t{name}\t{mac}\t{ip}\t{}\t{}",
            args.group, machine.accel
        );
        let power =
            serde_json::to_value(PowerSpec::Qemu(machine)).map_err(|e| err("power settings", e))?;
        systems.push(json!({
            "name": name, "mac": mac, "ip": ip.to_string(), "group": args.group, "power": power,
        }));
    }
    lab.save().map_err(|e| e.to_string())?;
    let sha256 = std::fs::read_to_string(images.join("installed.sha256"))
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned));
    let rack = json!({
        "groups": [{"name": args.group, "description": "QEMU lab"}],
        "profiles": [{
            "name": args.profile,
            "location": images.join("installed.raw").display().to_string(),
            "sha256": sha256,
        }],
        "systems": systems,
    });
    let rack_file = dir.join(RACK_FILE);
    let text = serde_json::to_string_pretty(&rack).map_err(|e| err("inventory", e))?;
    std::fs::write(&rack_file, text).map_err(|e| err(&rack_file.display().to_string(), e))?;
    let up_args = up_command(args, &lab, &absolute(data_dir)?, &images, &rack_file);
    if args.start {
        return Err(exec_up(&up_args));
    }
    println!("mallee up {}", shell_words(&up_args));
    Ok(ExitCode::SUCCESS)
}

/// The arguments of `mallee up` for the lab.
fn up_command(
    args: &LabUpArgs,
    lab: &Lab,
    data_dir: &Path,
    images: &Path,
    rack: &Path,
) -> Vec<String> {
    [
        "--no-node",
        "--data-dir",
        &data_dir.display().to_string(),
        "--metal-interface",
        &lab.bridge,
        "--metal-address",
        &format!("{}/{}", lab.address, lab.prefix),
        "--metal-netns",
        &lab.netns,
        "--metal-http-port",
        &args.http_port.to_string(),
        "--metal-agent-dir",
        &images.display().to_string(),
        "--metal-import",
        &rack.display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The arguments quoted for a POSIX shell where they need it.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replaces this process with `mallee up ARGS`; returns only on failure.
fn exec_up(args: &[String]) -> String {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return err("find the mallee binary", e),
    };
    let e = std::process::Command::new(exe).arg("up").args(args).exec();
    err("run mallee up", e)
}

/// Makes sure `images` has the deploy agent and the test image, building
/// them with `guest/metal/build.sh` when it is at hand.
fn ensure_images(images: &Path) -> Result<(), String> {
    let needed = ["deploy-vmlinuz", "deploy-initrd.img", "installed.raw"];
    if needed.iter().all(|f| images.join(f).is_file()) {
        return Ok(());
    }
    let script = Path::new("guest/metal/build.sh");
    if !script.is_file() {
        return Err(format!(
            "{} has no deploy agent and test image, and there is no guest/metal/build.sh here \
             to build them: run it from a mallee checkout (guest/metal/build.sh {}), or give --images",
            images.display(),
            images.display()
        ));
    }
    eprintln!(
        "mallee: building the deploy agent and the test image into {} (guest/metal/build.sh; minutes the first time)",
        images.display()
    );
    let status = std::process::Command::new(script)
        .arg(images)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::inherit())
        .status()
        .map_err(|e| err("guest/metal/build.sh", e))?;
    if !status.success() {
        return Err(format!(
            "guest/metal/build.sh {}: {status}",
            images.display()
        ));
    }
    Ok(())
}

/// `auto`, `kvm` or `tcg` to the machines' accelerator, decided the way
/// the node agent decides (and cached with its decision).
async fn resolve_accel(request: AccelRequest, dir: &Path) -> Result<String, String> {
    let cache = Path::new(mallee_node::agent::RUN_ROOT).join("accel.json");
    let choice = mallee_node::accel::resolve(
        request,
        Path::new(mallee_qemu::vm::QEMU_BINARY),
        None,
        &cache,
        &dir.join("accel-probe"),
    )
    .await?;
    let _ = std::fs::remove_dir_all(dir.join("accel-probe"));
    Ok(choice.accel.to_string())
}

async fn down(netns: Option<&str>, dir: &Path) -> Result<ExitCode, String> {
    let saved = Lab::load(dir).map_err(|e| e.to_string())?;
    let name = match (&saved, netns) {
        (Some(l), _) => l.netns.clone(),
        (None, Some(n)) => n.to_owned(),
        (None, None) => DEFAULT_NETNS.to_owned(),
    };
    let existed = saved.is_some() || dir.exists() || Path::new("/run/netns").join(&name).exists();
    match saved {
        Some(l) => l.destroy().await,
        None => lab::remove_netns(&name).await,
    }
    .map_err(|e| err(&format!("remove namespace {name}"), e))?;
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(&dir.display().to_string(), e)),
    }
    println!(
        "LAB\t{name}\t{}",
        if existed { "removed" } else { "absent" }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_are_numbered_from_one_after_the_address_plus_ten() {
        let a: Ipv4Addr = "10.254.0.1".parse().expect("ip");
        assert_eq!(
            machine_identity(0, a),
            (
                "m1".into(),
                "52:54:00:4d:00:01".into(),
                "10.254.0.11".parse().expect("ip")
            )
        );
        assert_eq!(machine_identity(15, a).1, "52:54:00:4d:00:10");
        assert_eq!(machine_identity(15, a).2.to_string(), "10.254.0.26");
    }

    #[test]
    fn shell_words_quote_only_what_needs_it() {
        let args = ["--data-dir", "/a b/c", "x'y", "/srv/metal-images"].map(str::to_owned);
        assert_eq!(
            shell_words(&args),
            r"--data-dir '/a b/c' 'x'\''y' /srv/metal-images"
        );
    }
}
