//! Neptune's end-to-end scenarios, one list for two cluster back ends: the cluster twin
//! (`neptune-twin`'s API server and kubelet in this process, the real operator, kubectl and
//! `neptune` processes; `make twin`) and kind (an existing cluster; `e2e/run.sh`).
//!
//! Scenarios use only kubectl, the cluster's API and HTTP to pods ([`cluster::Cluster`] is the
//! little they need beyond that: installing the operator, reaching a pod's port, killing a
//! container, losing a node), so a scenario that passes on the twin exercises the same path a
//! user takes on a real cluster.

pub mod app;
pub mod cluster;
pub mod error;
pub mod http;
pub mod kind;
pub mod kubectl;
pub mod prometheus;
pub mod report;
pub mod scenarios;
pub mod twin;
pub mod wait;
