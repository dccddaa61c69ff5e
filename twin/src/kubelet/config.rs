//! What a twin kubelet runs: its nodes, the image map (which host files an image reference
//! stands for), its state directory and the timings a real kubelet and node controller use.
//!
//! There is no image registry and no image filesystem here: an image is a set of host files
//! placed at their in-image paths inside the pod's private root (an overlay of the host's `/`),
//! plus the image's `ENTRYPOINT`/`CMD`/`USER`. An image no entry matches fails to "pull"
//! (`ErrImagePull`, then `ImagePullBackOff`), which is how tests simulate a bad image.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;

/// Everything a [`super::Kubelet`] needs to start.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// The nodes this kubelet registers and runs pods for.
    pub nodes: Vec<NodeConfig>,
    /// Image reference → host files.
    pub images: ImageMap,
    /// State directory: `pods/<uid>/` (volumes, writable layers, hosts files), `volumes/`
    /// (persistent volume claims). Created if missing.
    pub root: PathBuf,
    /// Where container output goes: the API server's log directory (`pods/log` reads it).
    pub logs_dir: PathBuf,
    /// The `neptune-pod-init` binary (this crate's), which enters a pod's private mount
    /// namespace and root and then executes the container's command.
    pub pod_init: PathBuf,
    /// Third octet of the loopback /24 (`127.0.<subnet>.0`) pod and node addresses come from;
    /// `None` leases a free one (a lock file per subnet, so twins in parallel never share one).
    pub subnet: Option<u8>,
    /// Periods, grace times and back-off.
    pub timings: Timings,
    /// The API server as pods see it (`KUBERNETES_SERVICE_HOST`/`PORT`, the service-account
    /// token and CA mounted at `/var/run/secrets/kubernetes.io/serviceaccount`), when pods
    /// should be able to call it the in-cluster way.
    pub in_cluster: Option<InCluster>,
    /// Name the kubelet reports as the source of its Events.
    pub component: String,
}

impl KubeletConfig {
    /// Two nodes (`twin-node-0`, `twin-node-1`) with the default capacity, the given images;
    /// state under `root`, logs where the API server reads them.
    pub fn new(
        root: impl Into<PathBuf>,
        logs_dir: impl Into<PathBuf>,
        pod_init: impl Into<PathBuf>,
        images: ImageMap,
    ) -> Self {
        Self {
            nodes: (0..2)
                .map(|i| NodeConfig::new(format!("twin-node-{i}")))
                .collect(),
            images,
            root: root.into(),
            logs_dir: logs_dir.into(),
            pod_init: pod_init.into(),
            subnet: None,
            timings: Timings::default(),
            in_cluster: None,
            component: "kubelet".into(),
        }
    }
}

/// API server coordinates handed to pods that automount a service-account token.
#[derive(Clone, Debug)]
pub struct InCluster {
    /// `KUBERNETES_SERVICE_HOST` (an address pods can reach: the API server's loopback IP).
    pub host: String,
    /// `KUBERNETES_SERVICE_PORT`.
    pub port: u16,
    /// PEM of the CA that signed the API server's certificate (`ca.crt`).
    pub ca_pem: String,
    /// Bearer token the API server accepts (`token`).
    pub token: String,
}

/// One twin node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Node name (also its `kubernetes.io/hostname` label).
    pub name: String,
    /// Extra labels (nodeSelector/affinity match on these).
    pub labels: BTreeMap<String, String>,
    /// Taints (pods need tolerations for them).
    pub taints: Vec<Taint>,
    /// Allocatable CPU in millicores. The twin overcommits the machine on purpose: this is what
    /// the scheduler fits requests into, not what the host has.
    pub cpu_millis: u64,
    /// Allocatable memory in bytes.
    pub memory_bytes: u64,
    /// Maximum pods on the node.
    pub max_pods: u32,
}

impl NodeConfig {
    /// A node with 16 CPUs, 64 GiB and 110 pods (a real kubelet's default pod limit).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            cpu_millis: 16_000,
            memory_bytes: 64 << 30,
            max_pods: 110,
        }
    }
}

/// Periods and grace times. Defaults are the real components' where one exists.
#[derive(Clone, Debug)]
pub struct Timings {
    /// How often a node posts its Ready heartbeat (kubelet `nodeStatusUpdateFrequency`: 10 s).
    pub node_status_interval: Duration,
    /// How long without a heartbeat before the node controller marks a node NotReady/Unknown
    /// (`node-monitor-grace-period`: 40 s).
    pub node_monitor_grace: Duration,
    /// How long a NotReady node's pods are kept before they are evicted (deleted with their
    /// grace; they then stay Terminating until force-deleted, as on a real cluster). `None`
    /// never evicts. Real clusters: 300 s (the default `not-ready`/`unreachable` tolerations).
    pub pod_eviction_timeout: Option<Duration>,
    /// First container restart back-off (10 s), doubled per restart up to `backoff_max` (300 s).
    pub backoff_initial: Duration,
    /// Cap of the container restart back-off.
    pub backoff_max: Duration,
    /// A container that ran this long resets its back-off (10 min).
    pub backoff_reset: Duration,
    /// How often memory use is read from /proc and compared with limits.
    pub memory_poll: Duration,
    /// Retry period for pods that cannot start yet (missing ConfigMap, unschedulable...).
    pub retry: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            node_status_interval: Duration::from_secs(10),
            node_monitor_grace: Duration::from_secs(40),
            pod_eviction_timeout: Some(Duration::from_secs(300)),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            backoff_reset: Duration::from_secs(600),
            memory_poll: Duration::from_millis(250),
            retry: Duration::from_secs(2),
        }
    }
}

/// Image references → what they contain, first match wins.
#[derive(Clone, Debug, Default)]
pub struct ImageMap {
    entries: Vec<Image>,
}

impl ImageMap {
    /// An empty map (every pull fails).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an image; earlier entries win.
    #[must_use]
    pub fn with(mut self, image: Image) -> Self {
        self.entries.push(image);
        self
    }

    /// The image `reference` resolves to, if any entry matches it.
    pub fn resolve(&self, reference: &str) -> Option<&Image> {
        self.entries.iter().find(|i| i.matches(reference))
    }
}

/// What an image reference stands for.
#[derive(Clone, Debug)]
pub struct Image {
    /// Glob over the whole reference, e.g. `neptune:*` or `*/neptune:*`.
    pattern: glob::Pattern,
    /// In-image path → host file, bind-mounted read-only into the pod's root.
    pub files: BTreeMap<String, PathBuf>,
    /// `ENTRYPOINT` (used when the container has no `command`).
    pub entrypoint: Vec<String>,
    /// `CMD` (used when the container has neither `command` nor `args`).
    pub cmd: Vec<String>,
    /// `USER` (uid) the container runs as unless `runAsUser` says otherwise.
    pub user: u32,
    /// `ENV` of the image (e.g. `PATH`), before the container's own env.
    pub env: Vec<(String, String)>,
}

impl Image {
    /// An image matching `pattern` with no files, running as root, `PATH` set.
    ///
    /// # Errors
    /// When `pattern` is not a valid glob.
    pub fn new(pattern: &str) -> Result<Self, glob::PatternError> {
        Ok(Self {
            pattern: glob::Pattern::new(pattern)?,
            files: BTreeMap::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            user: 0,
            env: vec![(
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )],
        })
    }

    /// Adds a file at `in_image` backed by the host file `host`.
    #[must_use]
    pub fn file(mut self, in_image: &str, host: impl Into<PathBuf>) -> Self {
        self.files.insert(in_image.to_string(), host.into());
        self
    }

    /// Sets `ENTRYPOINT`.
    #[must_use]
    pub fn entrypoint(mut self, entrypoint: &[&str]) -> Self {
        self.entrypoint = entrypoint.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Sets `USER`.
    #[must_use]
    pub fn user(mut self, uid: u32) -> Self {
        self.user = uid;
        self
    }

    /// Whether this image stands for `reference`.
    pub fn matches(&self, reference: &str) -> bool {
        self.pattern.matches(reference)
    }

    /// The image's pattern as written.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }
}

/// The image map of a Neptune build: `neptune:*` and `*/neptune:*` are the `neptune` and
/// `neptune-operator` binaries found in `bin_dir` (e.g. `target/ci`), at `/usr/local/bin` as in
/// the project's Dockerfile (distroless `nonroot`: uid 65532, `ENTRYPOINT ["neptune"]`).
///
/// # Errors
/// Never for these fixed patterns; the `Result` is `Image::new`'s.
pub fn neptune_images(bin_dir: &std::path::Path) -> Result<ImageMap, glob::PatternError> {
    let mut map = ImageMap::new();
    for pattern in ["neptune:*", "*/neptune:*"] {
        map = map.with(
            Image::new(pattern)?
                .file("/usr/local/bin/neptune", bin_dir.join("neptune"))
                .file(
                    "/usr/local/bin/neptune-operator",
                    bin_dir.join("neptune-operator"),
                )
                .entrypoint(&["/usr/local/bin/neptune"])
                .user(65532),
        );
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_image_wins_and_unknown_images_do_not_resolve() {
        let map = neptune_images(std::path::Path::new("/b"))
            .unwrap()
            .with(Image::new("*").unwrap());
        let img = map.resolve("neptune:dev").unwrap();
        assert_eq!(img.pattern(), "neptune:*");
        assert_eq!(
            img.files["/usr/local/bin/neptune"],
            PathBuf::from("/b/neptune")
        );
        assert_eq!(
            map.resolve("registry.example.com/neptune:0.1.0")
                .unwrap()
                .pattern(),
            "*/neptune:*"
        );
        assert_eq!(map.resolve("busybox:1").unwrap().pattern(), "*");
        assert!(
            neptune_images(std::path::Path::new("/b"))
                .unwrap()
                .resolve("nginx:latest")
                .is_none()
        );
    }
}
