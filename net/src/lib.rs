//! Neptune's cluster transport: how connections between an app's processes are made and kept.
//!
//! - [`creds`]: the app's credentials directory (`ca.crt`, `tls.crt`, `tls.key`, `token`) and
//!   [`issue`], which makes them (a per-app CA and the member certificate it signs).
//! - [`tls`]: rustls configurations for mutual TLS (server and client, gRPC and block fetches),
//!   and [`Security`], the choice between mutual TLS and `--insecure`.
//! - [`gate`], [`accept`]: listeners with a cap on concurrent connections (evicting the oldest
//!   idle or unauthenticated one when full), TCP keepalive and a TLS handshake timeout.
//! - [`http`]: the plain-HTTP servers (`/metrics`, probes, `/status`) with header and request
//!   timeouts; [`token`]: the bearer token guarding state-changing (admin) endpoints.
//! - [`limits`]: every timeout and cap with its default, and the process's file descriptor limit;
//!   [`metrics`]: connection counters and the process collector (`process_open_fds`).
//!
//! Message contents are not this crate's business: it hands authenticated byte streams to the
//! gRPC service and the block server and never looks inside.

pub mod accept;
pub mod creds;
pub mod gate;
pub mod http;
pub mod issue;
pub mod limits;
pub mod metrics;
pub mod tls;
pub mod token;

pub use creds::{Credentials, CredsError};
pub use limits::Limits;
pub use metrics::NetMetrics;
pub use tls::{Security, SecurityError, Tls};
pub use token::AdminToken;
