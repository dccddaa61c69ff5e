//! `neptune-operator`: reconciles `StreamBatchApp` (neptune.dev/v1alpha1) into a driver pod, a
//! driver Service and executor pods, and reports status, events and metrics.
//!
//! Reconcile = fetch ([`reconcile`]) → validate ([`validate`], sync) → build ([`build`], pure)
//! and decide ([`lifecycle`], pure) → apply (server-side apply with field manager
//! `neptune-operator`). The operator knows nothing about tasks; it reads the driver's `/status`
//! only to show stream latency in the app's status.

pub mod build;
pub mod conditions;
pub mod config;
pub mod context;
pub mod controller;
pub mod driver_status;
pub mod error;
pub mod lifecycle;
pub mod metrics;
pub mod pods;
pub mod reconcile;
pub mod server;
pub mod template;
pub mod validate;

pub use config::{Args, Config, Settings};
pub use controller::run;
