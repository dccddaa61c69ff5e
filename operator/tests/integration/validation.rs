//! The validation table: bad `StreamBatchApp`s, each refused at apply time by the CRD (schema
//! keyword or CEL rule, evaluated here offline) and again by the operator (or by parsing, for
//! values the typed spec cannot even hold), with a message naming the field.

use crate::common;

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use neptune_crds::StreamBatchApp;
use neptune_operator::validate::validate;
use serde_json::Value;

/// How the apiserver refuses a row.
enum Apply {
    /// A schema keyword (`minimum`, `enum`, `pattern`, `minLength`, ...) at the field.
    Schema(&'static str),
    /// A CEL rule whose message names the field.
    Cel,
    /// Accepted by the apiserver; only the operator refuses it (reports InvalidSpec).
    OperatorOnly,
}

struct Row {
    field: &'static str,
    spec: &'static str,
    apply: Apply,
}

const BASE: &str = "  image: neptune:dev\n  app: {name: fraud-detection}\n";

fn rows() -> Vec<Row> {
    use Apply::*;
    vec![
        Row {
            field: "spec.image",
            spec: "  image: ''\n  app: {name: fraud-detection}\n",
            apply: Schema("minLength"),
        },
        Row {
            field: "spec.app.name",
            spec: "  image: neptune:dev\n  app: {name: Fraud Detection}\n",
            apply: Schema("pattern"),
        },
        Row {
            field: "spec.executor.cores",
            spec: "  executor: {cores: 0}\n",
            apply: Schema("minimum"),
        },
        Row {
            field: "spec.executor.replicas",
            spec: "  executor: {replicas: -1}\n",
            apply: Schema("minimum"),
        },
        Row {
            field: "spec.executor.replicas",
            spec: "  executor: {replicas: 0}\n",
            apply: Schema("minimum"),
        },
        Row {
            field: "spec.scheduling.heartbeatIntervalMs",
            spec: "  scheduling: {heartbeatIntervalMs: 600000}\n",
            apply: Schema("maximum"),
        },
        Row {
            field: "spec.scheduling.heartbeatTimeoutMs",
            spec: "  scheduling: {heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 1500}\n",
            apply: Cel,
        },
        Row {
            field: "spec.jobs[score].intervalMs",
            spec: "  jobs: {score: {intervalMs: 7200000}}\n",
            apply: Schema("maximum"),
        },
        Row {
            field: "spec.app.config[scheduler.max_task_failures]",
            spec: "  image: neptune:dev\n  app: {name: synthetic, config: {scheduler.max_task_failures: '0'}}\n",
            apply: OperatorOnly,
        },
        Row {
            field: "spec.executor.memory",
            spec: "  executor: {memory: lots}\n",
            apply: Schema("pattern"),
        },
        Row {
            field: "spec.driver.memoryOverhead",
            spec: "  driver: {memoryOverhead: 1gb}\n",
            apply: Schema("pattern"),
        },
        Row {
            field: "spec.scheduling.policy",
            spec: "  scheduling: {policy: lifo}\n",
            apply: Schema("enum"),
        },
        Row {
            field: "spec.scheduling.placement",
            spec: "  scheduling: {placement: closest}\n",
            apply: Schema("enum"),
        },
        Row {
            field: "spec.restartPolicy.type",
            spec: "  restartPolicy: {type: Sometimes}\n",
            apply: Schema("enum"),
        },
        Row {
            field: "spec.scheduling.staticStreamExecutors",
            spec: "  executor: {replicas: 2}\n  scheduling: {policy: static, staticStreamExecutors: 2}\n",
            apply: Cel,
        },
        Row {
            field: "spec.scheduling.heartbeatTimeoutMs",
            spec: "  scheduling: {heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 500}\n",
            apply: Cel,
        },
        Row {
            field: "spec.restartPolicy.backoffMaxSeconds",
            spec: "  restartPolicy: {backoffInitialSeconds: 60, backoffMaxSeconds: 30}\n",
            apply: Cel,
        },
        Row {
            field: "spec.jobs[score].maxInFlight",
            spec: "  jobs: {score: {maxInFlight: 0}}\n",
            apply: Schema("minimum"),
        },
        Row {
            field: "spec.jobs[train].latencyTargetMs",
            spec: "  jobs: {train: {kind: batch, latencyTargetMs: 100}}\n",
            apply: Cel,
        },
        Row {
            field: "spec.monitoring.driverPort",
            spec: "  monitoring: {driverPort: 7077}\n",
            apply: Cel,
        },
        Row {
            field: "spec.driver.labels[neptune.dev/app]",
            spec: "  driver: {labels: {neptune.dev/app: other}}\n",
            apply: Cel,
        },
        Row {
            field: "spec.driver.memory",
            spec: "  driver: {memory: 16Mi}\n",
            apply: OperatorOnly,
        },
        Row {
            field: "spec.app.config[scheduler.placement]",
            spec: "  image: neptune:dev\n  app: {name: synthetic, config: {scheduler.placement: lb}}\n",
            apply: OperatorOnly,
        },
        Row {
            field: "spec.executor.podTemplate.spec.containers[0].image",
            spec: "  executor: {podTemplate: {spec: {containers: [{name: executor, image: x}]}}}\n",
            apply: OperatorOnly,
        },
        Row {
            field: "spec.driver.env[POD_IP]",
            spec: "  driver: {env: [{name: POD_IP, value: 1.2.3.4}]}\n",
            apply: OperatorOnly,
        },
        Row {
            field: "spec.jobs[Bad Job]",
            spec: "  jobs: {Bad Job: {kind: stream}}\n",
            apply: OperatorOnly,
        },
    ]
}

fn manifest(spec: &str) -> Value {
    let body = if spec.contains("  image:") {
        spec.to_string()
    } else {
        format!("{BASE}{spec}")
    };
    let text = format!(
        "apiVersion: neptune.dev/v1alpha1\nkind: StreamBatchApp\nmetadata: {{name: demo, namespace: ns}}\nspec:\n{body}"
    );
    serde_yaml::from_str(&text).unwrap()
}

fn crd_schema() -> Value {
    let crd = StreamBatchApp::crd();
    let v = &crd.spec.versions[0];
    serde_json::to_value(
        v.schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// The schema node of `field` (`spec.a.b`, map keys in brackets are skipped as additionalProperties).
fn schema_at<'a>(root: &'a Value, field: &str) -> &'a Value {
    let mut node = root;
    for part in field.split('.') {
        let (name, key) = match part.split_once('[') {
            Some((n, _)) => (n, true),
            None => (part, false),
        };
        node = &node["properties"][name];
        if key {
            node = &node["additionalProperties"];
        }
    }
    node
}

#[test]
fn every_bad_cr_is_refused_with_a_message_naming_its_field() {
    let schema = crd_schema();
    let validator = Validator::new();
    let rows = rows();
    assert!(rows.len() >= 10);
    for row in rows {
        let cr = manifest(row.spec);
        // Apply time.
        match row.apply {
            Apply::Schema(keyword) => {
                let node = schema_at(&schema, row.field);
                assert!(
                    node.get(keyword).is_some(),
                    "{}: no `{keyword}` in the CRD schema: {node}",
                    row.field
                );
            }
            Apply::Cel => {
                let errs = validator.validate(&schema, &cr, None).expect_err(row.field);
                let plain = row.field.split('[').next().unwrap();
                let leaf = plain.rsplit('.').next().unwrap();
                assert!(
                    errs.iter().any(|e| e.message.contains(leaf)),
                    "{}: CEL refused it but no message names it: {errs:?}",
                    row.field
                );
            }
            Apply::OperatorOnly => {
                assert!(
                    validator.validate(&schema, &cr, None).is_ok(),
                    "{}",
                    row.field
                );
            }
        }
        // The operator.
        match serde_json::from_value::<StreamBatchApp>(cr.clone()) {
            Ok(app) => {
                let err = validate(&app).expect_err(row.field);
                assert!(
                    err.0.iter().any(|e| e.field == row.field),
                    "{}: the operator's errors do not name it: {err}",
                    row.field
                );
            }
            Err(e) => {
                // Values the typed spec cannot hold never reach the operator; the apiserver's
                // enum check refuses them. The parse error still names the value.
                assert!(
                    matches!(row.apply, Apply::Schema("enum")),
                    "{}: {e}",
                    row.field
                );
            }
        }
    }
}

#[test]
fn overlong_app_name_is_refused_by_cel_and_operator() {
    let mut cr = manifest("");
    cr["metadata"]["name"] = Value::String("x".repeat(60));
    let errs = Validator::new()
        .validate(&crd_schema(), &cr, None)
        .unwrap_err();
    assert!(
        errs.iter().any(|e| e.message.contains("metadata.name")),
        "{errs:?}"
    );
    let app: StreamBatchApp = serde_json::from_value(cr).unwrap();
    assert_eq!(validate(&app).unwrap_err().0[0].field, "metadata.name");
}

#[test]
fn good_examples_pass_cel_and_operator() {
    let schema = crd_schema();
    for name in [
        "fraud-detection",
        "synthetic",
        "wordcount",
        "wordcount-kafka",
    ] {
        let app = common::example(name);
        let v = serde_json::to_value(&app).unwrap();
        Validator::new()
            .validate(&schema, &v, None)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        validate(&app).unwrap();
    }
}

#[test]
fn invalid_spec_sets_phase_invalid_and_condition_naming_the_field() {
    let mut app = common::app();
    app.spec.executor.pod.memory = "16Mi".into();
    let p = neptune_operator::lifecycle::plan(
        &app,
        &Default::default(),
        common::at(0),
        &Default::default(),
    );
    assert_eq!(
        p.status.phase,
        Some(neptune_crds::v1alpha1::AppPhase::Invalid)
    );
    let c = p
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "InvalidSpec")
        .unwrap();
    assert_eq!(c.status, "True");
    assert!(c.message.contains("spec.executor.memory"), "{}", c.message);
    assert!(
        p.actions.is_empty(),
        "nothing is created for an invalid spec"
    );
    let ev = p.events.iter().find(|e| e.reason == "InvalidSpec").unwrap();
    assert_eq!(ev.kind, neptune_operator::lifecycle::EventKind::Warning);
    assert!(ev.note.contains("spec.executor.memory"), "{}", ev.note);
    // Another edit, another problem: another event naming the new field.
    let mut next = app.clone();
    next.status = Some(p.status.clone());
    next.spec.driver.pod.memory = "1Ki".into();
    let p = neptune_operator::lifecycle::plan(
        &next,
        &Default::default(),
        common::at(10),
        &Default::default(),
    );
    let ev = p.events.iter().find(|e| e.reason == "InvalidSpec").unwrap();
    assert!(ev.note.contains("spec.driver.memory"), "{}", ev.note);
}
