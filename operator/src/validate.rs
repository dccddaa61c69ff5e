//! Validation of a `StreamBatchApp` spec: synchronous, never touches the API.
//!
//! The CRD schema and its CEL rules refuse most bad specs at apply time; this module checks the
//! same things again (a CRD may be stale, or the object predates a rule) plus what needs
//! arithmetic, and the pod templates the schema keeps opaque (`crate::template`), and returns
//! every problem with the field it concerns, for the `InvalidSpec` condition.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use neptune_config::keys::{
    CORES, EXECUTORS, HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS, JOB_INTERVAL_MS,
    JOB_LATENCY_TARGET_MS, JOB_MAX_IN_FLIGHT, MAX_SUSPENSIONS, MEMORY, QUANTUM_MS,
    STATIC_STREAM_EXECUTORS,
};
use neptune_config::rules;
use neptune_config::{UInt, keys};
use neptune_crds::ports;
use neptune_crds::quantity::{self, QuantityError};
use neptune_crds::v1alpha1::{PodSpec, Policy, StreamBatchApp, StreamBatchAppSpec};

use crate::build::{OPERATOR_ENV, Role};
use crate::template;

/// Smallest memory a driver or executor may be given.
pub const MIN_MEMORY_BYTES: u64 = 64 << 20;
/// Longest `metadata.name`: child names (`<name>-executor-<n>`) and label values must stay valid.
pub const MAX_NAME_LEN: usize = 48;

/// One problem with a spec: the field (JSON path under the object) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.executor.memory`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// An error at `field`.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in a spec (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSpec(pub Vec<FieldError>);

impl std::fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for InvalidSpec {}

/// Values derived while validating, which the builders need.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// Driver process memory in bytes.
    pub driver_memory: u64,
    /// Driver container memory limit (memory + overhead) in bytes.
    pub driver_limit: u64,
    /// Executor `--memory` in bytes.
    pub executor_memory: u64,
    /// Executor container memory limit (memory + overhead) in bytes.
    pub executor_limit: u64,
    /// `spec.driver.podTemplate`, parsed and checked.
    pub driver_template: Option<PodTemplateSpec>,
    /// `spec.executor.podTemplate`, parsed and checked.
    pub executor_template: Option<PodTemplateSpec>,
}

/// Checks a `StreamBatchApp`.
///
/// # Errors
/// [`InvalidSpec`] listing every field that is wrong.
pub fn validate(app: &StreamBatchApp) -> Result<Validated, InvalidSpec> {
    let mut errs = Errors::default();
    let spec = &app.spec;
    let name = app.metadata.name.as_deref().unwrap_or_default();
    if name.len() > MAX_NAME_LEN {
        errs.push(
            "metadata.name",
            format!("must be at most {MAX_NAME_LEN} characters"),
        );
    }
    if spec.image.trim().is_empty() {
        errs.push("spec.image", "must name a container image");
    }
    if !is_app_name(&spec.app.name) {
        errs.push(
            "spec.app.name",
            "must be a registered app name: lowercase letters, digits, '-' or '_'",
        );
    }
    if let Some(binary) = &spec.app.binary
        && !binary.starts_with('/')
    {
        errs.push("spec.app.binary", "must be an absolute path in the image");
    }
    for key in spec.app.config.keys() {
        let field = format!("spec.app.config[{key}]");
        if key.is_empty() || key.contains('=') || key.contains(char::is_whitespace) {
            errs.push(&field, "keys must be non-empty, without '=' or spaces");
        } else if let Some(setting) = keys::engine_setting(key) {
            // Engine keys: those with a spec field go through it (one place per setting in the
            // spec); the others are checked against their setting's range here.
            match setting.meta().crd {
                Some(crd) => errs.push(&field, format!("set it through {crd}")),
                None => {
                    if let Err(e) = setting.check(key, &spec.app.config[key]) {
                        errs.push(&field, e.to_string());
                    }
                }
            }
        }
    }
    let driver = pod_sizes(&spec.driver.pod, "spec.driver", &mut errs);
    let executor = pod_sizes(&spec.executor.pod, "spec.executor", &mut errs);
    let driver_template = pod_template(spec, &spec.driver.pod, Role::Driver, &mut errs);
    let executor_template = pod_template(spec, &spec.executor.pod, Role::Executor, &mut errs);
    setting(
        &mut errs,
        "spec.executor.replicas",
        &EXECUTORS,
        Some(i64::from(spec.executor.replicas)),
    );
    if let Some(memory) = executor.map(|(m, _)| m)
        && MEMORY
            .parse_as("spec.executor.memory", &memory.to_string())
            .is_err()
    {
        errs.push(
            "spec.executor.memory",
            format!(
                "must be between {} and {}",
                quantity::format_bytes(MEMORY.min),
                quantity::format_bytes(MEMORY.max)
            ),
        );
    }
    if spec.executor.max_failures < 0 {
        errs.push("spec.executor.maxFailures", "must not be negative");
    }
    let sched = &spec.scheduling;
    setting(
        &mut errs,
        "spec.scheduling.staticStreamExecutors",
        &STATIC_STREAM_EXECUTORS,
        Some(i64::from(sched.static_stream_executors)),
    );
    if sched.policy == Policy::Static
        && i64::from(sched.static_stream_executors)
            > rules::static_stream_executors_max(spec.executor.replicas.max(0) as u64) as i64
    {
        errs.push(
            "spec.scheduling.staticStreamExecutors",
            "must be below spec.executor.replicas so batch jobs keep at least one executor",
        );
    }
    setting(
        &mut errs,
        "spec.scheduling.heartbeatIntervalMs",
        &HEARTBEAT_INTERVAL_MS,
        sched.heartbeat_interval_ms,
    );
    setting(
        &mut errs,
        "spec.scheduling.heartbeatTimeoutMs",
        &HEARTBEAT_TIMEOUT_MS,
        sched.heartbeat_timeout_ms,
    );
    let interval = sched.heartbeat_interval_ms.map_or(
        HEARTBEAT_INTERVAL_MS
            .default
            .unwrap_or(HEARTBEAT_INTERVAL_MS.min),
        |i| i.max(0) as u64,
    );
    if let Some(t) = sched.heartbeat_timeout_ms
        && t >= 0
        && (t as u64) < rules::heartbeat_timeout_min(interval)
    {
        errs.push(
            "spec.scheduling.heartbeatTimeoutMs",
            "must be at least twice spec.scheduling.heartbeatIntervalMs",
        );
    }
    setting(
        &mut errs,
        "spec.scheduling.quantumMs",
        &QUANTUM_MS,
        sched.quantum_ms,
    );
    setting(
        &mut errs,
        "spec.scheduling.maxSuspensions",
        &MAX_SUSPENSIONS,
        sched.max_suspensions,
    );
    for (job, o) in &spec.jobs {
        if !is_job_name(job) {
            errs.push(
                &format!("spec.jobs[{job}]"),
                "job names are lowercase letters, digits, '-', '_' or '.', at most 63 characters",
            );
        }
        if o.latency_target_ms.is_some() && o.kind == Some(neptune_config::JobKind::Batch) {
            errs.push(
                &format!("spec.jobs[{job}].latencyTargetMs"),
                "only stream jobs have a latency target",
            );
        }
        setting(
            &mut errs,
            &format!("spec.jobs[{job}].latencyTargetMs"),
            &JOB_LATENCY_TARGET_MS,
            o.latency_target_ms,
        );
        setting(
            &mut errs,
            &format!("spec.jobs[{job}].intervalMs"),
            &JOB_INTERVAL_MS,
            o.interval_ms,
        );
        setting(
            &mut errs,
            &format!("spec.jobs[{job}].maxInFlight"),
            &JOB_MAX_IN_FLIGHT,
            o.max_in_flight,
        );
    }
    let rp = &spec.restart_policy;
    if rp.max_retries < 0 {
        errs.push("spec.restartPolicy.maxRetries", "must not be negative");
    }
    if rp.backoff_initial_seconds < 1 {
        errs.push(
            "spec.restartPolicy.backoffInitialSeconds",
            "must be at least 1",
        );
    }
    if rp.backoff_max_seconds < rp.backoff_initial_seconds {
        errs.push(
            "spec.restartPolicy.backoffMaxSeconds",
            "must be at least spec.restartPolicy.backoffInitialSeconds",
        );
    }
    if spec.ttl_seconds_after_finished.is_some_and(|t| t < 0) {
        errs.push("spec.ttlSecondsAfterFinished", "must not be negative");
    }
    if spec.pending_deadline_seconds < 10 {
        errs.push("spec.pendingDeadlineSeconds", "must be at least 10");
    }
    let m = &spec.monitoring;
    for (port, field) in [
        (m.driver_port, "spec.monitoring.driverPort"),
        (m.executor_port, "spec.monitoring.executorPort"),
    ] {
        if !(1024..=65535).contains(&port) {
            errs.push(field, "must be between 1024 and 65535");
        } else if port == ports::DRIVER_GRPC && field.ends_with("driverPort") {
            errs.push(field, "7077 is the driver's gRPC port");
        }
    }
    match (driver, executor, errs.0.is_empty()) {
        (Some((driver_memory, driver_limit)), Some((executor_memory, executor_limit)), true) => {
            Ok(Validated {
                driver_memory,
                driver_limit,
                executor_memory,
                executor_limit,
                driver_template,
                executor_template,
            })
        }
        _ => Err(InvalidSpec(errs.0)),
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }
}

/// Checks a CRD field against the range of the engine setting it maps to (`neptune_config::keys`),
/// so the operator refuses exactly what the driver would.
fn setting(errs: &mut Errors, field: &str, s: &UInt, v: Option<i64>) {
    if let Some(v) = v
        && u64::try_from(v).map_or(true, |v| s.check_as(field, v).is_err())
    {
        errs.push(field, format!("must be between {} and {}", s.min, s.max));
    }
}

/// The pod's template, parsed and checked (`None` when unset or after recording errors).
fn pod_template(
    spec: &StreamBatchAppSpec,
    pod: &PodSpec,
    role: Role,
    errs: &mut Errors,
) -> Option<PodTemplateSpec> {
    let prefix = format!("spec.{}", role.as_str());
    let value = pod.pod_template.as_ref()?;
    match template::parse(value, &format!("{prefix}.podTemplate")) {
        Ok(t) => {
            let found = template::check(&t, role.as_str(), &prefix, pod, spec);
            let ok = found.is_empty();
            errs.0.extend(found);
            ok.then_some(t)
        }
        Err(found) => {
            errs.0.extend(found);
            None
        }
    }
}

/// Memory in bytes and the container limit (memory + overhead), or `None` after recording errors.
fn pod_sizes(pod: &PodSpec, prefix: &str, errs: &mut Errors) -> Option<(u64, u64)> {
    setting(
        errs,
        &format!("{prefix}.cores"),
        &CORES,
        Some(i64::from(pod.cores)),
    );
    for e in &pod.env {
        if OPERATOR_ENV.contains(&e.name.as_str()) {
            errs.push(
                &format!("{prefix}.env[{}]", e.name),
                "is set by the operator",
            );
        }
    }
    for key in pod.labels.keys() {
        if key.starts_with("neptune.dev/") || key.starts_with("app.kubernetes.io/") {
            errs.push(
                &format!("{prefix}.labels[{key}]"),
                "keys under neptune.dev/ and app.kubernetes.io/ belong to the operator",
            );
        }
    }
    let memory = match quantity::parse_bytes(&pod.memory) {
        Ok(b) if b < MIN_MEMORY_BYTES => {
            errs.push(&format!("{prefix}.memory"), "must be at least 64Mi");
            None
        }
        Ok(b) => Some(b),
        Err(e) => {
            errs.push(&format!("{prefix}.memory"), quantity_message(&e));
            None
        }
    };
    let overhead = match &pod.memory_overhead {
        // 10% rounded up to whole MiB, so limits read like 1127Mi rather than raw bytes.
        None => memory.map(|m| (m / 10).max(MIN_MEMORY_BYTES).div_ceil(1 << 20) << 20),
        Some(text) => match quantity::parse_bytes(text) {
            Ok(b) => Some(b),
            Err(e) => {
                errs.push(&format!("{prefix}.memoryOverhead"), quantity_message(&e));
                None
            }
        },
    };
    let (memory, overhead) = (memory?, overhead?);
    match memory.checked_add(overhead) {
        Some(limit) if limit <= i64::MAX as u64 => Some((memory, limit)),
        _ => {
            errs.push(
                &format!("{prefix}.memoryOverhead"),
                "memory plus overhead is too large",
            );
            None
        }
    }
}

fn quantity_message(e: &QuantityError) -> String {
    e.to_string()
}

fn is_app_name(s: &str) -> bool {
    is_name(s, false) && s.len() <= 63
}

fn is_job_name(s: &str) -> bool {
    is_name(s, true) && s.len() <= 63
}

fn is_name(s: &str, allow_dot: bool) -> bool {
    let inner = |c: char| {
        c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || c == '-'
            || c == '_'
            || (allow_dot && c == '.')
    };
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.chars().all(inner)
        && s.chars().next().is_some_and(edge)
        && s.chars().last().is_some_and(edge)
}
