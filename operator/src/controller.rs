//! Wiring: the kube-runtime `Controller`s (one per watched namespace, or one for all) owning Pods
//! and Services, leader election, the metrics/probe server, and shutdown on SIGTERM/Ctrl-C.
//!
//! Readiness does not wait for leadership: a replica is Ready once it serves HTTP and has
//! reached the API (it can take over the moment the lease is free), so a RollingUpdate with
//! `maxUnavailable: 0` (and `helm upgrade --wait`) sees the new pod Ready while the old one still
//! leads. Who leads is the `neptune_operator_leader` gauge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Client;
use kube::api::Api;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;
use kube::runtime::{Controller, watcher};
use kube_lease_manager::LeaseManagerBuilder;
use neptune_crds::{StreamBatchApp, labels};

use crate::config::Config;
use crate::context::Context;
use crate::driver_status::HttpDriverStatus;
use crate::metrics::Metrics;
use crate::reconcile::{error_policy, reconcile};
use crate::server;

/// Why the operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No kubeconfig or in-cluster configuration.
    #[error("connecting to Kubernetes: {0}")]
    Client(#[source] kube::Error),
    /// The metrics/probe server could not bind.
    #[error("serving HTTP on {addr}: {source}")]
    Http {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(#[source] kube_lease_manager::LeaseManagerError),
    /// Leadership was lost; exit so a fresh process competes again.
    #[error("lost leadership")]
    LostLeadership,
}

/// A future that resolves on SIGTERM or Ctrl-C, cloneable for every loop.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// Resolves on the first SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> Shutdown {
    async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
    }
    .boxed()
    .shared()
}

/// Runs the operator until shutdown.
///
/// # Errors
/// [`RunError`] when it cannot connect, bind its HTTP port, or keep leadership.
pub async fn run(config: Config) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Client)?;
    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(|source| RunError::Http {
            addr: config.http,
            source,
        })?;
    run_with(config, client, listener, shutdown_signal()).await
}

/// Runs the operator with a given client and HTTP listener until `shutdown` resolves.
///
/// # Errors
/// [`RunError`] when leader election fails or leadership is lost.
pub async fn run_with(
    config: Config,
    client: Client,
    listener: tokio::net::TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(server::serve(
        listener,
        metrics.clone(),
        ready.clone(),
        shutdown.clone(),
    ));

    let leader_lost = match &config.leader {
        None => {
            metrics.leader.set(1);
            futures::future::pending().boxed()
        }
        Some(l) => {
            let manager = LeaseManagerBuilder::new(client.clone(), &l.lease_name)
                .with_namespace(&l.namespace)
                .with_identity(&config.identity)
                .with_duration(l.duration_seconds)
                .with_grace((l.duration_seconds / 3).max(2))
                .build()
                .await
                .map_err(RunError::Lease)?;
            // The API answered: this replica can take over whenever the lease is free.
            ready.store(true, Ordering::SeqCst);
            metrics.leader.set(0);
            let (mut rx, _task) = manager.watch().await;
            tracing::info!(lease = %l.lease_name, "ready; waiting for leadership");
            tokio::select! {
                // Only a bool leaves the branch: the watch guard is not Send.
                won = rx.wait_for(|leader| *leader).map(|r| r.is_ok()) => {
                    if !won {
                        return Err(RunError::LostLeadership);
                    }
                }
                _ = shutdown.clone() => {
                    ready.store(false, Ordering::SeqCst);
                    let _ = server.await;
                    return Ok(());
                }
            }
            metrics.leader.set(1);
            tracing::info!("acquired leadership");
            async move {
                let _ = rx.wait_for(|leader| !*leader).await;
            }
            .boxed()
        }
    };

    let reporter = Reporter {
        controller: "neptune-operator".into(),
        instance: Some(config.identity.clone()),
    };
    let mut ctx = Context::new(
        client.clone(),
        reporter,
        metrics.clone(),
        Arc::new(HttpDriverStatus::default()),
    );
    ctx.settings = config.settings;
    let ctx = Arc::new(ctx);
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let mut stores = Vec::new();
    let mut loops = Vec::new();
    for ns in scopes {
        let (controller, store) = controller_for(&client, ns.as_deref(), shutdown.clone());
        stores.push(store);
        let ctx = ctx.clone();
        let metrics = metrics.clone();
        loops.push(
            controller
                .run(reconcile, error_policy, ctx)
                .for_each(move |r| {
                    on_result(&r, &metrics);
                    futures::future::ready(())
                })
                .boxed(),
        );
    }
    ready.store(true, Ordering::SeqCst);
    tracing::info!(namespaces = ?config.namespaces, "reconciling StreamBatchApps");
    let gauges = phase_gauges(stores, metrics.clone(), shutdown.clone());
    let outcome = tokio::select! {
        _ = futures::future::join_all(loops) => Ok(()),
        _ = leader_lost => Err(RunError::LostLeadership),
        _ = gauges => Ok(()),
    };
    ready.store(false, Ordering::SeqCst);
    metrics.leader.set(0);
    let _ = server.await;
    outcome
}

/// What one controller result means for users: a watch that fails (RBAC, a CRD missing, the API
/// away) leaves every app unreconciled, so it is a warning and a metric; failed reconciles are
/// logged by `error_policy` and counted by category; an object gone meanwhile is normal.
pub fn on_result<T>(
    result: &Result<T, kube::runtime::controller::Error<crate::error::Error, watcher::Error>>,
    metrics: &Metrics,
) {
    use kube::runtime::controller::Error as E;
    match result {
        Ok(_) | Err(E::ReconcilerFailed(..)) => {}
        Err(E::QueueError(e)) => {
            metrics.watch_errors.inc();
            tracing::warn!("watching the API failed (retrying with backoff): {e}");
        }
        Err(E::ObjectNotFound(o)) => tracing::debug!("{o} is gone"),
        Err(e @ E::RunnerError(_)) => tracing::warn!("controller: {e}"),
    }
}

fn controller_for(
    client: &Client,
    namespace: Option<&str>,
    shutdown: Shutdown,
) -> (Controller<StreamBatchApp>, Store<StreamBatchApp>) {
    let children = watcher::Config::default().labels(&format!(
        "{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE
    ));
    let (apps, pods, services): (Api<StreamBatchApp>, Api<Pod>, Api<Service>) = match namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let controller = Controller::new(apps, watcher::Config::default().any_semantic())
        .owns(pods, children.clone())
        .owns(services, children)
        .graceful_shutdown_on(shutdown);
    let store = controller.store();
    (controller, store)
}

/// Refreshes `neptune_operator_apps{phase}` from the controllers' caches every 10 seconds.
async fn phase_gauges(stores: Vec<Store<StreamBatchApp>>, metrics: Metrics, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.clone() => return,
        }
        let phases: Vec<_> = stores
            .iter()
            .flat_map(|s| s.state())
            .map(|app| app.status.as_ref().and_then(|s| s.phase))
            .collect();
        metrics.set_phases(phases);
    }
}
