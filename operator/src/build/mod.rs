//! Pure builders of the children of a `StreamBatchApp`: labels, the driver Service, the
//! credentials Secret, the NetworkPolicy, the driver pod and executor pods. No I/O; every function is a function of the app (and validated sizes).

mod driver;
mod executor;
mod labels;
mod network_policy;
mod pod;
mod secret;
mod service;

pub use driver::{desired_scheduling, driver_args, driver_pod, driver_pod_name};
pub use executor::{executor_index, executor_pod, executor_pod_name};
pub use labels::{
    app_labels, child_labels, executor_selector, owner_reference, role_selector, spec_hash_of,
};
pub use network_policy::{network_policy, network_policy_name};
pub use pod::{OPERATOR_ENV, TMP_MOUNT, TMP_VOLUME, recorded_user_metadata};
pub use secret::{TLS_FILE_MODE, TLS_MOUNT, TLS_VOLUME, tls_secret, tls_secret_name};
pub use service::{driver_service, driver_service_name, driver_url};

/// Role of a child pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The driver pod.
    Driver,
    /// An executor pod.
    Executor,
}

impl Role {
    /// Value of the `neptune.dev/role` label, and the name of the pod's main container.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Driver => "driver",
            Self::Executor => "executor",
        }
    }
}

/// Default binary in the image.
pub const DEFAULT_BINARY: &str = "/usr/local/bin/neptune";
/// UID/GID the pods run as (matches the image's non-root user).
pub const RUN_AS_USER: i64 = 65532;
