//! The parts every Neptune pod shares: metadata, hardened security contexts, HTTP probes,
//! resources from cores and memory, a writable `/tmp` under a read-only root filesystem.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, Pod, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use neptune_crds::StreamBatchApp;
use neptune_crds::labels as l;
use neptune_crds::v1alpha1::PodSpec as SbaPodSpec;

use super::{DEFAULT_BINARY, RUN_AS_USER, Role, child_labels, owner_reference, spec_hash_of};

/// What differs between the driver and executor pods.
pub(super) struct PodParts {
    pub name: String,
    pub role: Role,
    pub container: &'static str,
    pub args: Vec<String>,
    pub extra_env: Vec<EnvVar>,
    pub ports: Vec<(&'static str, i32)>,
    pub http_port: i32,
    pub memory_limit: u64,
    pub extra_labels: BTreeMap<String, String>,
    /// Arguments left out of the spec hash (they may change without restarting the pod).
    pub unhashed_args: usize,
}

/// Builds a pod for `app` from its role-specific spec and parts.
pub(super) fn build_pod(app: &StreamBatchApp, spec: &SbaPodSpec, parts: PodParts) -> Pod {
    let s = &app.spec;
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
    ];
    env.extend(parts.extra_env);
    env.extend(spec.env.iter().cloned());
    let memory = Quantity(neptune_crds::quantity::format_bytes(parts.memory_limit));
    let cpu = Quantity(spec.cores.to_string());
    let resources = BTreeMap::from([("cpu".to_string(), cpu), ("memory".to_string(), memory)]);
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let container = Container {
        name: parts.container.to_string(),
        image: Some(s.image.clone()),
        image_pull_policy: s.image_pull_policy.map(|p| p.as_str().to_string()),
        command: Some(vec![
            s.app
                .binary
                .clone()
                .unwrap_or_else(|| DEFAULT_BINARY.into()),
        ]),
        args: Some(parts.args.clone()),
        env: Some(env),
        ports: Some(
            parts
                .ports
                .iter()
                .map(|(name, port)| ContainerPort {
                    name: Some((*name).to_string()),
                    container_port: *port,
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        resources: Some(ResourceRequirements {
            requests: Some(resources.clone()),
            limits: Some(resources),
            ..ResourceRequirements::default()
        }),
        startup_probe: Some(probe("/healthz", 2, 60)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 3)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        }]),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };
    let pod_spec = PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: s.service_account_name.clone(),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        image_pull_secrets: (!s.image_pull_secrets.is_empty())
            .then(|| s.image_pull_secrets.clone()),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
        termination_grace_period_seconds: Some(30),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            fs_group: Some(RUN_AS_USER),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    };
    let hash = spec_hash_of(&hashable(&pod_spec, parts.unhashed_args));
    let mut labels = child_labels(app, parts.role, &spec.labels);
    labels.extend(parts.extra_labels);
    let mut annotations = spec.annotations.clone();
    if s.monitoring.annotate_pods {
        annotations.extend([
            ("prometheus.io/scrape".to_string(), "true".to_string()),
            (
                "prometheus.io/port".to_string(),
                parts.http_port.to_string(),
            ),
            ("prometheus.io/path".to_string(), "/metrics".to_string()),
        ]);
    }
    annotations.insert(l::SPEC_HASH.to_string(), hash);
    Pod {
        metadata: ObjectMeta {
            name: Some(parts.name),
            namespace: app.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner_reference(app)]),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// The pod spec as hashed: the last `unhashed` container args dropped.
fn hashable(spec: &PodSpec, unhashed: usize) -> serde_json::Value {
    let mut spec = spec.clone();
    if let Some(args) = spec.containers[0].args.as_mut() {
        args.truncate(args.len().saturating_sub(unhashed));
    }
    serde_json::to_value(spec).unwrap_or_default()
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// Environment variable with a pod field (downward API).
pub(super) fn downward_env(name: &str, path: &str) -> EnvVar {
    field_env(name, path)
}
