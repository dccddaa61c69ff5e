//! The downward API: a pod's fields (`fieldRef`) and its containers' resources
//! (`resourceFieldRef`) as strings, for environment variables and `downwardAPI` volumes.
//!
//! CPU quantities are parsed here (the workspace's `neptune_crds::quantity` handles memory
//! only, and there is no maintained crate for Kubernetes quantities); the rules are the
//! apiserver's: `500m`, `2`, `1.5`, and the exponent suffixes shared with memory.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};
use thiserror::Error;

/// A downward-API reference the kubelet cannot resolve.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FieldError {
    /// Not one of the supported field paths.
    #[error("unsupported fieldPath {0:?}")]
    UnsupportedField(String),
    /// Not one of the supported resources.
    #[error("unsupported resource {0:?}")]
    UnsupportedResource(String),
    /// `resourceFieldRef.containerName` names no container of the pod.
    #[error("container {0:?} not found in the pod")]
    NoSuchContainer(String),
    /// A quantity that does not parse.
    #[error("invalid quantity {0:?}")]
    Quantity(String),
}

/// The value of `fieldRef.fieldPath` for `pod` (`metadata.labels` and `metadata.annotations`
/// without a key give every entry as `key="value"` lines, as in downwardAPI volumes).
///
/// # Errors
/// [`FieldError::UnsupportedField`] for paths the kubelet does not serve.
pub fn field(pod: &Pod, path: &str) -> Result<String, FieldError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let map_lines = |m: Option<&BTreeMap<String, String>>| {
        m.map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
    };
    if let Some(key) = map_key(path, "metadata.labels") {
        return Ok(lookup(meta.labels.as_ref(), key));
    }
    if let Some(key) = map_key(path, "metadata.annotations") {
        return Ok(lookup(meta.annotations.as_ref(), key));
    }
    let s = |v: Option<&String>| v.cloned().unwrap_or_default();
    Ok(match path {
        "metadata.name" => s(meta.name.as_ref()),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        "metadata.uid" => s(meta.uid.as_ref()),
        "metadata.labels" => map_lines(meta.labels.as_ref()),
        "metadata.annotations" => map_lines(meta.annotations.as_ref()),
        "spec.nodeName" => s(spec.and_then(|s| s.node_name.as_ref())),
        "spec.serviceAccountName" => s(spec.and_then(|s| s.service_account_name.as_ref())),
        "status.hostIP" => s(status.and_then(|s| s.host_ip.as_ref())),
        "status.podIP" => s(status.and_then(|s| s.pod_ip.as_ref())),
        "status.hostIPs" => ips(status
            .and_then(|s| s.host_ips.as_ref())
            .map(|v| v.iter().map(|i| i.ip.clone()).collect())),
        "status.podIPs" => ips(status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|v| v.iter().map(|i| i.ip.clone()).collect())),
        other => return Err(FieldError::UnsupportedField(other.to_string())),
    })
}

fn ips(v: Option<Vec<String>>) -> String {
    v.unwrap_or_default().join(",")
}

/// `metadata.labels['key']` → `key`.
fn map_key<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?
        .strip_prefix("['")?
        .strip_suffix("']")
}

fn lookup(m: Option<&BTreeMap<String, String>>, key: &str) -> String {
    m.and_then(|m| m.get(key)).cloned().unwrap_or_default()
}

/// The value of a `resourceFieldRef` for `container` (or the one it names), in units of its
/// divisor, rounded up. Unset limits fall back to the node's allocatable, as the kubelet does.
///
/// # Errors
/// [`FieldError`] for unknown resources, containers or bad quantities.
pub fn resource(
    pod: &Pod,
    container: &Container,
    sel: &ResourceFieldSelector,
    node_cpu_millis: u64,
    node_memory: u64,
) -> Result<String, FieldError> {
    let c = match sel.container_name.as_deref() {
        Some(name) if !name.is_empty() && name != container.name => pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == name))
            .ok_or_else(|| FieldError::NoSuchContainer(name.to_string()))?,
        _ => container,
    };
    let res = c.resources.as_ref();
    let get = |kind: &str, name: &str| {
        res.and_then(|r| {
            if kind == "limits" {
                r.limits.as_ref()
            } else {
                r.requests.as_ref()
            }
        })
        .and_then(|m| m.get(name))
        .map(|q| q.0.clone())
    };
    let (kind, name) = sel
        .resource
        .split_once('.')
        .ok_or_else(|| FieldError::UnsupportedResource(sel.resource.clone()))?;
    let divisor = sel.divisor.as_ref().map(|q| q.0.as_str());
    match (kind, name) {
        ("limits" | "requests", "cpu") => {
            let millis = match get(kind, "cpu") {
                Some(q) => cpu_millis(&q)?,
                None if kind == "limits" => node_cpu_millis,
                None => 0,
            };
            let div = divisor.map(cpu_millis).transpose()?.unwrap_or(1000).max(1);
            Ok(millis.div_ceil(div).to_string())
        }
        ("limits" | "requests", "memory") => {
            let bytes = match get(kind, "memory") {
                Some(q) => memory_bytes(&q)?,
                None if kind == "limits" => node_memory,
                None => 0,
            };
            let div = divisor.map(memory_bytes).transpose()?.unwrap_or(1).max(1);
            Ok(bytes.div_ceil(div).to_string())
        }
        _ => Err(FieldError::UnsupportedResource(sel.resource.clone())),
    }
}

/// A memory quantity in bytes.
///
/// # Errors
/// [`FieldError::Quantity`] when it does not parse.
pub fn memory_bytes(q: &str) -> Result<u64, FieldError> {
    neptune_crds::quantity::parse_bytes(q).map_err(|_| FieldError::Quantity(q.to_string()))
}

/// A CPU quantity in millicores, rounded up (`250m`, `1`, `0.5`, `2k`).
///
/// # Errors
/// [`FieldError::Quantity`] when it does not parse or overflows.
pub fn cpu_millis(q: &str) -> Result<u64, FieldError> {
    let bad = || FieldError::Quantity(q.to_string());
    let t = q.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let unit: u128 = match suffix {
        "m" => 1,
        "" => 1_000,
        "k" => 1_000_000,
        "M" => 1_000_000_000,
        "G" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (number.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    // Integer arithmetic (no float rounding): int·unit + ⌈frac·unit / 10^len(frac)⌉.
    let int: u128 = int.parse().map_err(|_| bad())?;
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad())?
    };
    let scale = 10u128
        .checked_pow(u32::try_from(frac.len()).map_err(|_| bad())?)
        .ok_or_else(bad)?;
    let millis = int
        .checked_mul(unit)
        .and_then(|m| m.checked_add(frac_value.checked_mul(unit)?.div_ceil(scale)))
        .ok_or_else(bad)?;
    u64::try_from(millis).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodIP, PodSpec, PodStatus, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pod() -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.labels = Some([("app".to_string(), "x".to_string())].into());
        p.spec = Some(PodSpec {
            node_name: Some("n0".into()),
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    limits: Some(
                        [
                            ("cpu".to_string(), Quantity("1500m".into())),
                            ("memory".to_string(), Quantity("1Gi".into())),
                        ]
                        .into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
        p.status = Some(PodStatus {
            pod_ip: Some("127.0.3.4".into()),
            pod_ips: Some(vec![PodIP {
                ip: "127.0.3.4".into(),
            }]),
            ..Default::default()
        });
        p
    }

    #[test]
    fn fields_resolve_like_the_kubelet() {
        let p = pod();
        assert_eq!(field(&p, "metadata.name").unwrap(), "p");
        assert_eq!(field(&p, "metadata.namespace").unwrap(), "ns");
        assert_eq!(field(&p, "status.podIP").unwrap(), "127.0.3.4");
        assert_eq!(field(&p, "status.podIPs").unwrap(), "127.0.3.4");
        assert_eq!(field(&p, "spec.nodeName").unwrap(), "n0");
        assert_eq!(field(&p, "metadata.labels['app']").unwrap(), "x");
        assert_eq!(field(&p, "metadata.labels['nope']").unwrap(), "");
        assert_eq!(field(&p, "metadata.labels").unwrap(), "app=\"x\"");
        assert_eq!(
            field(&p, "spec.containers"),
            Err(FieldError::UnsupportedField("spec.containers".into()))
        );
    }

    #[test]
    fn resources_round_up_in_divisor_units_and_fall_back_to_node_allocatable() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let sel = |r: &str, d: Option<&str>| ResourceFieldSelector {
            resource: r.into(),
            divisor: d.map(|d| Quantity(d.into())),
            container_name: None,
        };
        assert_eq!(
            resource(&p, c, &sel("limits.cpu", None), 8000, 1).unwrap(),
            "2"
        );
        assert_eq!(
            resource(&p, c, &sel("limits.cpu", Some("1m")), 8000, 1).unwrap(),
            "1500"
        );
        assert_eq!(
            resource(&p, c, &sel("limits.memory", Some("1Mi")), 1, 1).unwrap(),
            "1024"
        );
        assert_eq!(
            resource(&p, c, &sel("requests.cpu", None), 8000, 1).unwrap(),
            "0"
        );
        assert!(resource(&p, c, &sel("limits.gpu", None), 1, 1).is_err());
    }

    #[test]
    fn cpu_quantities() {
        assert_eq!(cpu_millis("250m").unwrap(), 250);
        assert_eq!(cpu_millis("2").unwrap(), 2000);
        assert_eq!(cpu_millis("0.5").unwrap(), 500);
        assert_eq!(cpu_millis("1.25").unwrap(), 1250);
        assert!(cpu_millis("x").is_err());
        assert!(cpu_millis("1.5.5").is_err());
    }
}
