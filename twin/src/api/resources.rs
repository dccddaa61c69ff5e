//! The resource table: which group/version/resource paths exist, their kinds, scope, short names,
//! subresources and (for CRD-defined kinds) schema and printer columns. Built-in kinds are listed
//! here; CustomResourceDefinitions add and remove entries at run time, as in a real apiserver.

use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::store::GroupResource;

/// Where the `scale` subresource reads and writes, as in a CRD's `subresources.scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// `.spec.replicas`.
    pub spec_replicas: String,
    /// `.status.replicas`.
    pub status_replicas: String,
    /// `.status.selector`, or `None` (built-ins derive it from `spec.selector`).
    pub label_selector: Option<String>,
}

/// A printer column (`additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean`, `date`.
    pub type_: String,
    /// Description.
    pub description: String,
    /// Simple JSONPath (`.status.phase`).
    pub json_path: String,
    /// 0 = always shown, >0 = only with `-o wide`.
    pub priority: i64,
}

/// One served resource at one version.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// API group (`""` = core).
    pub group: String,
    /// Version (`v1`, `v1alpha1`).
    pub version: String,
    /// Plural name.
    pub resource: String,
    /// Kind.
    pub kind: String,
    /// Singular name.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// `kubectl` short names.
    pub short_names: Vec<String>,
    /// Categories (`all`, `neptune`).
    pub categories: Vec<String>,
    /// Has a `status` subresource (main writes ignore status; status writes touch only it).
    pub status: bool,
    /// Has a `scale` subresource.
    pub scale: Option<ScalePaths>,
    /// Pods: the `log` subresource.
    pub log: bool,
    /// CRD: printer columns.
    pub columns: Vec<Column>,
    /// CRD: the version's `openAPIV3Schema`.
    pub schema: Option<Value>,
    /// Where its objects live (events.k8s.io/v1 events are stored as core v1 events).
    pub storage: GroupResource,
    /// Defined by a CustomResourceDefinition.
    pub custom: bool,
}

impl ResourceInfo {
    /// `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `Kind.group` as error messages name it (`StreamBatchApp.neptune.dev`).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// `resource.group` as NotFound messages name it (`streambatchapps.neptune.dev`).
    pub fn qualified_resource(&self) -> String {
        GroupResource::new(&self.group, &self.resource).to_string()
    }

    /// Verbs for discovery.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

/// A built-in: (group, version, resource, kind, namespaced, short names, subresources), where
/// subresources are `s` status, `c` scale, `l` log.
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static str,
);

/// The built-in kinds.
const BUILTINS: &[Builtin] = &[
    ("", "v1", "namespaces", "Namespace", false, &["ns"], "s"),
    ("", "v1", "pods", "Pod", true, &["po"], "sl"),
    ("", "v1", "services", "Service", true, &["svc"], "s"),
    ("", "v1", "endpoints", "Endpoints", true, &["ep"], ""),
    ("", "v1", "events", "Event", true, &["ev"], ""),
    ("", "v1", "configmaps", "ConfigMap", true, &["cm"], ""),
    ("", "v1", "secrets", "Secret", true, &[], ""),
    (
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
        "",
    ),
    ("", "v1", "nodes", "Node", false, &["no"], "s"),
    (
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        "s",
    ),
    (
        "",
        "v1",
        "resourcequotas",
        "ResourceQuota",
        true,
        &["quota"],
        "s",
    ),
    ("", "v1", "limitranges", "LimitRange", true, &["limits"], ""),
    (
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        "sc",
    ),
    (
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        "sc",
    ),
    (
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        &["sts"],
        "sc",
    ),
    ("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], "s"),
    ("batch", "v1", "jobs", "Job", true, &[], "s"),
    (
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        &[],
        "",
    ),
    ("events.k8s.io", "v1", "events", "Event", true, &["ev"], ""),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
        "",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
        "",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
        "",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
        "",
    ),
    (
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
        "",
    ),
    (
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
        "s",
    ),
    (
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        &[],
        "",
    ),
    (
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        "s",
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        "s",
    ),
];

fn builtin(entry: &Builtin) -> ResourceInfo {
    let (group, version, resource, kind, namespaced, short, subs) = *entry;
    let storage = if group == "events.k8s.io" {
        GroupResource::new("", "events")
    } else {
        GroupResource::new(group, resource)
    };
    let categories = match resource {
        "pods" | "services" | "deployments" | "replicasets" | "statefulsets" | "daemonsets"
        | "jobs" => vec!["all".to_string()],
        _ => Vec::new(),
    };
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        resource: resource.into(),
        kind: kind.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories,
        status: subs.contains('s'),
        scale: subs.contains('c').then(|| ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: None,
        }),
        log: subs.contains('l'),
        columns: Vec::new(),
        schema: None,
        storage,
        custom: false,
    }
}

/// The live resource table (cheap to clone; clones share it).
#[derive(Debug, Clone)]
pub struct Resources {
    entries: Arc<RwLock<Vec<Arc<ResourceInfo>>>>,
}

impl Default for Resources {
    fn default() -> Self {
        let entries = BUILTINS.iter().map(|e| Arc::new(builtin(e))).collect();
        Self {
            entries: Arc::new(RwLock::new(entries)),
        }
    }
}

impl Resources {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<ResourceInfo>>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The resource served at `group/version/resource`.
    pub fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceInfo>> {
        self.read()
            .iter()
            .find(|r| r.group == group && r.version == version && r.resource == resource)
            .cloned()
    }

    /// The resource of a kind at an apiVersion (`neptune.dev/v1alpha1`, `StreamBatchApp`).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.read()
            .iter()
            .find(|r| r.api_version() == api_version && r.kind == kind)
            .cloned()
    }

    /// Every served resource, built-ins first, in registration order.
    pub fn all(&self) -> Vec<Arc<ResourceInfo>> {
        self.read().clone()
    }

    /// Every resource stored as `storage` (the versions and groups serving it).
    pub fn serving(&self, storage: &GroupResource) -> Vec<Arc<ResourceInfo>> {
        self.read()
            .iter()
            .filter(|r| &r.storage == storage)
            .cloned()
            .collect()
    }

    /// Replaces the entries of a custom group/resource (all its versions) with `infos`.
    pub fn set_custom(&self, storage: &GroupResource, infos: Vec<ResourceInfo>) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.retain(|r| !(r.custom && &r.storage == storage));
        entries.extend(infos.into_iter().map(Arc::new));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_resolve_by_path_and_kind_and_events_share_storage() {
        let r = Resources::default();
        let pods = r.lookup("", "v1", "pods").unwrap();
        assert!(pods.namespaced && pods.status && pods.log);
        assert_eq!(
            r.by_kind("apps/v1", "Deployment").unwrap().resource,
            "deployments"
        );
        let events = r.serving(&GroupResource::new("", "events"));
        assert_eq!(events.len(), 2);
        assert!(
            r.lookup("neptune.dev", "v1alpha1", "streambatchapps")
                .is_none()
        );
    }
}
