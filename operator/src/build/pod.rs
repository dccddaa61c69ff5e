//! The parts every Neptune pod shares: metadata, hardened security contexts, HTTP probes,
//! resources from cores and memory, a writable `/tmp` under a read-only root filesystem, the
//! app's credentials Secret mounted read-only (`NEPTUNE_TLS_DIR`), the pod IP from the downward
//! API (every server binds it, never `0.0.0.0`), the user's pod
//! template merged under all that, and the spec hash.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, Pod, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use neptune_crds::StreamBatchApp;
use neptune_crds::labels as l;
use neptune_crds::v1alpha1::PodSpec as SbaPodSpec;

use super::secret::{TLS_FILE_MODE, TLS_MOUNT, TLS_VOLUME, tls_secret_name};
use super::{DEFAULT_BINARY, RUN_AS_USER, Role, child_labels, owner_reference, spec_hash_of};
use crate::template;

/// Environment variables the operator sets on the main container (a template or `env` may not).
pub const OPERATOR_ENV: &[&str] = &[
    "POD_NAME",
    "POD_NAMESPACE",
    "POD_IP",
    "NEPTUNE_EXECUTOR_ID",
    "NEPTUNE_TLS_DIR",
];
/// The operator's writable `/tmp` volume (the root filesystem is read-only).
pub const TMP_VOLUME: &str = "tmp";
/// Where it is mounted.
pub const TMP_MOUNT: &str = "/tmp";

/// What differs between the driver and executor pods.
pub(super) struct PodParts<'a> {
    pub name: String,
    pub role: Role,
    pub args: Vec<String>,
    /// `args` as hashed: the same, except values that may change without replacing the pod
    /// (the driver's `--executors N`) replaced by a placeholder.
    pub hash_args: Vec<String>,
    pub extra_env: Vec<EnvVar>,
    pub ports: Vec<(&'static str, i32)>,
    pub http_port: i32,
    pub memory_limit: u64,
    pub extra_labels: BTreeMap<String, String>,
    /// The driver attempt the pod belongs to.
    pub attempt: i32,
    /// The user's pod template, parsed and checked by `validate`.
    pub template: Option<&'a PodTemplateSpec>,
}

/// Builds a pod for `app` from its role-specific spec and parts.
pub(super) fn build_pod(app: &StreamBatchApp, spec: &SbaPodSpec, parts: PodParts<'_>) -> Pod {
    let s = &app.spec;
    let main = parts.role.as_str();
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_IP", "status.podIP"),
        EnvVar {
            name: "NEPTUNE_TLS_DIR".into(),
            value: Some(TLS_MOUNT.into()),
            value_from: None,
        },
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
        name: main.to_string(),
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
        volume_mounts: Some(vec![
            VolumeMount {
                name: TMP_VOLUME.into(),
                mount_path: TMP_MOUNT.into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: TLS_VOLUME.into(),
                mount_path: TLS_MOUNT.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
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
        volumes: Some(vec![
            Volume {
                name: TMP_VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
            Volume {
                name: TLS_VOLUME.into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(tls_secret_name(
                        app.metadata.name.as_deref().unwrap_or_default(),
                    )),
                    default_mode: Some(TLS_FILE_MODE),
                    optional: Some(false),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    };
    let pod_spec = template::merge(pod_spec, parts.template, main);
    let hash = spec_hash_of(&hashable(&pod_spec, parts.hash_args));
    // Labels and annotations from the spec: never hashed (a pod keeps running when they
    // change); the lifecycle patches them onto running pods, using the key list recorded in
    // `USER_METADATA` to delete removed keys.
    let (mut user_labels, mut user_annotations) = template::user_metadata(parts.template);
    user_labels.extend(spec.labels.clone());
    user_annotations.extend(spec.annotations.clone());
    if s.monitoring.annotate_pods {
        user_annotations.extend([
            ("prometheus.io/scrape".to_string(), "true".to_string()),
            (
                "prometheus.io/port".to_string(),
                parts.http_port.to_string(),
            ),
            ("prometheus.io/path".to_string(), "/metrics".to_string()),
        ]);
    }
    let mut labels = child_labels(app, parts.role, &user_labels);
    labels.extend(parts.extra_labels);
    labels.insert(l::ATTEMPT.to_string(), parts.attempt.to_string());
    let mut annotations = user_annotations.clone();
    annotations.insert(
        l::USER_METADATA.to_string(),
        user_metadata_keys(&user_labels, &user_annotations),
    );
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

/// The pod spec as hashed: everything that defines the pod, with the main container's args
/// replaced by their hashed form.
fn hashable(spec: &PodSpec, hash_args: Vec<String>) -> serde_json::Value {
    let mut spec = spec.clone();
    spec.containers[0].args = Some(hash_args);
    serde_json::to_value(spec).unwrap_or_default()
}

/// The keys of the spec-set labels and annotations, as the `USER_METADATA` annotation holds
/// them: `{"annotations":[...],"labels":[...]}`.
fn user_metadata_keys(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> String {
    let keys = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<BTreeSet<_>>();
    serde_json::json!({"annotations": keys(annotations), "labels": keys(labels)}).to_string()
}

/// The spec-set label and annotation keys a pod was built with (empty for pods an older
/// operator built).
pub fn recorded_user_metadata(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    #[derive(serde::Deserialize, Default)]
    struct Keys {
        #[serde(default)]
        labels: BTreeSet<String>,
        #[serde(default)]
        annotations: BTreeSet<String>,
    }
    let keys: Keys = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(l::USER_METADATA))
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    (keys.labels, keys.annotations)
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
