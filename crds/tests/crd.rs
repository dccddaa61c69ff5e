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
        [
            "Phase",
            "Policy",
            "Ready",
            "Desired",
            "Stream-P99",
            "SLO",
            "Age"
        ]
    );
}

/// The schema node of a `spec.a.b` path (`<job>` is the value of a map).
fn node<'a>(schema: &'a Value, crd_path: &str) -> &'a Value {
    let mut n = schema;
    for part in crd_path.split('.') {
        n = if part == "<job>" {
            &n["additionalProperties"]
        } else {
            &n["properties"][part]
        };
        assert!(!n.is_null(), "{crd_path}: no schema node at `{part}`");
    }
    n
}

#[test]
fn every_engine_setting_mapped_to_the_crd_has_the_settings_range_or_names() {
    // One place defines each setting (`neptune_config::keys`); the CRD, the CLI, the driver and
    // `docs/config.md` all take its range from there. Checked both ways for every mapped key.
    let schema = schema();
    let mut mapped = 0;
    for d in neptune_config::keys::ENGINE {
        let Some(path) = d.meta().crd else { continue };
        mapped += 1;
        let n = node(&schema, path);
        if let Some((lo, hi)) = d.bounds() {
            if n["type"] == "string" {
                // Quantities: the schema checks the grammar; the operator checks the range.
                assert_eq!(
                    n["pattern"].as_str(),
                    Some(neptune_config::quantity::MEMORY_PATTERN),
                    "{path}"
                );
                continue;
            }
            assert_eq!(n["minimum"].as_f64(), Some(lo), "{path} minimum");
            assert_eq!(n["maximum"].as_f64(), Some(hi), "{path} maximum");
        }
        if !d.choices().is_empty() {
            let names: Vec<&str> = n["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{path}: no enum"))
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(names, d.choices(), "{path} enum");
        }
    }
    assert!(mapped >= 10, "only {mapped} settings mapped to the CRD");
}

#[test]
fn one_range_change_reaches_the_crd_and_the_docs() {
    // The quantum's range as the CLI/driver enforce it, as the CRD states it, as the docs print it.
    let q = &neptune_config::keys::QUANTUM_MS;
    let too_big = (q.max + 1).to_string();
    let e = q.parse(&too_big).unwrap_err().to_string();
    assert!(
        e.contains(&format!("between {} and {}", q.min, q.max)),
        "{e}"
    );
    let schema = schema();
    let n = node(&schema, "spec.scheduling.quantumMs");
    assert_eq!(n["maximum"].as_f64(), Some(q.max as f64));
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md")).unwrap();
    assert!(
        docs.contains(&format!(
            "| `scheduler.quantum_ms` | integer (ms) | 1000 | {} – {} |",
            q.min, q.max
        )),
        "docs/config.md does not show the quantum's range"
    );
}
