//! Pod templates: the merge (main container by name keeps the operator's command, args, ports,
//! probes, cpu and memory and gains mounts, env and extra resources; lists appended; the rest
//! from the template), the refusals (each an InvalidSpec naming the template field), and the
//! wordcount example, whose input comes from a ConfigMap in the same file.

use crate::common;

use common::*;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use neptune_crds::StreamBatchApp;
use neptune_crds::v1alpha1::{AppPhase, condition_types as ct};
use neptune_operator::build;
use neptune_operator::validate::validate;

fn with_template(role: &str, template: &str) -> StreamBatchApp {
    let indented: String = template.lines().map(|l| format!("      {l}\n")).collect();
    app_with(&format!(
        "  image: neptune:dev\n  app: {{name: fraud-detection}}\n  {role}:\n    podTemplate:\n{indented}"
    ))
}

fn pods(app: &StreamBatchApp) -> (Pod, Pod) {
    let v = validate(app).unwrap_or_else(|e| panic!("{e}"));
    (
        build::driver_pod(app, &v, 1),
        build::executor_pod(app, &v, 0, 1),
    )
}

fn spec(p: &Pod) -> &PodSpec {
    p.spec.as_ref().unwrap()
}

fn refused(app: &StreamBatchApp) -> Vec<String> {
    validate(app)
        .expect_err("the template must be refused")
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn main_container_keeps_the_operators_fields_and_gains_mounts_env_and_extra_resources() {
    let app = with_template(
        "executor",
        r#"metadata: {labels: {team: risk}, annotations: {note: hi}}
spec:
  priorityClassName: batch-high
  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: gpu, operator: Exists}]}]}}}
  tolerations: [{key: gpu, operator: Exists}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: input}}]
  initContainers: [{name: warm, image: busybox}]
  securityContext: {fsGroup: 2000}
  containers:
    - name: executor
      env: [{name: RUST_LOG, value: debug}]
      volumeMounts: [{name: data, mountPath: /data}]
      resources: {limits: {nvidia.com/gpu: 2}, requests: {nvidia.com/gpu: 2}}
    - name: proxy
      image: envoyproxy/envoy:v1.30
"#,
    );
    let (driver, executor) = pods(&app);
    assert_eq!(
        spec(&driver).priority_class_name,
        None,
        "driver template unset"
    );
    let s = spec(&executor);
    assert_eq!(s.priority_class_name.as_deref(), Some("batch-high"));
    assert!(s.affinity.is_some());
    assert_eq!(s.restart_policy.as_deref(), Some("Never"));
    assert_eq!(s.init_containers.as_ref().unwrap()[0].name, "warm");
    let names: Vec<_> = s.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["executor", "proxy"], "main first, sidecars after");
    let volumes: Vec<_> = s
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(volumes, ["tmp", "neptune-tls", "data"]);
    let sc = s.security_context.as_ref().unwrap();
    assert_eq!(sc.fs_group, Some(2000), "the template's field wins");
    assert_eq!(sc.run_as_non_root, Some(true), "the operator's others stay");
    let main = &s.containers[0];
    assert_eq!(main.args.as_ref().unwrap()[0], "executor");
    assert!(main.readiness_probe.is_some());
    assert_eq!(main.image.as_deref(), Some("neptune:dev"));
    let env: Vec<_> = main
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        env,
        [
            "POD_NAME",
            "POD_NAMESPACE",
            "POD_IP",
            "NEPTUNE_TLS_DIR",
            "NEPTUNE_EXECUTOR_ID",
            "RUST_LOG"
        ],
        "the operator's first, so the user's can refer to them"
    );
    let mounts: Vec<_> = main
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(mounts, ["/tmp", "/var/run/neptune/tls", "/data"]);
    let limits = main.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["nvidia.com/gpu"].0, "2");
    assert_eq!(limits["cpu"].0, "1");
    let labels = executor.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["team"], "risk");
    assert_eq!(labels["neptune.dev/role"], "executor");
    assert_eq!(
        executor.metadata.annotations.as_ref().unwrap()["note"],
        "hi"
    );
}

#[test]
fn template_edits_replace_the_pods_they_define() {
    let a = with_template("executor", "spec: {priorityClassName: a}\n");
    let b = with_template("executor", "spec: {priorityClassName: b}\n");
    let hash = |app: &StreamBatchApp| {
        pods(app).1.metadata.annotations.unwrap()[neptune_crds::labels::SPEC_HASH].clone()
    };
    assert_ne!(hash(&a), hash(&b));
    let c = with_template(
        "executor",
        "metadata: {labels: {x: y}}\nspec: {priorityClassName: a}\n",
    );
    assert_eq!(
        hash(&a),
        hash(&c),
        "template labels are patched, not hashed"
    );
}

#[test]
fn conflicting_or_operator_owned_fields_are_refused_naming_the_field() {
    let rows: &[(&str, &str, &str)] = &[
        (
            "driver",
            "spec: {containers: [{name: driver, image: evil:latest}]}",
            "spec.driver.podTemplate.spec.containers[0].image",
        ),
        (
            "executor",
            "spec: {containers: [{name: executor, args: [x]}]}",
            "spec.executor.podTemplate.spec.containers[0].args",
        ),
        (
            "executor",
            "spec: {containers: [{name: executor, readinessProbe: {exec: {command: [x]}}}]}",
            "spec.executor.podTemplate.spec.containers[0].readinessProbe",
        ),
        (
            "executor",
            "spec: {containers: [{name: executor, resources: {limits: {memory: 9Gi}}}]}",
            "spec.executor.podTemplate.spec.containers[0].resources.limits.memory",
        ),
        (
            "driver",
            "spec: {containers: [{name: driver, env: [{name: POD_IP, value: 1.2.3.4}]}]}",
            "spec.driver.podTemplate.spec.containers[0].env[0]",
        ),
        (
            "driver",
            "spec: {containers: [{name: driver, volumeMounts: [{name: x, mountPath: /tmp}]}], volumes: [{name: x, emptyDir: {}}]}",
            "spec.driver.podTemplate.spec.containers[0].volumeMounts[0].mountPath",
        ),
        (
            "driver",
            "spec: {volumes: [{name: tmp, emptyDir: {}}]}",
            "spec.driver.podTemplate.spec.volumes[0].name",
        ),
        (
            "executor",
            "spec: {restartPolicy: Always}",
            "spec.executor.podTemplate.spec.restartPolicy",
        ),
        (
            "executor",
            "metadata: {name: other}",
            "spec.executor.podTemplate.metadata.name",
        ),
        (
            "executor",
            "metadata: {labels: {neptune.dev/app: other}}",
            "spec.executor.podTemplate.metadata.labels[neptune.dev/app]",
        ),
        (
            "executor",
            "spec: {initContainers: [{name: executor, image: x}]}",
            "spec.executor.podTemplate.spec.initContainers[0].name",
        ),
        (
            "executor",
            "spec: {containers: [{name: executor, volumeMount: []}]}",
            "spec.executor.podTemplate.spec.containers[0].volumeMount",
        ),
        (
            "executor",
            "spec: {nodeSelector: {zone: 7}}",
            "spec.executor.podTemplate.spec.nodeSelector.zone",
        ),
    ];
    for (role, template, field) in rows {
        let app = with_template(role, template);
        let errs = refused(&app);
        assert!(
            errs.iter().any(|e| e.starts_with(&format!("{field}:"))),
            "{template}: expected an error at {field}, got {errs:?}"
        );
    }
    // A label conflicting with spec.executor.labels.
    let app = app_with(
        "  image: neptune:dev\n  app: {name: fraud-detection}\n  executor:\n    labels: {team: a}\n    podTemplate: {metadata: {labels: {team: b}}}\n",
    );
    let errs = refused(&app);
    assert!(
        errs.iter().any(
            |e| e.contains("spec.executor.podTemplate.metadata.labels[team]")
                && e.contains("spec.executor.labels[team]")
        ),
        "{errs:?}"
    );
}

#[test]
fn an_invalid_template_makes_the_app_invalid_with_a_warning_event_naming_the_field() {
    let app = with_template(
        "driver",
        "spec: {containers: [{name: driver, command: [sh]}]}",
    );
    let (p, next) = step(&app, &observed(None, vec![]), 0);
    assert_eq!(p.status.phase, Some(AppPhase::Invalid));
    assert!(p.actions.is_empty());
    let c = cond(&p, ct::INVALID_SPEC);
    assert_eq!(c, ("True", "InvalidSpec"));
    let ev = p.events.iter().find(|e| e.reason == "InvalidSpec").unwrap();
    assert!(
        ev.note
            .contains("spec.driver.podTemplate.spec.containers[0].command"),
        "{}",
        ev.note
    );
    // The same problem again: no second event.
    let (p, _) = step(&next, &observed(None, vec![]), 10);
    assert!(p.events.is_empty(), "{:?}", p.events);
}

#[test]
fn wordcount_example_mounts_its_configmap_where_its_config_reads_the_input() {
    let docs = example_docs("wordcount");
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("a ConfigMap in the file");
    let cm_name = cm["metadata"]["name"].as_str().unwrap();
    let text: String = cm["data"]
        .as_mapping()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(text.split_whitespace().count() > 10, "some words to count");
    let app = stored(example("wordcount"));
    let input = app
        .spec
        .app
        .config
        .get("input")
        .expect("wordcount needs `input`");
    let (driver, executor) = pods(&app);
    for pod in [&driver, &executor] {
        let s = spec(pod);
        let volume = s
            .volumes
            .iter()
            .flatten()
            .find(|v| v.config_map.as_ref().is_some_and(|c| c.name == cm_name))
            .unwrap_or_else(|| {
                panic!("{:?} does not mount ConfigMap {cm_name}", pod.metadata.name)
            });
        let mount = s.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == volume.name)
            .expect("the main container mounts it");
        assert!(
            input
                .trim_end_matches('/')
                .starts_with(mount.mount_path.trim_end_matches('/')),
            "input `{input}` is not under the mount {}",
            mount.mount_path
        );
    }
}
