//! `mallee image install`: what euca-install-image did. Uploads a disk image
//! (and, when given as files, its kernel and ramdisk) to the object store
//! and registers it, in one step. It is an ordinary client of the HTTP API:
//! SigV4-signed EC2 Query and S3 requests, the file streamed from disk
//! (multipart above 64 MiB), never held in memory whole, through the
//! CLIs' signed client ([`crate::client`]).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::client::{self, Body, Client, ClientError, Response};

/// Files larger than this are uploaded in parts of this size.
const PART_SIZE: u64 = 64 * 1024 * 1024;
/// Bytes read from the file per chunk of the request body.
const CHUNK: usize = 256 * 1024;
const EC2_VERSION: &str = "2016-11-15";

/// `mallee image …`.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Upload an image file and register it (raw or qcow2 disk; with
    /// --kernel/--ramdisk a paravirtual image).
    Install(InstallArgs),
}

/// Virtualization types RegisterImage takes.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Virtualization {
    Hvm,
    Paravirtual,
}

/// `mallee image install` arguments.
#[derive(Args, Debug)]
pub struct InstallArgs {
    /// The disk image (raw or qcow2) to upload.
    file: PathBuf,
    /// Image name (3–128 characters).
    #[arg(long)]
    name: String,
    /// Bucket to upload to, created if missing (default: `images-` and the
    /// access key id, lowercased).
    #[arg(long)]
    bucket: Option<String>,
    /// Kernel: an `aki-` id, or a file to upload and register first.
    #[arg(long)]
    kernel: Option<String>,
    /// Ramdisk: an `ari-` id, or a file to upload and register first.
    #[arg(long)]
    ramdisk: Option<String>,
    /// Virtualization type (default: paravirtual with a kernel, else hvm).
    #[arg(long, value_enum)]
    virtualization_type: Option<Virtualization>,
    /// Image description.
    #[arg(long)]
    description: Option<String>,
    /// Architecture (x86_64 or i386).
    #[arg(long, default_value = "x86_64")]
    architecture: String,
    /// Let every account launch the image (and the kernel and ramdisk
    /// uploaded with it).
    #[arg(long)]
    public: bool,
    /// API endpoint (default: the one in the credentials file, else
    /// http://127.0.0.1:8773).
    #[arg(long, env = "MALLEE_ENDPOINT")]
    endpoint: Option<String>,
    /// Credentials file (admin.json format). Default: AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY when set, else DATA_DIR/credentials/admin.json.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Data directory whose credentials/admin.json is the default.
    #[arg(long, env = "MALLEE_DATA_DIR", default_value = "./mallee-data")]
    data_dir: PathBuf,
}

/// Why an install failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InstallError {
    /// The API could not be reached, or refused.
    #[error(transparent)]
    Client(ClientError),
    /// A local file could not be read.
    #[error("{path}: {source}")]
    File {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The API answered something this client does not understand.
    #[error("{0}")]
    Protocol(String),
}

impl From<ClientError> for InstallError {
    /// An unreadable credentials file is reported like the other files
    /// (`PATH: why`), as `image install` always did.
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::CredentialsFile { path, source } => Self::File { path, source },
            other => Self::Client(other),
        }
    }
}

/// `len` bytes of `path` from `offset`, read in chunks, each counted on
/// the progress bar and added to the digest.
fn file_stream(
    path: PathBuf,
    offset: u64,
    len: u64,
    progress: ProgressBar,
    md5: Arc<Mutex<Md5>>,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    futures_util::stream::try_unfold((None::<tokio::fs::File>, len), move |(file, left)| {
        let (path, progress, md5) = (path.clone(), progress.clone(), md5.clone());
        async move {
            if left == 0 {
                return Ok(None);
            }
            let mut file = match file {
                Some(f) => f,
                None => {
                    let mut f = tokio::fs::File::open(&path).await?;
                    f.seek(std::io::SeekFrom::Start(offset)).await?;
                    f
                }
            };
            let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            let mut buf = vec![0u8; want];
            file.read_exact(&mut buf).await?;
            md5.lock()
                .map_err(|_| std::io::Error::other("digest poisoned"))?
                .update(&buf);
            progress.inc(want as u64);
            Ok(Some((
                bytes::Bytes::from(buf),
                (Some(file), left - want as u64),
            )))
        }
    })
}

/// Calls an EC2 Query action; returns the answer.
async fn ec2(
    client: &Client,
    action: &str,
    params: &[(&str, &str)],
) -> Result<client::xml::Element, InstallError> {
    let version = [("Version", EC2_VERSION)];
    Ok(client
        .query("ec2", action, version.iter().chain(params))
        .await?)
}

/// Sends an S3 request without a body.
async fn s3(
    client: &Client,
    method: reqwest::Method,
    path: &str,
    query: &str,
) -> Result<Response, InstallError> {
    Ok(client
        .send(
            "s3",
            method,
            path,
            query,
            Vec::new(),
            Body::Bytes(Vec::new()),
        )
        .await?)
}

/// Creates `bucket` unless the caller already owns it.
pub(crate) async fn ensure_bucket(client: &Client, bucket: &str) -> Result<(), InstallError> {
    let response = s3(
        client,
        reqwest::Method::PUT,
        &client::bucket_path(bucket),
        "",
    )
    .await?;
    if response.is_success() {
        return Ok(());
    }
    let owned = response.status == 409
        && client::xml::parse(&response.text)
            .is_ok_and(|doc| doc.text_of("Code") == Some("BucketAlreadyOwnedByYou"));
    if owned {
        Ok(())
    } else {
        Err(client::api_error("CreateBucket", &response).into())
    }
}

/// PUTs the `range` of `file` to `object_path`?`query`; returns the MD5
/// (hex) of what was sent, which S3 returns as the ETag.
async fn put_file_range(
    client: &Client,
    action: &str,
    object_path: &str,
    query: &str,
    file: &Path,
    range: std::ops::Range<u64>,
    progress: &ProgressBar,
) -> Result<String, InstallError> {
    let md5 = Arc::new(Mutex::new(Md5::new()));
    let len = range.end - range.start;
    let body = Body::Stream {
        len,
        body: reqwest::Body::wrap_stream(file_stream(
            file.to_owned(),
            range.start,
            len,
            progress.clone(),
            md5.clone(),
        )),
    };
    let response = client
        .send(
            "s3",
            reqwest::Method::PUT,
            object_path,
            query,
            Vec::new(),
            body,
        )
        .await
        .map_err(|e| match e {
            ClientError::Http { url, source } if source.is_body() || source.is_request() => {
                InstallError::Protocol(format!("uploading {} to {url}: {source}", file.display()))
            }
            other => other.into(),
        })?;
    if !response.is_success() {
        return Err(client::api_error(action, &response).into());
    }
    let digest = hex::encode(
        md5.lock()
            .map_err(|_| InstallError::Protocol("digest poisoned".into()))?
            .clone()
            .finalize(),
    );
    if response.etag.as_deref() != Some(digest.as_str()) {
        return Err(InstallError::Protocol(format!(
            "{action} of {}: the server stored ETag {:?}, but the data sent has MD5 {digest}",
            file.display(),
            response.etag
        )));
    }
    Ok(digest)
}

/// Uploads a file as `bucket/key`: one PUT up to [`PART_SIZE`], a
/// multipart upload above it.
pub(crate) async fn upload(
    client: &Client,
    bucket: &str,
    key: &str,
    file: &Path,
) -> Result<(), InstallError> {
    let size = tokio::fs::metadata(file)
        .await
        .map_err(|source| InstallError::File {
            path: file.to_owned(),
            source,
        })?
        .len();
    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(size);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let object_path = client::object_path(bucket, key);
    let result = if size <= PART_SIZE {
        put_file_range(
            client,
            "PutObject",
            &object_path,
            "",
            file,
            0..size,
            &progress,
        )
        .await
        .map(|_| ())
    } else {
        multipart(client, &object_path, file, size, &progress).await
    };
    progress.finish_and_clear();
    result
}

async fn multipart(
    client: &Client,
    object_path: &str,
    file: &Path,
    size: u64,
    progress: &ProgressBar,
) -> Result<(), InstallError> {
    let response = s3(client, reqwest::Method::POST, object_path, "uploads=").await?;
    if !response.is_success() {
        return Err(client::api_error("CreateMultipartUpload", &response).into());
    }
    let upload_id = client::answer("CreateMultipartUpload", &response.text)?
        .text_of("UploadId")
        .map(str::to_owned)
        .ok_or_else(|| {
            InstallError::Protocol("CreateMultipartUpload answered no UploadId".into())
        })?;
    let encoded_id = mallee_sigv::uri_encode(&upload_id, true);
    let result = async {
        let mut parts = String::new();
        let mut offset = 0u64;
        let mut number = 1u32;
        while offset < size {
            let len = PART_SIZE.min(size - offset);
            let query = format!("partNumber={number}&uploadId={encoded_id}");
            let etag = put_file_range(
                client,
                "UploadPart",
                object_path,
                &query,
                file,
                offset..offset + len,
                progress,
            )
            .await?;
            parts.push_str(&format!(
                "<Part><PartNumber>{number}</PartNumber><ETag>\"{etag}\"</ETag></Part>"
            ));
            offset += len;
            number += 1;
        }
        let body = format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>");
        let response = client
            .send(
                "s3",
                reqwest::Method::POST,
                object_path,
                &format!("uploadId={encoded_id}"),
                vec![("Content-Type".into(), "application/xml".into())],
                Body::Bytes(body.into_bytes()),
            )
            .await?;
        // S3 can report a failed completion inside a 200 response.
        let failed = !response.is_success()
            || client::answer("CompleteMultipartUpload", &response.text)?
                .find("Error")
                .is_some();
        if failed {
            return Err(client::api_error("CompleteMultipartUpload", &response).into());
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        // Best effort: an upload left behind only holds space.
        let _ = s3(
            client,
            reqwest::Method::DELETE,
            object_path,
            &format!("uploadId={encoded_id}"),
        )
        .await;
    }
    result
}

/// RegisterImage; returns the new image id.
async fn register(client: &Client, params: &[(&str, &str)]) -> Result<String, InstallError> {
    ec2(client, "RegisterImage", params)
        .await?
        .text_of("imageId")
        .map(str::to_owned)
        .ok_or_else(|| InstallError::Protocol("RegisterImage answered no imageId".into()))
}

async fn make_public(client: &Client, image_id: &str) -> Result<(), InstallError> {
    ec2(
        client,
        "ModifyImageAttribute",
        &[
            ("ImageId", image_id),
            ("LaunchPermission.Add.1.Group", "all"),
        ],
    )
    .await
    .map(|_| ())
}

fn is_id_with_prefix(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

fn file_name(path: &Path) -> Result<String, InstallError> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| InstallError::File {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        })
}

/// A kernel or ramdisk argument: an existing id, or a file registered now.
async fn part_image(
    client: &Client,
    bucket: &str,
    name: &str,
    value: &str,
    prefix: &str,
    suffix: &str,
    registered: &mut Vec<String>,
) -> Result<String, InstallError> {
    if is_id_with_prefix(value, prefix) {
        return Ok(value.to_owned());
    }
    let path = PathBuf::from(value);
    let key = format!("{name}/{}", file_name(&path)?);
    upload(client, bucket, &key, &path).await?;
    let part_name = format!("{name}-{suffix}");
    let location = format!("{bucket}/{key}");
    let id = register(
        client,
        &[("ImageLocation", &location), ("Name", &part_name)],
    )
    .await?;
    if !id.starts_with(prefix) {
        return Err(InstallError::Protocol(format!(
            "{} was registered as {id}, not as a {suffix}: is it the right file?",
            path.display()
        )));
    }
    println!("IMAGE\t{id}");
    registered.push(id.clone());
    Ok(id)
}

async fn install(args: InstallArgs) -> Result<(), InstallError> {
    let client = Client::connect(
        args.endpoint.as_deref(),
        args.credentials.as_deref(),
        &args.data_dir,
    )?;
    let bucket = args
        .bucket
        .clone()
        .unwrap_or_else(|| format!("images-{}", client.access_key_id().to_ascii_lowercase()));
    std::fs::metadata(&args.file).map_err(|source| InstallError::File {
        path: args.file.clone(),
        source,
    })?;
    ensure_bucket(&client, &bucket).await?;
    let mut registered = Vec::new();
    let kernel = match &args.kernel {
        Some(k) => Some(
            part_image(
                &client,
                &bucket,
                &args.name,
                k,
                "aki",
                "kernel",
                &mut registered,
            )
            .await?,
        ),
        None => None,
    };
    let ramdisk = match &args.ramdisk {
        Some(r) => Some(
            part_image(
                &client,
                &bucket,
                &args.name,
                r,
                "ari",
                "ramdisk",
                &mut registered,
            )
            .await?,
        ),
        None => None,
    };
    let key = format!("{}/{}", args.name, file_name(&args.file)?);
    upload(&client, &bucket, &key, &args.file).await?;
    let location = format!("{bucket}/{key}");
    let mut params: Vec<(&str, &str)> = vec![
        ("ImageLocation", &location),
        ("Name", &args.name),
        ("Architecture", &args.architecture),
    ];
    if let Some(k) = &kernel {
        params.push(("KernelId", k));
    }
    if let Some(r) = &ramdisk {
        params.push(("RamdiskId", r));
    }
    if let Some(d) = &args.description {
        params.push(("Description", d));
    }
    if let Some(v) = args.virtualization_type {
        params.push((
            "VirtualizationType",
            match v {
                Virtualization::Hvm => "hvm",
                Virtualization::Paravirtual => "paravirtual",
            },
        ));
    }
    let image_id = register(&client, &params).await?;
    println!("IMAGE\t{image_id}");
    registered.push(image_id);
    if args.public {
        for id in &registered {
            make_public(&client, id).await?;
        }
    }
    Ok(())
}

/// Runs an `image` subcommand.
pub async fn run(command: ImageCommand) -> Result<ExitCode, String> {
    match command {
        ImageCommand::Install(args) => install(args).await.map_err(|e| e.to_string())?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_id_with_prefix("aki-0123456789abcdef0", "aki"));
        assert!(is_id_with_prefix("ari-12345678", "ari"));
        assert!(!is_id_with_prefix("ari-12345678", "aki"));
        assert!(!is_id_with_prefix("./aki-12345678.bin", "aki"));
    }

    #[test]
    fn an_unreadable_credentials_file_is_a_file_error() {
        let e = InstallError::from(ClientError::CredentialsFile {
            path: "/x/admin.json".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert_eq!(e.to_string(), "/x/admin.json: entity not found");
        let e = InstallError::from(ClientError::Credentials("none given".into()));
        assert_eq!(e.to_string(), "credentials: none given");
    }
}
