//! The one API client of the `mallee` CLIs (`mallee image`, `mallee
//! metal`): an endpoint and credentials (`--credentials FILE`, else
//! `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, else the data
//! directory's `credentials/admin.json`), SigV4-signed Query and S3
//! requests, and the API's XML answers and errors read with a real parser
//! ([`xml`]).

pub mod xml;

use std::borrow::Borrow;
use std::path::{Path, PathBuf};

use xml::Element;

/// Where the API is unless the flags or the credentials say otherwise.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8773";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Why a request could not be made or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No usable credentials.
    #[error("credentials: {0}")]
    Credentials(String),
    /// A local file could not be written.
    #[error("{}: {source}", path.display())]
    LocalFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The credentials file could not be read.
    #[error("credentials: {}: {source}", path.display())]
    CredentialsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The endpoint is not an http(s) URL.
    #[error("endpoint {0} is not an http:// URL")]
    Endpoint(String),
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

/// Credentials and where to use them (admin.json's format).
#[derive(Debug, serde::Deserialize)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

fn read_credentials(path: &Path) -> Result<Credentials, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClientError::CredentialsFile {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text)
        .map_err(|e| ClientError::Credentials(format!("{}: {e}", path.display())))
}

/// The credentials `file` holds; without one, the environment's, else
/// `data_dir`'s administrator's.
pub fn load_credentials(file: Option<&Path>, data_dir: &Path) -> Result<Credentials, ClientError> {
    if let Some(path) = file {
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
    let path = data_dir.join("credentials").join("admin.json");
    if !path.exists() {
        return Err(ClientError::Credentials(format!(
            "none given: use --credentials, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where {} exists",
            path.display()
        )));
    }
    read_credentials(&path)
}

/// A request body: bytes (signed with their digest), or a stream of
/// `len` bytes (sent with an unsigned payload).
#[derive(Debug)]
pub enum Body {
    /// In memory.
    Bytes(Vec<u8>),
    /// Streamed.
    Stream {
        /// Its length.
        len: u64,
        /// The stream.
        body: reqwest::Body,
    },
}

/// An answer: its status, its text and its ETag (quotes removed).
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub text: String,
    /// The ETag header.
    pub etag: Option<String>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A SigV4-signing client of one endpoint.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    credentials: Credentials,
    region: String,
}

impl Client {
    /// A client of `endpoint` (default: the credentials', else
    /// [`DEFAULT_ENDPOINT`]) with the credentials [`load_credentials`]
    /// finds.
    pub fn connect(
        endpoint: Option<&str>,
        credentials: Option<&Path>,
        data_dir: &Path,
    ) -> Result<Self, ClientError> {
        let credentials = load_credentials(credentials, data_dir)?;
        let endpoint = endpoint
            .map(str::to_owned)
            .or_else(|| credentials.endpoint.clone())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let region = credentials
            .region
            .clone()
            .unwrap_or_else(|| mallee_cloud::config::DEFAULT_REGION.to_owned());
        Self::new(&endpoint, credentials, region)
    }

    /// A client of `endpoint` signing for `region`.
    pub fn new(
        endpoint: &str,
        credentials: Credentials,
        region: String,
    ) -> Result<Self, ClientError> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let host = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .map(|rest| rest.split('/').next().unwrap_or_default().to_owned())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ClientError::Endpoint(endpoint.clone()))?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|source| ClientError::Http {
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

    /// The access key id requests are signed with.
    pub fn access_key_id(&self) -> &str {
        &self.credentials.access_key_id
    }

    /// Sends one request to `path`?`query` signed for `service` (S3
    /// requests also carry their payload's digest).
    pub async fn send(
        &self,
        service: &str,
        method: reqwest::Method,
        path: &str,
        query: &str,
        headers: Vec<(String, String)>,
        body: Body,
    ) -> Result<Response, ClientError> {
        let (url, response) = self
            .send_raw(service, method, path, query, headers, body)
            .await?;
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_owned());
        let text = response
            .text()
            .await
            .map_err(|source| ClientError::Http { url, source })?;
        Ok(Response { status, text, etag })
    }

    /// GETs the object at `path` into `dest`, streamed; returns the bytes
    /// written, or the API's error.
    pub async fn download(
        &self,
        path: &str,
        dest: &std::path::Path,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, ClientError> {
        use tokio::io::AsyncWriteExt;
        let (url, mut response) = self
            .send_raw(
                "s3",
                reqwest::Method::GET,
                path,
                "",
                Vec::new(),
                Body::Bytes(Vec::new()),
            )
            .await?;
        let http_error = |source| ClientError::Http {
            url: url.clone(),
            source,
        };
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let text = response.text().await.map_err(http_error)?;
            return Err(api_error(
                "GetObject",
                &Response {
                    status,
                    text,
                    etag: None,
                },
            ));
        }
        let file_error = |source| ClientError::LocalFile {
            path: dest.to_owned(),
            source,
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(file_error)?;
        let mut written = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(http_error)? {
            file.write_all(&chunk).await.map_err(file_error)?;
            written += chunk.len() as u64;
            progress(chunk.len() as u64);
        }
        file.sync_all().await.map_err(file_error)?;
        Ok(written)
    }

    /// Signs and sends one request; returns its URL and the response.
    async fn send_raw(
        &self,
        service: &str,
        method: reqwest::Method,
        path: &str,
        query: &str,
        mut headers: Vec<(String, String)>,
        body: Body,
    ) -> Result<(String, reqwest::Response), ClientError> {
        headers.push(("Host".into(), self.host.clone()));
        let payload_hash = match &body {
            Body::Bytes(b) => mallee_sigv::sha256_hex(b),
            Body::Stream { .. } => UNSIGNED_PAYLOAD.to_owned(),
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
        request = match body {
            Body::Bytes(b) => request.body(b),
            Body::Stream { len, body } => {
                request.header("Content-Length", len.to_string()).body(body)
            }
        };
        let response = request.send().await.map_err(|source| ClientError::Http {
            url: url.clone(),
            source,
        })?;
        Ok((url, response))
    }

    /// Calls a Query API `action` of `service` (`ec2`, `metal`) with
    /// `params`; returns the answer's root element, or the API's error.
    pub async fn query<I, K, V>(
        &self,
        service: &str,
        action: &str,
        params: I,
    ) -> Result<Element, ClientError>
    where
        I: IntoIterator,
        I::Item: Borrow<(K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", action)
            .extend_pairs(params)
            .finish();
        let headers = vec![(
            "Content-Type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )];
        let response = self
            .send(
                service,
                reqwest::Method::POST,
                "/",
                "",
                headers,
                Body::Bytes(body.into_bytes()),
            )
            .await?;
        if !response.is_success() {
            return Err(api_error(action, &response));
        }
        answer(action, &response.text)
    }
}

/// A successful answer's document.
pub fn answer(action: &str, text: &str) -> Result<Element, ClientError> {
    xml::parse(text)
        .map_err(|e| ClientError::Protocol(format!("{action}: the answer is not XML: {e}")))
}

/// The error an answer reports (EC2's `<Response><Errors><Error>`, the
/// Query APIs' `<ErrorResponse><Error>`, S3's `<Error>`): its `Code` and
/// `Message`, else the HTTP status.
pub fn api_error(action: &str, response: &Response) -> ClientError {
    let doc = xml::parse(&response.text).ok();
    let text = |name: &str| {
        doc.as_ref()
            .and_then(|d| d.text_of(name))
            .map(str::to_owned)
    };
    ClientError::Api {
        action: action.to_owned(),
        code: text("Code").unwrap_or_else(|| format!("HTTP {}", response.status)),
        message: text("Message").unwrap_or_default(),
    }
}

/// The path of an S3 bucket.
pub fn bucket_path(bucket: &str) -> String {
    format!("/{}", mallee_sigv::uri_encode(bucket, true))
}

/// The path of an S3 object.
pub fn object_path(bucket: &str, key: &str) -> String {
    format!(
        "{}/{}",
        bucket_path(bucket),
        mallee_sigv::uri_encode(key, false)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "s".into(),
            session_token: None,
            endpoint: None,
            region: None,
        }
    }

    fn response(status: u16, text: &str) -> Response {
        Response {
            status,
            text: text.into(),
            etag: None,
        }
    }

    #[test]
    fn endpoint_hosts() {
        let c = Client::new("http://127.0.0.1:8773/", creds(), "r".into()).expect("client");
        assert_eq!(
            (c.endpoint.as_str(), c.host.as_str()),
            ("http://127.0.0.1:8773", "127.0.0.1:8773")
        );
        let refused = Client::new("127.0.0.1:8773", creds(), "r".into());
        assert_eq!(
            refused.map(|_| ()).map_err(|e| e.to_string()),
            Err("endpoint 127.0.0.1:8773 is not an http:// URL".into())
        );
        assert_eq!(object_path("b", "dir/a b+c.img"), "/b/dir/a%20b%2Bc.img");
        assert_eq!(bucket_path("b"), "/b");
    }

    #[test]
    fn error_documents_of_every_dialect() {
        let ec2 = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>The image id &apos;ami-1&apos; does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>";
        let query = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>InsufficientSystemCapacity</Code><Message>only 1 free system(s) in group test01, 2 requested: nothing reserved</Message></Error><RequestId>r</RequestId></ErrorResponse>";
        let s3 = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code><Message>a &lt;b&gt; &amp; c</Message><RequestId>r</RequestId></Error>";
        for (body, want) in [
            (
                ec2,
                "RunInstances: InvalidAMIID.NotFound: The image id 'ami-1' does not exist",
            ),
            (
                query,
                "RunInstances: InsufficientSystemCapacity: only 1 free system(s) in group test01, 2 requested: nothing reserved",
            ),
            (s3, "RunInstances: NoSuchBucket: a <b> & c"),
            ("", "RunInstances: HTTP 503: "),
            ("<html>Bad gateway", "RunInstances: HTTP 502: "),
        ] {
            let status = if body.starts_with("<html>") { 502 } else { 503 };
            assert_eq!(
                api_error("RunInstances", &response(status, body)).to_string(),
                want
            );
        }
    }

    #[test]
    fn answers_that_are_not_xml_are_refused() {
        let e = answer("DescribeSystems", "<html>").expect_err("not xml");
        assert!(
            e.to_string()
                .starts_with("DescribeSystems: the answer is not XML: malformed XML"),
            "{e}"
        );
        let doc = answer(
            "RegisterImage",
            "<R><imageId>ami-0123456789abcdef0</imageId></R>",
        )
        .expect("xml");
        assert_eq!(doc.text_of("imageId"), Some("ami-0123456789abcdef0"));
    }

    #[test]
    fn credentials_from_a_file() {
        let dir = std::env::temp_dir().join(format!("mallee-client-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("credentials")).expect("dir");
        let file = dir.join("credentials").join("admin.json");
        std::fs::write(
            &file,
            r#"{"access_key_id":"AKIAX","secret_access_key":"s","endpoint":"http://10.0.0.1:8773","region":"r1"}"#,
        )
        .expect("write");
        let c = load_credentials(Some(&file), Path::new("/nonexistent")).expect("credentials");
        assert_eq!(
            (
                c.access_key_id.as_str(),
                c.endpoint.as_deref(),
                c.region.as_deref()
            ),
            ("AKIAX", Some("http://10.0.0.1:8773"), Some("r1"))
        );
        let client = Client::connect(None, Some(&file), Path::new("/nonexistent")).expect("client");
        assert_eq!(
            (
                client.endpoint.as_str(),
                client.region.as_str(),
                client.access_key_id()
            ),
            ("http://10.0.0.1:8773", "r1", "AKIAX")
        );
        let client = Client::connect(Some("http://h:1/"), Some(&file), Path::new("/nonexistent"))
            .expect("client");
        assert_eq!(client.host, "h:1", "the flag wins over the file");
        let missing = dir.join("nope.json");
        let e = load_credentials(Some(&missing), &dir).expect_err("missing");
        assert!(e.to_string().starts_with("credentials: "), "{e}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
