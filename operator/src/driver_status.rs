//! Talks to a running driver over its HTTP port: reads `/status` (per-job runs, records/s and
//! latency percentiles, the scheduling in force) for the app's status, and posts live
//! scheduling changes to `/admin/scheduling` with the app's admin token. Behind a trait so
//! tests fake it.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use neptune_crds::v1alpha1::{JobStatus, SchedulingStatus};
use serde::Deserialize;

/// What a driver's `/status` tells the operator.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DriverReport {
    /// Per-job figures.
    pub jobs: Vec<JobStatus>,
    /// The live scheduling settings in force (`None` from a driver that does not report them).
    pub scheduling: Option<SchedulingStatus>,
}

/// Source of driver reports, and the way to change a driver's scheduling.
pub trait DriverStatusSource: Send + Sync {
    /// The report of the driver at `base_url` (e.g. `http://app-driver.ns.svc:4040`); `None`
    /// when it cannot be read (the app status then keeps its last figures).
    fn report(&self, base_url: String) -> BoxFuture<'_, Option<DriverReport>>;

    /// Posts `changes` (a JSON object of live settings) to `/admin/scheduling` with `token`;
    /// the scheduling in force afterwards, or the driver's (or the network's) reason.
    fn set_scheduling(
        &self,
        base_url: String,
        token: String,
        changes: serde_json::Value,
    ) -> BoxFuture<'_, Result<SchedulingStatus, String>>;
}

/// `/status` as the driver serves it (only the fields the operator uses).
#[derive(Debug, Deserialize)]
struct StatusBody {
    #[serde(default)]
    jobs: Vec<JobBody>,
    #[serde(flatten)]
    scheduling: Option<SchedulingBody>,
}

/// The live settings, as `/status` and `/admin/scheduling` name them.
#[derive(Debug, Deserialize)]
struct SchedulingBody {
    policy: String,
    placement: String,
    max_suspensions: i64,
    quantum_ms: i64,
}

impl From<SchedulingBody> for SchedulingStatus {
    fn from(b: SchedulingBody) -> Self {
        Self {
            policy: b.policy,
            placement: b.placement,
            max_suspensions: b.max_suspensions,
            quantum_ms: b.quantum_ms,
        }
    }
}

#[derive(Debug, Deserialize)]
struct JobBody {
    name: String,
    kind: String,
    #[serde(default)]
    runs: i64,
    #[serde(default)]
    records_per_sec: Option<f64>,
    /// From the executors' record counters (drivers since issue 10); preferred when present:
    /// not quantised to finished tasks.
    #[serde(default)]
    records_processed_per_sec: Option<f64>,
    #[serde(default)]
    latency_ms: Option<Latency>,
    #[serde(default)]
    latency_target_ms: Option<f64>,
    #[serde(default)]
    slo_attainment: Option<f64>,
    #[serde(default)]
    waiting_runs: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Latency {
    #[serde(default)]
    p99: Option<f64>,
}

/// Parses a driver `/status` body.
///
/// # Errors
/// When the body is not the driver's status JSON.
pub fn parse_status(body: &[u8]) -> Result<DriverReport, serde_json::Error> {
    let parsed: StatusBody = serde_json::from_slice(body)?;
    let jobs = parsed
        .jobs
        .into_iter()
        .map(|j| JobStatus {
            p99_ms: if j.kind == "stream" {
                j.latency_ms.and_then(|l| l.p99)
            } else {
                None
            },
            records_per_second: j.records_processed_per_sec.or(j.records_per_sec),
            // Only meaningful values: a fraction in 0..=1 (anything else is not the driver's).
            slo_attainment: j.slo_attainment.filter(|a| (0.0..=1.0).contains(a)),
            latency_target_ms: j.latency_target_ms.filter(|t| t.is_finite() && *t > 0.0),
            waiting_runs: j
                .waiting_runs
                .filter(|_| j.kind == "stream")
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            name: j.name,
            kind: j.kind,
            runs: j.runs,
        })
        .collect();
    Ok(DriverReport {
        jobs,
        scheduling: parsed.scheduling.map(Into::into),
    })
}

/// Reads `/status` and posts admin requests over plain HTTP with a short timeout.
pub struct HttpDriverStatus {
    client: Client<HttpConnector, Full<Bytes>>,
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
    async fn fetch(&self, base_url: &str) -> Option<DriverReport> {
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

    async fn post_scheduling(
        &self,
        base_url: &str,
        token: &str,
        changes: &serde_json::Value,
    ) -> Result<SchedulingStatus, String> {
        let uri = format!("{base_url}/admin/scheduling");
        let req = http::Request::post(&uri)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(changes.to_string())))
            .map_err(|e| e.to_string())?;
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("POST {uri}: {e}"))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("POST {uri}: {e}"))?
                .to_bytes();
            if !status.is_success() {
                return Err(format!(
                    "the driver answered {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(1024)]).trim()
                ));
            }
            serde_json::from_slice::<SchedulingBody>(&body)
                .map(Into::into)
                .map_err(|e| format!("the driver's answer is not a scheduling: {e}"))
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| format!("POST {uri}: no answer within {:?}", self.timeout))?
    }
}

impl DriverStatusSource for HttpDriverStatus {
    fn report(&self, base_url: String) -> BoxFuture<'_, Option<DriverReport>> {
        Box::pin(async move {
            let report = self.fetch(&base_url).await;
            if report.is_none() {
                tracing::debug!(%base_url, "driver /status not readable");
            }
            report
        })
    }

    fn set_scheduling(
        &self,
        base_url: String,
        token: String,
        changes: serde_json::Value,
    ) -> BoxFuture<'_, Result<SchedulingStatus, String>> {
        Box::pin(async move { self.post_scheduling(&base_url, &token, &changes).await })
    }
}

/// A source that never answers, for tests and for `--no-driver-status`.
#[derive(Debug, Default)]
pub struct NoDriverStatus;

impl DriverStatusSource for NoDriverStatus {
    fn report(&self, _base_url: String) -> BoxFuture<'_, Option<DriverReport>> {
        Box::pin(async { None })
    }

    fn set_scheduling(
        &self,
        _base_url: String,
        _token: String,
        _changes: serde_json::Value,
    ) -> BoxFuture<'_, Result<SchedulingStatus, String>> {
        Box::pin(async { Err("no driver connection".to_string()) })
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
        let report = parse_status(body).unwrap();
        assert_eq!(
            report.scheduling, None,
            "an older driver reports no live settings"
        );
        let jobs = report.jobs;
        assert_eq!(jobs[0].p99_ms, Some(12.5));
        assert_eq!(jobs[1].p99_ms, None);
        assert_eq!(jobs[1].records_per_second, Some(900.0));
    }

    /// The contract with the driver: what its `/status` serializes, this parser reads.
    #[test]
    fn the_drivers_own_status_document_parses() {
        use neptune_driver::stats::Percentiles;
        use neptune_driver::status::{JobProgress, JobSummary, Scheduling, Status};
        let mut st = Status {
            app: "fraud-detection".into(),
            policy: "fifo".into(),
            placement: "lb".into(),
            max_suspensions: 3,
            quantum_ms: 250,
            ..Status::default()
        };
        st.jobs.push(JobSummary {
            progress: JobProgress {
                name: "score".into(),
                kind: "stream".into(),
                runs: 7,
                records_per_sec: 10.0,
                records_processed_per_sec: 12.5,
                latency_ms: Percentiles {
                    p99: 12.0,
                    ..Percentiles::default()
                },
                latency_target_ms: Some(250.0),
                slo_attainment: Some(0.997),
                slo_within: Some(997),
                ..Default::default()
            },
            waiting_runs: 42,
            ..Default::default()
        });
        st.jobs.push(JobSummary {
            progress: JobProgress {
                name: "train".into(),
                kind: "batch".into(),
                ..Default::default()
            },
            ..Default::default()
        });
        let report = parse_status(&serde_json::to_vec(&st).unwrap()).unwrap();
        assert_eq!(
            report.scheduling,
            Some(SchedulingStatus {
                policy: "fifo".into(),
                placement: "lb".into(),
                max_suspensions: 3,
                quantum_ms: 250,
            })
        );
        assert_eq!(report.jobs[0].p99_ms, Some(12.0));
        assert_eq!(report.jobs[0].runs, 7);
        assert_eq!(
            report.jobs[0].records_per_second,
            Some(12.5),
            "the executors' counters, not finished tasks"
        );
        assert_eq!(report.jobs[0].latency_target_ms, Some(250.0));
        assert_eq!(report.jobs[0].slo_attainment, Some(0.997));
        assert_eq!(
            report.jobs[0].waiting_runs,
            Some(42),
            "the stream job is behind"
        );
        assert_eq!(report.jobs[1].waiting_runs, None, "batch jobs have none");
        assert_eq!(
            (
                report.jobs[1].latency_target_ms,
                report.jobs[1].slo_attainment
            ),
            (None, None),
            "a job without a target has no attainment"
        );
        // And the admin endpoint's answer.
        let s = Scheduling::of(&Default::default());
        let back: SchedulingBody =
            serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back.policy, "neptune");
    }
}
