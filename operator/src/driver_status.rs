//! Reads a driver's `/status` JSON (per-job runs, records/s and latency percentiles) so the
//! operator can put stream p99 latency into the app's status. Behind a trait so tests fake it.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use neptune_crds::v1alpha1::JobStatus;
use serde::Deserialize;

/// Source of driver reports.
pub trait DriverStatusSource: Send + Sync {
    /// Per-job figures from the driver at `base_url` (e.g. `http://app-driver.ns.svc:4040`);
    /// `None` when it cannot be read (the app status then keeps its last figures).
    fn jobs(&self, base_url: String) -> BoxFuture<'_, Option<Vec<JobStatus>>>;
}

/// `/status` as the driver serves it (only the fields the operator uses).
#[derive(Debug, Deserialize)]
struct StatusBody {
    #[serde(default)]
    jobs: Vec<JobBody>,
}

#[derive(Debug, Deserialize)]
struct JobBody {
    name: String,
    kind: String,
    #[serde(default)]
    runs: i64,
    #[serde(default)]
    records_per_sec: Option<f64>,
    #[serde(default)]
    latency_ms: Option<Latency>,
}

#[derive(Debug, Deserialize)]
struct Latency {
    #[serde(default)]
    p99: Option<f64>,
}

/// Parses a driver `/status` body into job statuses.
///
/// # Errors
/// When the body is not the driver's status JSON.
pub fn parse_status(body: &[u8]) -> Result<Vec<JobStatus>, serde_json::Error> {
    let parsed: StatusBody = serde_json::from_slice(body)?;
    Ok(parsed
        .jobs
        .into_iter()
        .map(|j| JobStatus {
            p99_ms: if j.kind == "stream" {
                j.latency_ms.and_then(|l| l.p99)
            } else {
                None
            },
            records_per_second: j.records_per_sec,
            name: j.name,
            kind: j.kind,
            runs: j.runs,
        })
        .collect())
}

/// Reads `/status` over plain HTTP with a short timeout.
pub struct HttpDriverStatus {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl Default for HttpDriverStatus {
    fn default() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            timeout: Duration::from_secs(3),
        }
    }
}

impl HttpDriverStatus {
    async fn fetch(&self, base_url: &str) -> Option<Vec<JobStatus>> {
        let uri: http::Uri = format!("{base_url}/status").parse().ok()?;
        let fut = async {
            let resp = self.client.get(uri).await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            parse_status(&body).ok()
        };
        tokio::time::timeout(self.timeout, fut).await.ok().flatten()
    }
}

impl DriverStatusSource for HttpDriverStatus {
    fn jobs(&self, base_url: String) -> BoxFuture<'_, Option<Vec<JobStatus>>> {
        Box::pin(async move {
            let jobs = self.fetch(&base_url).await;
            if jobs.is_none() {
                tracing::debug!(%base_url, "driver /status not readable");
            }
            jobs
        })
    }
}

/// A source that never answers, for tests and for `--no-driver-status`.
#[derive(Debug, Default)]
pub struct NoDriverStatus;

impl DriverStatusSource for NoDriverStatus {
    fn jobs(&self, _base_url: String) -> BoxFuture<'_, Option<Vec<JobStatus>>> {
        Box::pin(async { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_yields_stream_p99_and_batch_throughput() {
        let body = br#"{"app":"fraud-detection","policy":"neptune","executors":[],
            "jobs":[{"name":"score","kind":"stream","runs":12,"records":100,"records_per_sec":50.0,
                     "latency_ms":{"p50":3.0,"p95":8.0,"p99":12.5,"max":20.0}},
                    {"name":"train","kind":"batch","runs":1,"records":1000,"records_per_sec":900.0,
                     "latency_ms":{"p50":0,"p95":0,"p99":0,"max":0}}],
            "totals":{"suspensions":3,"resumptions":3,"kills":0}}"#;
        let jobs = parse_status(body).unwrap();
        assert_eq!(jobs[0].p99_ms, Some(12.5));
        assert_eq!(jobs[1].p99_ms, None);
        assert_eq!(jobs[1].records_per_second, Some(900.0));
    }
}
