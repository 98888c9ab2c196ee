//! `mallee metal …` and the seed's `metaleuca-…` commands (argv[0]): a
//! client of the controller's `metal` API (SigV4 service `metal`, Query
//! protocol) through the CLIs' signed client ([`crate::client`]), printing
//! tab-separated lines like euca2ools, or JSON with `--json`. Also `mallee
//! up`'s provisioning-network flags.

mod import;
mod lab;
mod render;
mod request;
mod up;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::client::{Client, ClientError};
pub use import::import_at_start;
use import::import_commands;
use render::{render, to_json};
use request::{load_files, request};
pub use up::UpMetalArgs;

/// The prefix of the seed's command names.
pub const ARGV0_PREFIX: &str = "metaleuca-";

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
    /// A lab: QEMU machines on a provisioning bridge in a network
    /// namespace, for trying the zone without a rack (no API call: it
    /// prints the `mallee up` command that serves them).
    #[command(subcommand)]
    Lab(lab::LabCommand),
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
    if let MetalCommand::Lab(command) = &cli.command {
        return lab::run(command, &cli.client.data_dir).await;
    }
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
mod tests;
