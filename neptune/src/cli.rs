//! The `neptune` command line: `local`, `driver`, `executor`, `apps`,
//! and `bench` (the evaluation harness, `crate::bench`).
//! Every flag also reads an environment variable. Parsing and validation errors name the flag or
//! config key and exit non-zero.

use clap::{Args, Parser, Subcommand};
use neptune_core::config::{UInt, keys};
use neptune_driver::scheduler::Policy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Neptune: unified stream/batch applications with suspendable batch tasks.
#[derive(Debug, Parser)]
#[command(name = "neptune", version, about, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an app on a local cluster: a driver and N executor processes on loopback.
    Local(LocalArgs),
    /// Run the driver of an app (one per app; executors connect to it).
    Driver(DriverArgs),
    /// Run an executor that connects to a driver.
    Executor(ExecutorArgs),
    /// List the apps built into this binary.
    Apps,
    /// Print the configuration reference: every engine key, and an app's own keys.
    Config(ConfigArgs),
    /// Evaluate the policies: run `synthetic` under every policy on local clusters, or a sweep,
    /// or the scheduler simulation; print a table, write CSV, JSON and SVG plots.
    Bench(BenchArgs),
}

/// `neptune bench`.
#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Short mode (< 2 minutes): one repetition, short runs.
    #[arg(long)]
    pub quick: bool,
    /// Output directory for the table, CSV, JSON and SVG plots.
    #[arg(long, default_value = "bench-out")]
    pub out: PathBuf,
    /// Repetitions of every configuration (default 3, or 1 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub reps: Option<u32>,
    /// Length of each run (default 15s, or 6s with --quick).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Executors per local cluster.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub executors: u32,
    /// Task slots per executor.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub cores: u32,
    /// Run a sweep instead of the policy comparison: rate, interval, task-length, topology,
    /// memory.
    #[arg(long, value_name = "NAME")]
    pub sweep: Option<crate::bench::plan::Sweep>,
    /// Run the scheduler simulation (virtual clock, simulated executors) instead.
    #[arg(long, conflicts_with = "sweep")]
    pub simulate: bool,
    /// Simulated cluster sizes for --simulate.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub sim_executors: Vec<u32>,
    /// Extra workload config KEY=VALUE for every run (repeatable), after the bench's own.
    #[arg(long = "set", value_delimiter = ',', value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// `neptune config`.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// Also list this app's keys (built-in apps, or any app this binary registers: its keys are
    /// those it reads when built with the given `--set` values).
    #[arg(long)]
    pub app: Option<String>,
    /// Config values to build the app with (some keys are read only when others are set).
    #[arg(long = "set", value_delimiter = ',', value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print every section as Markdown (what `docs/config.md` holds) instead of a plain table.
    #[arg(long)]
    pub markdown: bool,
}

/// Flags shared by `local` and `driver`.
#[derive(Debug, Args, Clone)]
pub struct AppArgs {
    /// Registered app name (see `neptune apps`).
    #[arg(long, env = "NEPTUNE_APP")]
    pub app: String,
    /// Number of executors.
    #[arg(long, env = "NEPTUNE_EXECUTORS", default_value_t = default_u32(&keys::EXECUTORS), value_parser = parse_executors)]
    pub executors: u32,
    /// Scheduling policy: neptune (default), fifo, fair, kill, static (`--set scheduler.policy`
    /// too).
    #[arg(long, env = "NEPTUNE_POLICY", value_parser = parse_policy)]
    pub policy: Option<Policy>,
    /// Stop after this long (e.g. 30s, 2m); default: until the app finishes or Ctrl-C.
    #[arg(long, env = "NEPTUNE_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Config value KEY=VALUE (repeatable): app keys, `jobs.<job>.kind|interval_ms|runs`,
    /// `scheduler.placement|max_suspensions|quantum_ms|...`, `heartbeat.interval_ms|timeout_ms`.
    #[arg(
        long = "set",
        env = "NEPTUNE_SET",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    pub set: Vec<String>,
    /// Write a JSON report here when the run ends.
    #[arg(long, env = "NEPTUNE_REPORT")]
    pub report: Option<PathBuf>,
    /// Arguments after `--` are the app's own (`App::args`), sent to executors with the config.
    #[arg(last = true, value_name = "APP_ARGS")]
    pub app_args: Vec<String>,
}

/// `neptune local`.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// App, policy, config.
    #[command(flatten)]
    pub app: AppArgs,
    /// Task slots per executor.
    #[arg(long, env = "NEPTUNE_CORES", default_value_t = default_u32(&keys::CORES), value_parser = parse_cores)]
    pub cores: u32,
    /// Memory budget per executor (a quantity: 512Mi, 2Gi, or bytes).
    #[arg(long, env = "NEPTUNE_MEMORY", default_value = "1Gi", value_parser = parse_memory)]
    pub memory: u64,
    /// Driver HTTP address (`/status`, `/metrics`); port 0 picks a free port.
    #[arg(long, env = "NEPTUNE_HTTP", default_value = "127.0.0.1:4040")]
    pub http: SocketAddr,
    /// No live progress; only the final summary.
    #[arg(long)]
    pub quiet: bool,
}

/// `neptune driver`.
#[derive(Debug, Args)]
pub struct DriverArgs {
    /// App, policy, config.
    #[command(flatten)]
    pub app: AppArgs,
    /// gRPC address executors connect to.
    #[arg(long, env = "NEPTUNE_LISTEN", default_value = "0.0.0.0:7077")]
    pub listen: SocketAddr,
    /// HTTP address for /metrics, /healthz, /readyz, /status.
    #[arg(long, env = "NEPTUNE_HTTP", default_value = "0.0.0.0:4040")]
    pub http: SocketAddr,
}

/// `neptune executor`.
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// Driver gRPC URL, e.g. http://127.0.0.1:7077.
    #[arg(long, env = "NEPTUNE_DRIVER_URL")]
    pub driver: String,
    /// Task slots.
    #[arg(long, env = "NEPTUNE_CORES", value_parser = parse_cores)]
    pub cores: u32,
    /// Memory budget (a quantity: 512Mi, 2Gi, or bytes).
    #[arg(long, env = "NEPTUNE_MEMORY", value_parser = parse_memory)]
    pub memory: u64,
    /// HTTP address for /metrics, /healthz, /readyz.
    #[arg(long, env = "NEPTUNE_HTTP", default_value = "0.0.0.0:4041")]
    pub http: SocketAddr,
    /// Executor id (default: assigned by the driver).
    #[arg(long, env = "NEPTUNE_EXECUTOR_ID")]
    pub id: Option<String>,
    /// How long to keep trying to reach the driver at start.
    #[arg(long, env = "NEPTUNE_CONNECT_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = if let Ok(secs) = s.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(format!("`{s}` is not a duration"));
        }
        Duration::from_secs_f64(secs)
    } else {
        humantime::parse_duration(s)
            .map_err(|e| format!("`{s}` is not a duration (e.g. 30s, 2m, 500ms): {e}"))?
    };
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

// Flags that are settings parse through their descriptors in `neptune_config::keys`, so a flag,
// its `--set` key and its CRD field share one range and one message.

fn default_u32(s: &UInt) -> u32 {
    s.default.unwrap_or(s.min) as u32
}

fn parse_executors(s: &str) -> Result<u32, String> {
    keys::EXECUTORS
        .parse(s)
        .map(|v| v as u32)
        .map_err(|e| e.to_string())
}

fn parse_cores(s: &str) -> Result<u32, String> {
    keys::CORES
        .parse(s)
        .map(|v| v as u32)
        .map_err(|e| e.to_string())
}

fn parse_memory(s: &str) -> Result<u64, String> {
    keys::MEMORY.parse(s).map_err(|e| e.to_string())
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    keys::POLICY.parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_flags_name_the_flag() {
        let e = Cli::try_parse_from(["neptune", "local", "--app", "x", "--policy", "lifo"])
            .unwrap_err();
        assert!(e.to_string().contains("--policy"), "{e}");
        let e =
            Cli::try_parse_from(["neptune", "local", "--app", "x", "--cores", "0"]).unwrap_err();
        assert!(e.to_string().contains("--cores"), "{e}");
        assert!(e.to_string().contains("between 1 and 256"), "{e}");
        let e = Cli::try_parse_from(["neptune", "local", "--app", "x", "--executors", "1001"])
            .unwrap_err();
        assert!(e.to_string().contains("between 1 and 1000"), "{e}");
        let e = Cli::try_parse_from(["neptune", "local", "--app", "x", "--duration", "soon"])
            .unwrap_err();
        assert!(e.to_string().contains("--duration"), "{e}");
        let e = Cli::try_parse_from([
            "neptune", "executor", "--driver", "http://x", "--cores", "1", "--memory", "lots",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("--memory"), "{e}");
    }

    #[test]
    fn arguments_after_double_dash_belong_to_the_app() {
        let c = Cli::try_parse_from([
            "neptune",
            "driver",
            "--app",
            "x",
            "--executors",
            "2",
            "--",
            "--model-dir",
            "/m",
        ])
        .unwrap();
        let Command::Driver(d) = c.command else {
            panic!("driver")
        };
        assert_eq!(d.app.app_args, vec!["--model-dir", "/m"]);
        assert_eq!(d.app.executors, 2);
    }

    #[test]
    fn durations_and_sets_parse() {
        let c = Cli::try_parse_from([
            "neptune",
            "local",
            "--app",
            "x",
            "--duration",
            "1.5",
            "--set",
            "a=1",
            "--set",
            "b=2",
        ])
        .unwrap();
        let Command::Local(l) = c.command else {
            panic!("local")
        };
        assert_eq!(l.app.duration, Some(Duration::from_millis(1500)));
        assert_eq!(l.app.set, vec!["a=1", "b=2"]);
    }
}
