//! Neptune core: the app model (jobs, datasets, sources, sinks, shared state), plans, ids and the
//! task context whose yield points make tasks suspendable.
//!
//! This crate is runtime-agnostic: it knows nothing about `may`, tokio or gRPC. The executor plugs
//! its coroutine runtime in through [`task::YieldHook`].

pub mod ids;
pub mod metric_names;
pub mod state;
pub mod task;
