//! The `neptune` binary and library end to end: multi-process local clusters, the CLI, the bench, the metrics and the transport's security.
//!
//! One test binary for the crate's integration tests (one module per area, below): the crate
//! and its dependencies are linked once instead of once per file, which is most of what
//! compiling the tests cost (docs/development.md). nextest still runs every test in its own
//! process; select an area with `cargo nextest run -p neptune --test integration AREA::`.

#[path = "../common/mod.rs"]
mod common;

mod bench;
mod cli;
mod driver_rss;
mod failure_semantics;
mod input_snapshot;
mod kafka;
mod latency_breakdown;
mod malformed;
mod metrics;
mod operator_contract;
mod prometheus;
mod recovery;
mod rogue;
mod scheduling;
mod shared_state;
mod shuffle;
mod slo;
mod socket_source;
mod startup;
mod transport;
mod watched_dir;
