// Shared by the tests that build networks in namespaces (network.rs,
// vpc.rs, metadata.rs) through `include!`: their prerequisites, running
// commands, "guest" namespaces joined by a veth pair, and busybox playing
// the guest's DHCP client and ping.

/// The path of `tool` on `PATH`; fails the test without it.
fn which(tool: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(tool))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("these tests need `{tool}` on PATH"))
}

fn require_tools(tools: &[&str]) {
    for tool in tools {
        which(tool);
    }
}

#[allow(dead_code)]
fn require_root() {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    assert!(
        root,
        "the namespace tests must run as root (they create network namespaces)"
    );
}

fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[allow(dead_code)]
fn succeeds(args: &[&str]) -> bool {
    run(args).status.success()
}

/// Deletes its namespaces and kills the network's dnsmasq (named by its
/// pid file) when dropped, so a failing test leaves nothing behind.
#[allow(dead_code)]
struct NetnsCleanup {
    namespaces: Vec<String>,
    pid_file: Option<std::path::PathBuf>,
}

impl Drop for NetnsCleanup {
    fn drop(&mut self) {
        if let Some(pid) = self
            .pid_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            let _ = std::process::Command::new("kill")
                .args(["-9", pid.trim()])
                .output();
        }
        for ns in &self.namespaces {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .output();
        }
    }
}

/// A "guest": namespace `name` whose `eth0` (with `mac`) is paired with
/// link `port` inside the network's namespace.
#[allow(dead_code)]
fn add_guest(name: &str, network_ns: &str, port: &str, mac: &str) {
    ok(&["ip", "netns", "add", name]);
    ok(&["ip", "-n", name, "link", "set", "lo", "up"]);
    ok(&[
        "ip", "-n", name, "link", "add", "eth0", "address", mac, "type", "veth", "peer", "name",
        port, "netns", network_ns,
    ]);
    ok(&["ip", "-n", name, "link", "set", "eth0", "up"]);
}

/// One busybox ping from namespace `ns` (from address `source` when
/// given); whether it was answered.
#[allow(dead_code)]
fn ping(ns: &str, source: Option<&str>, target: &str) -> bool {
    let mut args = vec![
        "ip", "netns", "exec", ns, "busybox", "ping", "-c", "1", "-W", "2",
    ];
    if let Some(source) = source {
        args.extend(["-I", source]);
    }
    args.push(target);
    succeeds(&args)
}

/// busybox udhcpc on `eth0` in `ns`: on a lease its script adds the address
/// and runs the shell commands `on_lease`, whose output is returned; None
/// when no lease came.
#[allow(dead_code)]
fn udhcpc(ns: &str, dir: &std::path::Path, on_lease: &str) -> Option<String> {
    let script = dir.join(format!("udhcpc-{ns}.sh"));
    let out = dir.join(format!("udhcpc-{ns}.out"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in bound|renew)\n  ip addr add \"$ip/$mask\" dev \"$interface\"\n  \
             {{ {on_lease}\n  }} > {}\n;; esac\n",
            out.display()
        ),
    )
    .expect("script");
    ok(&["chmod", "755", &script.display().to_string()]);
    let done = succeeds(&[
        "timeout",
        "20",
        "ip",
        "netns",
        "exec",
        ns,
        "busybox",
        "udhcpc",
        "-i",
        "eth0",
        "-n",
        "-q",
        "-f",
        "-t",
        "6",
        "-T",
        "1",
        "-s",
        &script.display().to_string(),
    ]);
    if !done {
        return None;
    }
    std::fs::read_to_string(out).ok()
}

/// Polls `probe` for up to one second.
#[allow(dead_code)]
fn within_a_second(mut probe: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if probe() {
            return true;
        }
        if start.elapsed() > std::time::Duration::from_secs(1) {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `python3 -c script args…` in namespace `ns`, killed after `limit_secs`.
#[allow(dead_code)]
fn python_in(ns: &str, limit_secs: u32, script: &str, args: &[&str]) -> std::process::Output {
    let limit = limit_secs.to_string();
    let mut argv = vec![
        "timeout", &limit, "ip", "netns", "exec", ns, "python3", "-c", script,
    ];
    argv.extend_from_slice(args);
    run(&argv)
}
