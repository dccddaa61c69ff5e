//! The cluster twin: its API server, kubelet, kubectl and helm compatibility, watch semantics and the operator on it.
//!
//! One test binary for the crate's integration tests (one module per area, below): the crate
//! and its dependencies are linked once instead of once per file, which is most of what
//! compiling the tests cost (docs/development.md). nextest still runs every test in its own
//! process; select an area with `cargo nextest run -p neptune-twin --test integration AREA::`.

#[path = "../common/mod.rs"]
mod common;
#[path = "../kubelet_common/mod.rs"]
mod kubelet_common;

mod helm;
mod kubectl;
mod kubelet_nodes;
mod kubelet_pods;
mod operator;
mod semantics;
mod validation;
mod watch;
