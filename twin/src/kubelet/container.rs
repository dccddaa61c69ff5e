//! One container start, prepared: the image resolved, the environment and command line, the
//! user, and the mounts `neptune-pod-init` makes (image files, volumes, `/etc/hosts`, the
//! termination-message file, the service-account token); and, after the process ends, its
//! `terminated` state (reason, exit code, termination message).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;

use super::config::Image;
use super::env::{self, EnvInputs, Objects};
use super::init::{Bind, InitSpec};
use super::procs::Exit;
use super::status::Terminated;
use super::volumes;

/// Where the service-account token, CA and namespace are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Largest termination message kept (the kubelet's limit).
const MAX_MESSAGE: usize = 4096;

/// Why a container cannot be started yet (its waiting reason follows from the variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `ErrImagePull` / `ImagePullBackOff`.
    Image(String),
    /// `CreateContainerConfigError`.
    Config(String),
}

/// Paths of one container run.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// `<pod>/containers/<name>/<run>`: `init.json`, `upper/`, `work/`, `root/`, `error`.
    pub dir: PathBuf,
    /// The termination-message file bound at `terminationMessagePath`.
    pub termination_log: PathBuf,
    /// The pod's hosts file.
    pub hosts: PathBuf,
    /// The service-account directory, if pods get one.
    pub service_account: Option<PathBuf>,
}

/// Inputs of [`prepare`] beyond the container.
pub struct PodContext<'a> {
    /// The pod (with its IP in the status).
    pub pod: &'a Pod,
    /// ConfigMaps and Secrets.
    pub objects: &'a dyn Objects,
    /// Image map lookup result for the container's image.
    pub image: Option<&'a Image>,
    /// Volume name → host path.
    pub volumes: &'a BTreeMap<String, PathBuf>,
    /// Cluster variables (`KUBERNETES_SERVICE_HOST`, ...).
    pub cluster_env: Vec<(String, String)>,
    /// Node allocatable.
    pub node_cpu_millis: u64,
    /// See `node_cpu_millis`.
    pub node_memory: u64,
}

/// A container ready to spawn.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// What the init process does.
    pub spec: InitSpec,
    /// `limits.memory` in bytes.
    pub memory_limit: Option<u64>,
}

/// Prepares `c` for a start.
///
/// # Errors
/// [`Refusal`] when the image is unknown or the configuration cannot be resolved.
pub fn prepare(ctx: &PodContext<'_>, c: &Container, paths: &RunPaths) -> Result<Prepared, Refusal> {
    let image_ref = c.image.clone().unwrap_or_default();
    let image = ctx.image.ok_or_else(|| {
        Refusal::Image(format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image {image_ref:?}: \
             not in the cluster twin's image map"
        ))
    })?;
    for host in image.files.values() {
        if !host.is_file() {
            return Err(Refusal::Image(format!(
                "image {image_ref:?}: its file {} is missing on the host (build it first)",
                host.display()
            )));
        }
    }
    let pod = ctx.pod;
    let env = env::environment(&EnvInputs {
        pod,
        container: c,
        image,
        objects: ctx.objects,
        cluster: ctx.cluster_env.clone(),
        node_cpu_millis: ctx.node_cpu_millis,
        node_memory: ctx.node_memory,
    })
    .map_err(|e| Refusal::Config(e.to_string()))?;
    let argv = env::command_line(c, image, &env).map_err(|e| Refusal::Config(e.to_string()))?;
    let (uid, gid, groups) = user(pod, c, image)?;

    let mut mounts: Vec<Bind> = image
        .files
        .iter()
        .map(|(target, source)| Bind {
            source: source.clone(),
            target: target.clone(),
            read_only: true,
        })
        .collect();
    let env_map: BTreeMap<String, String> = env.iter().cloned().collect();
    let mut vmounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let sub = match (&m.sub_path, &m.sub_path_expr) {
            (Some(s), _) if !s.is_empty() => Some(s.clone()),
            (_, Some(e)) if !e.is_empty() => Some(env::expand(e, &env_map)),
            _ => None,
        };
        let source = volumes::mount_source(ctx.volumes, &m.name, sub.as_deref())
            .map_err(|e| Refusal::Config(e.to_string()))?;
        vmounts.push(Bind {
            source,
            target: m.mount_path.clone(),
            read_only: m.read_only == Some(true),
        });
    }
    // Parents before children, as runtimes order mounts.
    vmounts.sort_by_key(|b| b.target.trim_end_matches('/').matches('/').count());
    let taken = |p: &str| vmounts.iter().any(|b| b.target.trim_end_matches('/') == p);
    if !taken("/etc/hosts") {
        mounts.push(Bind {
            source: paths.hosts.clone(),
            target: "/etc/hosts".into(),
            read_only: false,
        });
    }
    if let Some(sa) = &paths.service_account
        && !taken(SERVICE_ACCOUNT_DIR)
    {
        mounts.push(Bind {
            source: sa.clone(),
            target: SERVICE_ACCOUNT_DIR.into(),
            read_only: true,
        });
    }
    mounts.extend(vmounts);
    let term_path = c
        .termination_message_path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/dev/termination-log".into());
    mounts.push(Bind {
        source: paths.termination_log.clone(),
        target: term_path,
        read_only: false,
    });
    let memory_limit = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .and_then(|q| super::fields::memory_bytes(&q.0).ok());
    let name = pod.metadata.name.clone().unwrap_or_default();
    Ok(Prepared {
        spec: InitSpec {
            hostname: env::hostname(pod, &name),
            run_dir: paths.dir.clone(),
            mounts,
            read_only_root: c
                .security_context
                .as_ref()
                .and_then(|s| s.read_only_root_filesystem)
                == Some(true),
            working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
            uid,
            gid,
            groups,
            argv,
            env,
            error_file: paths.dir.join("error"),
        },
        memory_limit,
    })
}

/// uid, gid and supplementary groups, with the kubelet's `runAsNonRoot` check.
fn user(pod: &Pod, c: &Container, image: &Image) -> Result<(u32, u32, Vec<u32>), Refusal> {
    let sc = c.security_context.as_ref();
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let id = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    let explicit_uid = id(sc.and_then(|s| s.run_as_user)).or(id(psc.and_then(|s| s.run_as_user)));
    let uid = explicit_uid.unwrap_or(image.user);
    let gid = id(sc.and_then(|s| s.run_as_group))
        .or(id(psc.and_then(|s| s.run_as_group)))
        .unwrap_or(if uid == image.user { image.user } else { 0 });
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(psc.and_then(|s| s.run_as_non_root))
        == Some(true);
    if non_root && uid == 0 {
        let who = format!(
            "(pod: \"{}_{}({})\", container: {})",
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.uid.as_deref().unwrap_or_default(),
            c.name
        );
        return Err(Refusal::Config(if explicit_uid.is_some() {
            format!("container's runAsUser breaks non-root policy {who}")
        } else {
            format!("container has runAsNonRoot and image will run as root {who}")
        }));
    }
    let mut groups: Vec<u32> = psc
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok())
        .into_iter()
        .collect();
    groups.extend(
        psc.and_then(|s| s.supplemental_groups.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|g| u32::try_from(g).ok()),
    );
    Ok((uid, gid, groups))
}

/// The `terminated` state of a finished run.
pub fn terminated(
    exit: Exit,
    started_at: Timestamp,
    c: &Container,
    paths: &RunPaths,
    log: &Path,
) -> Terminated {
    let start_error = std::fs::read_to_string(paths.dir.join("error"))
        .ok()
        .filter(|s| !s.trim().is_empty());
    let finished_at = Timestamp::now();
    if let Some(message) = start_error {
        return Terminated {
            exit_code: 128,
            signal: None,
            reason: "StartError".into(),
            message: Some(format!(
                "failed to create containerd task: failed to start container {:?}: {message}",
                c.name
            )),
            started_at: None,
            finished_at,
        };
    }
    let (code, reason) = if exit.oom {
        (137, "OOMKilled")
    } else if exit.code == 0 {
        (0, "Completed")
    } else {
        (exit.code, "Error")
    };
    let mut message = std::fs::read(&paths.termination_log)
        .map(|b| {
            let b = &b[..b.len().min(MAX_MESSAGE)];
            String::from_utf8_lossy(b).into_owned()
        })
        .unwrap_or_default();
    if message.is_empty()
        && code != 0
        && c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
    {
        message = super::logs::tail_of(log, 80, 2048);
    }
    Terminated {
        exit_code: code,
        signal: if exit.oom { Some(9) } else { exit.signal },
        reason: reason.into(),
        message: (!message.is_empty()).then_some(message),
        started_at: Some(started_at),
        finished_at,
    }
}

#[cfg(test)]
#[path = "container_tests.rs"]
mod tests;
