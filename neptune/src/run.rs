//! Entry points: [`main_with`] parses the CLI and runs the chosen role with an app registry. The
//! default `neptune` binary passes the built-in apps; a user's own binary passes its own.

use crate::cli::{AppArgs, CertsArgs, Cli, Command, DriverArgs, ExecutorArgs, TransportArgs};
use anyhow::Context as _;
use clap::Parser;
use neptune_core::app::{App, AppEntry, build_app};
use neptune_core::config::Config;
use neptune_driver::{Driver, DriverConfig};
use neptune_net::{Limits, Security};
use std::net::SocketAddr;
use std::sync::Arc;

/// Parse the command line, run, and exit the process with the right code.
pub fn main_with(apps: &'static [AppEntry]) -> ! {
    let cli = Cli::parse();
    let code = match run(cli, apps) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    };
    std::process::exit(code)
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: pod logs and files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // Few threads: network I/O only; tasks run on the executor's `may` workers.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

fn run(cli: Cli, apps: &'static [AppEntry]) -> anyhow::Result<i32> {
    match cli.command {
        Command::Apps => {
            for a in apps {
                println!("{:<20} {}", a.name, a.description);
            }
            Ok(0)
        }
        Command::Config(args) => {
            print!(
                "{}",
                crate::reference::render(apps, args.app.as_deref(), &args.set, args.markdown)?
            );
            Ok(0)
        }
        Command::Bench(args) => crate::bench::run(&args),
        Command::Certs(args) => certs(&args),
        Command::Local(args) => {
            init_tracing("warn");
            let limits = process_limits();
            tokio_runtime()?.block_on(crate::local::run_local(args, apps, limits))
        }
        Command::Driver(args) => {
            init_tracing("info");
            let limits = process_limits();
            tokio_runtime()?.block_on(run_driver(args, apps, limits))
        }
        Command::Executor(args) => {
            init_tracing("info");
            let limits = process_limits();
            tokio_runtime()?.block_on(run_executor(args, apps, limits))
        }
    }
}

/// Raise the open-file limit and fit the servers' connection caps to it.
fn process_limits() -> Limits {
    Limits::for_fds(neptune_net::limits::raise_fd_limit())
}

/// Mutual TLS from `--tls-dir`, or `--insecure`; refuses to start with neither.
fn security(t: &TransportArgs, addrs: &[SocketAddr]) -> anyhow::Result<Security> {
    Ok(Security::from_flags(
        t.tls_dir.as_deref(),
        t.insecure,
        addrs,
    )?)
}

fn certs(args: &CertsArgs) -> anyhow::Result<i32> {
    let issued = neptune_net::issue::issue(&args.app, &args.sans, args.days)?;
    let written = issued.write_dir(&args.out, args.force)?;
    for p in &written {
        println!("wrote {}", p.display());
    }
    println!(
        "use them with `neptune driver|executor --tls-dir {dir}`, or as a Kubernetes Secret:\n  \
         kubectl create secret generic <app>-tls --from-file={dir}",
        dir = args.out.display()
    );
    Ok(0)
}

/// Build the app and the driver config from flags; error if any `--set` key is unknown.
///
/// # Errors
/// Naming the bad `--set` argument, config key or app.
pub fn prepare(
    args: &AppArgs,
    apps: &'static [AppEntry],
    listen: SocketAddr,
    http: SocketAddr,
) -> anyhow::Result<(Arc<App>, DriverConfig)> {
    let mut config = Config::from_args(&args.set)?;
    if !args.app_args.is_empty() {
        config.set(
            neptune_core::app::ARGS_KEY,
            &serde_json::to_string(&args.app_args)?,
        );
    }
    // `neptune local`'s supervision keys: checked (and so known) for every command.
    neptune_config::keys::LOCAL_MAX_RESTARTS.get(&config)?;
    neptune_config::keys::LOCAL_RESTART_WINDOW_MS.get(&config)?;
    let cfg = DriverConfig::new(
        args.app.clone(),
        listen,
        http,
        args.executors
            .unwrap_or_else(|| crate::cli::default_u32(&neptune_core::config::keys::EXECUTORS))
            as usize,
        args.policy,
        config.clone(),
    )?;
    let app = build_app(apps, &args.app, Arc::new(cfg.config.clone()))?;
    // The app's config is a copy of the driver's taken after the driver read its keys, so a key
    // nobody read is unknown to both.
    app.config().check_all_used()?;
    Ok((Arc::new(app), cfg))
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn run_driver(
    args: DriverArgs,
    apps: &'static [AppEntry],
    limits: Limits,
) -> anyhow::Result<i32> {
    let security = security(&args.transport, &[args.listen])?;
    let (app, cfg) = prepare(&args.app, apps, args.listen, args.http)?;
    let report = args.app.report.clone();
    let duration = args.app.duration;
    let mode = security.mode();
    let driver = Driver::bind(cfg, app, security, limits).await?;
    tracing::info!(grpc = %driver.grpc_addr(), http = %driver.http_addr(), transport = mode, "driver listening");
    let stop = async move {
        match duration {
            Some(d) => {
                tokio::select! { () = termination() => {}, () = tokio::time::sleep(d) => {} }
            }
            None => termination().await,
        }
    };
    match driver.run(stop).await {
        Ok((outcome, status)) => {
            if let Some(path) = report {
                let cores = status.executors.first().map_or(0, |e| e.cores);
                crate::local::write_report(&path, &status, status.executors.len(), cores)?;
            }
            tracing::info!(?outcome, "driver finished");
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}

async fn run_executor(
    args: ExecutorArgs,
    apps: &'static [AppEntry],
    limits: Limits,
) -> anyhow::Result<i32> {
    let security = security(&args.transport, &[args.block_listen])?;
    let cfg = neptune_executor::ExecutorConfig {
        driver_url: args.driver,
        cores: args.cores,
        memory: args.memory,
        http: args.http,
        id: args.id,
        connect_timeout: args.connect_timeout,
        block_listen: args.block_listen,
        security,
        limits,
    };
    match neptune_executor::run_executor(cfg, apps, termination()).await {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("error: executor: {e}");
            Ok(3)
        }
    }
}
