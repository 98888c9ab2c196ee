//! `mallee metal …` and the seed's `metaleuca-…` commands (argv[0]): a
//! client of the controller's `metal` API (SigV4 service `metal`, Query
//! protocol) through the CLIs' signed client ([`crate::client`]), printing
//! tab-separated lines like euca2ools, or JSON with `--json`. Also `mallee
//! up`'s provisioning-network flags.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mallee_cloud::metal::MetalConfig;
use mallee_cloud::metal::mallee_metal::Timeouts;
use mallee_cloud::metal::mallee_metal::netboot::ProvisioningNetwork;

use crate::client::xml::{Element, Item};
use crate::client::{Client, ClientError};

/// The prefix of the seed's command names.
pub const ARGV0_PREFIX: &str = "metaleuca-";

// ------------------------------------------------------------ `mallee up`

/// `mallee up` flags for the bare-metal zone's provisioning network (off
/// unless `--metal-interface` is given).
#[derive(Args, Debug)]
pub struct UpMetalArgs {
    /// Provisioning interface (a bridge the machines' NICs are on):
    /// enables bare-metal provisioning (dnsmasq DHCP for known MACs only,
    /// iPXE, the deploy protocol) on it.
    #[arg(long, env = "MALLEE_METAL_INTERFACE")]
    metal_interface: Option<String>,
    /// This host's address on the provisioning network, ADDRESS/PREFIX
    /// (e.g. 10.254.0.1/24); must already be on the interface.
    #[arg(long, env = "MALLEE_METAL_ADDRESS", requires = "metal_interface")]
    metal_address: Option<String>,
    /// Network namespace the interface is in (default: this one).
    #[arg(long, requires = "metal_interface")]
    metal_netns: Option<String>,
    /// Port of the provisioning HTTP server (iPXE scripts, deploy agent).
    #[arg(long, default_value_t = 8780)]
    metal_http_port: u16,
    /// Directory with the deploy agent (deploy-vmlinuz, deploy-initrd.img
    /// from guest/metal/build.sh). Default: DATA_DIR/metal/agent.
    #[arg(long)]
    metal_agent_dir: Option<PathBuf>,
    /// Directory with undionly.kpxe to chainload iPXE over TFTP for plain
    /// PXE firmware (Debian's ipxe package: /usr/lib/ipxe).
    #[arg(long)]
    metal_tftp_root: Option<PathBuf>,
    /// Seconds from power-on to the image being written and verified.
    #[arg(long, default_value_t = 1800)]
    metal_deploy_timeout: u64,
    /// Seconds from the image being written to the installed system's check-in.
    #[arg(long, default_value_t = 1200)]
    metal_check_in_timeout: u64,
    /// Seconds from release to the machine being powered off.
    #[arg(long, default_value_t = 300)]
    metal_release_timeout: u64,
}

impl UpMetalArgs {
    /// The provisioning settings, or `None` when provisioning is off.
    pub fn config(&self, data_dir: &Path) -> Result<Option<MetalConfig>, String> {
        let Some(interface) = &self.metal_interface else {
            return Ok(None);
        };
        let cidr = self
            .metal_address
            .as_deref()
            .ok_or("--metal-interface needs --metal-address ADDRESS/PREFIX")?;
        let (address, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| format!("--metal-address {cidr}: want ADDRESS/PREFIX"))?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|e| format!("--metal-address {cidr}: {e}"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("--metal-address {cidr}: prefix must be 8 to 30"))?;
        let metal_dir = data_dir.join("metal");
        let agent = self
            .metal_agent_dir
            .clone()
            .unwrap_or_else(|| metal_dir.join("agent"));
        Ok(Some(MetalConfig {
            network: ProvisioningNetwork {
                netns: self.metal_netns.clone(),
                interface: interface.clone(),
                address,
                prefix,
                http_port: self.metal_http_port,
                state_dir: metal_dir.join("netboot"),
                tftp_root: self.metal_tftp_root.clone(),
            },
            agent_kernel: agent.join("deploy-vmlinuz"),
            agent_initrd: agent.join("deploy-initrd.img"),
            timeouts: Timeouts {
                deploy: Duration::from_secs(self.metal_deploy_timeout),
                check_in: Duration::from_secs(self.metal_check_in_timeout),
                release: Duration::from_secs(self.metal_release_timeout),
            },
        }))
    }
}

// ------------------------------------------------------------ the client

/// Where and as whom to call the API, and how to print.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// API endpoint (default: the one in the credentials file, else
    /// http://127.0.0.1:8773).
    #[arg(long, env = "MALLEE_ENDPOINT", global = true)]
    endpoint: Option<String>,
    /// Credentials file (admin.json format). Default: AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY when set, else DATA_DIR/credentials/admin.json.
    #[arg(long, global = true)]
    credentials: Option<PathBuf>,
    /// Data directory whose credentials/admin.json is the default.
    #[arg(
        long,
        env = "MALLEE_DATA_DIR",
        default_value = "./mallee-data",
        global = true
    )]
    data_dir: PathBuf,
    /// Print JSON instead of tab-separated lines.
    #[arg(long, global = true)]
    json: bool,
}

/// `mallee metal …`.
#[derive(Parser, Debug)]
#[command(name = "mallee metal", about = "The bare-metal zone (Metaleuca)")]
pub struct MetalCli {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: MetalCommand,
}

/// `-n NAME | -i IP`.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// System name.
    #[arg(short = 'n', long = "name")]
    name: Option<String>,
    /// System address.
    #[arg(short = 'i', long = "ip")]
    ip: Option<String>,
}

/// `-n COUNT -g GROUP… | -i IP…`.
#[derive(Args, Debug, Clone)]
pub struct PickArgs {
    /// How many systems (with -g).
    #[arg(short = 'n', long = "count", requires = "group", conflicts_with = "ip")]
    count: Option<u32>,
    /// Group(s) to take them from; the first with enough free systems wins.
    #[arg(short = 'g', long = "group", num_args = 1..)]
    group: Vec<String>,
    /// These systems, by address.
    #[arg(short = 'i', long = "ip", num_args = 1.., required_unless_present = "count")]
    ip: Vec<String>,
}

/// `-u USER | -i IP…`.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ScopeArgs {
    /// Every system of this user.
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// These systems, by address.
    #[arg(short = 'i', long = "ip", num_args = 1..)]
    ip: Vec<String>,
}

/// The commands (the seed's names, plus inventory administration).
#[derive(Subcommand, Debug, Clone)]
pub enum MetalCommand {
    /// Distros (kernel + initrd pairs).
    DescribeDistros,
    /// Profiles (what can be installed).
    DescribeProfiles,
    /// Systems (all, or these).
    DescribeSystems {
        /// By name.
        #[arg(short = 'n', long = "name", num_args = 1..)]
        name: Vec<String>,
        /// By address.
        #[arg(short = 'i', long = "ip", num_args = 1..)]
        ip: Vec<String>,
    },
    /// Groups and their systems.
    DescribeSystemGroups {
        /// Only this group.
        #[arg(short = 'g', long = "group")]
        group: Option<String>,
        /// Only free systems.
        #[arg(short = 'f', long = "free")]
        free: bool,
    },
    /// Who has which systems.
    DescribeSystemUsers {
        /// Only this user.
        #[arg(short = 'u', long = "user")]
        user: Option<String>,
    },
    /// Set the profile a system installs next.
    SetProfile {
        #[command(flatten)]
        target: TargetArgs,
        /// Profile.
        #[arg(short = 'p', long = "profile")]
        profile: String,
    },
    /// Turn netboot on (the next reboot reinstalls).
    EnableNetboot(TargetArgs),
    /// Turn netboot off (the next reboot boots the disk).
    DisableNetboot(TargetArgs),
    /// Reboot a system (with netboot on: reinstall its profile).
    RebootSystem(TargetArgs),
    /// Take free systems for a user without installing them.
    ReserveSystems {
        #[command(flatten)]
        pick: PickArgs,
        /// For this user.
        #[arg(short = 'u', long = "user")]
        user: String,
    },
    /// Give systems back to the pool (powered off).
    ReleaseSystems(ScopeArgs),
    /// Take free systems and install a profile on them.
    RunInstances {
        #[command(flatten)]
        pick: PickArgs,
        /// Profile to install.
        #[arg(short = 'p', long = "profile")]
        profile: String,
        /// For this user.
        #[arg(short = 'u', long = "user")]
        user: String,
    },
    /// A user's systems and how far their installation is.
    DescribeInstances {
        /// Only this user.
        #[arg(short = 'u', long = "user")]
        user: Option<String>,
    },
    /// Give a user's systems (or these) back to the pool.
    TerminateInstances(ScopeArgs),
    /// Admin: add (or describe) a group.
    AddGroup {
        /// Name.
        name: String,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// Disk wipe policy of its systems when they are given back:
        /// none or zero (default: keep the group's, initially none).
        #[arg(long)]
        wipe: Option<String>,
    },
    /// Admin: remove an empty group.
    RemoveGroup {
        /// Name.
        name: String,
    },
    /// Admin: add or replace a distro.
    AddDistro {
        /// Name.
        name: String,
        /// Kernel location.
        #[arg(long)]
        kernel: String,
        /// Initrd location.
        #[arg(long)]
        initrd: String,
        /// Kernel arguments.
        #[arg(long, default_value = "")]
        kernel_args: String,
    },
    /// Admin: remove a distro.
    RemoveDistro {
        /// Name.
        name: String,
    },
    /// Admin: add or replace a profile: a disk image (`--location`), or a
    /// distro's installer with an answer-file template (`--distro
    /// --template FILE`).
    AddProfile {
        /// Name.
        name: String,
        /// Image profile: absolute path on the controller, or object:BUCKET/KEY.
        #[arg(long, required_unless_present = "distro", conflicts_with = "distro")]
        location: Option<String>,
        /// The image's SHA-256 (default: the controller computes it).
        #[arg(long, requires = "location")]
        sha256: Option<String>,
        /// Extra deploy agent kernel arguments.
        #[arg(long, default_value = "")]
        agent_args: String,
        /// Installer profile: the distro whose kernel and initrd boot.
        #[arg(long, requires = "template")]
        distro: Option<String>,
        /// Installer profile: the answer-file template (a file, read here).
        #[arg(long, requires = "distro")]
        template: Option<PathBuf>,
        /// Installer profile: kernel arguments after the distro's (a template).
        #[arg(long, default_value = "")]
        kernel_args: String,
        /// A template variable of the profile, KEY=VALUE (repeatable).
        #[arg(long = "var", value_name = "KEY=VALUE")]
        var: Vec<String>,
        /// Check-in fallback: the TCP port whose answer counts as a check-in
        /// (default 22; `none`: only a check-in POST counts).
        #[arg(long)]
        check_in_port: Option<String>,
        /// The template's text (read from --template before the request).
        #[arg(skip)]
        template_text: Option<String>,
    },
    /// Admin: the answer file a system gets with a profile (default: its
    /// own), rendered now.
    RenderAnswerFile {
        /// The system.
        #[command(flatten)]
        target: TargetArgs,
        /// The profile.
        #[arg(short = 'p', long = "profile")]
        profile: Option<String>,
    },
    /// Admin: remove a profile.
    RemoveProfile {
        /// Name.
        name: String,
    },
    /// Admin: add a system.
    AddSystem(SystemArgs),
    /// Admin: change a system's MAC, address, host name, group, power or disk.
    EditSystem(EditSystemArgs),
    /// Admin: remove a free system.
    RemoveSystem {
        /// Name.
        name: String,
    },
    /// Admin: confirm a manually powered system is off.
    ConfirmPoweredOff(TargetArgs),
    /// Admin: add groups, distros, profiles and systems from a JSON file
    /// (`{"groups":[…],"distros":[…],"profiles":[…],"systems":[…]}`).
    Import {
        /// The file.
        file: PathBuf,
    },
}

/// A system's fields.
#[derive(Args, Debug, Clone)]
pub struct SystemArgs {
    /// Name.
    #[arg(long)]
    name: String,
    /// Provisioning MAC.
    #[arg(long)]
    mac: String,
    /// Provisioning address.
    #[arg(long)]
    ip: String,
    /// Group.
    #[arg(long)]
    group: String,
    /// Host name (default: the name).
    #[arg(long)]
    hostname: Option<String>,
    /// Disk the image is written to (default: the agent picks).
    #[arg(long)]
    disk: Option<String>,
    /// Power settings as JSON, e.g. {"driver":"ipmi","host":"10.1.0.5",
    /// "user":"root","password":"…"} (default: manual).
    #[arg(long)]
    power: Option<String>,
    /// An answer-file template variable of this system, KEY=VALUE (repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    var: Vec<String>,
    /// Disk wipe policy when it is given back: none, zero or group
    /// (default: its group's).
    #[arg(long)]
    wipe: Option<String>,
}

/// Changes to a system.
#[derive(Args, Debug, Clone)]
pub struct EditSystemArgs {
    /// Name.
    #[arg(long)]
    name: String,
    /// New MAC.
    #[arg(long)]
    mac: Option<String>,
    /// New address.
    #[arg(long)]
    ip: Option<String>,
    /// New host name.
    #[arg(long)]
    hostname: Option<String>,
    /// New group.
    #[arg(long)]
    group: Option<String>,
    /// New disk ("" for the agent's choice).
    #[arg(long)]
    disk: Option<String>,
    /// New power settings (JSON).
    #[arg(long)]
    power: Option<String>,
    /// The system's template variables, KEY=VALUE (repeatable): they
    /// replace the old ones.
    #[arg(long = "var", value_name = "KEY=VALUE", conflicts_with = "clear_vars")]
    var: Vec<String>,
    /// Remove all of the system's template variables.
    #[arg(long)]
    clear_vars: bool,
    /// New disk wipe policy: none, zero or group (its group's).
    #[arg(long)]
    wipe: Option<String>,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum MetalCmdError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Local(String),
}

/// The client `args` name.
fn connect(args: &ClientArgs) -> Result<Client, ClientError> {
    Client::connect(
        args.endpoint.as_deref(),
        args.credentials.as_deref(),
        &args.data_dir,
    )
}

// ------------------------------------------------------------ requests

fn p(name: &str, value: impl Into<String>) -> (String, String) {
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
enum Shape {
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
fn load_files(cmd: &MetalCommand) -> Result<MetalCommand, MetalCmdError> {
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
fn request(cmd: &MetalCommand) -> (&'static str, Vec<(String, String)>, Shape) {
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
        C::Import { .. } => ("", vec![], Shape::Return("")),
    }
}

fn get<'a>(item: &'a Item, key: &str) -> &'a str {
    item.get(key).map_or("", String::as_str)
}

fn line(fields: &[&str]) -> String {
    fields.join("\t")
}

/// The tab-separated lines of an answer.
fn render(shape: Shape, answer: &Element, params: &[(String, String)]) -> Vec<String> {
    let text = |name: &str| answer.text_of(name).unwrap_or_default().to_owned();
    match shape {
        Shape::Distros => answer
            .items("distroSet")
            .iter()
            .map(|d| {
                line(&[
                    "DISTRO",
                    get(d, "name"),
                    get(d, "kernel"),
                    get(d, "initrd"),
                    get(d, "kernelArgs"),
                ])
            })
            .collect(),
        Shape::Profiles => answer
            .items("profileSet")
            .iter()
            .map(|p| {
                if get(p, "kind") == "installer" {
                    line(&[
                        "PROFILE",
                        get(p, "name"),
                        &format!("installer:{}", get(p, "distro")),
                        "",
                        "",
                    ])
                } else {
                    line(&[
                        "PROFILE",
                        get(p, "name"),
                        get(p, "location"),
                        get(p, "size"),
                        get(p, "sha256"),
                    ])
                }
            })
            .collect(),
        Shape::Profile if answer.text_of("kind") == Some("installer") => {
            vec![line(&[
                "PROFILE",
                &text("name"),
                &format!("installer:{}", text("distro")),
            ])]
        }
        Shape::Profile => vec![line(&[
            "PROFILE",
            &text("name"),
            &text("size"),
            &text("sha256"),
        ])],
        // The answer file as it is (no trailing newline added by the caller
        // for a file that ends with one).
        Shape::AnswerFile => vec![text("answerFile").trim_end_matches('\n').to_owned()],
        Shape::Systems => answer.items("systemSet").iter().map(system_line).collect(),
        Shape::Groups => {
            let mut out: Vec<String> = answer
                .items("groupSet")
                .iter()
                .map(|g| {
                    line(&[
                        "GROUP",
                        get(g, "name"),
                        get(g, "total"),
                        get(g, "free"),
                        get(g, "description"),
                        get(g, "wipe"),
                    ])
                })
                .collect();
            out.extend(answer.items("systemSet").iter().map(|s| {
                line(&[
                    "SYSTEM",
                    get(s, "group"),
                    get(s, "name"),
                    get(s, "ip"),
                    get(s, "state"),
                    get(s, "owner"),
                ])
            }));
            out
        }
        Shape::Users => answer
            .items("systemSet")
            .iter()
            .map(|s| {
                line(&[
                    "USER",
                    get(s, "owner"),
                    get(s, "name"),
                    get(s, "ip"),
                    get(s, "state"),
                    get(s, "profile"),
                ])
            })
            .collect(),
        Shape::Instances => answer
            .items("instancesSet")
            .iter()
            .map(|s| {
                let detail = if s.contains_key("reason") {
                    get(s, "reason")
                } else {
                    get(s, "step")
                };
                line(&[
                    "INSTANCE",
                    get(s, "name"),
                    get(s, "profile"),
                    get(s, "ip"),
                    get(s, "instanceState"),
                    get(s, "owner"),
                    detail,
                ])
            })
            .collect(),
        Shape::Return(kind) => {
            let name = params
                .iter()
                .find(|(k, _)| k == "Name")
                .map_or("", |(_, v)| v.as_str());
            vec![line(&[kind, name])]
        }
    }
}

fn system_line(s: &Item) -> String {
    line(&[
        "SYSTEM",
        get(s, "name"),
        get(s, "mac"),
        get(s, "ip"),
        get(s, "group"),
        get(s, "powerDriver"),
        get(s, "state"),
        get(s, "owner"),
        get(s, "profile"),
        if get(s, "netboot") == "true" {
            "netboot"
        } else {
            "local"
        },
        get(s, "wipe"),
    ])
}

/// The answer as JSON: the items of each of its sets, or its fields.
fn to_json(shape: Shape, answer: &Element) -> serde_json::Value {
    let items = |set: &str| serde_json::to_value(answer.items(set)).unwrap_or_default();
    match shape {
        Shape::Distros => items("distroSet"),
        Shape::Profiles => items("profileSet"),
        Shape::Systems | Shape::Users => items("systemSet"),
        Shape::Instances => items("instancesSet"),
        Shape::Groups => serde_json::json!({
            "groups": items("groupSet"),
            "systems": items("systemSet"),
        }),
        Shape::Profile | Shape::AnswerFile | Shape::Return(_) => {
            serde_json::to_value(answer.answer_fields()).unwrap_or_default()
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportFile {
    #[serde(default)]
    groups: Vec<ImportGroup>,
    #[serde(default)]
    distros: Vec<ImportDistro>,
    #[serde(default)]
    profiles: Vec<ImportProfile>,
    #[serde(default)]
    systems: Vec<ImportSystem>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportGroup {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    wipe: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportDistro {
    name: String,
    kernel: String,
    initrd: String,
    #[serde(default)]
    kernel_args: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportProfile {
    name: String,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    agent_args: String,
    #[serde(default)]
    distro: Option<String>,
    /// The answer-file template, inline.
    #[serde(default)]
    template: Option<String>,
    /// The answer-file template, from a file (relative to the import file).
    #[serde(default)]
    template_file: Option<PathBuf>,
    #[serde(default)]
    kernel_args: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// A port, or null for no check-in fallback (absent: 22).
    #[serde(default, deserialize_with = "some_port")]
    check_in_port: Option<Option<u16>>,
}

/// `"check_in_port": null` → `Some(None)`; absent → `None` (the default).
fn some_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u16>>, D::Error> {
    use serde::Deserialize;
    Option::<u16>::deserialize(d).map(Some)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportSystem {
    name: String,
    mac: String,
    ip: String,
    group: String,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    disk: Option<String>,
    #[serde(default)]
    wipe: Option<String>,
    #[serde(default)]
    power: Option<serde_json::Value>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// The commands an import file stands for, in dependency order.
fn import_commands(file: &Path) -> Result<Vec<MetalCommand>, MetalCmdError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| MetalCmdError::Local(format!("{}: {e}", file.display())))?;
    let f: ImportFile = serde_json::from_str(&text)
        .map_err(|e| MetalCmdError::Local(format!("{}: {e}", file.display())))?;
    let mut out = Vec::new();
    for g in f.groups {
        out.push(MetalCommand::AddGroup {
            name: g.name,
            description: g.description,
            wipe: g.wipe,
        });
    }
    for d in f.distros {
        out.push(MetalCommand::AddDistro {
            name: d.name,
            kernel: d.kernel,
            initrd: d.initrd,
            kernel_args: d.kernel_args,
        });
    }
    let kv = |vars: BTreeMap<String, String>| -> Vec<String> {
        vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    };
    for p in f.profiles {
        let template_text = match (p.template, &p.template_file) {
            (Some(t), None) => Some(t),
            (None, Some(path)) => {
                let path = file.parent().unwrap_or(Path::new(".")).join(path);
                Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| MetalCmdError::Local(format!("{}: {e}", path.display())))?,
                )
            }
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(MetalCmdError::Local(format!(
                    "{}: profile {}: give template or template_file, not both",
                    file.display(),
                    p.name
                )));
            }
        };
        if p.location.is_some() == p.distro.is_some()
            || p.distro.is_some() != template_text.is_some()
        {
            return Err(MetalCmdError::Local(format!(
                "{}: profile {}: give location (an image), or distro and template (an installer)",
                file.display(),
                p.name
            )));
        }
        out.push(MetalCommand::AddProfile {
            name: p.name,
            location: p.location,
            sha256: p.sha256,
            agent_args: p.agent_args,
            distro: p.distro,
            template: None,
            kernel_args: p.kernel_args,
            var: kv(p.variables),
            check_in_port: p
                .check_in_port
                .map(|port| port.map_or_else(|| "none".to_owned(), |n| n.to_string())),
            template_text,
        });
    }
    for s in f.systems {
        out.push(MetalCommand::AddSystem(SystemArgs {
            name: s.name,
            mac: s.mac,
            ip: s.ip,
            group: s.group,
            hostname: s.hostname,
            disk: s.disk,
            power: s.power.map(|v| v.to_string()),
            var: kv(s.variables),
            wipe: s.wipe,
        }));
    }
    Ok(out)
}

async fn run_one(
    client: &Client,
    cmd: &MetalCommand,
    json: bool,
) -> Result<serde_json::Value, MetalCmdError> {
    let cmd = load_files(cmd)?;
    let (action, params, shape) = request(&cmd);
    let answer = client.query("metal", action, &params).await?;
    if json {
        Ok(to_json(shape, &answer))
    } else {
        for l in render(shape, &answer, &params) {
            println!("{l}");
        }
        Ok(serde_json::Value::Null)
    }
}

/// Runs `mallee metal …`.
pub async fn run(cli: MetalCli) -> Result<ExitCode, String> {
    let client = connect(&cli.client).map_err(|e| e.to_string())?;
    let json = cli.client.json;
    let result = match &cli.command {
        MetalCommand::Import { file } => {
            let mut done = Vec::new();
            let commands = import_commands(file).map_err(|e| e.to_string())?;
            for c in &commands {
                done.push(run_one(&client, c, json).await.map_err(|e| e.to_string())?);
            }
            serde_json::Value::Array(done)
        }
        other => run_one(&client, other, json)
            .await
            .map_err(|e| e.to_string())?,
    };
    if json {
        println!("{result}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The subcommand a `metaleuca-NAME` argv[0] stands for.
pub fn argv0_command(argv0: &std::ffi::OsStr) -> Option<String> {
    let base = Path::new(argv0).file_name()?.to_str()?;
    base.strip_prefix(ARGV0_PREFIX)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}

/// Parses `mallee metal` arguments (`args` without the program name).
pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> MetalCli {
    MetalCli::parse_from(std::iter::once(std::ffi::OsString::from("mallee metal")).chain(args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::xml::parse as parse_xml;

    fn cli(args: &[&str]) -> MetalCli {
        MetalCli::try_parse_from(std::iter::once("metal").chain(args.iter().copied()))
            .expect("parse")
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
                MetalCli::try_parse_from(std::iter::once("metal").chain(bad.iter().copied()))
                    .is_err(),
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

        let added = parse_xml("<AddProfileResponse><requestId>r</requestId><name>img</name><kind>image</kind><size>13</size><sha256>ab12</sha256></AddProfileResponse>").expect("xml");
        assert_eq!(
            render(Shape::Profile, &added, &[]),
            ["PROFILE\timg\t13\tab12"]
        );
        assert_eq!(
            to_json(Shape::Profile, &added).to_string(),
            r#"{"kind":"image","name":"img","sha256":"ab12","size":"13"}"#
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
}
