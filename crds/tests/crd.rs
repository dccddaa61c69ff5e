//! Tests of the generated CRD: committed YAML has not drifted, every CEL rule compiles and fits the
//! apiserver's cost budget, and the scale/status subresources and printer columns are declared.

use kube::CustomResourceExt;
use kube::core::cel::{ScopeContext, WarningKind, analyze_rule, compile_schema};
use neptune_crds::StreamBatchApp;
use serde_json::Value;

fn schema() -> Value {
    let crd = StreamBatchApp::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap(),
    )
    .unwrap()
}

fn rules(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(rs)) = m.get("x-kubernetes-validations") {
                out.extend(rs.iter().map(|r| r["rule"].as_str().unwrap().to_string()));
            }
            m.values().for_each(|c| rules(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| rules(c, out)),
        _ => {}
    }
}

#[test]
fn committed_crd_yaml_matches_the_generator() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/streambatchapp.yaml");
    let committed = std::fs::read_to_string(path).unwrap();
    assert!(
        committed == neptune_crds::crd_yaml().unwrap(),
        "crds/streambatchapp.yaml is stale: run `cargo run -p neptune-crds --bin crdgen > crds/streambatchapp.yaml`"
    );
}

#[test]
fn every_cel_rule_compiles_and_fits_the_cost_budget() {
    let schema = schema();
    let compiled = compile_schema(&schema);
    assert!(
        !compiled.has_errors(),
        "{:?}",
        compiled.compilation_errors()
    );
    let mut all = Vec::new();
    rules(&schema, &mut all);
    assert!(
        all.len() >= 6,
        "expected the CEL rules in the schema, got {all:?}"
    );
    for rule in &all {
        let warnings = analyze_rule(rule, &compiled, ScopeContext::CrdValidation);
        // The scope check does not know comprehension variables (`k` in `exists(k, ...)`).
        let serious: Vec<_> = warnings
            .iter()
            .filter(|w| w.kind != WarningKind::WrongScope)
            .collect();
        assert!(serious.is_empty(), "rule `{rule}`: {serious:?}");
    }
}

#[test]
fn crd_declares_subresources_columns_and_short_name() {
    let crd = StreamBatchApp::crd();
    assert_eq!(crd.spec.group, "neptune.dev");
    assert_eq!(crd.spec.names.short_names, Some(vec!["sba".to_string()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    let sub = v.subresources.as_ref().unwrap();
    assert!(sub.status.is_some());
    let scale = sub.scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.executor.replicas");
    assert_eq!(scale.status_replicas_path, ".status.executors.ready");
    let columns: Vec<_> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        ["Phase", "Policy", "Ready", "Desired", "Stream-P99", "Age"]
    );
}
