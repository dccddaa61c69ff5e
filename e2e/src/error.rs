//! Why a scenario or a cluster back end failed; each message names what was expected and
//! what was last seen, so a failing CI run says what went wrong without a rerun.

use thiserror::Error;

/// An end-to-end failure.
#[derive(Debug, Error)]
pub enum E2eError {
    /// kubectl exited non-zero.
    #[error("kubectl {args}: {stderr}")]
    Kubectl { args: String, stderr: String },
    /// Output that does not parse.
    #[error("unexpected output: {0}")]
    Parse(String),
    /// A condition not reached in time.
    #[error("timed out after {secs} s waiting for {what}; last seen: {last}")]
    Timeout {
        what: String,
        secs: u64,
        last: String,
    },
    /// An assertion about the cluster that does not hold.
    #[error("{0}")]
    Failed(String),
    /// HTTP to a pod.
    #[error("GET {url}: {message}")]
    Http { url: String, message: String },
    /// Setting up or driving a cluster back end.
    #[error("cluster: {0}")]
    Cluster(String),
}
