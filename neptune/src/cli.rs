//! The `neptune` command line: `local`, `driver`, `executor`, `certs`, `apps`,
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
    /// Make an app's credentials (a new CA, the member certificate every process presents, an
    /// admin token) in a directory, for `--tls-dir` or a Kubernetes Secret.
    Certs(CertsArgs),
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
    /// Length of each run (default 15s, or 8s with --quick).
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
    /// Give the stream job this latency target (ms) in every run, so every configuration
    /// reports its SLO attainment, and add `neptune-slo` (neptune with `scheduler.slo_aware`)
    /// and `neptune-slo-hold` (the same holding cores only, `scheduler.slo_lead_us=0`).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub slo_target_ms: Option<u64>,
    /// Where the stream job reads: `generator` (its own records) or `kafka` (records the bench
    /// produces into a topic at `stream.rate`, stamped with their produce time; the table then
    /// adds source → commit latency).
    #[arg(long, value_enum, default_value_t = crate::apps::Source::Generator, conflicts_with = "simulate")]
    pub source: crate::apps::Source,
    /// The Kafka brokers of `--source kafka` (HOST:PORT); default: tansu, started on a loopback
    /// port (`$NEPTUNE_TANSU`, `.tools/bin/tansu` or `tansu` on the PATH).
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka_bootstrap: Option<String>,
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
    /// Number of executors (`driver`: 2 by default; `local`: chosen from the CPU count unless
    /// given).
    #[arg(long, env = "NEPTUNE_EXECUTORS", value_parser = parse_executors)]
    pub executors: Option<u32>,
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
    /// Task slots per executor. Without `--executors` and `--cores`, `local` picks a shape with
    /// no more busy task workers than the machine has CPUs (and says which).
    #[arg(long, env = "NEPTUNE_CORES", value_parser = parse_cores)]
    pub cores: Option<u32>,
    /// Memory budget per executor (a quantity: 512Mi, 2Gi, or bytes).
    #[arg(long, env = "NEPTUNE_MEMORY", default_value = "1Gi", value_parser = parse_memory)]
    pub memory: u64,
    /// Driver HTTP address (`/status`, `/metrics`); port 0 picks a free port.
    #[arg(long, env = "NEPTUNE_HTTP", default_value = "127.0.0.1:4040")]
    pub http: SocketAddr,
    /// No live progress; only the final summary.
    #[arg(long)]
    pub quiet: bool,
    /// Run the cluster without TLS (no authentication, no encryption): for debugging and for
    /// measuring what TLS costs. By default `local` makes throwaway credentials itself.
    #[arg(long, env = "NEPTUNE_INSECURE")]
    pub insecure: bool,
}

/// `--tls-dir` / `--insecure`, shared by `driver` and `executor`.
#[derive(Debug, Args, Clone)]
pub struct TransportArgs {
    /// Directory with the app's credentials: `ca.crt`, `tls.crt`, `tls.key` and optionally
    /// `token` (made by `neptune certs`, or a mounted Kubernetes Secret). Required unless
    /// --insecure.
    #[arg(long, env = "NEPTUNE_TLS_DIR", value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Run without TLS: cluster traffic is neither authenticated nor encrypted, so any process
    /// that reaches the ports can join the app. Debugging only; logged as a warning and exported
    /// as `neptune_transport_tls_enabled 0`.
    #[arg(long, env = "NEPTUNE_INSECURE", conflicts_with = "tls_dir")]
    pub insecure: bool,
}

/// `neptune driver`.
#[derive(Debug, Args)]
pub struct DriverArgs {
    /// App, policy, config.
    #[command(flatten)]
    pub app: AppArgs,
    /// gRPC address executors connect to (`IP:PORT`, loopback by default: listening on other
    /// interfaces is a choice to make explicitly, e.g. `$(POD_IP):7077` in a pod; a bare IPv6
    /// address as `$(POD_IP)` expands to is accepted too).
    #[arg(long, env = "NEPTUNE_LISTEN", default_value = "127.0.0.1:7077", value_parser = parse_bind_addr)]
    pub listen: SocketAddr,
    /// HTTP address for /metrics, /healthz, /readyz, /status.
    #[arg(long, env = "NEPTUNE_HTTP", default_value = "127.0.0.1:4040", value_parser = parse_bind_addr)]
    pub http: SocketAddr,
    /// Credentials or --insecure.
    #[command(flatten)]
    pub transport: TransportArgs,
}

/// `neptune executor`.
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// Driver gRPC URL, e.g. https://127.0.0.1:7077 (http:// only with --insecure).
    #[arg(long, env = "NEPTUNE_DRIVER_URL")]
    pub driver: String,
    /// Task slots.
    #[arg(long, env = "NEPTUNE_CORES", value_parser = parse_cores)]
    pub cores: u32,
    /// Memory budget (a quantity: 512Mi, 2Gi, or bytes).
    #[arg(long, env = "NEPTUNE_MEMORY", value_parser = parse_memory)]
    pub memory: u64,
    /// HTTP address for /metrics, /healthz, /readyz.
    #[arg(long, env = "NEPTUNE_HTTP", default_value = "127.0.0.1:4041", value_parser = parse_bind_addr)]
    pub http: SocketAddr,
    /// Address of the block server other executors fetch shuffle blocks from (port 0: any free
    /// port). The executor advertises the address it bound (an unspecified IP is replaced by the
    /// one the driver sees it connect from).
    #[arg(long, env = "NEPTUNE_BLOCK_LISTEN", default_value = "127.0.0.1:7078", value_parser = parse_bind_addr)]
    pub block_listen: SocketAddr,
    /// Executor id (default: assigned by the driver): 1-253 of A-Z a-z 0-9 . _ -
    #[arg(long, env = "NEPTUNE_EXECUTOR_ID", value_parser = parse_executor_id)]
    pub id: Option<String>,
    /// How long to keep trying to reach the driver at start.
    #[arg(long, env = "NEPTUNE_CONNECT_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Credentials or --insecure.
    #[command(flatten)]
    pub transport: TransportArgs,
}

/// `neptune certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write `ca.crt`, `tls.crt`, `tls.key` (0600) and `token` (0600) into
    /// (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// App name, written into the certificates' subjects.
    #[arg(long, default_value = "neptune")]
    pub app: String,
    /// Extra DNS name or IP address for the member certificate (repeatable), e.g. the driver's
    /// Service name for tools like grpcurl; Neptune's own processes do not need any.
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// Validity in days.
    #[arg(long, default_value_t = neptune_net::issue::DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub days: u32,
    /// Replace credentials already in the directory.
    #[arg(long)]
    pub force: bool,
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

/// `IP:PORT`, also with a bare IPv6 address (`fd00::5:7077`): the operator passes
/// `$(POD_IP):PORT`, and Kubernetes expands `$(POD_IP)` without brackets.
fn parse_bind_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let bad = || format!("`{s}` is not IP:PORT (e.g. 10.0.0.5:7077, [fd00::5]:7077)");
    let (ip, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad())?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    Ok(SocketAddr::from((ip, port)))
}

fn parse_executor_id(s: &str) -> Result<String, String> {
    neptune_core::ids::check_executor_id(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

// Flags that are settings parse through their descriptors in `neptune_config::keys`, so a flag,
// its `--set` key and its CRD field share one range and one message.

/// A setting's default as a flag value.
pub fn default_u32(s: &UInt) -> u32 {
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
    fn bind_addresses_take_the_pod_ip_in_either_family() {
        assert_eq!(
            parse_bind_addr("10.1.2.3:7077").unwrap(),
            "10.1.2.3:7077".parse().unwrap()
        );
        assert_eq!(
            parse_bind_addr("fd00::5:7077").unwrap(),
            "[fd00::5]:7077".parse().unwrap()
        );
        assert_eq!(
            parse_bind_addr("[fd00::5]:4040").unwrap(),
            "[fd00::5]:4040".parse().unwrap()
        );
        for bad in ["$(POD_IP):7077", "10.1.2.3", "host:7077", "fd00::5:99999"] {
            assert!(parse_bind_addr(bad).is_err(), "{bad}");
        }
        let e = Cli::try_parse_from(["neptune", "driver", "--app", "x", "--listen", "pod:1"])
            .unwrap_err();
        assert!(e.to_string().contains("--listen"), "{e}");
    }

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
        let e = Cli::try_parse_from([
            "neptune",
            "executor",
            "--driver",
            "http://x",
            "--cores",
            "1",
            "--memory",
            "1Gi",
            "--id",
            "../../etc",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("--id"), "{e}");
    }

    #[test]
    fn servers_default_to_loopback_and_tls_flags_exclude_each_other() {
        let c = Cli::try_parse_from(["neptune", "driver", "--app", "x"]).unwrap();
        let Command::Driver(d) = c.command else {
            panic!("driver")
        };
        assert!(d.listen.ip().is_loopback() && d.http.ip().is_loopback());
        let c = Cli::try_parse_from([
            "neptune",
            "executor",
            "--driver",
            "https://x:1",
            "--cores",
            "1",
            "--memory",
            "1Gi",
        ])
        .unwrap();
        let Command::Executor(e) = c.command else {
            panic!("executor")
        };
        assert!(e.http.ip().is_loopback() && e.block_listen.ip().is_loopback());
        assert_eq!(e.block_listen.port(), 7078);
        let e = Cli::try_parse_from([
            "neptune",
            "driver",
            "--app",
            "x",
            "--tls-dir",
            "/d",
            "--insecure",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("--insecure"), "{e}");
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
        assert_eq!(d.app.executors, Some(2));
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
