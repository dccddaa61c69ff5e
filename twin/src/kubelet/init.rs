//! What `neptune-pod-init` does between the kubelet's spawn and the container's `exec`: the
//! twin's container runtime, in the spirit of `runc init`.
//!
//! The kubelet writes an [`InitSpec`] and runs `neptune-pod-init SPEC`; the init process
//! 1. starts a new session (its own process group: the kubelet signals the whole group),
//! 2. unshares its mount and UTS namespaces and sets the pod's hostname,
//! 3. builds the container's root: an overlay whose lower layer is the host's `/` (read-only
//!    through the overlay) and whose upper layer is private to this container run, so writes
//!    never reach the host and in-image paths that do not exist on the host can be created;
//!    `/proc` and `/sys` bound in, a fresh `/dev` (tmpfs with `null`, `zero`, `full`, `random`,
//!    `urandom`, `tty` bound from the host, `/dev/shm`, the `fd`/`std*` links), an empty `/tmp`,
//! 4. bind-mounts the image's files and every volume at their paths (read-only ones remounted
//!    read-only), resolving symlinks inside the new root (not the host's: `/var/run` → `/run`
//!    must land in the container's `/run`),
//! 5. remounts the root read-only for `readOnlyRootFilesystem`, `chroot`s, `chdir`s to
//!    `workingDir`, drops to the container's uid/gid/groups, asks for SIGKILL should the kubelet
//!    die (`PR_SET_PDEATHSIG`, set after the uid change that would clear it), and `execve`s.
//!
//! Everything it does is a safe `nix` call: the workspace denies `unsafe`, which rules out a
//! `pre_exec` hook in the kubelet itself, hence this small separate process. A failure before
//! `exec` is written to `error_file` (opened close-on-exec, so a successful `exec` leaves it
//! empty) and the process exits 128, which the kubelet reports as `StartError`.

use std::ffi::CString;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Exit code of `neptune-pod-init` when the container could not be started.
pub const START_ERROR_EXIT: i32 = 128;

/// Everything the init process needs, written by the kubelet as JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InitSpec {
    /// The pod's hostname.
    pub hostname: String,
    /// This container run's directory: `upper/`, `work/`, `root/` are created in it.
    pub run_dir: PathBuf,
    /// Bind mounts, in order (image files first, then volumes).
    pub mounts: Vec<Bind>,
    /// `readOnlyRootFilesystem`.
    pub read_only_root: bool,
    /// `workingDir` (created if missing, as runtimes do).
    pub working_dir: Option<String>,
    /// uid, gid and supplementary groups to run as.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// See `uid`.
    pub groups: Vec<u32>,
    /// `argv`; `argv[0]` without a `/` is looked up in the container's `PATH`.
    pub argv: Vec<String>,
    /// The environment.
    pub env: Vec<(String, String)>,
    /// Where a start failure is written.
    pub error_file: PathBuf,
}

/// One bind mount into the container's root.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Bind {
    /// Host path (a file or a directory).
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: String,
    /// Remount read-only.
    pub read_only: bool,
}

/// Why the container could not be started (written to the error file).
#[derive(Debug, Error)]
pub enum InitError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        what: String,
        source: nix::errno::Errno,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// A mount target that is not an absolute path, or one with symlink loops.
    #[error("invalid mount target {0:?}")]
    Target(String),
    /// `argv[0]` is not found in `PATH`.
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    /// A spec that cannot be used (empty argv, NUL bytes).
    #[error("{0}")]
    Spec(String),
}

fn sys<T>(what: impl Into<String>, r: nix::Result<T>) -> Result<T, InitError> {
    r.map_err(|source| InitError::Sys {
        what: what.into(),
        source,
    })
}

fn io<T>(what: impl Into<String>, r: std::io::Result<T>) -> Result<T, InitError> {
    r.map_err(|source| InitError::Io {
        what: what.into(),
        source,
    })
}

/// Runs the init steps and `exec`s; only returns on failure (after writing the error file).
pub fn run(spec: &InitSpec) -> InitError {
    let mut err_file = std::fs::File::create(&spec.error_file).ok();
    let e = match enter(spec) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if let Some(f) = err_file.as_mut() {
        let _ = write!(f, "{e}");
    }
    e
}

fn enter(spec: &InitSpec) -> Result<std::convert::Infallible, InitError> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};

    if spec.argv.is_empty() {
        return Err(InitError::Spec("empty command".into()));
    }
    sys("setsid", nix::unistd::setsid())?;
    sys(
        "unshare mount+uts namespaces",
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS),
    )?;
    sys("sethostname", nix::unistd::sethostname(&spec.hostname))?;
    sys(
        "make / private",
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
    )?;
    let root = spec.run_dir.join("root");
    io(
        format!("create {}", root.display()),
        std::fs::create_dir_all(&root),
    )?;
    let overlay = |layers: &Path| -> Result<(), InitError> {
        let (upper, work) = (layers.join("upper"), layers.join("work"));
        for d in [&upper, &work] {
            io(
                format!("create {}", d.display()),
                std::fs::create_dir_all(d),
            )?;
        }
        let opts = format!(
            "lowerdir=/,upperdir={},workdir={}",
            overlay_path(&upper)?,
            overlay_path(&work)?
        );
        sys(
            "mount the root overlay",
            mount(
                Some("overlay"),
                &root,
                Some("overlay"),
                MsFlags::empty(),
                Some(opts.as_str()),
            ),
        )
    };
    if overlay(&spec.run_dir).is_err() {
        // The state directory's file system cannot be an upper layer (e.g. it is an overlay
        // itself, inside a container): keep the writable layer in memory instead.
        let layers = spec.run_dir.join("layers");
        io(
            "create the layer directory",
            std::fs::create_dir_all(&layers),
        )?;
        sys(
            "mount a tmpfs for the writable layer",
            mount(
                Some("tmpfs"),
                &layers,
                Some("tmpfs"),
                MsFlags::empty(),
                Some("mode=755"),
            ),
        )?;
        overlay(&layers)?;
    }
    let bind = |src: &Path, dst: &Path, flags: MsFlags| {
        sys(
            format!("bind {} on {}", src.display(), dst.display()),
            mount(
                Some(src),
                dst,
                None::<&str>,
                MsFlags::MS_BIND | flags,
                None::<&str>,
            ),
        )
    };
    bind(Path::new("/proc"), &root.join("proc"), MsFlags::MS_REC)?;
    bind(Path::new("/sys"), &root.join("sys"), MsFlags::MS_REC)?;
    let tmpfs = |dst: &Path, data: &str, flags: MsFlags| {
        sys(
            format!("mount tmpfs on {}", dst.display()),
            mount(Some("tmpfs"), dst, Some("tmpfs"), flags, Some(data)),
        )
    };
    let dev = root.join("dev");
    tmpfs(&dev, "mode=755", MsFlags::MS_NOSUID)?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(node);
        io("create a /dev node", std::fs::File::create(&target))?;
        bind(&Path::new("/dev").join(node), &target, MsFlags::empty())?;
    }
    let shm = dev.join("shm");
    io("create /dev/shm", std::fs::create_dir_all(&shm))?;
    tmpfs(&shm, "mode=1777", MsFlags::MS_NOSUID | MsFlags::MS_NODEV)?;
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        io(
            "create /dev links",
            std::os::unix::fs::symlink(to, dev.join(link)),
        )?;
    }
    // The image's /tmp is empty and as writable as its root.
    let tmp = resolve_in_root(&root, "/tmp")?;
    io("create /tmp", std::fs::create_dir_all(&tmp))?;
    let ro = if spec.read_only_root {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    tmpfs(
        &tmp,
        "mode=1777",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | ro,
    )?;
    for m in &spec.mounts {
        let target = resolve_in_root(&root, &m.target)?;
        let is_dir = io(
            format!("volume source {}", m.source.display()),
            std::fs::metadata(&m.source),
        )?
        .is_dir();
        if is_dir {
            io(
                format!("create {}", m.target),
                std::fs::create_dir_all(&target),
            )?;
        } else {
            if let Some(parent) = target.parent() {
                io(
                    format!("create parent of {}", m.target),
                    std::fs::create_dir_all(parent),
                )?;
            }
            if !target.exists() {
                io(
                    format!("create {}", m.target),
                    std::fs::File::create(&target),
                )?;
            }
        }
        bind(&m.source, &target, MsFlags::MS_REC)?;
        if m.read_only {
            bind(
                &m.source,
                &target,
                MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
            )?;
        }
    }
    let cwd = spec.working_dir.as_deref().unwrap_or("/");
    let cwd_host = resolve_in_root(&root, cwd)?;
    io(
        format!("create workingDir {cwd}"),
        std::fs::create_dir_all(&cwd_host),
    )?;
    if spec.read_only_root {
        bind(&root, &root, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY)?;
    }
    let program = find_program(&root, &spec.argv[0], &spec.env)?;
    sys("chroot", nix::unistd::chroot(&root))?;
    sys(format!("chdir {cwd}"), nix::unistd::chdir(cwd))?;
    let gids: Vec<nix::unistd::Gid> = spec
        .groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    sys("setgroups", nix::unistd::setgroups(&gids))?;
    sys(
        "setgid",
        nix::unistd::setgid(nix::unistd::Gid::from_raw(spec.gid)),
    )?;
    sys(
        "setuid",
        nix::unistd::setuid(nix::unistd::Uid::from_raw(spec.uid)),
    )?;
    sys(
        "set the parent-death signal",
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL),
    )?;
    let c = |s: &str| CString::new(s).map_err(|_| InitError::Spec(format!("NUL byte in {s:?}")));
    let argv = spec
        .argv
        .iter()
        .map(|a| c(a))
        .collect::<Result<Vec<_>, _>>()?;
    let env = spec
        .env
        .iter()
        .map(|(k, v)| c(&format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    let program = c(&program)?;
    sys(
        format!("exec {:?}", spec.argv[0]),
        nix::unistd::execve(&program, &argv, &env),
    )
}

/// Overlay options are comma/colon separated: refuse paths that would break them.
fn overlay_path(p: &Path) -> Result<String, InitError> {
    let s = p.to_string_lossy().into_owned();
    if s.contains([',', ':', '\\']) {
        return Err(InitError::Spec(format!(
            "state path {s:?} has , : or \\ (overlay options)"
        )));
    }
    Ok(s)
}

/// `argv0` as a path inside the new root (looked up in `PATH` when it has no `/`).
fn find_program(root: &Path, argv0: &str, env: &[(String, String)]) -> Result<String, InitError> {
    if argv0.contains('/') {
        return Ok(argv0.to_string());
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let candidate = format!("{}/{argv0}", dir.trim_end_matches('/'));
        if let Ok(host) = resolve_in_root(root, &candidate)
            && host.is_file()
        {
            return Ok(candidate);
        }
    }
    Err(InitError::NotFound(argv0.to_string()))
}

/// `path` (absolute, inside the container) as a host path under `root`, following symlinks as
/// the container would see them (absolute targets restart at `root`, `..` stops at `root`).
/// Missing components are kept as they are (the caller creates them).
///
/// Hand-written (about what `securejoin` does for runc) because no maintained crate does
/// exactly this for a root that is not the process's own.
pub fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf, InitError> {
    if !path.starts_with('/') {
        return Err(InitError::Target(path.to_string()));
    }
    let mut todo: Vec<PathBuf> = Path::new(path)
        .components()
        .rev()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut current = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match part.components().next() {
            None | Some(Component::RootDir | Component::CurDir | Component::Prefix(_)) => {}
            Some(Component::ParentDir) => {
                current.pop();
            }
            Some(Component::Normal(name)) => {
                let candidate = root.join(&current).join(name);
                match std::fs::read_link(&candidate) {
                    Ok(target) => {
                        hops += 1;
                        if hops > 40 {
                            return Err(InitError::Target(path.to_string()));
                        }
                        if target.is_absolute() {
                            current = PathBuf::new();
                        }
                        todo.extend(
                            target
                                .components()
                                .rev()
                                .map(|c| PathBuf::from(c.as_os_str())),
                        );
                    }
                    Err(_) => current.push(name),
                }
            }
        }
    }
    Ok(root.join(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_root_whatever_the_symlinks_say() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
        std::os::unix::fs::symlink("/run", root.join("var/run")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("run/up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/var/run/secrets/x").unwrap(),
            root.join("run/secrets/x")
        );
        assert_eq!(
            resolve_in_root(root, "/run/up/etc").unwrap(),
            root.join("etc")
        );
        assert_eq!(
            resolve_in_root(root, "/../../etc").unwrap(),
            root.join("etc")
        );
        assert!(resolve_in_root(root, "/loop").is_err());
        assert!(resolve_in_root(root, "relative").is_err());
    }

    #[test]
    fn programs_are_found_in_the_containers_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("opt/bin")).unwrap();
        std::fs::write(dir.path().join("opt/bin/tool"), "").unwrap();
        let env = vec![("PATH".to_string(), "/nope:/opt/bin".to_string())];
        assert_eq!(
            find_program(dir.path(), "tool", &env).unwrap(),
            "/opt/bin/tool"
        );
        assert_eq!(find_program(dir.path(), "/x/y", &env).unwrap(), "/x/y");
        assert!(matches!(
            find_program(dir.path(), "missing", &env),
            Err(InitError::NotFound(_))
        ));
    }
}
