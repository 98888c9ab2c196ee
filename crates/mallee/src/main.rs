//! The `mallee` binary: a thin command-line layer over the crates.

mod bundle_cmd;
mod client;
mod conflicts;
mod doctor_cmd;
mod image_cmd;
mod journal;
mod metal_cmd;
mod node_admin;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

mod node_cmd;
mod status_cmd;
mod storage_cmd;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mallee_api::server::{self, Prepared};
use mallee_cloud::bootstrap::{self, Bootstrapped};
use mallee_cloud::doctor::{self, Report, Role};
use mallee_cloud::{Config, accounts as admin};
use mallee_store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "mallee",
    version,
    about = "An AWS-compatible private cloud in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the all-in-one cloud in the foreground (Ctrl-C stops it).
    Up(Box<UpArgs>),
    /// Run the controller (API and control plane) with no local node;
    /// nodes join with `mallee node join`.
    Controller(ControllerArgs),
    /// Check this host for what each role needs (`--fix`: install the
    /// missing packages with apt-get, as root).
    Doctor(DoctorArgs),
    /// The health of the cloud: controller, store, object store, each
    /// node (up/down, heartbeat age, accelerator, capacity), instances per
    /// state, and warnings (disk nearly full, a node down, an image cache
    /// over its limit). Exits 0 only when nothing warns.
    Status(status_cmd::StatusArgs),
    /// Administer accounts and access keys.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Upload and register images through the API.
    #[command(subcommand)]
    Image(image_cmd::ImageCommand),
    /// AMI bundles: bundle, upload, download, unbundle, migrate-manifest.
    #[command(subcommand)]
    Bundle(bundle_cmd::BundleCommand),
    /// Run a node agent of a controller.
    #[command(subcommand)]
    Node(node_cmd::NodeCommand),
    /// Stop every VM of `up`'s node and remove its network (records and
    /// disks stay).
    Purge(node_cmd::PurgeArgs),
    /// The zone's storage host: `mallee storage join` keeps the zone's
    /// volumes and exports them over NBD to the nodes.
    #[command(subcommand)]
    Storage(storage_cmd::StorageCommand),
    /// The bare-metal zone (Metaleuca); also run as `metaleuca-COMMAND`.
    Metal(metal_cmd::MetalCli),
}

#[derive(Args, Debug)]
struct DataDirArg {
    /// Data directory (database, credentials, objects).
    #[arg(long, env = "MALLEE_DATA_DIR", default_value = "./mallee-data")]
    data_dir: PathBuf,
    /// The metadata database: `postgres://USER@HOST/DB` (PostgreSQL;
    /// `?host=/run/postgresql` for a unix socket) or a SQLite file
    /// (`sqlite:PATH` or a path). Default: mallee.db in the data directory.
    #[arg(long, env = "MALLEE_DATABASE")]
    database: Option<String>,
}

#[derive(Args, Debug)]
struct DoctorArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// Install the Debian packages the failed checks name (apt-get, as
    /// root; every command is printed before it runs), then check again.
    #[arg(long)]
    fix: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// What `up` and `controller` share: the controller's settings.
#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// Address of the API endpoint.
    #[arg(long, env = "MALLEE_LISTEN", default_value = mallee_cloud::config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Address of the node listener (mutual TLS; nodes enrol, register and
    /// fetch data there). Default: `controller` 0.0.0.0:8774, `up` a free
    /// loopback port.
    #[arg(long, env = "MALLEE_NODE_LISTEN")]
    node_listen: Option<SocketAddr>,
    /// Serve instances' public DNS names (`ec2-198-18-0-23.REGION.compute.mallee`
    /// and their reverse names) over UDP and TCP at this address, for hosts outside
    /// the instances' VPCs (default: no DNS server).
    #[arg(long, env = "MALLEE_DNS_LISTEN")]
    dns_listen: Option<SocketAddr>,
    /// Serve Prometheus metrics (`GET /metrics`: requests, latencies,
    /// reconciler, nodes, instances) at this address, without
    /// authentication: keep it on loopback or an admin network (default:
    /// no metrics listener).
    #[arg(long, env = "MALLEE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Requests handled at once; past that, new ones are refused at once
    /// with the service's throttling error (EC2 `RequestLimitExceeded`, S3
    /// `SlowDown`, IAM/STS `Throttling`) instead of waiting in a queue.
    #[arg(long, env = "MALLEE_MAX_CONCURRENT_REQUESTS", default_value_t = mallee_cloud::admission::DEFAULT_MAX_CONCURRENT_REQUESTS)]
    max_concurrent_requests: usize,
    /// Requests per second each account may make, `RATE` or `RATE:BURST`
    /// (burst: requests at once after a quiet spell, default twice the
    /// rate); past it, the service's throttling error (default: no limit).
    #[arg(long, env = "MALLEE_ACCOUNT_RATE_LIMIT", value_name = "RATE[:BURST]")]
    account_rate_limit: Option<mallee_cloud::admission::RateLimit>,
    /// Instances each account may have running (DescribeAccountAttributes'
    /// `max-instances`; past it, RunInstances answers InstanceLimitExceeded).
    #[arg(long, env = "MALLEE_MAX_INSTANCES_PER_ACCOUNT", default_value_t = mallee_cloud::config::AccountLimits::default().max_instances)]
    max_instances_per_account: u32,
    /// Domain of instances' public DNS names (`ec2-198-18-0-23.DOMAIN`;
    /// default `REGION.compute.mallee`; fixed at the first start).
    #[arg(long, env = "MALLEE_PUBLIC_DOMAIN")]
    public_domain: Option<String>,
    /// Log line format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Domain for virtual-host style S3 requests (`BUCKET.DOMAIN`).
    #[arg(long, env = "MALLEE_S3_DOMAIN", default_value = mallee_cloud::config::DEFAULT_S3_DOMAIN)]
    s3_domain: String,
    /// Public address range of the first zone (elastic and auto-assigned
    /// public IPs); its first host is the node's public bridge.
    #[arg(long, env = "MALLEE_PUBLIC_RANGE", default_value = mallee_cloud::config::DEFAULT_PUBLIC_RANGE)]
    public_range: mallee_cloud::config::PublicCidr,
    /// Do not give instances a public IP at launch.
    #[arg(long)]
    no_auto_public_ip: bool,
    /// Region name (fixed at the first start; e.g. `us-east-1` for tools
    /// that check region names against AWS's list).
    #[arg(long, env = "MALLEE_REGION", default_value = mallee_cloud::config::DEFAULT_REGION)]
    region: String,
    /// Availability zone names, comma-separated (fixed at the first start;
    /// default: the region's name followed by `a`). The public range and
    /// the node of `up` serve the first.
    #[arg(long, env = "MALLEE_ZONES", value_delimiter = ',')]
    zones: Vec<String>,
    /// Seconds a node may stay silent before it counts as down (its
    /// instances impaired, nothing new placed on it); nodes heartbeat every
    /// 10 s.
    #[arg(long, default_value_t = 30)]
    node_timeout: u64,
    /// How a zone chooses nodes for new instances: `spread` (fewest
    /// instances first, the default), `greedy` (fill a node first) or
    /// `round-robin`; `ZONE=POLICY` sets one zone's (repeatable).
    #[arg(long, value_name = "[ZONE=]POLICY")]
    placement: Vec<String>,
}

impl ServeArgs {
    /// The addresses it listens on that must be free (the checks of
    /// [`conflicts::check_ports`]).
    fn ports(&self) -> Vec<(&'static str, conflicts::Proto, SocketAddr)> {
        let mut ports = vec![("--listen", conflicts::Proto::Tcp, self.listen)];
        if let Some(addr) = self.node_listen {
            ports.push(("--node-listen", conflicts::Proto::Tcp, addr));
        }
        if let Some(addr) = self.dns_listen {
            ports.push(("--dns-listen", conflicts::Proto::Udp, addr));
            ports.push(("--dns-listen", conflicts::Proto::Tcp, addr));
        }
        if let Some(addr) = self.metrics_listen {
            ports.push(("--metrics-listen", conflicts::Proto::Tcp, addr));
        }
        ports
    }

    /// The controller's configuration, its node listener at
    /// `--node-listen` or else `default_node_listen`.
    fn config(&self, default_node_listen: SocketAddr) -> Result<Config, String> {
        let mut config = Config::new(self.listen, self.data.data_dir.clone());
        config.database.clone_from(&self.data.database);
        config.set_names(&self.region, &self.zones)?;
        config.s3_domain.clone_from(&self.s3_domain);
        config.public_ranges = vec![mallee_cloud::config::PublicRange {
            zone: config.zones[0].clone(),
            cidr: self.public_range,
        }];
        config.auto_public_ip = !self.no_auto_public_ip;
        apply_placement(&mut config, &self.placement)?;
        config.node_timeout = std::time::Duration::from_secs(self.node_timeout.max(1));
        config.node_listen = self.node_listen.unwrap_or(default_node_listen);
        config.dns_listen = self.dns_listen;
        config.metrics_listen = self.metrics_listen;
        config.max_concurrent_requests = self.max_concurrent_requests.max(1);
        config.account_rate_limit = self.account_rate_limit;
        config.account_limits.max_instances = self.max_instances_per_account;
        if let Some(domain) = &self.public_domain {
            config.set_public_domain(domain)?;
        }
        Ok(config)
    }
}

#[derive(Args, Debug)]
struct UpArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// Run only the controller (no node agent: no instances can start).
    #[arg(long)]
    no_node: bool,
    /// Keep volumes as files on the node, attachable there only (no
    /// storage host; the layout before storage hosts, and the baseline
    /// `bench/run-volumes.sh` compares NBD volumes with). Only for a new
    /// data directory: one whose zone had a storage host keeps needing it.
    #[arg(long)]
    local_volumes: bool,
    #[command(flatten)]
    vm: node_cmd::VmArgs,
    #[command(flatten)]
    metal: metal_cmd::UpMetalArgs,
}

#[derive(Args, Debug)]
struct ControllerArgs {
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Access keys.
    #[command(subcommand, name = "access-key")]
    AccessKey(AccessKeyCommand),
    /// X.509 signing certificates of users (what bundles are signed with).
    #[command(subcommand, name = "signing-certificate")]
    SigningCertificate(SigningCertificateCommand),
    /// Nodes of the cluster: list, maintenance (disable/enable), enrolment
    /// tokens, removal.
    #[command(subcommand)]
    Node(node_admin::NodeAdminCommand),
    /// Move the clock S3 lifecycle rules are judged by ahead of the wall
    /// clock (for tests and drills: a running controller notices within
    /// seconds and runs a lifecycle pass as if it were that much later).
    #[command(name = "lifecycle-clock")]
    LifecycleClock {
        /// How far ahead, in seconds.
        #[arg(long, conflicts_with = "reset", required_unless_present = "reset")]
        ahead_seconds: Option<u64>,
        /// Back to the wall clock.
        #[arg(long)]
        reset: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// The metadata database.
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Subcommand, Debug)]
enum DbCommand {
    /// Create or bring up to date the schema of the database `--database`
    /// names (a `postgres://` URL or a SQLite file; default: mallee.db in
    /// the data directory). Controllers do it themselves when they start;
    /// this prepares a database ahead of them.
    Migrate {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Move a cloud's metadata from its SQLite file into a new PostgreSQL
    /// database (migrated first; it must hold no cloud yet), all or
    /// nothing. Stop the controller first; object data stays in the data
    /// directory, which the controller keeps using with `--database`.
    Copy {
        /// The SQLite database: `sqlite:PATH` or a path
        /// (`DATA_DIR/mallee.db`).
        #[arg(long)]
        from: String,
        /// The PostgreSQL database: `postgres://…`.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand, Debug)]
enum AccountCommand {
    /// Create an account with an `admin` user.
    Create {
        /// Account name.
        name: String,
        #[command(flatten)]
        data: DataDirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set or clear an account's object storage quota.
    Quota {
        /// Account name.
        #[arg(long)]
        account: String,
        /// Quota in bytes.
        #[arg(long, conflicts_with = "clear", required_unless_present = "clear")]
        bytes: Option<u64>,
        /// Remove the quota.
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an account that owns no resources (its users, groups, roles
    /// and policies go with it).
    Delete {
        /// Account name.
        name: String,
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(Subcommand, Debug)]
enum AccessKeyCommand {
    /// Create an access key for an account's `admin` user.
    Create {
        /// Account name.
        #[arg(long)]
        account: String,
        #[command(flatten)]
        data: DataDirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum SigningCertificateCommand {
    /// Make a key pair and a certificate for a user, register the
    /// certificate and write USER-cert.pem and USER-pk.pem.
    Create {
        /// Account name.
        #[arg(long)]
        account: String,
        /// User name.
        #[arg(long, default_value = "admin")]
        user: String,
        /// Directory to write the certificate and key into.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
        #[command(flatten)]
        data: DataDirArg,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,s3s=off"));
    // Colours only for a terminal, never into log files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        // Under systemd, into the journal with each line's priority.
        LogFormat::Text if journal::stderr_is_journal() => builder
            .with_ansi(false)
            .event_format(journal::JournalFormat::new())
            .init(),
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    let cli = match metal_cmd::argv0_command(&argv0) {
        // `metaleuca-run-instances …` is `mallee metal run-instances …`.
        Some(sub) => Cli {
            command: Command::Metal(metal_cmd::parse(std::iter::once(sub.into()).chain(argv))),
        },
        None => Cli::parse(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mallee: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up(*args).await,
            Command::Controller(args) => controller(args).await,
            Command::Doctor(args) => Ok(doctor_cmd::run(&args.data.data_dir, args.fix)),
            Command::Status(args) => status_cmd::run(args).await,
            Command::Admin(command) => admin_command(command).await,
            Command::Node(command) => {
                init_logging(LogFormat::Text);
                node_cmd::node_command(command).await
            }
            Command::Purge(args) => node_cmd::purge_command(args).await,
            Command::Storage(command) => {
                init_logging(LogFormat::Text);
                storage_cmd::storage_command(command).await
            }
            Command::Image(command) => image_cmd::run(command).await,
            Command::Bundle(command) => bundle_cmd::run(command).await,
            Command::Metal(cli) => metal_cmd::run(cli).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("mallee: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the store, bootstraps and binds the controller of `config`, and
/// says where it is.
async fn prepare(config: Config) -> Result<Prepared, String> {
    let prepared = server::prepare(config).await.map_err(|e| e.to_string())?;
    print_credentials(&prepared.bootstrapped);
    Ok(prepared)
}

async fn up(args: UpArgs) -> Result<ExitCode, String> {
    init_logging(args.serve.log_format);
    let shutdown = server::shutdown_signal();
    let data_dir = args.serve.data.data_dir.clone();
    let report = doctor::run(&data_dir);
    let controller_failures = report.failures(Role::Controller);
    if !controller_failures.is_empty() {
        eprint!("{}", report.render());
        return Err("the controller's prerequisites are missing (see above); not starting".into());
    }
    let node_failures = report.failures(Role::Node);
    let run_node = !args.no_node && node_failures.is_empty();
    if !args.no_node && !node_failures.is_empty() {
        eprint!("{}", report.render());
        tracing::error!(
            missing = %node_failures.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
            install = Report::apt_line(&node_failures).unwrap_or_default(),
            "node prerequisites missing: starting without a node agent, so no instance can run"
        );
    }
    // Nothing this cloud is about to use may belong to another one.
    let mut claims = conflicts::Claims::default();
    claims.controller(&data_dir)?;
    conflicts::check_ports(&args.serve.ports())?;
    if run_node {
        let node_dir = node_cmd::up_node_dir(&data_dir);
        let node_id = mallee_node::agent::data_dir_node_id(&node_dir).map_err(|e| e.to_string())?;
        let public = mallee_node::network::PublicNetworkConfig::for_node_dir(
            &node_dir,
            args.serve.public_range.0,
        );
        claims
            .node(
                &node_dir,
                &node_id,
                &node_dir.join("network"),
                Some(&public),
            )
            .await?;
    }
    // The node of `up` is on the same host: the node listener stays on
    // loopback (a free port, so several clouds can run side by side)
    // unless the admin opens it to other nodes.
    let config = args.serve.config(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let metal = args.metal.config(&config.data_dir)?;
    let mut prepared = prepare(config).await?;
    if let Some(metal) = metal {
        let interface = metal.network.interface.clone();
        prepared
            .enable_metal(metal)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(interface, "bare-metal provisioning enabled");
        if let Some(file) = args.metal.import_file() {
            tokio::spawn(metal_cmd::import_at_start(
                prepared.cloud.config.endpoint(),
                prepared.cloud.config.credentials_dir().join("admin.json"),
                file.to_owned(),
            ));
        }
    }
    tracing::info!(endpoint = %prepared.cloud.config.endpoint(), nodes = %prepared.node_url(), data_dir = %prepared.cloud.config.data_dir.display(), "mallee is up");
    // The zone's storage host: its volumes, exported to the node over NBD.
    let storage = if run_node && !args.local_volumes {
        match node_cmd::start_up_storage(&prepared).await {
            Ok(storage) => {
                tracing::info!(url = %storage.url(), "storage host started");
                Some(storage)
            }
            Err(e) => {
                tracing::error!(error = %e, "the storage host could not start; volumes cannot be created");
                None
            }
        }
    } else {
        None
    };
    let node = if run_node {
        match node_cmd::start_up_node(&prepared, &args.vm).await {
            Ok(node) => {
                tracing::info!(url = %node.url(), "node agent started");
                Some(node)
            }
            Err(e) => {
                tracing::error!(error = %e, "the node agent could not start; no instance can run");
                None
            }
        }
    } else {
        None
    };
    prepared.serve(shutdown).await.map_err(|e| e.to_string())?;
    if let Some(node) = node {
        node.shutdown().await;
    }
    if let Some(storage) = storage {
        storage.shutdown().await;
    }
    tracing::info!("mallee stopped");
    drop(claims);
    Ok(ExitCode::SUCCESS)
}

async fn controller(args: ControllerArgs) -> Result<ExitCode, String> {
    init_logging(args.serve.log_format);
    let shutdown = server::shutdown_signal();
    let report = doctor::run(&args.serve.data.data_dir);
    if !report.failures(Role::Controller).is_empty() {
        eprint!("{}", report.render());
        return Err("the controller's prerequisites are missing (see above); not starting".into());
    }
    let mut claims = conflicts::Claims::default();
    claims.controller(&args.serve.data.data_dir)?;
    let default_node_listen = mallee_cloud::config::DEFAULT_NODE_LISTEN
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut ports = args.serve.ports();
    if args.serve.node_listen.is_none() {
        ports.push(("--node-listen", conflicts::Proto::Tcp, default_node_listen));
    }
    conflicts::check_ports(&ports)?;
    let prepared = prepare(args.serve.config(default_node_listen)?).await?;
    let ca = prepared.cloud.compute.nodes.pki().ca().fingerprint();
    println!(
        "mallee: node listener {} (cluster CA {ca})",
        prepared.node_url()
    );
    println!(
        "mallee: add a node:  mallee admin node token create --zone ZONE, then on the node  mallee node join https://THIS-HOST:PORT --token TOKEN"
    );
    tracing::info!(endpoint = %prepared.cloud.config.endpoint(), nodes = %prepared.node_url(), data_dir = %prepared.cloud.config.data_dir.display(), "mallee controller is up");
    prepared.serve(shutdown).await.map_err(|e| e.to_string())?;
    tracing::info!("mallee controller stopped");
    drop(claims);
    Ok(ExitCode::SUCCESS)
}

fn print_credentials(b: &Bootstrapped) {
    let c = &b.credentials;
    let dir = b.credentials_dir.display();
    if b.first_start {
        println!(
            "mallee: created the administrator account '{}' ({}).",
            c.account_name, c.account_id
        );
        println!("\n# AWS CLI profile (append to ~/.aws/config, then use --profile mallee):");
        print!("{}", bootstrap::aws_profile(c));
        println!("\n# eucarc (source it for euca2ools):");
        print!("{}", bootstrap::eucarc(c, &b.credentials_dir));
        println!("\n# environment for boto3:");
        print!("{}", bootstrap::boto3_env(c));
        println!();
    }
    println!("mallee: endpoint {}  region {}", c.endpoint, c.region);
    println!("mallee: credentials in {dir}/ (admin.json, aws-config, eucarc, boto3.env)");
    println!("mallee: try  set -a; . {dir}/boto3.env; set +a; aws ec2 describe-availability-zones");
}

/// The configuration of the controller of `data_dir`, as far as the
/// admin commands need it.
fn data_dir_config(data_dir: &Path) -> Result<Config, String> {
    Ok(Config::new(
        mallee_cloud::config::DEFAULT_LISTEN
            .parse()
            .map_err(|e| format!("{e}"))?,
        data_dir.to_owned(),
    ))
}

/// The store `--database` names, else the data directory's SQLite file.
async fn open_store(data: &DataDirArg) -> Result<Arc<dyn Store>, String> {
    let mut config = data_dir_config(&data.data_dir)?;
    config.database.clone_from(&data.database);
    std::fs::create_dir_all(&data.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data.data_dir.display()))?;
    config.database().open().await.map_err(|e| e.to_string())
}

async fn admin_command(command: AdminCommand) -> Result<ExitCode, String> {
    match command {
        AdminCommand::Account(AccountCommand::Create { name, data, json }) => {
            let store = open_store(&data).await?;
            let account = admin::create_account(&*store, &name, false)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"account_id": account.account_id, "account_name": account.name})
                );
            } else {
                println!("ACCOUNT\t{}\t{}", account.name, account.account_id);
            }
        }
        AdminCommand::Account(AccountCommand::Quota {
            account,
            bytes,
            clear,
            data,
        }) => {
            let store = open_store(&data).await?;
            let found = store
                .account_by_name(&account)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("account '{account}' does not exist"))?;
            let quota = if clear { None } else { bytes };
            store
                .set_account_quota(&found.account_id, quota)
                .await
                .map_err(|e| e.to_string())?;
            match quota {
                Some(q) => println!("QUOTA\t{account}\t{q}"),
                None => println!("QUOTA\t{account}\tnone"),
            }
        }
        AdminCommand::Account(AccountCommand::List { data, json }) => {
            let store = open_store(&data).await?;
            let accounts = store.accounts().await.map_err(|e| e.to_string())?;
            if json {
                let list: Vec<_> = accounts
                    .iter()
                    .map(|a| serde_json::json!({"account_id": a.account_id, "account_name": a.name, "is_admin": a.is_admin}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for a in accounts {
                    println!("ACCOUNT\t{}\t{}", a.name, a.account_id);
                }
            }
        }
        AdminCommand::Account(AccountCommand::Delete { name, data }) => {
            let store = open_store(&data).await?;
            mallee_cloud::identity::account::delete_named(&*store, &name)
                .await
                .map_err(|e| e.to_string())?;
            println!("ACCOUNT\t{name}\tdeleted");
        }
        AdminCommand::Node(command) => return node_admin::run(command).await,
        AdminCommand::SigningCertificate(SigningCertificateCommand::Create {
            account,
            user,
            out_dir,
            data,
        }) => {
            let store = open_store(&data).await?;
            let found = store
                .account_by_name(&account)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("account '{account}' does not exist"))?;
            let (cert, key) =
                mallee_cloud::identity::signing::create(&*store, &found.account_id, &user)
                    .await
                    .map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
            let cert_path = out_dir.join(format!("{user}-cert.pem"));
            let key_path = out_dir.join(format!("{user}-pk.pem"));
            write_owner_only(&key_path, &key)?;
            std::fs::write(&cert_path, &cert.body)
                .map_err(|e| format!("{}: {e}", cert_path.display()))?;
            println!(
                "CERTIFICATE\t{}\t{}\t{}\t{}",
                cert.certificate_id,
                found.account_id,
                cert_path.display(),
                key_path.display()
            );
        }
        AdminCommand::Db(DbCommand::Migrate { data }) => {
            let mut config = data_dir_config(&data.data_dir)?;
            config.database.clone_from(&data.database);
            let database = config.database();
            if let mallee_store::Database::Sqlite(_) = database {
                std::fs::create_dir_all(&data.data_dir)
                    .map_err(|e| format!("cannot create {}: {e}", data.data_dir.display()))?;
            }
            let version = database.migrate().await.map_err(|e| e.to_string())?;
            println!("SCHEMA\t{}\t{version}", database.display());
        }
        AdminCommand::Db(DbCommand::Copy { from, to }) => {
            let mallee_store::Database::Sqlite(from) = mallee_store::Database::parse(&from) else {
                return Err("--from: give the SQLite database (sqlite:PATH or a path)".into());
            };
            let target = mallee_store::Database::parse(&to);
            let mallee_store::Database::Postgres(url) = &target else {
                return Err("--to: give the PostgreSQL database (postgres://…)".into());
            };
            let copied = mallee_store::copy::sqlite_to_postgres(&from, url)
                .await
                .map_err(|e| e.to_string())?;
            for (table, rows) in copied {
                println!("COPIED\t{table}\t{rows}");
            }
            println!("DATABASE\t{}", target.display());
        }
        AdminCommand::LifecycleClock {
            ahead_seconds,
            reset,
            data,
        } => {
            let store = open_store(&data).await?;
            let millis = if reset {
                0
            } else {
                i64::try_from(ahead_seconds.unwrap_or(0))
                    .ok()
                    .and_then(|s| s.checked_mul(1000))
                    .ok_or("--ahead-seconds is too large")?
            };
            store
                .set_setting(
                    mallee_cloud::objects::lifecycle::CLOCK_OFFSET_SETTING,
                    &millis.to_string(),
                )
                .await
                .map_err(|e| e.to_string())?;
            println!("LIFECYCLE-CLOCK\t+{}s", millis / 1000);
        }
        AdminCommand::AccessKey(AccessKeyCommand::Create {
            account,
            data,
            json,
        }) => {
            let store = open_store(&data).await?;
            let (key, account) = admin::create_access_key(&*store, &account)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "access_key_id": key.access_key_id,
                        "secret_access_key": key.secret_access_key,
                        "account_id": account.account_id,
                        "account_name": account.name,
                    })
                );
            } else {
                println!(
                    "ACCESSKEY\t{}\t{}\t{}",
                    account.name, key.access_key_id, key.secret_access_key
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a file only its owner may read.
fn write_owner_only(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Applies `--placement [ZONE=]POLICY` arguments to `config`.
fn apply_placement(config: &mut Config, args: &[String]) -> Result<(), String> {
    for arg in args {
        match arg.split_once('=') {
            Some((zone, policy)) => {
                if !config.zones.iter().any(|z| z == zone) {
                    return Err(format!(
                        "--placement {arg}: {zone} is not a zone of this cloud"
                    ));
                }
                config.placement.insert(zone.to_owned(), policy.parse()?);
            }
            None => config.default_placement = arg.parse()?,
        }
    }
    Ok(())
}
