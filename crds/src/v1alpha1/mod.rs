//! `neptune.dev/v1alpha1`: the first, unstable version of the `StreamBatchApp` API.

mod spec;
mod status;

pub use spec::*;
pub use status::*;
