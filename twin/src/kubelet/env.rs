//! A container's environment and command line, resolved as the kubelet and container runtime
//! do: image `ENV`, then `envFrom` sources in order, then `env` entries (later wins), each
//! `value` expanded with `$(VAR)` against what is defined so far; `command`/`args` expanded
//! with the final environment and falling back to the image's `ENTRYPOINT`/`CMD`.
//!
//! A missing ConfigMap, Secret or key is a [`EnvError`] with the kubelet's own wording (the pod
//! then waits in `CreateContainerConfigError`), unless the reference is `optional`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use thiserror::Error;

use super::config::Image;
use super::fields::{self, FieldError};

/// Read access to the ConfigMaps and Secrets pods refer to.
pub trait Objects: Send + Sync {
    /// ConfigMap `ns/name`, if it exists.
    fn config_map(&self, ns: &str, name: &str) -> Option<Arc<ConfigMap>>;
    /// Secret `ns/name`, if it exists.
    fn secret(&self, ns: &str, name: &str) -> Option<Arc<Secret>>;
}

/// Why a container's environment could not be built (the message is the pod's waiting message).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvError {
    /// A referenced ConfigMap does not exist.
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    /// A referenced Secret does not exist.
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    /// A referenced key is not in the object.
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
    /// A downward-API reference that cannot be resolved.
    #[error("env {var}: {source}")]
    Field { var: String, source: FieldError },
    /// `valueFrom` with no source set.
    #[error("env {0}: valueFrom has no source")]
    EmptySource(String),
    /// No command: neither the container nor the image gives one.
    #[error("no command specified")]
    NoCommand,
}

/// What the environment is built from besides the pod.
pub struct EnvInputs<'a> {
    /// The pod (with `status.podIP` already set).
    pub pod: &'a Pod,
    /// The container being started.
    pub container: &'a Container,
    /// The image it runs.
    pub image: &'a Image,
    /// ConfigMaps and Secrets.
    pub objects: &'a dyn Objects,
    /// Variables every container gets from the cluster (`KUBERNETES_SERVICE_HOST`, ...),
    /// defined before `envFrom`/`env` so those may refer to and override them.
    pub cluster: Vec<(String, String)>,
    /// The node's allocatable CPU (millicores) and memory (bytes), for unset limits.
    pub node_cpu_millis: u64,
    /// See `node_cpu_millis`.
    pub node_memory: u64,
}

/// The container's environment, in definition order with later duplicates removed.
///
/// # Errors
/// [`EnvError`] for missing objects or keys and unresolvable field references.
pub fn environment(inp: &EnvInputs<'_>) -> Result<Vec<(String, String)>, EnvError> {
    let ns = inp.pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env = Ordered::default();
    for (k, v) in &inp.image.env {
        env.set(k, v.clone());
    }
    if let Some(name) = &inp.pod.metadata.name {
        env.set("HOSTNAME", hostname(inp.pod, name));
    }
    for (k, v) in &inp.cluster {
        env.set(k, v.clone());
    }
    for from in inp.container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let entries: Vec<(String, String)> = if let Some(r) = &from.config_map_ref {
            match inp.objects.config_map(ns, &r.name) {
                Some(cm) => config_map_entries(&cm),
                None if r.optional == Some(true) => Vec::new(),
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        } else if let Some(r) = &from.secret_ref {
            match inp.objects.secret(ns, &r.name) {
                Some(s) => secret_entries(&s),
                None if r.optional == Some(true) => Vec::new(),
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        } else {
            Vec::new()
        };
        for (k, v) in entries {
            let name = format!("{prefix}{k}");
            // The kubelet skips keys that are not valid variable names (with an Event).
            if valid_env_name(&name) {
                env.set(&name, v);
            }
        }
    }
    for var in inp.container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    fields::field(inp.pod, &f.field_path).map_err(|source| EnvError::Field {
                        var: var.name.clone(),
                        source,
                    })?
                } else if let Some(r) = &from.resource_field_ref {
                    fields::resource(
                        inp.pod,
                        inp.container,
                        r,
                        inp.node_cpu_millis,
                        inp.node_memory,
                    )
                    .map_err(|source| EnvError::Field {
                        var: var.name.clone(),
                        source,
                    })?
                } else if let Some(r) = &from.config_map_key_ref {
                    match inp.objects.config_map(ns, &r.name) {
                        Some(cm) => match config_map_entries(&cm)
                            .into_iter()
                            .find(|(k, _)| *k == r.key)
                        {
                            Some((_, v)) => v,
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(EnvError::KeyNotFound {
                                    kind: "ConfigMap",
                                    namespace: ns.into(),
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                        None if r.optional == Some(true) => continue,
                        None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    match inp.objects.secret(ns, &r.name) {
                        Some(s) => {
                            match secret_entries(&s).into_iter().find(|(k, _)| *k == r.key) {
                                Some((_, v)) => v,
                                None if r.optional == Some(true) => continue,
                                None => {
                                    return Err(EnvError::KeyNotFound {
                                        kind: "Secret",
                                        namespace: ns.into(),
                                        name: r.name.clone(),
                                        key: r.key.clone(),
                                    });
                                }
                            }
                        }
                        None if r.optional == Some(true) => continue,
                        None => return Err(EnvError::SecretNotFound(r.name.clone())),
                    }
                } else {
                    return Err(EnvError::EmptySource(var.name.clone()));
                }
            }
            (Some(v), None) => expand(v, &env.map),
            (None, None) => String::new(),
        };
        env.set(&var.name, value);
    }
    Ok(env.into_vec())
}

/// The pod's hostname: `spec.hostname` or the pod name (truncated to 63 characters).
pub fn hostname(pod: &Pod, name: &str) -> String {
    let h = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| name.to_string());
    h.chars().take(63).collect()
}

/// The process's argv: `command` (else the image's `ENTRYPOINT`) followed by `args` (else,
/// when `command` is unset, the image's `CMD`), `$(VAR)`-expanded against `env`.
///
/// # Errors
/// [`EnvError::NoCommand`] when both are empty.
pub fn command_line(
    container: &Container,
    image: &Image,
    env: &[(String, String)],
) -> Result<Vec<String>, EnvError> {
    let map: BTreeMap<String, String> = env.iter().cloned().collect();
    let x = |v: &Vec<String>| v.iter().map(|s| expand(s, &map)).collect::<Vec<_>>();
    let mut argv = match &container.command {
        Some(c) if !c.is_empty() => x(c),
        _ => image.entrypoint.clone(),
    };
    match &container.args {
        Some(a) if !a.is_empty() => argv.extend(x(a)),
        _ if container.command.as_ref().is_none_or(Vec::is_empty) => {
            argv.extend(image.cmd.iter().cloned());
        }
        _ => {}
    }
    if argv.is_empty() {
        return Err(EnvError::NoCommand);
    }
    Ok(argv)
}

/// Kubernetes' `$(VAR)` expansion: defined variables are replaced, undefined references are
/// kept verbatim, `$$` is a literal `$` (so `$$(VAR)` stays `$(VAR)`).
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match vars.get(name) {
                        Some(v) if !name.is_empty() => out.push_str(v),
                        _ => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A ConfigMap's `data` and (UTF-8) `binaryData` as key/value pairs.
pub fn config_map_entries(cm: &ConfigMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.extend(
        cm.binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned())),
    );
    out
}

/// A Secret's `data` (and `stringData`, which the API server normally folds into `data`).
pub fn secret_entries(s: &Secret) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    out.extend(
        s.string_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    out
}

/// `[-._a-zA-Z][-._a-zA-Z0-9]*`, the apiserver's rule for environment variable names.
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || "-._".contains(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Variables in first-definition order; redefining keeps the position, takes the new value.
#[derive(Default)]
struct Ordered {
    order: Vec<String>,
    map: BTreeMap<String, String>,
}

impl Ordered {
    fn set(&mut self, k: &str, v: String) {
        if self.map.insert(k.to_string(), v).is_none() {
            self.order.push(k.to_string());
        }
    }

    fn into_vec(mut self) -> Vec<(String, String)> {
        self.order
            .iter()
            .filter_map(|k| self.map.remove(k).map(|v| (k.clone(), v)))
            .collect()
    }
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
