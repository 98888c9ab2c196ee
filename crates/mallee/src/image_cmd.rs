//! `mallee image install`: what euca-install-image did. Uploads a disk image
//! (and, when given as files, its kernel and ramdisk) to the object store
//! and registers it, in one step. It is an ordinary client of the HTTP API:
//! SigV4-signed EC2 Query and S3 requests, the file streamed from disk
//! (multipart above 64 MiB), never held in memory whole.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Files larger than this are uploaded in parts of this size.
const PART_SIZE: u64 = 64 * 1024 * 1024;
/// Bytes read from the file per chunk of the request body.
const CHUNK: usize = 256 * 1024;
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8773";
const EC2_VERSION: &str = "2016-11-15";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

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
enum InstallError {
    /// No usable credentials.
    #[error("credentials: {0}")]
    Credentials(String),
    /// A local file could not be read.
    #[error("{path}: {source}")]
    File {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The endpoint could not be reached or the transfer broke.
    #[error("request to {url} failed: {source}")]
    Http {
        /// URL.
        url: String,
        /// Cause.
        source: reqwest::Error,
    },
    /// The API answered with an error.
    #[error("{action}: {code}: {message}")]
    Api {
        /// What was asked.
        action: String,
        /// AWS error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The API answered something this client does not understand.
    #[error("{0}")]
    Protocol(String),
}

/// Credentials and where to use them.
#[derive(Debug, serde::Deserialize)]
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

fn read_credentials(path: &Path) -> Result<Credentials, InstallError> {
    let text = std::fs::read_to_string(path).map_err(|source| InstallError::File {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text)
        .map_err(|e| InstallError::Credentials(format!("{}: {e}", path.display())))
}

fn load_credentials(args: &InstallArgs) -> Result<Credentials, InstallError> {
    if let Some(path) = &args.credentials {
        return read_credentials(path);
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let (Some(access_key_id), Some(secret_access_key)) =
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    {
        return Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: env("AWS_SESSION_TOKEN"),
            endpoint: None,
            region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
        });
    }
    let path = args.data_dir.join("credentials").join("admin.json");
    if !path.exists() {
        return Err(InstallError::Credentials(format!(
            "none given: use --credentials, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where {} exists",
            path.display()
        )));
    }
    read_credentials(&path)
}

/// Text of the first `<tag>…</tag>` in an XML document, unescaped.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// A SigV4-signing client for the EC2 and S3 APIs of one endpoint.
struct Client {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    credentials: Credentials,
    region: String,
}

/// A request body: bytes, or a stretch of a file streamed in chunks.
enum Body {
    Bytes(Vec<u8>),
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
        progress: ProgressBar,
        md5: Arc<Mutex<Md5>>,
    },
}

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

impl Client {
    fn new(endpoint: &str, credentials: Credentials, region: String) -> Result<Self, InstallError> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let host = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .map(|rest| rest.split('/').next().unwrap_or_default().to_owned())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                InstallError::Protocol(format!("endpoint {endpoint} is not an http:// URL"))
            })?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|source| InstallError::Http {
                url: endpoint.clone(),
                source,
            })?;
        Ok(Self {
            http,
            endpoint,
            host,
            credentials,
            region,
        })
    }

    /// Sends one signed request; returns (status, body text, ETag header).
    async fn send(
        &self,
        service: &str,
        method: reqwest::Method,
        path: &str,
        query: &str,
        mut headers: Vec<(String, String)>,
        body: Body,
    ) -> Result<(u16, String, Option<String>), InstallError> {
        headers.push(("Host".into(), self.host.clone()));
        let payload_hash = match &body {
            Body::Bytes(b) => mallee_sigv::sha256_hex(b),
            Body::File { .. } => UNSIGNED_PAYLOAD.to_owned(),
        };
        if service == "s3" {
            headers.push(("x-amz-content-sha256".into(), payload_hash.clone()));
        }
        let mut params = mallee_sigv::SigningParams::new(
            &self.credentials.access_key_id,
            &self.credentials.secret_access_key,
            &self.region,
            service,
            time::OffsetDateTime::now_utc(),
        );
        params.session_token = self.credentials.session_token.as_deref();
        let method_name = method.as_str().to_owned();
        let parts = mallee_sigv::RequestParts {
            method: &method_name,
            raw_path: path,
            raw_query: query,
            headers: &headers,
            form_params: &[],
        };
        let added = mallee_sigv::sign_v4(&parts, &params, &payload_hash);
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let mut request = self.http.request(method, &url);
        for (name, value) in headers.iter().chain(&added) {
            request = request.header(name.as_str(), value.as_str());
        }
        request =
            match body {
                Body::Bytes(b) => request.body(b),
                Body::File {
                    path,
                    offset,
                    len,
                    progress,
                    md5,
                } => request.header("Content-Length", len.to_string()).body(
                    reqwest::Body::wrap_stream(file_stream(path, offset, len, progress, md5)),
                ),
            };
        let http_error = |source| InstallError::Http {
            url: url.clone(),
            source,
        };
        let response = request.send().await.map_err(http_error)?;
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_owned());
        let text = response.text().await.map_err(http_error)?;
        Ok((status, text, etag))
    }

    fn api_error(action: &str, status: u16, body: &str) -> InstallError {
        InstallError::Api {
            action: action.to_owned(),
            code: xml_text(body, "Code").unwrap_or_else(|| format!("HTTP {status}")),
            message: xml_text(body, "Message").unwrap_or_default(),
        }
    }

    /// Calls an EC2 Query action; returns the response XML.
    async fn ec2(&self, action: &str, params: &[(&str, &str)]) -> Result<String, InstallError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", action)
            .append_pair("Version", EC2_VERSION)
            .extend_pairs(params)
            .finish();
        let headers = vec![(
            "Content-Type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )];
        let (status, text, _) = self
            .send(
                "ec2",
                reqwest::Method::POST,
                "/",
                "",
                headers,
                Body::Bytes(body.into_bytes()),
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(Self::api_error(action, status, &text));
        }
        Ok(text)
    }

    fn object_path(bucket: &str, key: &str) -> String {
        format!(
            "/{}/{}",
            mallee_sigv::uri_encode(bucket, true),
            mallee_sigv::uri_encode(key, false)
        )
    }

    /// Creates `bucket` unless the caller already owns it.
    async fn ensure_bucket(&self, bucket: &str) -> Result<(), InstallError> {
        let path = format!("/{}", mallee_sigv::uri_encode(bucket, true));
        let (status, text, _) = self
            .send(
                "s3",
                reqwest::Method::PUT,
                &path,
                "",
                Vec::new(),
                Body::Bytes(Vec::new()),
            )
            .await?;
        match status {
            200..=299 => Ok(()),
            409 if xml_text(&text, "Code").as_deref() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            _ => Err(Self::api_error("CreateBucket", status, &text)),
        }
    }

    /// PUTs the `range` of `file` to `object_path`?`query`; returns the MD5
    /// (hex) of what was sent, which S3 returns as the ETag.
    async fn put_file_range(
        &self,
        action: &str,
        object_path: &str,
        query: &str,
        file: &Path,
        range: std::ops::Range<u64>,
        progress: &ProgressBar,
    ) -> Result<String, InstallError> {
        let md5 = Arc::new(Mutex::new(Md5::new()));
        let body = Body::File {
            path: file.to_owned(),
            offset: range.start,
            len: range.end - range.start,
            progress: progress.clone(),
            md5: md5.clone(),
        };
        let (status, text, etag) = self
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
                InstallError::Http { url, source } if source.is_body() || source.is_request() => {
                    InstallError::Protocol(format!(
                        "uploading {} to {url}: {source}",
                        file.display()
                    ))
                }
                other => other,
            })?;
        if !(200..300).contains(&status) {
            return Err(Self::api_error(action, status, &text));
        }
        let digest = hex::encode(
            md5.lock()
                .map_err(|_| InstallError::Protocol("digest poisoned".into()))?
                .clone()
                .finalize(),
        );
        if etag.as_deref() != Some(digest.as_str()) {
            return Err(InstallError::Protocol(format!(
                "{action} of {}: the server stored ETag {etag:?}, but the data sent has MD5 {digest}",
                file.display()
            )));
        }
        Ok(digest)
    }

    /// Uploads a file as `bucket/key`: one PUT up to [`PART_SIZE`], a
    /// multipart upload above it.
    async fn upload(&self, bucket: &str, key: &str, file: &Path) -> Result<(), InstallError> {
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
        let object_path = Self::object_path(bucket, key);
        let result = if size <= PART_SIZE {
            self.put_file_range("PutObject", &object_path, "", file, 0..size, &progress)
                .await
                .map(|_| ())
        } else {
            self.multipart(&object_path, file, size, &progress).await
        };
        progress.finish_and_clear();
        result
    }

    async fn multipart(
        &self,
        object_path: &str,
        file: &Path,
        size: u64,
        progress: &ProgressBar,
    ) -> Result<(), InstallError> {
        let (status, text, _) = self
            .send(
                "s3",
                reqwest::Method::POST,
                object_path,
                "uploads=",
                Vec::new(),
                Body::Bytes(Vec::new()),
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(Self::api_error("CreateMultipartUpload", status, &text));
        }
        let upload_id = xml_text(&text, "UploadId").ok_or_else(|| {
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
                let etag = self
                    .put_file_range(
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
            let (status, text, _) = self
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
            if !(200..300).contains(&status) || text.contains("<Error>") {
                return Err(Self::api_error("CompleteMultipartUpload", status, &text));
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            // Best effort: an upload left behind only holds space.
            let _ = self
                .send(
                    "s3",
                    reqwest::Method::DELETE,
                    object_path,
                    &format!("uploadId={encoded_id}"),
                    Vec::new(),
                    Body::Bytes(Vec::new()),
                )
                .await;
        }
        result
    }

    /// RegisterImage; returns the new image id.
    async fn register(&self, params: &[(&str, &str)]) -> Result<String, InstallError> {
        let xml = self.ec2("RegisterImage", params).await?;
        xml_text(&xml, "imageId")
            .ok_or_else(|| InstallError::Protocol("RegisterImage answered no imageId".into()))
    }

    async fn make_public(&self, image_id: &str) -> Result<(), InstallError> {
        self.ec2(
            "ModifyImageAttribute",
            &[
                ("ImageId", image_id),
                ("LaunchPermission.Add.1.Group", "all"),
            ],
        )
        .await
        .map(|_| ())
    }
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
    client.upload(bucket, &key, &path).await?;
    let part_name = format!("{name}-{suffix}");
    let location = format!("{bucket}/{key}");
    let id = client
        .register(&[("ImageLocation", &location), ("Name", &part_name)])
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
    let credentials = load_credentials(&args)?;
    let endpoint = args
        .endpoint
        .clone()
        .or_else(|| credentials.endpoint.clone())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let region = credentials
        .region
        .clone()
        .unwrap_or_else(|| mallee_cloud::config::DEFAULT_REGION.to_owned());
    let bucket = args
        .bucket
        .clone()
        .unwrap_or_else(|| format!("images-{}", credentials.access_key_id.to_ascii_lowercase()));
    let client = Client::new(&endpoint, credentials, region)?;
    std::fs::metadata(&args.file).map_err(|source| InstallError::File {
        path: args.file.clone(),
        source,
    })?;
    client.ensure_bucket(&bucket).await?;
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
    client.upload(&bucket, &key, &args.file).await?;
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
    let image_id = client.register(&params).await?;
    println!("IMAGE\t{image_id}");
    registered.push(image_id);
    if args.public {
        for id in &registered {
            client.make_public(id).await?;
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
    fn xml_and_ids() {
        let xml =
            "<R><imageId>ami-0123456789abcdef0</imageId><Message>a &amp; b &lt;c&gt;</Message></R>";
        assert_eq!(
            xml_text(xml, "imageId").as_deref(),
            Some("ami-0123456789abcdef0")
        );
        assert_eq!(xml_text(xml, "Message").as_deref(), Some("a & b <c>"));
        assert_eq!(xml_text(xml, "Code"), None);
        assert!(is_id_with_prefix("aki-0123456789abcdef0", "aki"));
        assert!(is_id_with_prefix("ari-12345678", "ari"));
        assert!(!is_id_with_prefix("ari-12345678", "aki"));
        assert!(!is_id_with_prefix("./aki-12345678.bin", "aki"));
    }

    #[test]
    fn endpoint_hosts() {
        let creds = || Credentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "s".into(),
            session_token: None,
            endpoint: None,
            region: None,
        };
        let c = Client::new("http://127.0.0.1:8773/", creds(), "r".into()).expect("client");
        assert_eq!(
            (c.endpoint.as_str(), c.host.as_str()),
            ("http://127.0.0.1:8773", "127.0.0.1:8773")
        );
        assert!(Client::new("127.0.0.1:8773", creds(), "r".into()).is_err());
        assert_eq!(
            Client::object_path("b", "dir/a b+c.img"),
            "/b/dir/a%20b%2Bc.img"
        );
    }
}
