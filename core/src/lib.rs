//! Neptune core: the app model (jobs, datasets, sources, sinks, shared state), plans, ids and the
//! task context whose yield points make tasks suspendable.
//!
//! This crate is runtime-agnostic: it knows nothing about `may`, tokio or gRPC. The executor plugs
//! its coroutine runtime in through [`task::YieldHook`].

pub mod action;
/// Settings and the `--set` store (the `neptune-config` crate).
pub use neptune_config as config;
pub mod app;
pub mod dataset;
pub mod error;
pub mod event_time;
pub mod ids;
pub mod kafka;
pub mod metric_names;
pub mod pair;
pub mod plan;
pub mod shuffle;
pub mod source;
pub mod source_snapshot;
pub mod source_socket;
pub mod source_watch;
pub mod state;
pub mod task;

pub use action::Action;
pub use app::{App, AppEntry, CommitCtx, JobDef, State};
pub use config::Config;
pub use dataset::Dataset;
pub use error::{BoxError, Error, Result};
pub use event_time::EventTimes;
pub use ids::{JobKind, TaskId};
pub use task::TaskContext;
