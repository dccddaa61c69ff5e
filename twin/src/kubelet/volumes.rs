//! Pod volumes materialised as host directories, which `neptune-pod-init` bind-mounts into
//! each container's private root.
//!
//! - `emptyDir`: a fresh directory per pod (mode 0777, as the kubelet's; `medium: Memory` and
//!   `sizeLimit` are not enforced), removed with the pod; generic `ephemeral` volumes alike.
//! - `configMap`, `secret`, `downwardAPI`, `projected` (those three plus
//!   `serviceAccountToken`): files written with the kubelet's atomic writer layout (a
//!   timestamped directory, a `..data` symlink swapped by rename, and per-key symlinks through
//!   it), honouring `items`, `defaultMode`/`mode` and `optional`; rewritten in place when the
//!   objects change while the pod runs, so applications that re-read their config see updates.
//! - `hostPath`: the host path itself (with the `type` checks and `*OrCreate`).
//! - `persistentVolumeClaim`: one twin directory per claim (`volumes/pvc/<ns>/<claim>`),
//!   shared by every pod using the claim and kept after they are gone.
//!
//! Other volume types fail with a `FailedMount`-style message naming the type.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, KeyToPath, Pod, Volume};
use thiserror::Error;

use super::env::{Objects, secret_entries};
use super::fields;

/// Files of a volume: path inside it, contents, `mode` (the volume's default when `None`).
type Files = Vec<(String, Vec<u8>, Option<i32>)>;

/// Why a volume could not be set up (the pod's waiting message).
#[derive(Debug, Error)]
pub enum VolumeError {
    /// The object behind a volume is missing.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {kind} {name:?} not found")]
    NotFound {
        volume: String,
        kind: &'static str,
        name: String,
    },
    /// An item names a key the object does not have.
    #[error(
        "MountVolume.SetUp failed for volume {volume:?} : {kind} references non-existent config key: {key}"
    )]
    NoKey {
        volume: String,
        kind: &'static str,
        key: String,
    },
    /// A `hostPath` whose type check failed.
    #[error(
        "MountVolume.SetUp failed for volume {volume:?} : hostPath type check failed: {path} is not a {want}"
    )]
    HostPathType {
        volume: String,
        path: String,
        want: String,
    },
    /// A volume type the twin does not provide.
    #[error(
        "MountVolume.SetUp failed for volume {0:?} : volume type not supported by the cluster twin"
    )]
    Unsupported(String),
    /// A volumeMount names no volume of the pod.
    #[error("volumeMount {0:?} names no volume of the pod")]
    NoVolume(String),
    /// A subPath with `..` or an absolute path.
    #[error("invalid subPath {0:?}: must be relative and must not contain '..'")]
    SubPath(String),
    /// A downward-API item.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {source}")]
    Field {
        volume: String,
        source: fields::FieldError,
    },
    /// File system errors.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {source}")]
    Io {
        volume: String,
        source: std::io::Error,
    },
}

/// What volumes are built from besides the pod.
pub struct VolumeInputs<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// ConfigMaps and Secrets.
    pub objects: &'a dyn Objects,
    /// `<pod dir>/volumes`.
    pub pod_volumes: &'a Path,
    /// `<kubelet root>/volumes` (claims).
    pub shared_volumes: &'a Path,
    /// The service-account token, if the twin hands one out (for `serviceAccountToken`).
    pub token: Option<&'a str>,
    /// Node allocatable (unset limits in `resourceFieldRef`).
    pub node_cpu_millis: u64,
    /// See `node_cpu_millis`.
    pub node_memory: u64,
}

/// Sets up (or refreshes) every volume of the pod; returns volume name → host path.
///
/// # Errors
/// The first [`VolumeError`].
pub fn set_up(inp: &VolumeInputs<'_>) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let mut out = BTreeMap::new();
    let spec = inp.pod.spec.as_ref();
    let fs_group = spec
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok());
    for v in spec.and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        let path = set_up_one(inp, v)?;
        // fsGroup applies to volumes the kubelet owns, never to a hostPath.
        if let Some(gid) = fs_group.filter(|_| v.host_path.is_none()) {
            chown_group(&path, gid).map_err(|source| VolumeError::Io {
                volume: v.name.clone(),
                source,
            })?;
        }
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

fn set_up_one(inp: &VolumeInputs<'_>, v: &Volume) -> Result<PathBuf, VolumeError> {
    let ns = inp.pod.metadata.namespace.as_deref().unwrap_or("default");
    let io = |source| VolumeError::Io {
        volume: v.name.clone(),
        source,
    };
    let dir = |kind: &str| inp.pod_volumes.join(kind).join(&v.name);
    if v.empty_dir.is_some() || v.ephemeral.is_some() {
        let d = dir("empty-dir");
        std::fs::create_dir_all(&d).map_err(io)?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        return Ok(d);
    }
    if let Some(h) = &v.host_path {
        return host_path(&v.name, &h.path, h.type_.as_deref().unwrap_or_default());
    }
    if let Some(c) = &v.persistent_volume_claim {
        let d = inp.shared_volumes.join("pvc").join(ns).join(&c.claim_name);
        std::fs::create_dir_all(&d).map_err(io)?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        return Ok(d);
    }
    let mut files: Files = Vec::new();
    let default_mode;
    if let Some(c) = &v.config_map {
        default_mode = c.default_mode;
        files = keyed(
            &v.name,
            "configmap",
            ns,
            &c.name,
            c.optional,
            c.items.as_deref(),
            inp,
        )?;
    } else if let Some(s) = &v.secret {
        default_mode = s.default_mode;
        let name = s.secret_name.clone().unwrap_or_default();
        files = keyed(
            &v.name,
            "secret",
            ns,
            &name,
            s.optional,
            s.items.as_deref(),
            inp,
        )?;
    } else if let Some(d) = &v.downward_api {
        default_mode = d.default_mode;
        files = downward(&v.name, d.items.as_deref().unwrap_or(&[]), inp)?;
    } else if let Some(p) = &v.projected {
        default_mode = p.default_mode;
        for src in p.sources.iter().flatten() {
            if let Some(c) = &src.config_map {
                files.extend(keyed(
                    &v.name,
                    "configmap",
                    ns,
                    &c.name,
                    c.optional,
                    c.items.as_deref(),
                    inp,
                )?);
            } else if let Some(s) = &src.secret {
                files.extend(keyed(
                    &v.name,
                    "secret",
                    ns,
                    &s.name,
                    s.optional,
                    s.items.as_deref(),
                    inp,
                )?);
            } else if let Some(d) = &src.downward_api {
                files.extend(downward(&v.name, d.items.as_deref().unwrap_or(&[]), inp)?);
            } else if let Some(t) = &src.service_account_token {
                let token = inp
                    .token
                    .ok_or_else(|| VolumeError::Unsupported(v.name.clone()))?;
                files.push((t.path.clone(), token.as_bytes().to_vec(), None));
            } else {
                return Err(VolumeError::Unsupported(v.name.clone()));
            }
        }
    } else {
        return Err(VolumeError::Unsupported(v.name.clone()));
    }
    let d = dir("atomic");
    write_atomic(&d, &files, default_mode.unwrap_or(0o644)).map_err(io)?;
    Ok(d)
}

/// Files of a ConfigMap or Secret volume: every key, or the listed `items`.
fn keyed(
    volume: &str,
    kind: &'static str,
    ns: &str,
    name: &str,
    optional: Option<bool>,
    items: Option<&[KeyToPath]>,
    inp: &VolumeInputs<'_>,
) -> Result<Files, VolumeError> {
    let entries: Option<Vec<(String, Vec<u8>)>> = if kind == "configmap" {
        inp.objects.config_map(ns, name).map(|cm| {
            let mut e: Vec<(String, Vec<u8>)> = cm
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect();
            e.extend(
                cm.binary_data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.0.clone())),
            );
            e
        })
    } else {
        inp.objects.secret(ns, name).map(|s| {
            let mut e: Vec<(String, Vec<u8>)> = s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect();
            let extra: Vec<(String, Vec<u8>)> = secret_entries(&s)
                .into_iter()
                .filter(|(k, _)| !e.iter().any(|(ek, _)| ek == k))
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            e.extend(extra);
            e
        })
    };
    let Some(entries) = entries else {
        if optional == Some(true) {
            return Ok(Vec::new());
        }
        return Err(VolumeError::NotFound {
            volume: volume.into(),
            kind,
            name: name.into(),
        });
    };
    match items {
        None => Ok(entries.into_iter().map(|(k, v)| (k, v, None)).collect()),
        Some(items) => items
            .iter()
            .filter_map(|item| match entries.iter().find(|(k, _)| *k == item.key) {
                Some((_, v)) => Some(Ok((item.path.clone(), v.clone(), item.mode))),
                None if optional == Some(true) => None,
                None => Some(Err(VolumeError::NoKey {
                    volume: volume.into(),
                    kind,
                    key: item.key.clone(),
                })),
            })
            .collect(),
    }
}

fn downward(
    volume: &str,
    items: &[DownwardAPIVolumeFile],
    inp: &VolumeInputs<'_>,
) -> Result<Files, VolumeError> {
    let err = |source| VolumeError::Field {
        volume: volume.into(),
        source,
    };
    let empty = Container::default();
    let first = inp
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .unwrap_or(&empty);
    items
        .iter()
        .map(|item| {
            let value = if let Some(f) = &item.field_ref {
                fields::field(inp.pod, &f.field_path).map_err(err)?
            } else if let Some(r) = &item.resource_field_ref {
                fields::resource(inp.pod, first, r, inp.node_cpu_millis, inp.node_memory)
                    .map_err(err)?
            } else {
                String::new()
            };
            Ok((item.path.clone(), value.into_bytes(), item.mode))
        })
        .collect()
}

/// The kubelet's atomic writer: `dir/..<n>/files`, `dir/..data -> ..<n>` (renamed into
/// place), `dir/<top-level entry> -> ..data/<entry>`. Unchanged content is left alone.
fn write_atomic(
    dir: &Path,
    files: &[(String, Vec<u8>, Option<i32>)],
    default_mode: i32,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data_link)
        && same_content(&dir.join(&current), files)
    {
        return Ok(());
    }
    for (path, _, _) in files {
        if !relative_clean(path) {
            return Err(std::io::Error::other(format!("invalid item path {path:?}")));
        }
    }
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let payload = dir.join(&stamp);
    std::fs::create_dir_all(&payload)?;
    for (path, bytes, mode) in files {
        let target = payload.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, bytes)?;
        let mode = u32::try_from(mode.unwrap_or(default_mode)).unwrap_or(0o644) & 0o777;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
    }
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&stamp, &tmp_link)?;
    let old = std::fs::read_link(&data_link).ok();
    std::fs::rename(&tmp_link, &data_link)?;
    let tops: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|(p, _, _)| p.split('/').next().map(str::to_string))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::read_link(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{top}"), &link)?;
        }
    }
    // Entries that disappeared, and the previous payload.
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

fn same_content(payload: &Path, files: &[(String, Vec<u8>, Option<i32>)]) -> bool {
    let count = walk_files(payload);
    count == files.len()
        && files
            .iter()
            .all(|(p, bytes, _)| std::fs::read(payload.join(p)).is_ok_and(|b| b == *bytes))
}

fn walk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn relative_clean(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        && !p.starts_with("..")
}

fn host_path(volume: &str, path: &str, type_: &str) -> Result<PathBuf, VolumeError> {
    let p = PathBuf::from(path);
    let io = |source| VolumeError::Io {
        volume: volume.into(),
        source,
    };
    let check = |ok: bool, want: &str| {
        if ok {
            Ok(())
        } else {
            Err(VolumeError::HostPathType {
                volume: volume.into(),
                path: path.into(),
                want: want.into(),
            })
        }
    };
    match type_ {
        "DirectoryOrCreate" => std::fs::create_dir_all(&p).map_err(io)?,
        "Directory" => check(p.is_dir(), "directory")?,
        "FileOrCreate" if !p.exists() => {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::File::create(&p).map_err(io)?;
        }
        "File" => check(p.is_file(), "file")?,
        "Socket" | "CharDevice" | "BlockDevice" => check(p.exists(), type_)?,
        _ => {}
    }
    if !p.exists() {
        std::fs::create_dir_all(&p).map_err(io)?;
    }
    Ok(p)
}

/// The host path a volumeMount binds: the volume's path, or `subPath` under it (created as a
/// directory when missing, as the kubelet does). `subPath` must stay inside the volume.
///
/// # Errors
/// [`VolumeError::NoVolume`], [`VolumeError::SubPath`], or I/O creating the subPath.
pub fn mount_source(
    volumes: &BTreeMap<String, PathBuf>,
    name: &str,
    sub_path: Option<&str>,
) -> Result<PathBuf, VolumeError> {
    let base = volumes
        .get(name)
        .ok_or_else(|| VolumeError::NoVolume(name.into()))?;
    let Some(sub) = sub_path.filter(|s| !s.is_empty()) else {
        return Ok(base.clone());
    };
    if !relative_clean(sub) {
        return Err(VolumeError::SubPath(sub.into()));
    }
    let p = base.join(sub);
    // Through the atomic writer's links a subPath of a ConfigMap volume is the file itself.
    if !p.exists() {
        std::fs::create_dir_all(&p).map_err(|source| VolumeError::Io {
            volume: name.into(),
            source,
        })?;
    }
    Ok(p.canonicalize().unwrap_or(p))
}

fn chown_group(path: &Path, gid: u32) -> std::io::Result<()> {
    let gid = Some(nix::unistd::Gid::from_raw(gid));
    let walk = |p: &Path| nix::unistd::chown(p, None, gid).map_err(std::io::Error::from);
    walk(path)?;
    if path.is_dir() {
        for e in std::fs::read_dir(path)?.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                chown_group(&p, gid.map(|g| g.as_raw()).unwrap_or_default())?;
            } else if !p.is_symlink() {
                walk(&p)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "volumes_tests.rs"]
mod tests;
