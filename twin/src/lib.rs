//! The cluster twin: an in-process stand-in for the Kubernetes API server (and, in `kubelet`,
//! for kubelets), started by tests so the real `neptune-operator`, `kubectl` and `helm` run end
//! to end on one machine without Docker or a kube-apiserver.
//!
//! [`store`] keeps objects as JSON with a global resourceVersion and a watch history; [`api`]
//! serves them over HTTPS with the Kubernetes REST conventions (discovery, CRUD, watch, patches,
//! server-side apply, CRDs with schema and CEL validation, tables, scale, garbage collection);
//! [`kubelet`] registers nodes and runs the pods bound to them as processes.

pub mod api;
pub mod kubelet;
pub mod store;

pub use api::{Twin, TwinConfig};
