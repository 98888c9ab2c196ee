//! `ec2-load`: a load generator for the EC2 Query API.
//!
//! Every request is signed for real with SigV4 (service `ec2`) at the moment it
//! is sent, as a real client does, and sent over a pooled HTTP/1.1 keep-alive
//! connection from `concurrency` tasks that each keep one request in flight.
//!
//! - `ec2-load run`  measures requests/s and latency percentiles of one action.
//! - `ec2-load seed` fills an account with key pairs and tags on them.
//!
//! Any response other than 200 (or a transport error) counts as an error; a
//! run with errors is not a valid result and exits with status 1.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// EC2 API version sent with every request (the one boto3 and awscli send).
const API_VERSION: &str = "2016-11-15";

/// `base64("ssh-ed25519 AAAA… mallee-bench\n")`: a fixed ed25519 public key for
/// ImportKeyPair, so seeding costs no key generation on either server.
const ED25519_PUBLIC_KEY_B64: &str = "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUtTS2RWaFQ0NzVxallBMHVFY1VHSzd2UnNHUEF6MlFKc25PVFNFbCtCRGEgbWFsbGVlLWJlbmNoCg==";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Debug, Parser)]
#[command(name = "ec2-load", about = "Signed EC2 Query API load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send one action repeatedly and report requests/s and latency.
    Run(RunArgs),
    /// Create key pairs (ImportKeyPair) and tag them (CreateTags).
    Seed(SeedArgs),
}

#[derive(Debug, Clone, Args)]
struct Target {
    /// Base URL of the server, e.g. http://127.0.0.1:8080/
    #[arg(long)]
    endpoint: String,
    /// Access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    /// Secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    /// Region the signature is scoped to.
    #[arg(long, default_value = "mallee-1")]
    region: String,
    /// Service name the signature is scoped to.
    #[arg(long, default_value = "ec2")]
    service: String,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    target: Target,
    /// Action name, e.g. DescribeTags.
    #[arg(long)]
    action: String,
    /// Extra query parameter NAME=VALUE (repeatable), e.g. Filter.1.Name=key.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Requests in flight at once (one task each).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Seconds measured (after warm-up). Ignored when --requests is given.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// With a duration: keep measuring past it until at least this many
    /// requests have completed (for servers slower than the window).
    #[arg(long, default_value_t = 10)]
    min_requests: u64,
    /// Measure exactly this many requests instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Seconds of load sent first and not measured.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Tokio worker threads of the client.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Check the first response: the string occurs exactly N times (STR=N).
    #[arg(long, value_name = "STR=N")]
    expect_count: Option<String>,
    /// Label printed with the results (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
    /// Print one JSON line with the results after the human-readable line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct SeedArgs {
    #[command(flatten)]
    target: Target,
    /// Key pairs to import.
    #[arg(long, default_value_t = 200)]
    key_pairs: usize,
    /// Tags per key pair (EC2 allows at most 50 per resource).
    #[arg(long, default_value_t = 50)]
    tags_per_key_pair: usize,
    /// Prefix of key pair names.
    #[arg(long, default_value = "bench-key-")]
    name_prefix: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Run(a) => a.client_threads.max(1),
        Command::Seed(_) => 1,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ec2-load: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Seed(args) => seed(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ec2-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Signs and sends requests to one endpoint.
struct Signer {
    uri: http::Uri,
    uri_text: String,
    host: String,
    identity: Identity,
    region: String,
    service: String,
    client: HttpClient,
}

/// One response, read in full.
struct Reply {
    status: StatusCode,
    body: Bytes,
}

impl Signer {
    fn new(target: &Target, pool: usize) -> Result<Self, String> {
        let uri: http::Uri = target
            .endpoint
            .parse()
            .map_err(|e| format!("bad --endpoint {:?}: {e}", target.endpoint))?;
        let host = uri
            .authority()
            .ok_or_else(|| format!("--endpoint {:?} has no host", target.endpoint))?
            .to_string();
        let identity: Identity = aws_credential_types::Credentials::new(
            target.access_key.clone(),
            target.secret_key.clone(),
            None,
            None,
            "ec2-load",
        )
        .into();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            uri_text: uri.to_string(),
            uri,
            host,
            identity,
            region: target.region.clone(),
            service: target.service.clone(),
            client,
        })
    }

    /// Builds the request for `body` and signs it with the current time.
    fn signed(&self, body: &Bytes) -> Result<Request<Full<Bytes>>, String> {
        const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
        let mut req = Request::builder()
            .method("POST")
            .uri(self.uri.clone())
            .header(header::HOST, &self.host)
            .header(header::CONTENT_TYPE, CONTENT_TYPE)
            .body(Full::new(body.clone()))
            .map_err(|e| format!("building request: {e}"))?;
        let settings = SigningSettings::default();
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| format!("signing params: {e}"))?
            .into();
        let headers = [
            ("host", self.host.as_str()),
            ("content-type", CONTENT_TYPE),
        ];
        let signable = SignableRequest::new(
            "POST",
            &self.uri_text,
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| format!("signable request: {e}"))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| format!("signing: {e}"))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut req);
        Ok(req)
    }

    /// Signs, sends and reads the whole response.
    async fn call(&self, body: &Bytes) -> Result<Reply, String> {
        let req = self.signed(body)?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("transport: {e:?}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading body: {e}"))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// Calls and fails on anything but 200.
    async fn call_ok(&self, body: &Bytes) -> Result<Bytes, String> {
        let reply = self.call(body).await?;
        if reply.status != StatusCode::OK {
            return Err(format!(
                "HTTP {}: {}",
                reply.status,
                snippet(&reply.body)
            ));
        }
        Ok(reply.body)
    }
}

/// Form body `Action=…&Version=…&params…`.
fn form_body<'a>(action: &str, params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Bytes {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", action);
    form.append_pair("Version", API_VERSION);
    for (k, v) in params {
        form.append_pair(k, v);
    }
    Bytes::from(form.finish())
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(400).collect();
    text.replace('\n', " ")
}

fn count_occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// Text of the first `<tag>…</tag>` in `xml`.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(&xml[start..start + len])
}

/// What one task saw.
#[derive(Default)]
struct TaskStats {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    bytes: u64,
    last_done: Option<Instant>,
}

async fn run(args: RunArgs) -> Result<(), String> {
    let concurrency = args.concurrency.max(1);
    let signer = Arc::new(Signer::new(&args.target, concurrency)?);
    let mut params = Vec::new();
    for p in &args.params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("--param {p:?} is not NAME=VALUE"))?;
        params.push((k, v));
    }
    let body = form_body(&args.action, params.iter().copied());

    // One checked call first: the request shape must succeed before we time it.
    let first = signer
        .call_ok(&body)
        .await
        .map_err(|e| format!("{} check request failed: {e}", args.action))?;
    if let Some(expect) = &args.expect_count {
        let (needle, n) = expect
            .rsplit_once('=')
            .ok_or_else(|| format!("--expect-count {expect:?} is not STR=N"))?;
        let n: usize = n
            .parse()
            .map_err(|_| format!("--expect-count {expect:?}: N is not a number"))?;
        let got = count_occurrences(&first, needle.as_bytes());
        if got != n {
            return Err(format!(
                "{}: expected {n} × {needle:?} in the response, found {got}",
                args.action
            ));
        }
    }
    let response_bytes = first.len();

    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(args.warmup.max(0.0));
    // With --requests the end is when that many measured requests are done.
    let end = match args.requests {
        Some(_) => None,
        None => Some(warm_end + Duration::from_secs_f64(args.duration.max(0.001))),
    };
    let issued = Arc::new(AtomicU64::new(0));
    let counted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let signer = Arc::clone(&signer);
        let body = body.clone();
        let issued = Arc::clone(&issued);
        let limit = args.requests;
        let counted = Arc::clone(&counted);
        let min_requests = args.min_requests;
        tasks.push(tokio::spawn(async move {
            let mut stats = TaskStats::default();
            loop {
                let t0 = Instant::now();
                if let Some(end) = end
                    && t0 >= end
                    && counted.load(Ordering::Relaxed) >= min_requests
                {
                    break;
                }
                let measured = t0 >= warm_end;
                if measured
                    && let Some(limit) = limit
                    && issued.fetch_add(1, Ordering::Relaxed) >= limit
                {
                    break;
                }
                let outcome = signer.call(&body).await;
                let t1 = Instant::now();
                // Throughput counts completions inside the measured window,
                // which runs past `end` until `min_requests` have completed.
                let in_window = t1 >= warm_end
                    && end.is_none_or(|end| {
                        t1 <= end || counted.load(Ordering::Relaxed) < min_requests
                    });
                if !in_window || (limit.is_some() && !measured) {
                    continue;
                }
                counted.fetch_add(1, Ordering::Relaxed);
                stats.last_done = Some(t1);
                match outcome {
                    Ok(reply) if reply.status == StatusCode::OK => {
                        let us = (t1 - t0).as_micros().min(u128::from(u32::MAX));
                        stats.latencies_us.push(us as u32);
                        stats.bytes += reply.body.len() as u64;
                    }
                    Ok(reply) => {
                        stats.errors += 1;
                        stats.first_error.get_or_insert_with(|| {
                            format!("HTTP {}: {}", reply.status, snippet(&reply.body))
                        });
                    }
                    Err(e) => {
                        stats.errors += 1;
                        stats.first_error.get_or_insert(e);
                    }
                }
            }
            stats
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    let mut first_error = None;
    let mut bytes = 0u64;
    let mut last_done = warm_end;
    for task in tasks {
        let stats = task.await.map_err(|e| format!("load task failed: {e}"))?;
        latencies.extend(stats.latencies_us);
        errors += stats.errors;
        bytes += stats.bytes;
        if first_error.is_none() {
            first_error = stats.first_error;
        }
        if let Some(t) = stats.last_done {
            last_done = last_done.max(t);
        }
    }
    let window = match end {
        Some(end) => end.max(last_done) - warm_end,
        None => last_done - warm_end,
    }
    .as_secs_f64()
    .max(1e-9);
    latencies.sort_unstable();
    let ok = latencies.len() as u64;
    let rps = ok as f64 / window;
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let idx = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        f64::from(latencies[idx.clamp(1, latencies.len()) - 1]) / 1000.0
    };
    let (p50, p90, p99) = (pct(50.0), pct(90.0), pct(99.0));
    let label = if args.label.is_empty() {
        String::new()
    } else {
        format!("[{}] ", args.label)
    };
    println!(
        "{label}{} c={concurrency}: {rps:.1} req/s, {ok} ok, {errors} errors in {window:.2} s; \
         latency ms p50 {p50:.2} p90 {p90:.2} p99 {p99:.2}; response {response_bytes} B",
        args.action
    );
    if args.json {
        let line = serde_json::json!({
            "label": args.label,
            "action": args.action,
            "params": args.params,
            "concurrency": concurrency,
            "window_s": window,
            "ok": ok,
            "errors": errors,
            "first_error": first_error,
            "rps": rps,
            "p50_ms": p50,
            "p90_ms": p90,
            "p99_ms": p99,
            "response_bytes": response_bytes,
            "bytes_read": bytes,
        });
        println!("{line}");
    }
    if errors > 0 {
        return Err(format!(
            "{errors} error(s): not a valid result; first: {}",
            first_error.unwrap_or_default()
        ));
    }
    if ok == 0 {
        return Err("no request completed in the measured window".into());
    }
    Ok(())
}

async fn seed(args: SeedArgs) -> Result<(), String> {
    if args.tags_per_key_pair > 50 {
        return Err("EC2 allows at most 50 tags per resource".into());
    }
    let signer = Signer::new(&args.target, 1)?;
    let started = Instant::now();
    let mut tag_index = 0usize;
    for i in 0..args.key_pairs {
        let name = format!("{}{i:04}", args.name_prefix);
        let body = form_body(
            "ImportKeyPair",
            [
                ("KeyName", name.as_str()),
                ("PublicKeyMaterial", ED25519_PUBLIC_KEY_B64),
            ],
        );
        let reply = signer
            .call_ok(&body)
            .await
            .map_err(|e| format!("ImportKeyPair {name}: {e}"))?;
        let xml = String::from_utf8_lossy(&reply);
        let key_id = xml_text(&xml, "keyPairId")
            .ok_or_else(|| format!("ImportKeyPair {name}: no keyPairId in {}", snippet(&reply)))?
            .to_owned();
        if args.tags_per_key_pair == 0 {
            continue;
        }
        // Tag keys are unique across the account: k0 … k9999 for 200 × 50, so a
        // `k7*` filter matches 1 + 10 + 100 + 1000 = 1,111 of them.
        let mut pairs: Vec<(String, String)> = vec![("ResourceId.1".into(), key_id.clone())];
        for t in 1..=args.tags_per_key_pair {
            pairs.push((format!("Tag.{t}.Key"), format!("k{tag_index}")));
            pairs.push((format!("Tag.{t}.Value"), format!("v{tag_index}")));
            tag_index += 1;
        }
        let body = form_body(
            "CreateTags",
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        signer
            .call_ok(&body)
            .await
            .map_err(|e| format!("CreateTags on {key_id}: {e}"))?;
    }
    // Check what a DescribeTags without filter now returns.
    let all = signer
        .call_ok(&form_body("DescribeTags", []))
        .await
        .map_err(|e| format!("DescribeTags after seeding: {e}"))?;
    let tags = count_occurrences(&all, b"<resourceId>");
    let kps = signer
        .call_ok(&form_body("DescribeKeyPairs", []))
        .await
        .map_err(|e| format!("DescribeKeyPairs after seeding: {e}"))?;
    let key_pairs = count_occurrences(&kps, b"<keyName>");
    println!(
        "seeded {} key pairs and {tag_index} tags in {:.1} s; account now has {key_pairs} key pairs, {tags} tags",
        args.key_pairs,
        started.elapsed().as_secs_f64()
    );
    if tags != tag_index || key_pairs != args.key_pairs {
        return Err(format!(
            "account holds {key_pairs} key pairs and {tags} tags, expected exactly {} and {tag_index} (not a fresh account?)",
            args.key_pairs
        ));
    }
    Ok(())
}
