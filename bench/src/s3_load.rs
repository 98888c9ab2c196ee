//! `s3-load`: a PUT/GET load generator for S3 (path-style, SigV4).
//!
//! Every request is signed for real with SigV4 (service `s3`) at the moment it
//! is sent and goes over a pooled HTTP/1.1 keep-alive connection from
//! `concurrency` tasks that each keep one request in flight.
//!
//! - `s3-load prepare` creates the bucket and writes the objects GETs read.
//! - `s3-load run` measures PUT or GET of one object size: ops/s, MiB/s and
//!   latency percentiles, and optionally the server's peak RSS meanwhile.
//!
//! Bodies are never held whole in memory: an object is a fixed 1 MiB
//! pseudo-random pattern repeated, sent as slices of that pattern (zero-copy
//! `Bytes`) and checked slice by slice as it is read back. Because every
//! object of a size has the same content, its SHA-256 is computed once and a
//! PUT carries the real payload hash (as boto3 does over plain HTTP) at no
//! per-request cost to the client; `--payload unsigned` sends
//! `UNSIGNED-PAYLOAD` instead.
//!
//! Any response other than 200 (or a transport error, or a GET body of the
//! wrong length or content) counts as an error; a run with errors is not a
//! valid result and exits with status 1.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use http::{Method, Request, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};

const MIB: f64 = 1024.0 * 1024.0;
/// Length of the repeated content pattern.
const PATTERN_LEN: usize = 1 << 20;
/// Largest frame a request body yields.
const CHUNK: usize = 256 * 1024;

type HttpClient = Client<HttpConnector, PatternBody>;

#[derive(Debug, Parser)]
#[command(name = "s3-load", about = "Signed S3 PUT/GET load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the bucket (if needed) and write the objects `run --op get` reads.
    Prepare(PrepareArgs),
    /// PUT or GET objects of one size repeatedly and report throughput.
    Run(RunArgs),
}

#[derive(Debug, Clone, Args)]
struct Target {
    /// Base URL of the server, e.g. http://127.0.0.1:8080 (path-style S3 at its root).
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
    /// Bucket to use.
    #[arg(long, default_value = "bench")]
    bucket: String,
    /// Payload hash sent with PUTs: the real SHA-256, or UNSIGNED-PAYLOAD.
    #[arg(long, value_enum, default_value_t = Payload::Signed)]
    payload: Payload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Payload {
    Signed,
    Unsigned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Op {
    Put,
    Get,
}

#[derive(Debug, Args)]
struct PrepareArgs {
    #[command(flatten)]
    target: Target,
    /// Object size, e.g. 4KiB, 1MiB, 64MiB or a number of bytes.
    #[arg(long, value_parser = parse_size)]
    size: u64,
    /// Objects to write (`obj-<size>/<n>`).
    #[arg(long, default_value_t = 16)]
    objects: u64,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    target: Target,
    /// PUT (to `put-<size>/<task>`, overwritten each time) or GET (the
    /// prepared `obj-<size>/<n>`).
    #[arg(long, value_enum)]
    op: Op,
    /// Object size, e.g. 4KiB, 1MiB, 64MiB or a number of bytes.
    #[arg(long, value_parser = parse_size)]
    size: u64,
    /// GET: how many prepared objects to read round-robin.
    #[arg(long, default_value_t = 16)]
    objects: u64,
    /// Requests in flight at once (one task each).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Seconds measured (after warm-up). Ignored when --requests is given.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// With a duration: keep measuring past it until at least this many
    /// requests have completed (for servers slower than the window).
    #[arg(long, default_value_t = 10)]
    min_requests: u64,
    /// Measure exactly this many requests, spread evenly over the tasks,
    /// instead of a duration; the window runs from the start of the load to
    /// the last completion.
    #[arg(long)]
    requests: Option<u64>,
    /// Seconds of load sent first and not measured (duration mode only).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Tokio worker threads of the client.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Pid of the server: report its peak RSS during the measured load
    /// (VmHWM, reset through /proc/PID/clear_refs first where allowed, and
    /// VmRSS sampled every 50 ms).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Label printed with the results (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
    /// Print one JSON line with the results after the human-readable line.
    #[arg(long)]
    json: bool,
}

fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("GiB") {
        (n, 1u64 << 30)
    } else if let Some(n) = t.strip_suffix("MiB") {
        (n, 1 << 20)
    } else if let Some(n) = t.strip_suffix("KiB") {
        (n, 1 << 10)
    } else {
        (t, 1)
    };
    num.trim()
        .parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("bad size {text:?} (e.g. 4KiB, 1MiB, 64MiB, 1048576)"))
}

fn size_name(size: u64) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{}MiB", size >> 20)
    } else if size >= 1 << 10 && size.is_multiple_of(1 << 10) {
        format!("{}KiB", size >> 10)
    } else {
        format!("{size}B")
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Run(a) => a.client_threads.max(1),
        Command::Prepare(_) => 1,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("s3-load: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Prepare(args) => prepare(args).await,
            Command::Run(args) => run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

// --- object content ----------------------------------------------------------

/// The 1 MiB pattern every object is made of (xorshift64, fixed seed).
fn pattern() -> Bytes {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = Vec::with_capacity(PATTERN_LEN);
    while buf.len() < PATTERN_LEN {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        buf.extend_from_slice(&state.to_le_bytes());
    }
    buf.truncate(PATTERN_LEN);
    Bytes::from(buf)
}

/// Lowercase hex SHA-256 of an object of `size` bytes (the pattern repeated).
fn payload_sha256(pattern: &Bytes, size: u64) -> String {
    let mut hasher = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(PATTERN_LEN as u64) as usize;
        hasher.update(&pattern[..n]);
        left -= n as u64;
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A request body of `remaining` bytes of the pattern, produced as it is sent.
struct PatternBody {
    pattern: Bytes,
    offset: usize,
    remaining: u64,
}

impl PatternBody {
    fn new(pattern: &Bytes, size: u64) -> Self {
        Self {
            pattern: pattern.clone(),
            offset: 0,
            remaining: size,
        }
    }

    fn empty() -> Self {
        Self {
            pattern: Bytes::new(),
            offset: 0,
            remaining: 0,
        }
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = (self.remaining.min(CHUNK as u64) as usize).min(self.pattern.len() - self.offset);
        let chunk = self.pattern.slice(self.offset..self.offset + n);
        self.offset = (self.offset + n) % self.pattern.len();
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

// --- signing and sending -----------------------------------------------------

/// Signs and sends S3 requests to one endpoint.
struct S3Client {
    base: String,
    host: String,
    identity: Identity,
    region: String,
    bucket: String,
    payload: Payload,
    pattern: Bytes,
    client: HttpClient,
}

/// One finished request: status, body length, whether the body was the
/// expected content (GET), and a snippet of an error body.
struct Outcome {
    status: StatusCode,
    body_len: u64,
    content_ok: bool,
    snippet: String,
}

impl S3Client {
    fn new(target: &Target, pool: usize) -> Result<Self, String> {
        let uri: http::Uri = target
            .endpoint
            .parse()
            .map_err(|e| format!("bad --endpoint {:?}: {e}", target.endpoint))?;
        let host = uri
            .authority()
            .ok_or_else(|| format!("--endpoint {:?} has no host", target.endpoint))?
            .to_string();
        let scheme = uri.scheme_str().unwrap_or("http");
        let identity: Identity = aws_credential_types::Credentials::new(
            target.access_key.clone(),
            target.secret_key.clone(),
            None,
            None,
            "s3-load",
        )
        .into();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            base: format!("{scheme}://{host}"),
            host,
            identity,
            region: target.region.clone(),
            bucket: target.bucket.clone(),
            payload: target.payload,
            pattern: pattern(),
            client,
        })
    }

    /// A signed request for `/bucket[/key]` with `body`; `payload_hash` is
    /// the body's SHA-256 (hex) or `None` for UNSIGNED-PAYLOAD.
    fn signed(
        &self,
        method: Method,
        key: Option<&str>,
        body: PatternBody,
        payload_hash: Option<&str>,
    ) -> Result<Request<PatternBody>, String> {
        let path = match key {
            Some(key) => format!("/{}/{key}", self.bucket),
            None => format!("/{}", self.bucket),
        };
        let url = format!("{}{path}", self.base);
        let length = body.remaining;
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(header::HOST, &self.host)
            .header(header::CONTENT_LENGTH, length)
            .body(body)
            .map_err(|e| format!("building request: {e}"))?;
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| format!("signing params: {e}"))?
            .into();
        let headers = [("host", self.host.as_str())];
        let signable_body = match payload_hash {
            Some(hash) => SignableBody::Precomputed(hash.to_owned()),
            None => SignableBody::UnsignedPayload,
        };
        let signable =
            SignableRequest::new(method.as_str(), &url, headers.into_iter(), signable_body)
                .map_err(|e| format!("signable request: {e}"))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| format!("signing: {e}"))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut req);
        Ok(req)
    }

    /// Sends a request and reads the whole response; `expect_size` checks a
    /// GET body's length and content against the pattern as it streams in.
    async fn send(
        &self,
        req: Request<PatternBody>,
        expect_size: Option<u64>,
    ) -> Result<Outcome, String> {
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("transport: {e:?}"))?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut body_len = 0u64;
        let mut content_ok = true;
        let mut snippet = Vec::new();
        let check = status == StatusCode::OK && expect_size.is_some();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading body: {e}"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if check && content_ok {
                content_ok = self.matches_pattern(body_len, &data);
            }
            if status != StatusCode::OK && snippet.len() < 400 {
                snippet.extend_from_slice(&data[..data.len().min(400 - snippet.len())]);
            }
            body_len += data.len() as u64;
        }
        if let Some(size) = expect_size
            && status == StatusCode::OK
            && body_len != size
        {
            content_ok = false;
        }
        Ok(Outcome {
            status,
            body_len,
            content_ok,
            snippet: String::from_utf8_lossy(&snippet).replace('\n', " "),
        })
    }

    /// Whether `data`, found at byte `pos` of an object, is the pattern there.
    fn matches_pattern(&self, mut pos: u64, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let off = (pos % PATTERN_LEN as u64) as usize;
            let n = data.len().min(PATTERN_LEN - off);
            if data[..n] != self.pattern[off..off + n] {
                return false;
            }
            data = &data[n..];
            pos += n as u64;
        }
        true
    }

    fn put_request(
        &self,
        key: &str,
        size: u64,
        hash: Option<&str>,
    ) -> Result<Request<PatternBody>, String> {
        self.signed(
            Method::PUT,
            Some(key),
            PatternBody::new(&self.pattern, size),
            hash,
        )
    }

    fn get_request(&self, key: &str) -> Result<Request<PatternBody>, String> {
        self.signed(
            Method::GET,
            Some(key),
            PatternBody::empty(),
            Some(EMPTY_SHA256),
        )
    }

    /// The payload hash PUTs of `size` bytes carry (`None`: unsigned).
    fn put_hash(&self, size: u64) -> Option<String> {
        match self.payload {
            Payload::Signed => Some(payload_sha256(&self.pattern, size)),
            Payload::Unsigned => None,
        }
    }
}

/// SHA-256 of the empty string (bodies of GET and bucket creation).
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn outcome_error(what: &str, o: &Outcome) -> String {
    if o.status != StatusCode::OK {
        format!("{what}: HTTP {}: {}", o.status, o.snippet)
    } else {
        format!(
            "{what}: body of {} bytes not the expected content",
            o.body_len
        )
    }
}

async fn prepare(args: PrepareArgs) -> Result<(), String> {
    let s3 = S3Client::new(&args.target, 1)?;
    let started = Instant::now();
    // Create the bucket; one that already exists is fine (mallee answers
    // BucketAlreadyOwnedByYou, s3s-fs BucketAlreadyExists even for its own:
    // on a benchmark server there is no one else).
    let req = s3.signed(Method::PUT, None, PatternBody::empty(), Some(EMPTY_SHA256))?;
    let o = s3.send(req, None).await?;
    if o.status != StatusCode::OK
        && !o.snippet.contains("BucketAlreadyOwnedByYou")
        && !o.snippet.contains("BucketAlreadyExists")
    {
        return Err(outcome_error(
            &format!("CreateBucket {}", args.target.bucket),
            &o,
        ));
    }
    let hash = s3.put_hash(args.size);
    let name = size_name(args.size);
    for i in 0..args.objects {
        let key = format!("obj-{name}/{i:04}");
        let o = s3
            .send(s3.put_request(&key, args.size, hash.as_deref())?, None)
            .await?;
        if o.status != StatusCode::OK {
            return Err(outcome_error(&format!("PUT {key}"), &o));
        }
    }
    // Read every object back and check it.
    for i in 0..args.objects {
        let key = format!("obj-{name}/{i:04}");
        let o = s3.send(s3.get_request(&key)?, Some(args.size)).await?;
        if o.status != StatusCode::OK || !o.content_ok {
            return Err(outcome_error(&format!("GET {key} after PUT"), &o));
        }
    }
    println!(
        "prepared {} objects of {name} in bucket {} in {:.1} s (written and read back)",
        args.objects,
        args.target.bucket,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// --- server memory -----------------------------------------------------------

/// A `kB` field of /proc/PID/status, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Samples a process's RSS on a thread of its own while the load runs.
struct RssWatch {
    pid: u32,
    hwm_reset: bool,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssWatch {
    fn start(pid: u32) -> Result<Self, String> {
        proc_status_kib(pid, "VmRSS").ok_or_else(|| format!("no /proc/{pid}/status VmRSS"))?;
        // "5" resets the peak RSS (VmHWM) to the current RSS (Linux 4.0+).
        let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut max = 0;
            while !flag.load(Ordering::Relaxed) {
                if let Some(kib) = proc_status_kib(pid, "VmRSS") {
                    max = max.max(kib);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            max
        });
        Ok(Self {
            pid,
            hwm_reset,
            stop,
            thread,
        })
    }

    /// (peak RSS in MiB: VmHWM if it was reset, else the sampled maximum;
    /// sampled maximum in MiB; whether VmHWM was reset).
    fn finish(self) -> (f64, f64, bool) {
        self.stop.store(true, Ordering::Relaxed);
        let sampled = self
            .thread
            .join()
            .unwrap_or(0)
            .max(proc_status_kib(self.pid, "VmRSS").unwrap_or(0)) as f64
            / 1024.0;
        let hwm = proc_status_kib(self.pid, "VmHWM").map(|k| k as f64 / 1024.0);
        let peak = match (self.hwm_reset, hwm) {
            (true, Some(hwm)) => hwm.max(sampled),
            _ => sampled,
        };
        (peak, sampled, self.hwm_reset)
    }
}

// --- the load ----------------------------------------------------------------

/// What one task saw.
#[derive(Default)]
struct TaskStats {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

async fn run(args: RunArgs) -> Result<(), String> {
    let concurrency = args.concurrency.max(1);
    let s3 = Arc::new(S3Client::new(&args.target, concurrency)?);
    let name = size_name(args.size);
    let hash: Option<Arc<str>> = s3.put_hash(args.size).map(Arc::from);
    let objects = args.objects.max(1);

    // One checked request first: the request shape must succeed before we time it.
    {
        let (req, expect) = match args.op {
            Op::Put => (
                s3.put_request(&format!("put-{name}/00"), args.size, hash.as_deref())?,
                None,
            ),
            Op::Get => (
                s3.get_request(&format!("obj-{name}/0000"))?,
                Some(args.size),
            ),
        };
        let o = s3.send(req, expect).await?;
        if o.status != StatusCode::OK || !o.content_ok {
            return Err(outcome_error("check request failed", &o));
        }
    }

    let watch = match args.server_pid {
        Some(pid) => Some(RssWatch::start(pid)?),
        None => None,
    };
    let start = Instant::now();
    // With --requests there is no warm-up: every request is measured.
    let warm_end = match args.requests {
        Some(_) => start,
        None => start + Duration::from_secs_f64(args.warmup.max(0.0)),
    };
    let end = match args.requests {
        Some(_) => None,
        None => Some(warm_end + Duration::from_secs_f64(args.duration.max(0.001))),
    };
    let counted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for task in 0..concurrency {
        let s3 = Arc::clone(&s3);
        let counted = Arc::clone(&counted);
        let hash = hash.clone();
        let min_requests = args.min_requests;
        let op = args.op;
        let size = args.size;
        let name = name.clone();
        // Requests mode: this task's share of the total.
        let quota = args.requests.map(|total| {
            let c = concurrency as u64;
            total / c + u64::from((task as u64) < total % c)
        });
        tasks.push(tokio::spawn(async move {
            let mut stats = TaskStats::default();
            let put_key = format!("put-{name}/{task:02}");
            let mut i = 0u64;
            loop {
                let t0 = Instant::now();
                if let Some(quota) = quota
                    && i >= quota
                {
                    break;
                }
                if let Some(end) = end
                    && t0 >= end
                    && counted.load(Ordering::Relaxed) >= min_requests
                {
                    break;
                }
                let outcome = match op {
                    Op::Put => match s3.put_request(&put_key, size, hash.as_deref()) {
                        Ok(req) => s3.send(req, None).await,
                        Err(e) => Err(e),
                    },
                    Op::Get => {
                        let key = format!("obj-{name}/{:04}", (task as u64 + i) % objects);
                        match s3.get_request(&key) {
                            Ok(req) => s3.send(req, Some(size)).await,
                            Err(e) => Err(e),
                        }
                    }
                };
                i += 1;
                let t1 = Instant::now();
                // Throughput counts completions inside the measured window,
                // which runs past `end` until `min_requests` have completed.
                let in_window = t1 >= warm_end
                    && end.is_none_or(|end| {
                        t1 <= end || counted.load(Ordering::Relaxed) < min_requests
                    });
                if !in_window {
                    continue;
                }
                counted.fetch_add(1, Ordering::Relaxed);
                stats.last_done = Some(t1);
                match outcome {
                    Ok(o) if o.status == StatusCode::OK && o.content_ok => {
                        let us = (t1 - t0).as_micros().min(u128::from(u32::MAX));
                        stats.latencies_us.push(us as u32);
                    }
                    Ok(o) => {
                        stats.errors += 1;
                        stats
                            .first_error
                            .get_or_insert_with(|| outcome_error("request", &o));
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
    let mut last_done = warm_end;
    for task in tasks {
        let stats = task.await.map_err(|e| format!("load task failed: {e}"))?;
        latencies.extend(stats.latencies_us);
        errors += stats.errors;
        if first_error.is_none() {
            first_error = stats.first_error;
        }
        if let Some(t) = stats.last_done {
            last_done = last_done.max(t);
        }
    }
    let rss = watch.map(RssWatch::finish);
    let window = match end {
        Some(end) => end.max(last_done) - warm_end,
        None => last_done - warm_end,
    }
    .as_secs_f64()
    .max(1e-9);
    latencies.sort_unstable();
    let ok = latencies.len() as u64;
    let ops = ok as f64 / window;
    let mib_s = ops * args.size as f64 / MIB;
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let idx = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        f64::from(latencies[idx.clamp(1, latencies.len()) - 1]) / 1000.0
    };
    let (p50, p90, p99, max) = (pct(50.0), pct(90.0), pct(99.0), pct(100.0));
    let label = if args.label.is_empty() {
        String::new()
    } else {
        format!("[{}] ", args.label)
    };
    let op = match args.op {
        Op::Put => "PUT",
        Op::Get => "GET",
    };
    let rss_text = match rss {
        Some((peak, _, reset)) => format!(
            "; server peak RSS {peak:.0} MiB{}",
            if reset { "" } else { " (sampled)" }
        ),
        None => String::new(),
    };
    println!(
        "{label}{op} {name} c={concurrency}: {mib_s:.1} MiB/s, {ops:.1} ops/s, {ok} ok, {errors} errors \
         in {window:.2} s; latency ms p50 {p50:.2} p90 {p90:.2} p99 {p99:.2} max {max:.2}{rss_text}"
    );
    if args.json {
        let line = serde_json::json!({
            "label": args.label,
            "op": op,
            "size": args.size,
            "size_name": name,
            "payload": match args.target.payload { Payload::Signed => "signed", Payload::Unsigned => "unsigned" },
            "concurrency": concurrency,
            "window_s": window,
            "ok": ok,
            "errors": errors,
            "first_error": first_error,
            "ops_per_s": ops,
            "mib_per_s": mib_s,
            "p50_ms": p50,
            "p90_ms": p90,
            "p99_ms": p99,
            "max_ms": max,
            "server_peak_rss_mib": rss.map(|r| r.0),
            "server_sampled_rss_mib": rss.map(|r| r.1),
            "server_hwm_reset": rss.map(|r| r.2),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("1MB").is_err());
        assert_eq!(size_name(256 << 20), "256MiB");
        assert_eq!(size_name(4096), "4KiB");
    }

    #[test]
    fn pattern_body_yields_exact_bytes() {
        let p = pattern();
        let s3_pattern = p.clone();
        let mut body = PatternBody::new(&p, (PATTERN_LEN as u64) * 2 + 5);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut all = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
            all.extend_from_slice(frame.data_ref().map(|b| b.as_ref()).unwrap_or_default());
        }
        assert_eq!(all.len(), PATTERN_LEN * 2 + 5);
        assert_eq!(&all[..PATTERN_LEN], &s3_pattern[..]);
        assert_eq!(&all[PATTERN_LEN..2 * PATTERN_LEN], &s3_pattern[..]);
        assert_eq!(&all[2 * PATTERN_LEN..], &s3_pattern[..5]);
        let mut h = Sha256::new();
        h.update(&all);
        let direct: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(direct, payload_sha256(&p, all.len() as u64));
    }
}
