//! `neptune local`: a driver (in this process) and N executor processes (this same binary, run as
//! `neptune executor`) on loopback — the same binaries and protocol as on Kubernetes. Shows live
//! progress, stops on Ctrl-C or after `--duration`, and writes the JSON report.
//!
//! Credentials: a fresh app CA and member certificate per run, written to a private temp
//! directory (0700, key 0600) that the executors read with `--tls-dir` and that is removed when
//! the run ends; the driver loads the same directory. Nothing to configure, and every cluster
//! connection is mutually authenticated, as on Kubernetes (`--insecure` turns it off).
//!
//! Failures: executors are supervised (restarted with back-off, within a budget; see
//! [`crate::supervise`]). The exit code says whether the app did its work: 0 when every job
//! finished (or the run was stopped after each batch job with a run limit reached it), 1 when a
//! job failed, the driver had no executor for `driver.no_executors_timeout_ms`, or an executor
//! used up its restarts, 4 when the run was stopped (Ctrl-C, `--duration`) before a batch job
//! reached its run limit (2 stays what it is for every command: bad flags or config).

use crate::cli::LocalArgs;
use crate::report::Report;
use crate::supervise::{Budget, Supervisor};
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use neptune_config::keys::{LOCAL_MAX_RESTARTS, LOCAL_RESTART_WINDOW_MS};
use neptune_core::app::AppEntry;
use neptune_driver::{Driver, DriverError, Outcome, Status};
use neptune_net::Security;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Run the local cluster; returns the process exit code.
///
/// # Errors
/// Bad flags or config (naming them), sockets that cannot be bound, executors that cannot start.
pub async fn run_local(
    mut args: LocalArgs,
    apps: &'static [AppEntry],
    limits: neptune_net::Limits,
) -> anyhow::Result<i32> {
    let shape = resolve_shape(&args)?;
    if let Some(why) = &shape.why {
        tracing::info!(
            executors = shape.executors,
            cores = shape.cores,
            "cluster shape: {why}"
        );
        eprintln!("neptune local: {why}");
    }
    args.app.executors = Some(shape.executors);
    let n = shape.executors;
    let cores = shape.cores;
    let (app, cfg) = crate::run::prepare(
        &args.app,
        apps,
        "127.0.0.1:0".parse().expect("addr"),
        args.http,
    )?;
    app.check_memory(args.memory)?;
    let policy = cfg.scheduler.policy;
    // Dropped (removed) when this function returns, on every path.
    let creds_dir = if args.insecure {
        None
    } else {
        let dir = tempfile::Builder::new()
            .prefix("neptune-local-tls-")
            .tempdir()
            .context("cannot create a directory for the cluster's credentials")?;
        neptune_net::issue::issue(&args.app.app, &[], neptune_net::issue::DEFAULT_DAYS)?
            .write_dir(dir.path(), false)?;
        Some(dir)
    };
    let creds_path = creds_dir.as_ref().map(|d| d.path().to_path_buf());
    let security = Security::from_flags(creds_path.as_deref(), args.insecure, &[])?;
    let scheme = security.scheme();
    let driver = Driver::bind(cfg, app.clone(), security, limits).await?;
    let grpc = driver.grpc_addr();
    eprintln!(
        "neptune local: app {} on {n} executor{} x {} core{}, policy {}; driver http://{} (/status, /metrics), grpc {scheme}://{grpc}",
        args.app.app,
        if n == 1 { "" } else { "s" },
        cores,
        if cores == 1 { "" } else { "s" },
        policy.as_str(),
        driver.http_addr()
    );
    let exe = std::env::current_exe().context("cannot find the neptune binary")?;
    let driver_url = format!("{scheme}://{grpc}");
    let (cores_arg, memory) = (cores.to_string(), args.memory.to_string());
    let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let creds = creds_path.clone();
    let command = move |id: &str| {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("executor")
            .args(["--driver", &driver_url])
            .args(["--cores", &cores_arg])
            .args(["--memory", &memory])
            .args(["--http", "127.0.0.1:0"])
            .args(["--block-listen", "127.0.0.1:0"])
            .args(["--id", id])
            .env_remove("NEPTUNE_TLS_DIR")
            .env_remove("NEPTUNE_INSECURE");
        match &creds {
            Some(dir) => cmd.arg("--tls-dir").arg(dir),
            None => cmd.arg("--insecure"),
        };
        cmd.env("RUST_LOG", &log).stdin(Stdio::null());
        cmd
    };
    let budget = Budget {
        max_restarts: u32::try_from(LOCAL_MAX_RESTARTS.get(app.config())?).unwrap_or(u32::MAX),
        window: Duration::from_millis(LOCAL_RESTART_WINDOW_MS.get(app.config())?),
    };
    let (gave_up_tx, mut gave_up_rx) = tokio::sync::mpsc::unbounded_channel();
    let supervisor = Supervisor::start(
        (0..n).map(|i| format!("exec-{i}")).collect(),
        command,
        budget,
        gave_up_tx,
    );

    let status = driver.status();
    let progress = (!args.quiet).then(|| tokio::spawn(show_progress(status.clone())));
    let duration = args.app.duration;
    let gave_up: Arc<std::sync::OnceLock<String>> = Arc::default();
    let gave_up_set = gave_up.clone();
    let stop = async move {
        let until = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = crate::run::termination() => {}
            () = until => {}
            Some(why) = gave_up_rx.recv() => { let _ = gave_up_set.set(why); }
        }
    };
    let result = driver.run(stop).await;
    if let Some(p) = progress {
        p.abort();
        let _ = p.await;
    }
    // Executors got a Shutdown message; give them a moment, then make sure none is left.
    supervisor.stop().await;
    let (code, final_status) = match result {
        Ok((_, st)) if gave_up.get().is_some() => {
            let why = gave_up.get().map(String::as_str).unwrap_or_default();
            eprintln!("error: the run failed: {why}");
            (1, st)
        }
        Ok((outcome, st)) => {
            let how = match outcome {
                Outcome::Finished => "finished",
                Outcome::Stopped => "stopped",
            };
            eprintln!("neptune local: {how} after {:.1}s", st.elapsed_s);
            let unfinished = unfinished_jobs(&app, &st);
            if unfinished.is_empty() {
                (0, st)
            } else {
                eprintln!(
                    "error: stopped before these batch jobs reached their run limit: {}",
                    unfinished.join(", ")
                );
                (4, st)
            }
        }
        Err(DriverError::JobFailed(f)) => {
            eprintln!("error: {f}");
            let st = status.read().unwrap_or_else(|e| e.into_inner()).clone();
            (1, st)
        }
        Err(e) => return Err(e.into()),
    };
    eprint!("{}", summary(&final_status));
    if let Some(path) = &args.app.report {
        write_report(path, &final_status, n as usize, cores)?;
        eprintln!("neptune local: report written to {}", path.display());
    }
    Ok(code)
}

/// The cluster shape: the flags where given, else [`crate::shape::choose`] for this machine's
/// CPUs and the policy's fewest executors (`static`: its stream-only executors plus one).
///
/// # Errors
/// A bad `--set` value of the scheduler's keys (naming it).
fn resolve_shape(args: &LocalArgs) -> anyhow::Result<crate::shape::Shape> {
    let (executors, cores) = (args.app.executors, args.cores);
    let min_executors = if executors.is_some() && cores.is_some() {
        1
    } else {
        let config = neptune_core::config::Config::from_args(&args.app.set)?;
        let sched = neptune_driver::scheduler::SchedulerConfig::from_config(&config)?;
        match args.app.policy.unwrap_or(sched.policy) {
            neptune_driver::scheduler::Policy::Static => {
                u32::try_from(sched.static_stream_executors.saturating_add(1)).unwrap_or(u32::MAX)
            }
            _ => 1,
        }
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(crate::shape::choose(cpus, executors, cores, min_executors))
}

/// Batch jobs of `app` with a run limit that `st` shows they did not reach, as `name (runs/limit)`.
/// A batch job without a limit runs until stopped, so stopping it is its normal end.
pub fn unfinished_jobs(app: &neptune_core::app::App, st: &Status) -> Vec<String> {
    app.jobs()
        .iter()
        .filter(|d| d.kind == neptune_core::ids::JobKind::Batch)
        .filter_map(|d| {
            let limit = d.runs.filter(|n| *n > 0)?;
            let runs = st
                .jobs
                .iter()
                .find(|j| j.progress.name == d.name)
                .map_or(0, |j| j.progress.runs);
            (runs < limit).then(|| format!("{} ({runs}/{limit} runs)", d.name))
        })
        .collect()
}

/// Write the JSON report for `status`.
///
/// # Errors
/// When the file cannot be written (naming it).
pub fn write_report(
    path: &Path,
    status: &Status,
    executors: usize,
    cores: u32,
) -> anyhow::Result<()> {
    let report = Report::from_status(status, executors, cores);
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(path, json + "\n")
        .with_context(|| format!("cannot write --report {}", path.display()))
}

/// A line per job plus totals, for the terminal.
pub fn summary(st: &Status) -> String {
    let mut s = String::new();
    for j in st.jobs.iter().map(|j| &j.progress) {
        if j.kind == "stream" {
            s += &format!(
                "  {:<12} stream  runs {:>6}  records {:>12}  latency ms p50 {:>7.1} p99 {:>7.1} max {:>7.1}\n",
                j.name, j.runs, j.records, j.latency_ms.p50, j.latency_ms.p99, j.latency_ms.max
            );
        } else {
            s += &format!(
                "  {:<12} batch   runs {:>6}  records {:>12}  {:>12.0} records/s\n",
                j.name, j.runs, j.records, j.records_per_sec
            );
        }
    }
    let t = &st.totals;
    s += &format!(
        "  suspensions {}  resumptions {}  kills {} (records lost {})  suspend latency us p50 {:.1} p99 {:.1}  executors lost {}\n",
        t.suspensions,
        t.resumptions,
        t.kills,
        t.records_lost,
        t.suspend_latency_us.p50,
        t.suspend_latency_us.p99,
        t.executors_lost
    );
    s += &format!(
        "  tasks local {} non-local {}  spilled {} B  fetch failures {}  map outputs recomputed {}  malformed skipped {}  suspensions by phase {:?}\n",
        t.local_launches,
        t.non_local_launches,
        t.spilled_bytes,
        t.fetch_failures,
        t.map_outputs_recomputed,
        t.malformed_skipped,
        t.suspensions_by_phase
    );
    s
}

fn progress_line(st: &Status) -> String {
    if !st.ready {
        return format!(
            "waiting for executors ({}/{})",
            st.executors.len(),
            st.executors_expected
        );
    }
    let mut parts = vec![format!("{:>6.1}s", st.elapsed_s)];
    for j in st.jobs.iter().map(|j| &j.progress) {
        if j.kind == "stream" {
            parts.push(format!(
                "{} {} mb p99 {:.0}ms",
                j.name, j.runs, j.latency_ms.p99
            ));
        } else {
            parts.push(format!(
                "{} {} runs {:.2}M rec/s",
                j.name,
                j.runs,
                j.records_per_sec / 1e6
            ));
        }
    }
    let running: usize = st.executors.iter().map(|e| e.running).sum();
    let suspended: usize = st.executors.iter().map(|e| e.suspended).sum();
    parts.push(format!("tasks {running} run {suspended} susp"));
    parts.push(format!(
        "suspensions {} kills {}",
        st.totals.suspensions, st.totals.kills
    ));
    parts.join(" | ")
}

async fn show_progress(status: Arc<RwLock<Status>>) {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    let plain = bar.is_hidden();
    let mut tick = tokio::time::interval(Duration::from_millis(if plain { 2000 } else { 250 }));
    loop {
        tick.tick().await;
        let line = progress_line(&status.read().unwrap_or_else(|e| e.into_inner()));
        if plain {
            eprintln!("neptune local: {line}");
        } else {
            bar.set_message(line);
            bar.tick();
        }
    }
}
