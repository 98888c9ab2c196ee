//! What a VM is, as QEMU is told it: [`VmSpec`] (boot, disks, NICs,
//! accelerator) and its command line ([`argv`]), and the JSON of the block
//! nodes and objects that QMP hot-plugs (local files, NBD exports over
//! TLS).

use super::*;

/// Disk image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// Raw image.
    Raw,
    /// qcow2 image (its backing file, if any, is opened automatically).
    Qcow2,
}

impl DiskFormat {
    /// The QEMU block driver name.
    pub fn driver(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
        }
    }
}

/// How the guest boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Boot {
    /// Direct kernel boot (paravirtual images: aki kernel + ari ramdisk, the
    /// root disk among [`VmSpec::disks`], named in `cmdline`, e.g.
    /// `root=/dev/vda console=ttyS0`).
    Kernel {
        /// Kernel image.
        kernel: PathBuf,
        /// Initial ramdisk.
        initrd: Option<PathBuf>,
        /// Kernel command line.
        cmdline: String,
    },
    /// BIOS boot from the first disk (HVM images).
    Disk,
}

/// A virtio-blk disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Where its data is.
    pub source: DiskSource,
    /// Attach read-only.
    pub read_only: bool,
    /// Block node name (the device is `<id>-dev`); `None`: `disk<N>` by
    /// position. Volumes use their own, so that the disk a VM was started
    /// with can be detached like a hot-plugged one.
    #[serde(default)]
    pub id: Option<String>,
    /// virtio-blk serial the guest sees (at most 20 bytes are kept), for
    /// `/dev/disk/by-id/virtio-<serial>`.
    #[serde(default)]
    pub serial: Option<String>,
}

/// Where a disk's data is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum DiskSource {
    /// An image file QEMU opens itself.
    File {
        /// Image file.
        path: PathBuf,
        /// Image format.
        format: DiskFormat,
    },
    /// An export of an NBD server, reached with QEMU's NBD client over TLS
    /// (the VM's [`NBD_TLS_OBJECT`]).
    Nbd(NbdSource),
}

impl DiskSource {
    /// An image file.
    pub fn file(path: impl Into<PathBuf>, format: DiskFormat) -> Self {
        Self::File {
            path: path.into(),
            format,
        }
    }
}

/// An NBD export as QEMU's NBD client reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NbdSource {
    /// Where the server listens.
    pub server: NbdServer,
    /// The export's name.
    pub export: String,
    /// The name the server's certificate must carry (QEMU's
    /// `tls-hostname`): whatever the transport, the client talks TLS to
    /// the server itself and checks it is this one.
    pub tls_hostname: String,
    /// The client's credentials, a `tls-creds-x509` directory
    /// (`ca-cert.pem`, `client-cert.pem`, `client-key.pem`): loaded once
    /// per VM as [`NBD_TLS_OBJECT`], so every NBD disk of a VM names the
    /// same one.
    pub tls_dir: PathBuf,
}

/// Where an NBD server listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum NbdServer {
    /// A TCP address.
    Inet {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A Unix socket (a relay to the server, for a VM whose network
    /// namespace cannot reach it).
    Unix {
        /// The socket.
        path: PathBuf,
    },
}

/// Id of the `tls-creds-x509` object NBD disks use (one per VM).
pub const NBD_TLS_OBJECT: &str = "nbd-tls";

/// How long (seconds) QEMU's NBD client holds a disk's requests while it
/// reconnects after losing the server (`reconnect-delay`); after that they
/// fail and the guest sees I/O errors. A storage host restart (its
/// qemu-storage-daemon gone for up to ~30 s) must only stall the guest:
/// the client retries with a delay that doubles from 1 s to at most 16 s,
/// so after a 30 s outage it may take until ~47 s to get back in; 60 s
/// covers that, and stays below the 120 s after which a Linux guest
/// reports hung tasks (virtio-blk itself never times a request out).
pub const NBD_RECONNECT_DELAY_SECS: u64 = 60;

/// How long (seconds) QEMU's NBD client keeps trying to reach the server
/// when it opens a disk (`open-timeout`; 0 would give up after one try):
/// a VM starting, or a disk hot-plugged, while the storage host restarts
/// waits for it as a running disk does, within the 60 s a VM start may
/// take. (A hot-plug's `blockdev-add` blocks QEMU's main loop while it
/// waits, so this is not longer.)
pub const NBD_OPEN_TIMEOUT_SECS: u64 = 30;

/// The `virtio-blk-pci` device properties (without `driver` and `id`) for
/// block node `node_name`, as [`argv`] and a hot-plug both use them.
pub fn virtio_blk_props(node_name: &str, serial: Option<&str>) -> Value {
    let mut props = json!({"drive": node_name});
    if let Some(serial) = serial {
        props["serial"] = json!(serial);
    }
    props
}

/// What a NIC is connected to on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum NicBackend {
    /// An existing tap device (created and bridged by the caller).
    Tap {
        /// The tap interface name.
        ifname: String,
    },
    /// QEMU user-mode networking (slirp), for tests only.
    User {
        /// Port forwards in QEMU syntax, e.g. `tcp:127.0.0.1:2222-:22`.
        hostfwd: Vec<String>,
    },
}

/// A virtio-net NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    /// Host side.
    pub backend: NicBackend,
    /// Guest MAC address, `xx:xx:xx:xx:xx:xx`.
    pub mac: String,
}

/// Everything needed to start one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    /// Name shown by QEMU (e.g. the instance id).
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Accelerator (resolve `auto` first with [`crate::accel::AccelRequest::resolve`]).
    pub accel: Accel,
    /// CPU model; `None` means `host` under KVM and `max` under TCG.
    #[serde(default)]
    pub cpu_model: Option<String>,
    /// Boot method.
    pub boot: Boot,
    /// Disks in order (`/dev/vda`, `/dev/vdb`, ...).
    pub disks: Vec<Disk>,
    /// NICs in order.
    pub nics: Vec<Nic>,
    /// File that receives the serial console (truncated at start).
    pub serial_log: PathBuf,
    /// Directory for the QMP socket and pidfile (created if missing).
    pub run_dir: PathBuf,
    /// Keep QEMU alive after the guest powers off (`-no-shutdown`): the VM
    /// then reports [`crate::qmp::RunState::Shutdown`] until it is killed or
    /// quit, so a guest-initiated poweroff is still visible to an agent that
    /// was restarting when it happened.
    #[serde(default)]
    pub keep_on_shutdown: bool,
}

impl VmSpec {
    /// Checks what QEMU would otherwise reject late or misparse.
    pub fn validate(&self) -> Result<(), VmError> {
        let bad = |m: String| Err(VmError::InvalidSpec(m));
        if self.name.is_empty() || self.name.chars().any(char::is_control) {
            return bad(format!("bad name {:?}", self.name));
        }
        if self.vcpus == 0 || self.vcpus > 255 {
            return bad(format!("vcpus must be 1..=255, got {}", self.vcpus));
        }
        if self.memory_mib < 16 {
            return bad(format!(
                "memory must be at least 16 MiB, got {}",
                self.memory_mib
            ));
        }
        if matches!(self.boot, Boot::Disk) && self.disks.is_empty() {
            return bad("disk boot needs at least one disk".into());
        }
        let mut tls_dirs = self.disks.iter().filter_map(|d| match &d.source {
            DiskSource::Nbd(nbd) => Some(&nbd.tls_dir),
            DiskSource::File { .. } => None,
        });
        if let Some(first) = tls_dirs.next()
            && tls_dirs.any(|d| d != first)
        {
            return bad("the NBD disks of a VM must share one TLS directory".into());
        }
        for disk in &self.disks {
            if let DiskSource::Nbd(nbd) = &disk.source {
                if nbd.export.is_empty() || nbd.tls_hostname.is_empty() {
                    return bad(format!("NBD disk without export name or TLS name: {nbd:?}"));
                }
                if let NbdServer::Unix { path } = &nbd.server
                    && path.as_os_str().len() > MAX_SOCKET_PATH
                {
                    return Err(VmError::SocketPathTooLong(path.clone()));
                }
            }
        }
        for nic in &self.nics {
            if !valid_mac(&nic.mac) {
                return bad(format!("bad MAC address {:?}", nic.mac));
            }
            if let NicBackend::Tap { ifname } = &nic.backend
                && (ifname.is_empty() || ifname.len() > 15 || ifname.contains(['/', ' ', ',']))
            {
                return bad(format!("bad tap name {ifname:?}"));
            }
        }
        let sock = self.run_dir.join(QMP_SOCKET);
        if sock.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(VmError::SocketPathTooLong(sock));
        }
        Ok(())
    }
}

fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Escapes a value for QEMU's `key=value,...` option syntax (commas double).
fn opt_value(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The `blockdev-add` / `-blockdev` JSON for an image file: a format node
/// named `node_name` on top of a `file` protocol node.
pub fn blockdev_json(node_name: &str, path: &Path, format: DiskFormat, read_only: bool) -> Value {
    json!({
        "driver": format.driver(),
        "node-name": node_name,
        "read-only": read_only,
        "file": {
            "driver": "file",
            "filename": path.display().to_string(),
            "read-only": read_only,
        },
    })
}

/// The `blockdev-add` / `-blockdev` JSON for an NBD export: QEMU's NBD
/// client as block node `node_name`, over TLS with the VM's
/// [`NBD_TLS_OBJECT`], checking the server's certificate name, holding
/// requests while it reconnects ([`NBD_RECONNECT_DELAY_SECS`]) and waiting
/// for the server at open ([`NBD_OPEN_TIMEOUT_SECS`]).
pub fn nbd_blockdev_json(node_name: &str, source: &NbdSource, read_only: bool) -> Value {
    let server = match &source.server {
        NbdServer::Inet { host, port } => {
            json!({"type": "inet", "host": host, "port": port.to_string()})
        }
        NbdServer::Unix { path } => json!({"type": "unix", "path": path.display().to_string()}),
    };
    json!({
        "driver": "nbd",
        "node-name": node_name,
        "read-only": read_only,
        "server": server,
        "export": source.export,
        "tls-creds": NBD_TLS_OBJECT,
        "tls-hostname": source.tls_hostname,
        "reconnect-delay": NBD_RECONNECT_DELAY_SECS,
        "open-timeout": NBD_OPEN_TIMEOUT_SECS,
    })
}

/// The `blockdev-add` / `-blockdev` JSON of `disk` as block node
/// `node_name` ([`blockdev_json`] or [`nbd_blockdev_json`]).
pub fn disk_blockdev_json(node_name: &str, disk: &Disk) -> Value {
    match &disk.source {
        DiskSource::File { path, format } => {
            blockdev_json(node_name, path, *format, disk.read_only)
        }
        DiskSource::Nbd(nbd) => nbd_blockdev_json(node_name, nbd, disk.read_only),
    }
}

/// The `object-add` arguments (and `-object` JSON) of the NBD client's
/// TLS credentials in `dir` ([`NBD_TLS_OBJECT`]; a disk's
/// [`NbdSource::tls_dir`]). The client always checks the server's
/// certificate against the CA in `dir`.
pub fn nbd_tls_object_json(dir: &Path) -> Value {
    json!({
        "qom-type": "tls-creds-x509",
        "id": NBD_TLS_OBJECT,
        "dir": dir.display().to_string(),
        "endpoint": "client",
    })
}

/// The QEMU command line (without the binary) for `spec`, including
/// `-daemonize` and the pidfile/QMP socket in `spec.run_dir`.
///
/// Pure: it touches no files. Call [`VmSpec::validate`] first.
pub fn argv(spec: &VmSpec) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    let name = spec.name.replace(',', ",,");
    push(&["-name", &format!("guest={name},debug-threads=on")]);
    let (accel, default_cpu) = match spec.accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => ("tcg", "max"),
    };
    push(&["-machine", &format!("pc,accel={accel}")]);
    push(&["-cpu", spec.cpu_model.as_deref().unwrap_or(default_cpu)]);
    push(&["-smp", &spec.vcpus.to_string()]);
    push(&["-m", &format!("{}M", spec.memory_mib)]);
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    push(&[
        "-chardev",
        &format!("file,id=serial0,path={}", opt_value(&spec.serial_log)),
        "-serial",
        "chardev:serial0",
    ]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=qmp,path={},server=on,wait=off",
            opt_value(&spec.run_dir.join(QMP_SOCKET))
        ),
        "-mon",
        "chardev=qmp,mode=control",
    ]);
    if spec.keep_on_shutdown {
        push(&["-no-shutdown"]);
    }
    push(&[
        "-device",
        &json!({"driver": "virtio-rng-pci", "id": "rng0"}).to_string(),
    ]);
    if let Boot::Kernel {
        kernel,
        initrd,
        cmdline,
    } = &spec.boot
    {
        a.push("-kernel".into());
        a.push(kernel.clone().into());
        if let Some(initrd) = initrd {
            a.push("-initrd".into());
            a.push(initrd.clone().into());
        }
        a.push("-append".into());
        a.push(cmdline.into());
    }
    if let Some(nbd) = spec.disks.iter().find_map(|d| match &d.source {
        DiskSource::Nbd(nbd) => Some(nbd),
        DiskSource::File { .. } => None,
    }) {
        a.push("-object".into());
        a.push(nbd_tls_object_json(&nbd.tls_dir).to_string().into());
    }
    for (i, disk) in spec.disks.iter().enumerate() {
        let node = disk.id.clone().unwrap_or_else(|| format!("disk{i}"));
        let mut dev = virtio_blk_props(&node, disk.serial.as_deref());
        dev["driver"] = json!("virtio-blk-pci");
        dev["id"] = json!(format!("{node}-dev"));
        if i == 0 && spec.boot == Boot::Disk {
            dev["bootindex"] = json!(0);
        }
        a.push("-blockdev".into());
        a.push(disk_blockdev_json(&node, disk).to_string().into());
        a.push("-device".into());
        a.push(dev.to_string().into());
    }
    for (i, nic) in spec.nics.iter().enumerate() {
        let id = format!("net{i}");
        let netdev = match &nic.backend {
            NicBackend::Tap { ifname } => json!({
                "type": "tap", "id": id, "ifname": ifname, "script": "no", "downscript": "no",
            }),
            NicBackend::User { hostfwd } => {
                let mut n = json!({"type": "user", "id": id});
                if !hostfwd.is_empty() {
                    n["hostfwd"] = hostfwd.iter().map(|h| json!({"str": h})).collect();
                }
                n
            }
        };
        a.push("-netdev".into());
        a.push(netdev.to_string().into());
        a.push("-device".into());
        a.push(
            json!({"driver": "virtio-net-pci", "netdev": id, "mac": nic.mac, "id": format!("{id}-dev")})
                .to_string()
                .into(),
        );
    }
    a.push("-pidfile".into());
    a.push(spec.run_dir.join(PIDFILE).into());
    a.push("-daemonize".into());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            name: "i-0123456789abcdef0".into(),
            vcpus: 2,
            memory_mib: 512,
            accel: Accel::Tcg,
            cpu_model: None,
            boot: Boot::Kernel {
                kernel: "/img/vmlinuz".into(),
                initrd: Some("/img/initrd.img".into()),
                cmdline: "root=/dev/vda console=ttyS0".into(),
            },
            disks: vec![Disk {
                source: DiskSource::file("/inst/root.qcow2", DiskFormat::Qcow2),
                read_only: false,
                id: None,
                serial: None,
            }],
            nics: vec![Nic {
                backend: NicBackend::Tap {
                    ifname: "tap-abc".into(),
                },
                mac: "d0:0d:12:34:56:78".into(),
            }],
            serial_log: "/inst/console.log".into(),
            run_dir: "/run/i-1".into(),
            keep_on_shutdown: false,
        }
    }

    fn strings(a: &[OsString]) -> Vec<String> {
        a.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    /// Arguments as JSON values: JSON arguments parsed (so key order does
    /// not matter), the others as strings.
    fn values<S: AsRef<str>>(a: &[S]) -> Vec<Value> {
        a.iter()
            .map(|s| {
                let s = s.as_ref();
                if s.starts_with('{') {
                    serde_json::from_str(s).expect("JSON argument")
                } else {
                    Value::String(s.to_owned())
                }
            })
            .collect()
    }

    #[test]
    fn kernel_boot_argv_is_exact() {
        let got = strings(&argv(&spec()));
        let want = [
            "-name",
            "guest=i-0123456789abcdef0,debug-threads=on",
            "-machine",
            "pc,accel=tcg",
            "-cpu",
            "max",
            "-smp",
            "2",
            "-m",
            "512M",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-chardev",
            "file,id=serial0,path=/inst/console.log",
            "-serial",
            "chardev:serial0",
            "-chardev",
            "socket,id=qmp,path=/run/i-1/qmp.sock,server=on,wait=off",
            "-mon",
            "chardev=qmp,mode=control",
            "-device",
            r#"{"driver":"virtio-rng-pci","id":"rng0"}"#,
            "-kernel",
            "/img/vmlinuz",
            "-initrd",
            "/img/initrd.img",
            "-append",
            "root=/dev/vda console=ttyS0",
            "-blockdev",
            r#"{"driver":"qcow2","file":{"driver":"file","filename":"/inst/root.qcow2","read-only":false},"node-name":"disk0","read-only":false}"#,
            "-device",
            r#"{"drive":"disk0","driver":"virtio-blk-pci","id":"disk0-dev"}"#,
            "-netdev",
            r#"{"downscript":"no","id":"net0","ifname":"tap-abc","script":"no","type":"tap"}"#,
            "-device",
            r#"{"driver":"virtio-net-pci","id":"net0-dev","mac":"d0:0d:12:34:56:78","netdev":"net0"}"#,
            "-pidfile",
            "/run/i-1/qemu.pid",
            "-daemonize",
        ];
        assert_eq!(values(&got), values(&want));
    }

    #[test]
    fn disk_boot_kvm_argv() {
        let mut s = spec();
        s.boot = Boot::Disk;
        s.accel = Accel::Kvm;
        s.keep_on_shutdown = true;
        s.disks.push(Disk {
            source: DiskSource::file("/vol/data,1.raw", DiskFormat::Raw),
            read_only: true,
            id: None,
            serial: None,
        });
        s.disks.push(Disk {
            source: DiskSource::file("/vol/vol-1.qcow2", DiskFormat::Qcow2),
            read_only: false,
            id: Some("vol-1".into()),
            serial: Some("vol1".into()),
        });
        s.serial_log = "/odd,dir/console.log".into();
        s.nics = vec![Nic {
            backend: NicBackend::User {
                hostfwd: vec!["tcp:127.0.0.1:2222-:22".into()],
            },
            mac: "52:54:00:00:00:01".into(),
        }];
        let got = strings(&argv(&s));
        let joined = got.join(" ");
        assert!(joined.contains("-machine pc,accel=kvm -cpu host"));
        assert!(!got.iter().any(|a| a == "-kernel" || a == "-append"));
        assert!(got.iter().any(|a| a == "-no-shutdown"));
        assert!(joined.contains("file,id=serial0,path=/odd,,dir/console.log"));
        let vals = values(&got);
        for want in [
            json!({"bootindex": 0, "drive": "disk0", "driver": "virtio-blk-pci", "id": "disk0-dev"}),
            json!({"driver": "raw", "node-name": "disk1", "read-only": true,
                   "file": {"driver": "file", "filename": "/vol/data,1.raw", "read-only": true}}),
            json!({"drive": "disk1", "driver": "virtio-blk-pci", "id": "disk1-dev"}),
            json!({"driver": "qcow2", "node-name": "vol-1", "read-only": false,
                   "file": {"driver": "file", "filename": "/vol/vol-1.qcow2", "read-only": false}}),
            json!({"drive": "vol-1", "driver": "virtio-blk-pci", "id": "vol-1-dev", "serial": "vol1"}),
            json!({"hostfwd": [{"str": "tcp:127.0.0.1:2222-:22"}], "id": "net0", "type": "user"}),
        ] {
            assert!(vals.contains(&want), "missing {want} in {joined}");
        }
        s.cpu_model = Some("qemu64".into());
        assert!(strings(&argv(&s)).join(" ").contains("-cpu qemu64"));
    }

    fn nbd_disk(server: NbdServer) -> Disk {
        Disk {
            source: DiskSource::Nbd(NbdSource {
                server,
                export: "vol-1".into(),
                tls_hostname: "st-1.node.mallee-cluster".into(),
                tls_dir: "/data/tls/nbd-client".into(),
            }),
            read_only: false,
            id: Some("vol-1".into()),
            serial: Some("vol1".into()),
        }
    }

    #[test]
    fn nbd_blockdev_is_exact() {
        let tcp = nbd_disk(NbdServer::Inet {
            host: "10.0.0.5".into(),
            port: 10809,
        });
        let DiskSource::Nbd(source) = &tcp.source else {
            panic!("an NBD disk");
        };
        assert_eq!(
            nbd_blockdev_json("vol-1", source, true),
            json!({
                "driver": "nbd",
                "node-name": "vol-1",
                "read-only": true,
                "server": {"type": "inet", "host": "10.0.0.5", "port": "10809"},
                "export": "vol-1",
                "tls-creds": "nbd-tls",
                "tls-hostname": "st-1.node.mallee-cluster",
                "reconnect-delay": 60,
                "open-timeout": 30,
            })
        );
        let relayed = nbd_disk(NbdServer::Unix {
            path: "/run/mallee/ab/nbd/vol-1.sock".into(),
        });
        assert_eq!(
            disk_blockdev_json("vol-1", &relayed)["server"],
            json!({"type": "unix", "path": "/run/mallee/ab/nbd/vol-1.sock"})
        );
        assert_eq!(
            nbd_tls_object_json(Path::new("/data/tls/nbd-client")),
            json!({"qom-type": "tls-creds-x509", "id": "nbd-tls",
                   "dir": "/data/tls/nbd-client", "endpoint": "client"})
        );
        // A file disk is what blockdev_json makes.
        let file = Disk {
            source: DiskSource::file("/v/a.qcow2", DiskFormat::Qcow2),
            read_only: false,
            id: None,
            serial: None,
        };
        assert_eq!(
            disk_blockdev_json("disk0", &file),
            blockdev_json("disk0", Path::new("/v/a.qcow2"), DiskFormat::Qcow2, false)
        );
    }

    #[test]
    fn nbd_disks_argv() {
        let mut s = spec();
        // Without NBD disks, no TLS object.
        assert!(!strings(&argv(&s)).iter().any(|a| a == "-object"));
        s.disks.push(nbd_disk(NbdServer::Inet {
            host: "10.0.0.5".into(),
            port: 10809,
        }));
        s.disks.push(Disk {
            id: Some("vol-2".into()),
            ..nbd_disk(NbdServer::Unix {
                path: "/run/r/vol-2.sock".into(),
            })
        });
        assert!(s.validate().is_ok());
        let got = strings(&argv(&s));
        let objects: Vec<&String> = got
            .windows(2)
            .filter(|w| w[0] == "-object")
            .map(|w| &w[1])
            .collect();
        assert_eq!(objects.len(), 1, "one TLS object: {got:?}");
        let vals = values(&got);
        // The TLS object comes before the disks that use it.
        let object_at = vals
            .iter()
            .position(|v| v["qom-type"] == "tls-creds-x509")
            .expect("TLS object");
        let nbd_at = vals
            .iter()
            .position(|v| v["driver"] == "nbd")
            .expect("NBD blockdev");
        assert!(object_at < nbd_at);
        for want in [
            json!({"qom-type": "tls-creds-x509", "id": "nbd-tls",
                   "dir": "/data/tls/nbd-client", "endpoint": "client"}),
            json!({"driver": "nbd", "node-name": "vol-1", "read-only": false,
                   "server": {"type": "inet", "host": "10.0.0.5", "port": "10809"},
                   "export": "vol-1", "tls-creds": "nbd-tls",
                   "tls-hostname": "st-1.node.mallee-cluster",
                   "reconnect-delay": 60, "open-timeout": 30}),
            json!({"drive": "vol-1", "driver": "virtio-blk-pci", "id": "vol-1-dev", "serial": "vol1"}),
            json!({"driver": "nbd", "node-name": "vol-2", "read-only": false,
                   "server": {"type": "unix", "path": "/run/r/vol-2.sock"},
                   "export": "vol-1", "tls-creds": "nbd-tls",
                   "tls-hostname": "st-1.node.mallee-cluster",
                   "reconnect-delay": 60, "open-timeout": 30}),
        ] {
            assert!(vals.contains(&want), "missing {want} in {got:?}");
        }
        // One TLS object: one directory.
        if let DiskSource::Nbd(nbd) = &mut s.disks[2].source {
            nbd.tls_dir = "/elsewhere".into();
        }
        assert!(matches!(s.validate(), Err(VmError::InvalidSpec(_))));
        let text = serde_json::to_string(&s).expect("serialize");
        assert_eq!(
            serde_json::from_str::<VmSpec>(&text).expect("deserialize"),
            s
        );
    }

    #[test]
    fn validate_rejects_bad_specs() {
        assert!(spec().validate().is_ok());
        let mut s = spec();
        s.nics[0].mac = "d0:0d:12:34:56".into();
        assert!(matches!(s.validate(), Err(VmError::InvalidSpec(_))));
        let mut s = spec();
        s.vcpus = 0;
        assert!(s.validate().is_err());
        let mut s = spec();
        s.boot = Boot::Disk;
        s.disks.clear();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.run_dir = PathBuf::from(format!("/{}", "x".repeat(100)));
        assert!(matches!(s.validate(), Err(VmError::SocketPathTooLong(_))));
    }

    #[test]
    fn spec_round_trips_as_json() {
        let s = spec();
        let text = serde_json::to_string(&s).expect("serialize");
        let back: VmSpec = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, s);
    }
}
