//! `mallee bundle …`: the AMI tools' bundle workflow (euca-bundle-image,
//! euca-upload-bundle, ec2-download-bundle, ec2-unbundle,
//! ec2-migrate-manifest) over [`mallee_bundle`], so a user can carry an
//! image as a bundle from one mallee cloud, or AWS, to another. The
//! format, keys and pipeline are the library's; this file reads
//! arguments, files and the API.
//!
//! Certificates and keys default to eucarc's variables: `EC2_CERT` (the
//! user's certificate), `EC2_PRIVATE_KEY` (its key), `EUCALYPTUS_CERT`
//! (the cloud's) and `EC2_USER_ID` (the account id).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mallee_bundle::{BundleKey, Manifest, ManifestFields, keys};

use crate::client::{self, Client};
use crate::image_cmd;

/// `mallee bundle …`.
#[derive(Subcommand, Debug)]
pub enum BundleCommand {
    /// Bundle an image file: PREFIX.manifest.xml and PREFIX.part.NN in
    /// the destination directory (euca-bundle-image).
    Image(ImageArgs),
    /// Upload a bundle's parts, then its manifest (euca-upload-bundle).
    Upload(UploadArgs),
    /// Download a bundle's manifest and parts (ec2-download-bundle).
    Download(DownloadArgs),
    /// Decrypt a bundle back into its image with the user's key
    /// (ec2-unbundle).
    Unbundle(UnbundleArgs),
    /// Wrap a manifest's key for another cloud's certificate and sign it
    /// again (ec2-migrate-manifest).
    MigrateManifest(MigrateArgs),
}

/// Where the API is, as `mallee image install` takes it.
#[derive(Args, Debug)]
struct Api {
    /// API endpoint (default: the credentials file's, else
    /// http://127.0.0.1:8773).
    #[arg(long, env = "MALLEE_ENDPOINT")]
    endpoint: Option<String>,
    /// Credentials file (admin.json format). Default: AWS_ACCESS_KEY_ID
    /// and AWS_SECRET_ACCESS_KEY when set, else DATA_DIR/credentials/admin.json.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Data directory whose credentials/admin.json is the default.
    #[arg(long, env = "MALLEE_DATA_DIR", default_value = "./mallee-data")]
    data_dir: PathBuf,
}

impl Api {
    fn connect(&self) -> Result<Client, String> {
        Client::connect(
            self.endpoint.as_deref(),
            self.credentials.as_deref(),
            &self.data_dir,
        )
        .map_err(|e| e.to_string())
    }
}

/// `mallee bundle image` arguments.
#[derive(Args, Debug)]
pub struct ImageArgs {
    /// The image file (a disk, a kernel or a ramdisk).
    file: PathBuf,
    /// Kernel of a machine image (`aki-…`), or `true` to bundle a kernel.
    #[arg(long)]
    kernel: Option<String>,
    /// Ramdisk of a machine image (`ari-…`), or `true` to bundle a ramdisk.
    #[arg(long)]
    ramdisk: Option<String>,
    /// Architecture (x86_64 or i386).
    #[arg(long = "arch", default_value = "x86_64")]
    arch: String,
    /// The bundling account's id (the manifest's user).
    #[arg(long, env = "EC2_USER_ID")]
    user: String,
    /// The user's X.509 certificate (its copy of the key is wrapped for it).
    #[arg(long, env = "EC2_CERT")]
    cert: PathBuf,
    /// The user's private key (signs the manifest).
    #[arg(long, env = "EC2_PRIVATE_KEY")]
    privatekey: PathBuf,
    /// The cloud's certificate (`cloud-cert.pem`).
    #[arg(long, env = "EUCALYPTUS_CERT")]
    ec2cert: PathBuf,
    /// Directory for the manifest and parts.
    #[arg(long, short = 'd', default_value = ".")]
    destination: PathBuf,
    /// Name of the bundle (default: the file's name).
    #[arg(long)]
    prefix: Option<String>,
}

/// `mallee bundle upload` arguments.
#[derive(Args, Debug)]
pub struct UploadArgs {
    /// The manifest; its parts are read from its directory.
    manifest: PathBuf,
    /// `BUCKET` or `BUCKET/PREFIX` to upload to (the bucket is created if
    /// missing).
    #[arg(long, short = 'b')]
    bucket: String,
    #[command(flatten)]
    api: Api,
}

/// `mallee bundle download` arguments.
#[derive(Args, Debug)]
pub struct DownloadArgs {
    /// `BUCKET/[PREFIX/]NAME.manifest.xml`.
    location: String,
    /// Directory to download into.
    #[arg(long, short = 'd', default_value = ".")]
    directory: PathBuf,
    #[command(flatten)]
    api: Api,
}

/// `mallee bundle unbundle` arguments.
#[derive(Args, Debug)]
pub struct UnbundleArgs {
    /// The manifest; its parts are read from its directory.
    manifest: PathBuf,
    /// The user's private key (opens the user's copy of the key).
    #[arg(long, env = "EC2_PRIVATE_KEY")]
    privatekey: PathBuf,
    /// Directory to write the image into (as the manifest's image name).
    #[arg(long, short = 'd', default_value = ".")]
    destination: PathBuf,
}

/// `mallee bundle migrate-manifest` arguments.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The manifest, rewritten in place unless --output is given.
    manifest: PathBuf,
    /// The user's private key: opens the user's copy of the key and
    /// signs the new manifest.
    #[arg(long, env = "EC2_PRIVATE_KEY")]
    privatekey: PathBuf,
    /// The destination cloud's certificate.
    #[arg(long)]
    ec2cert: PathBuf,
    /// The account id on the destination cloud, when it differs.
    #[arg(long)]
    user: Option<String>,
    /// A new kernel id for the destination cloud.
    #[arg(long)]
    kernel: Option<String>,
    /// A new ramdisk id for the destination cloud.
    #[arg(long)]
    ramdisk: Option<String>,
    /// Where to write the new manifest.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn progress_bar(len: u64, message: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    bar
}

fn bundle_image(args: ImageArgs) -> Result<(), String> {
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{}: not a file name", args.file.display()))?;
    let prefix = args.prefix.clone().unwrap_or_else(|| name.clone());
    let is_true = |v: &Option<String>| v.as_deref() == Some("true");
    let image_type = if is_true(&args.kernel) {
        "kernel"
    } else if is_true(&args.ramdisk) {
        "ramdisk"
    } else {
        "machine"
    };
    let user_cert = keys::certificate_key(&read(&args.cert)?).map_err(|e| e.to_string())?;
    let cloud_cert = keys::certificate_key(&read(&args.ec2cert)?).map_err(|e| e.to_string())?;
    let signer = keys::private_key(&read(&args.privatekey)?).map_err(|e| e.to_string())?;
    let file =
        std::fs::File::open(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let size = file
        .metadata()
        .map_err(|e| format!("{}: {e}", args.file.display()))?
        .len();
    std::fs::create_dir_all(&args.destination)
        .map_err(|e| format!("{}: {e}", args.destination.display()))?;
    let key = BundleKey::random();
    let bar = progress_bar(size, &name);
    let bundled = mallee_bundle::pipeline::bundle(
        std::io::BufReader::new(file),
        &name,
        size,
        &key,
        &args.destination,
        &prefix,
        |done| bar.set_position(done),
    )
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let manifest = Manifest::build(
        ManifestFields {
            architecture: args.arch,
            kernel_id: args.kernel,
            ramdisk_id: args.ramdisk,
            block_device_mappings: if image_type == "machine" {
                vec![
                    ("ami".into(), "sda1".into()),
                    ("root".into(), "/dev/sda1".into()),
                ]
            } else {
                Vec::new()
            },
            name,
            user: args.user,
            image_type: image_type.into(),
            digest: bundled.digest,
            size,
            parts: bundled.parts,
        },
        &key,
        &cloud_cert,
        &user_cert,
        &signer,
    )
    .map_err(|e| e.to_string())?;
    let path = args.destination.join(format!("{prefix}.manifest.xml"));
    std::fs::write(&path, manifest.to_xml()).map_err(|e| format!("{}: {e}", path.display()))?;
    for part in &manifest.parts {
        println!("PART\t{}", args.destination.join(&part.filename).display());
    }
    println!("MANIFEST\t{}", path.display());
    Ok(())
}

fn read_manifest(path: &Path) -> Result<Manifest, String> {
    Manifest::parse(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

fn manifest_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

async fn upload(args: UploadArgs) -> Result<(), String> {
    let manifest = read_manifest(&args.manifest)?;
    let dir = manifest_dir(&args.manifest);
    let client = args.api.connect()?;
    let (bucket, prefix) = match args.bucket.split_once('/') {
        Some((b, p)) => (b.to_owned(), format!("{}/", p.trim_matches('/'))),
        None => (args.bucket.clone(), String::new()),
    };
    image_cmd::ensure_bucket(&client, &bucket)
        .await
        .map_err(|e| e.to_string())?;
    // Parts first: a manifest is only there once its parts are.
    for part in &manifest.parts {
        let key = format!("{prefix}{}", part.filename);
        image_cmd::upload(&client, &bucket, &key, &dir.join(&part.filename))
            .await
            .map_err(|e| e.to_string())?;
    }
    let name = args
        .manifest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{}: not a file name", args.manifest.display()))?;
    let key = format!("{prefix}{name}");
    image_cmd::upload(&client, &bucket, &key, &args.manifest)
        .await
        .map_err(|e| e.to_string())?;
    println!("MANIFEST\t{bucket}/{key}");
    Ok(())
}

async fn download(args: DownloadArgs) -> Result<(), String> {
    let (bucket, key) = args
        .location
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && k.ends_with(".manifest.xml"))
        .ok_or_else(|| format!("{}: not BUCKET/[PREFIX/]NAME.manifest.xml", args.location))?;
    let client = args.api.connect()?;
    std::fs::create_dir_all(&args.directory)
        .map_err(|e| format!("{}: {e}", args.directory.display()))?;
    let name = key.rsplit('/').next().unwrap_or(key);
    let manifest_path = args.directory.join(name);
    client
        .download(&client::object_path(bucket, key), &manifest_path, |_| {})
        .await
        .map_err(|e| e.to_string())?;
    let manifest = read_manifest(&manifest_path)?;
    let prefix = key.rfind('/').map_or("", |i| &key[..=i]);
    let bar = progress_bar(manifest.bundled_size, name);
    for part in &manifest.parts {
        let path = args.directory.join(&part.filename);
        client
            .download(
                &client::object_path(bucket, &format!("{prefix}{}", part.filename)),
                &path,
                |n| bar.inc(n),
            )
            .await
            .map_err(|e| e.to_string())?;
        println!("PART\t{}", path.display());
    }
    bar.finish_and_clear();
    println!("MANIFEST\t{}", manifest_path.display());
    Ok(())
}

fn unbundle(args: UnbundleArgs) -> Result<(), String> {
    let manifest = read_manifest(&args.manifest)?;
    let private = keys::private_key(&read(&args.privatekey)?).map_err(|e| e.to_string())?;
    let key = manifest
        .user_key(&private)
        .map_err(|_| "the manifest's key was not encrypted for this private key".to_owned())?;
    std::fs::create_dir_all(&args.destination)
        .map_err(|e| format!("{}: {e}", args.destination.display()))?;
    let name = Path::new(&manifest.name).file_name().ok_or_else(|| {
        format!(
            "the manifest's image name {:?} is not a file name",
            manifest.name
        )
    })?;
    let path = args.destination.join(name);
    let out = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bar = progress_bar(manifest.bundled_size, &manifest.name);
    let result = mallee_bundle::pipeline::unbundle_files(
        &manifest,
        &key,
        &manifest_dir(&args.manifest),
        &mut std::io::BufWriter::new(out),
        |n| bar.set_position(n),
    );
    bar.finish_and_clear();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&path);
        return Err(e.to_string());
    }
    println!("IMAGE\t{}", path.display());
    Ok(())
}

fn migrate(args: MigrateArgs) -> Result<(), String> {
    let mut manifest = read_manifest(&args.manifest)?;
    let private = keys::private_key(&read(&args.privatekey)?).map_err(|e| e.to_string())?;
    let key = manifest
        .user_key(&private)
        .map_err(|_| "the manifest's key was not encrypted for this private key".to_owned())?;
    let cloud = keys::certificate_key(&read(&args.ec2cert)?).map_err(|e| e.to_string())?;
    manifest
        .rewrap_for_cloud(&key, &cloud)
        .map_err(|e| e.to_string())?;
    if let Some(user) = args.user {
        manifest.user = user;
    }
    if args.kernel.is_some() {
        manifest.kernel_id = args.kernel;
    }
    if args.ramdisk.is_some() {
        manifest.ramdisk_id = args.ramdisk;
    }
    manifest.sign(&private).map_err(|e| e.to_string())?;
    let output = args.output.unwrap_or(args.manifest);
    std::fs::write(&output, manifest.to_xml()).map_err(|e| format!("{}: {e}", output.display()))?;
    println!("MANIFEST\t{}", output.display());
    Ok(())
}

/// Runs a `bundle` subcommand.
pub async fn run(command: BundleCommand) -> Result<ExitCode, String> {
    let blocking = |f: Box<dyn FnOnce() -> Result<(), String> + Send>| async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| e.to_string())?
    };
    match command {
        BundleCommand::Image(args) => blocking(Box::new(move || bundle_image(args))).await?,
        BundleCommand::Upload(args) => upload(args).await?,
        BundleCommand::Download(args) => download(args).await?,
        BundleCommand::Unbundle(args) => blocking(Box::new(move || unbundle(args))).await?,
        BundleCommand::MigrateManifest(args) => migrate(args)?,
    }
    Ok(ExitCode::SUCCESS)
}
