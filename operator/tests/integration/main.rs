//! The operator's planner, controller, templates and dashboards, against a fake API server and golden manifests.
//!
//! One test binary for the crate's integration tests (one module per area, below): the crate
//! and its dependencies are linked once instead of once per file, which is most of what
//! compiling the tests cost (docs/development.md). nextest still runs every test in its own
//! process; select an area with `cargo nextest run -p neptune-operator --test integration AREA::`.

#[path = "../apiserver/mod.rs"]
mod apiserver;
#[path = "../common/mod.rs"]
mod common;

mod controller;
mod dashboard;
mod golden;
mod leadership;
mod lifecycle;
mod new_app;
mod node_loss;
mod pod_templates;
mod retries;
mod spec_changes;
mod validation;
