//! Reconcile errors: one variant per failing operation, each with a stable category used for the
//! `neptune_operator_reconcile_errors_total{category}` metric and the retry delay.

use std::time::Duration;

/// A reconcile step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Listing the app's pods failed.
    #[error("listing pods: {0}")]
    ListPods(#[source] kube::Error),
    /// Server-side apply of a child (pod or Service) failed.
    #[error("applying {kind} {name}: {source}")]
    ApplyChild {
        /// Kind of the child.
        kind: &'static str,
        /// Name of the child.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Patching a pod's labels and annotations failed.
    #[error("patching the metadata of pod {name}: {source}")]
    PatchPod {
        /// Pod name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Deleting a pod failed.
    #[error("deleting pod {name}: {source}")]
    DeletePod {
        /// Pod name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Deleting the app after its TTL failed.
    #[error("deleting the app after its TTL: {0}")]
    DeleteApp(#[source] kube::Error),
    /// Writing the status subresource failed.
    #[error("patching status: {0}")]
    PatchStatus(#[source] kube::Error),
    /// Serializing an object failed (a bug).
    #[error("serializing: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The running driver did not take a live scheduling change.
    #[error("changing the running driver's scheduling: {0}")]
    Scheduling(String),
    /// Making the app's credentials (a CA and member certificate) failed.
    #[error("making the app's credentials: {0}")]
    Credentials(String),
    /// The object has no namespace or name (cluster-scoped copy or a bug).
    #[error("the object has no {0}")]
    MissingMetadata(&'static str),
}

impl Error {
    /// Stable label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::ListPods(_) => "list",
            Self::ApplyChild { source, .. }
            | Self::DeletePod { source, .. }
            | Self::PatchPod { source, .. } => api_category(source, "apply"),
            Self::DeleteApp(_) => "delete",
            Self::PatchStatus(source) => api_category(source, "status"),
            Self::Serialize(_) => "bug",
            Self::Credentials(_) => "credentials",
            Self::Scheduling(_) => "driver",
            Self::MissingMetadata(_) => "bug",
        }
    }

    /// The Warning Event reason when a change to a child failed (`FailedCreate`, as a
    /// ReplicaSet reports it), `None` for errors that are not about a child.
    pub fn event_reason(&self) -> Option<&'static str> {
        match self {
            Self::ApplyChild { .. } | Self::Credentials(_) => Some("FailedCreate"),
            Self::PatchPod { .. } => Some("FailedUpdate"),
            Self::DeletePod { .. } => Some("FailedDelete"),
            Self::DeleteApp(_) => Some("FailedDelete"),
            Self::Scheduling(_) => Some("FailedSchedulingChange"),
            _ => None,
        }
    }

    /// How long to wait before retrying.
    pub fn retry_after(&self) -> Duration {
        match self.category() {
            "conflict" => Duration::from_secs(1),
            "forbidden" | "invalid" => Duration::from_secs(60),
            "bug" => Duration::from_secs(300),
            _ => Duration::from_secs(5),
        }
    }
}

/// Every value [`Error::category`] can return: the metrics start each at 0, so dashboards and
/// the `NeptuneOperatorReconcileErrors` alert have a series (rate 0) before any error happens.
pub const CATEGORIES: &[&str] = &[
    "list",
    "apply",
    "delete",
    "status",
    "bug",
    "credentials",
    "driver",
    "conflict",
    "forbidden",
    "invalid",
    "server",
];

fn api_category(e: &kube::Error, default: &'static str) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 409 => "conflict",
        kube::Error::Api(s) if s.code == 403 => "forbidden",
        kube::Error::Api(s) if s.code == 422 => "invalid",
        kube::Error::Api(s) if s.code >= 500 => "server",
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        let status: kube::core::Status =
            serde_json::from_value(serde_json::json!({"code": code, "message": "m"})).unwrap();
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn every_category_is_listed_for_the_metrics() {
        let mut errors = vec![
            Error::Credentials("x".into()),
            Error::Scheduling("x".into()),
        ];
        for code in [400, 403, 409, 422, 500] {
            errors.push(Error::ListPods(api(code)));
            errors.push(Error::DeleteApp(api(code)));
            errors.push(Error::PatchStatus(api(code)));
            errors.push(Error::DeletePod {
                name: "p".into(),
                source: api(code),
            });
        }
        for e in &errors {
            assert!(
                CATEGORIES.contains(&e.category()),
                "{e}: {} is not in CATEGORIES",
                e.category()
            );
        }
    }
}
