//! Neptune executor: runs a share of an app's tasks on `cores` slots, each task a stackful `may`
//! coroutine that can be suspended, resumed and killed at its yield points ([`runtime`]); holds the
//! session with the driver ([`service`]: connect, register, session loop, tasks, updates); keeps
//! shuffle blocks ([`blocks`]); runs the stream receivers the driver pins here ([`receivers`]);
//! serves metrics and health ([`http`]).

pub mod blocks;
pub mod http;
mod lifecycle;
pub mod memory;
pub mod metrics;
pub mod receivers;
mod register;
pub mod runtime;
pub mod service;
mod session;
mod tasks;
mod updates;

pub use service::{ExecutorConfig, ExecutorError, run_executor};
