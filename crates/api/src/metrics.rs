//! The Prometheus endpoint (`--metrics-listen ADDR`, `GET /metrics`): the
//! front door's request counts and latencies and the reconciler's passes
//! (kept in [`mallee_cloud::telemetry`]), plus what the store says at
//! scrape time: nodes with their heartbeat age and capacity, instances per
//! state. Text exposition format 0.0.4. It has its own listener and no
//! authentication, as Prometheus exporters do; docs/operations.md lists
//! every metric.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use mallee_cloud::Cloud;
use mallee_cloud::cloud_status;
use mallee_cloud::health::NodeHealth;
use mallee_cloud::ids::now_millis;
use mallee_cloud::node_status::NodeStatus;
use mallee_cloud::telemetry::{LATENCY_BUCKETS, RequestSeries};
use tokio::net::TcpListener;

/// A per-node gauge: its name, help text and value.
type NodeGauge = (&'static str, &'static str, fn(&NodeStatus) -> f64);

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    cloud: Arc<Cloud>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let router = axum::Router::new()
        .route("/metrics", get(scrape))
        .with_state(cloud);
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

async fn scrape(State(cloud): State<Arc<Cloud>>) -> Response {
    match render(&cloud).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: reading the store failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the store could not be read: {e}\n"),
            )
                .into_response()
        }
    }
}

/// A label value, escaped as the format wants (`\`, `"`, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Everything, as the exposition text.
pub async fn render(cloud: &Cloud) -> Result<String, String> {
    let mut out = String::new();
    requests(&mut out, cloud);
    reconciler(&mut out, cloud);

    // The store, timed through the same read the node gauges need.
    let started = Instant::now();
    let status = cloud_status::gather(cloud.store.as_ref(), now_millis())
        .await
        .map_err(|e| e.to_string())?;
    family(
        &mut out,
        "mallee_store_scrape_read_seconds",
        "gauge",
        "Time this scrape took to read nodes and instances from the store.",
    );
    let _ = writeln!(
        out,
        "mallee_store_scrape_read_seconds {}",
        started.elapsed().as_secs_f64()
    );

    family(
        &mut out,
        "mallee_instances",
        "gauge",
        "Instances per state.",
    );
    for (state, count) in &status.instances {
        let _ = writeln!(out, "mallee_instances{{state=\"{state}\"}} {count}");
    }

    let nodes = &status.nodes;
    let gauges: [NodeGauge; 6] = [
        (
            "mallee_node_up",
            "1 while the node heartbeats within the node timeout, else 0.",
            |n| f64::from(u8::from(n.health == NodeHealth::Up)),
        ),
        (
            "mallee_node_heartbeat_age_seconds",
            "Seconds since the node's last heartbeat.",
            |n| n.heartbeat_age_ms as f64 / 1000.0,
        ),
        (
            "mallee_node_instances",
            "Instances holding capacity on the node.",
            |n| n.instances.len() as f64,
        ),
        (
            "mallee_node_free_cores",
            "Virtual cores left for new instances on the node.",
            |n| n.free.cores as f64,
        ),
        (
            "mallee_node_free_memory_bytes",
            "Memory left for new instances on the node.",
            |n| (n.free.memory_mib * 1024 * 1024) as f64,
        ),
        (
            "mallee_node_free_disk_bytes",
            "Instance disk left for new instances on the node.",
            |n| (n.free.disk_gib * 1024 * 1024 * 1024) as f64,
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help);
        for n in nodes {
            let _ = writeln!(
                out,
                "{name}{{node=\"{}\",zone=\"{}\",role=\"{}\"}} {}",
                label(&n.node.node_id),
                label(&n.node.zone),
                label(&n.node.role),
                value(n)
            );
        }
    }

    if let Some(rss) = resident_bytes() {
        family(
            &mut out,
            "mallee_process_resident_memory_bytes",
            "gauge",
            "Resident memory of the controller process.",
        );
        let _ = writeln!(out, "mallee_process_resident_memory_bytes {rss}");
    }
    family(
        &mut out,
        "mallee_build_info",
        "gauge",
        "Always 1; the version is the label.",
    );
    let _ = writeln!(
        out,
        "mallee_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    Ok(out)
}

fn requests(out: &mut String, cloud: &Cloud) {
    let series = cloud.telemetry.requests();
    family(
        out,
        "mallee_requests_total",
        "counter",
        "Requests answered, by service, action and HTTP status (errors are the statuses from 400 up).",
    );
    for (key, s) in &series {
        let _ = writeln!(
            out,
            "mallee_requests_total{{service=\"{}\",action=\"{}\",status=\"{}\"}} {}",
            label(&key.service),
            label(&key.action),
            key.status,
            s.count
        );
    }
    // Latency per action, whatever the status.
    let mut per_action: std::collections::BTreeMap<(&str, &str), RequestSeries> =
        Default::default();
    for (key, s) in &series {
        let sum = per_action
            .entry((key.service.as_str(), key.action.as_str()))
            .or_default();
        sum.count += s.count;
        sum.latency_sum += s.latency_sum;
        for (total, n) in sum.buckets.iter_mut().zip(s.buckets) {
            *total += n;
        }
    }
    family(
        out,
        "mallee_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its answer, by service and action.",
    );
    for ((service, action), s) in &per_action {
        let labels = format!(
            "service=\"{}\",action=\"{}\"",
            label(service),
            label(action)
        );
        let mut cumulative = 0;
        for (le, n) in LATENCY_BUCKETS.iter().zip(s.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "mallee_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "mallee_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            s.count
        );
        let _ = writeln!(
            out,
            "mallee_request_duration_seconds_sum{{{labels}}} {}",
            s.latency_sum
        );
        let _ = writeln!(
            out,
            "mallee_request_duration_seconds_count{{{labels}}} {}",
            s.count
        );
    }
}

fn reconciler(out: &mut String, cloud: &Cloud) {
    let stats = cloud.telemetry.reconciler();
    family(
        out,
        "mallee_reconciler_passes_total",
        "counter",
        "Reconciler passes over every node and instance, failed ones included.",
    );
    let _ = writeln!(out, "mallee_reconciler_passes_total {}", stats.passes);
    family(
        out,
        "mallee_reconciler_pass_failures_total",
        "counter",
        "Reconciler passes that failed to read the store.",
    );
    let _ = writeln!(
        out,
        "mallee_reconciler_pass_failures_total {}",
        stats.failures
    );
    if let Some(end) = stats.last_end {
        family(
            out,
            "mallee_reconciler_last_pass_seconds",
            "gauge",
            "Duration of the last reconciler pass.",
        );
        let _ = writeln!(
            out,
            "mallee_reconciler_last_pass_seconds {}",
            stats.last_duration.as_secs_f64()
        );
        family(
            out,
            "mallee_reconciler_lag_seconds",
            "gauge",
            "Seconds since the last reconciler pass ended (about 1 s when idle; growing means it is stuck).",
        );
        let lag = SystemTime::now()
            .duration_since(end)
            .unwrap_or_default()
            .as_secs_f64();
        let _ = writeln!(out, "mallee_reconciler_lag_seconds {lag}");
    }
}

/// The process's resident set, from /proc (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), r"x\ny");
    }

    #[tokio::test]
    async fn a_scrape_counts_requests_and_shows_cumulative_buckets() {
        let cloud = mallee_cloud::testkit::TestCloud::new().await;
        cloud.telemetry.record_request(
            "ec2",
            "DescribeInstances",
            200,
            std::time::Duration::from_millis(3),
        );
        cloud.telemetry.record_request(
            "ec2",
            "DescribeInstances",
            400,
            std::time::Duration::from_millis(30),
        );
        let text = render(&cloud).await.expect("render");
        assert!(text.contains(
            "mallee_requests_total{service=\"ec2\",action=\"DescribeInstances\",status=\"200\"} 1\n"
        ));
        assert!(text.contains(
            "mallee_requests_total{service=\"ec2\",action=\"DescribeInstances\",status=\"400\"} 1\n"
        ));
        let bucket = |le: &str| {
            format!(
                "mallee_request_duration_seconds_bucket{{service=\"ec2\",action=\"DescribeInstances\",le=\"{le}\"}}"
            )
        };
        assert!(text.contains(&format!("{} 0\n", bucket("0.001"))));
        assert!(text.contains(&format!("{} 1\n", bucket("0.005"))));
        assert!(text.contains(&format!("{} 2\n", bucket("0.05"))));
        assert!(text.contains(&format!("{} 2\n", bucket("+Inf"))));
        assert!(text.contains("mallee_instances{state=\"running\"} 0\n"));
        assert!(text.contains("mallee_reconciler_passes_total 0\n"));
    }
}
