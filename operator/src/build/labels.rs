//! Labels, selectors, owner references and the spec hash shared by every child.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use neptune_crds::StreamBatchApp;
use neptune_crds::labels as l;

use super::Role;

/// Labels the operator puts on every child of `app` with `role` (user labels first, ours win).
pub fn child_labels(
    app: &StreamBatchApp,
    role: Role,
    user: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = user.clone();
    labels.extend(app_labels(app));
    labels.extend([
        (l::COMPONENT.to_string(), role.as_str().to_string()),
        (l::ROLE.to_string(), role.as_str().to_string()),
    ]);
    labels
}

/// Labels of a child that belongs to the whole app rather than one role (its credentials
/// Secret).
pub fn app_labels(app: &StreamBatchApp) -> BTreeMap<String, String> {
    let name = app.metadata.name.clone().unwrap_or_default();
    BTreeMap::from([
        (l::NAME.to_string(), "neptune".to_string()),
        (l::INSTANCE.to_string(), name.clone()),
        (l::MANAGED_BY.to_string(), l::MANAGED_BY_VALUE.to_string()),
        (l::APP.to_string(), name),
    ])
}

/// Selector of the children of `app` with `role`.
pub fn role_selector(app: &StreamBatchApp, role: Role) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            l::APP.to_string(),
            app.metadata.name.clone().unwrap_or_default(),
        ),
        (l::ROLE.to_string(), role.as_str().to_string()),
    ])
}

/// Executor label selector as text, for the scale subresource and `kubectl get -l`.
pub fn executor_selector(app: &StreamBatchApp) -> String {
    role_selector(app, Role::Executor)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Controller owner reference to `app`, so deleting the app garbage-collects every child, and
/// a foreground deletion (`kubectl delete --cascade=foreground`) waits for the children
/// (`blockOwnerDeletion`, as a ReplicaSet's pods have; where the OwnerReferencesPermission-
/// Enforcement admission plugin is on, this needs `update` on `streambatchapps/finalizers`).
pub fn owner_reference(app: &StreamBatchApp) -> OwnerReference {
    app.controller_owner_ref(&())
        .map(|r| OwnerReference {
            block_owner_deletion: Some(true),
            ..r
        })
        .unwrap_or_else(|| OwnerReference {
            api_version: "neptune.dev/v1alpha1".into(),
            kind: "StreamBatchApp".into(),
            name: app.metadata.name.clone().unwrap_or_default(),
            uid: app.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        })
}

/// Stable 64-bit FNV-1a hash of a JSON value's bytes, as 16 hex digits.
///
/// Stable across Rust versions and processes (unlike `DefaultHasher`), so a restarted or
/// upgraded operator compares hashes its predecessor wrote. The bytes go to
/// [`std::hash::Hasher::write`] whole: no length prefix, the plain FNV-1a of the JSON text.
pub fn spec_hash_of(value: &serde_json::Value) -> String {
    use std::hash::Hasher as _;
    let mut h = fnv::FnvHasher::default();
    h.write(&serde_json::to_vec(value).unwrap_or_default());
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::spec_hash_of;

    /// The hash of a spec must not change across operator versions (a changed hash would roll
    /// every pod): this is the plain FNV-1a 64 of the JSON text `{"a":1}`, as the hand-written
    /// loop this replaced computed it.
    #[test]
    fn the_spec_hash_is_the_plain_fnv1a_of_the_json_text() {
        assert_eq!(
            spec_hash_of(&serde_json::json!({"a": 1})),
            "9c3e82dd6fcae8b1"
        );
        assert_ne!(
            spec_hash_of(&serde_json::json!({"a": 2})),
            spec_hash_of(&serde_json::json!({"a": 1}))
        );
    }
}
