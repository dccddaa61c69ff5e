//! `neptune-twin`: starts a cluster twin (API server) and prints its kubeconfig path, for manual
//! use (`kubectl --kubeconfig PATH get pods`) and for scenarios started from scripts.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use neptune_twin::{Twin, TwinConfig};
use tracing_subscriber::EnvFilter;

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "neptune-twin",
    version,
    about = "An in-process Kubernetes API server for tests"
)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory for the kubeconfig, service-account files and logs (default: a temporary one,
    /// removed on exit).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the kubeconfig's path to this file (for scripts waiting on it).
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let twin = Twin::start(TwinConfig {
        addr: args.listen,
        dir: args.dir,
        ..Default::default()
    })
    .await?;
    let path = twin.kubeconfig().display().to_string();
    if let Some(out) = &args.kubeconfig_out {
        std::fs::write(out, format!("{path}\n"))?;
    }
    println!("{path}");
    tracing::info!(url = %twin.url(), kubeconfig = %path, "cluster twin serving; Ctrl-C stops it");
    tokio::signal::ctrl_c().await?;
    twin.stop();
    Ok(())
}
