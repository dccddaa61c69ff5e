//! The contract with the CRD: every bad `StreamBatchApp` in the operator's validation table
//! (`operator/tests/integration/validation.rs`, read from the source so a new row is checked here too) is
//! refused by the twin at apply time with `422 Invalid` and a cause naming its field, except the
//! rows only the operator refuses, which the twin must accept; and the examples in
//! `examples/k8s/` are accepted (with the CRD's defaults filled in).

use crate::common;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Deserialize;
use serde_json::Value;

struct Row {
    field: String,
    spec: String,
    apply: String,
}

/// The rows of the operator's table.
fn rows() -> Vec<Row> {
    let src =
        std::fs::read_to_string(common::root().join("operator/tests/integration/validation.rs"))
            .unwrap();
    let re = regex::Regex::new(
        r#"Row \{\s*field: "((?:[^"\\]|\\.)*)",\s*spec: "((?:[^"\\]|\\.)*)",\s*apply: (\w+)"#,
    )
    .unwrap();
    let rows: Vec<Row> = re
        .captures_iter(&src)
        .map(|c| Row {
            field: c[1].to_string(),
            spec: c[2].replace("\\n", "\n").replace("\\'", "'"),
            apply: c[3].to_string(),
        })
        .collect();
    assert!(
        rows.len() >= 15,
        "could not read the operator's table: {} rows",
        rows.len()
    );
    rows
}

fn manifest(name: &str, spec: &str) -> Value {
    const BASE: &str = "  image: neptune:dev\n  app: {name: fraud-detection}\n";
    let body = if spec.contains("  image:") {
        spec.to_string()
    } else {
        format!("{BASE}{spec}")
    };
    let text = format!(
        "apiVersion: neptune.dev/v1alpha1\nkind: StreamBatchApp\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n{body}"
    );
    serde_yaml::from_str(&text).unwrap()
}

fn apps(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("neptune.dev", "v1alpha1", "StreamBatchApp");
    Api::namespaced_with(
        client,
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "streambatchapps"),
    )
}

#[tokio::test]
async fn every_bad_cr_of_the_operator_table_is_refused_with_its_field() {
    let twin = common::twin().await;
    common::install_crd(&twin, "ns");
    let api = apps(twin.client().await.unwrap(), "ns");
    let pp = PatchParams::apply("test").force();
    for (i, row) in rows().into_iter().enumerate() {
        let name = format!("row{i}");
        let result = api
            .patch(&name, &pp, &Patch::Apply(manifest(&name, &row.spec)))
            .await;
        if row.apply == "OperatorOnly" {
            assert!(
                result.is_ok(),
                "{}: the CRD accepts it, the operator refuses it: {result:?}",
                row.field
            );
            continue;
        }
        let kube::Error::Api(status) = result.expect_err(&row.field) else {
            panic!("{}: not an API error", row.field);
        };
        assert_eq!(status.code, 422, "{}: {status:?}", row.field);
        // The field, without map keys: the schema names `spec.jobs[train]`'s rule by its
        // path, CEL rules by their fieldPath.
        let plain = row.field.split('[').next().unwrap();
        let leaf = plain.rsplit('.').next().unwrap();
        assert!(
            status.message.contains(plain) || status.message.contains(leaf),
            "{}: the message does not name the field: {}",
            row.field,
            status.message
        );
    }
}

#[tokio::test]
async fn examples_are_accepted_and_defaulted() {
    let twin = common::twin().await;
    common::install_crd(&twin, "ns");
    let api = apps(twin.client().await.unwrap(), "ns");
    for name in [
        "fraud-detection",
        "synthetic",
        "wordcount",
        "wordcount-kafka",
    ] {
        let text =
            std::fs::read_to_string(common::root().join(format!("examples/k8s/{name}.yaml")))
                .unwrap();
        // wordcount.yaml also holds its input ConfigMap, wordcount-kafka.yaml its checkpoint
        // claim: take the app's document.
        let obj = serde_yaml::Deserializer::from_str(&text)
            .map(Value::deserialize)
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .into_iter()
            .find(|d| d["kind"] == "StreamBatchApp")
            .unwrap_or_else(|| panic!("{name}: no StreamBatchApp"));
        let applied = api
            .patch(name, &PatchParams::apply("test"), &Patch::Apply(obj))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let v = serde_json::to_value(&applied).unwrap();
        assert_eq!(v["metadata"]["generation"], 1);
        assert!(
            v["spec"]["monitoring"].is_object(),
            "{name}: defaults applied: {}",
            v["spec"]
        );
    }
    // An overlong name is refused by the CRD's root CEL rule.
    let long = "x".repeat(60);
    let err = api
        .patch(
            &long,
            &PatchParams::apply("test"),
            &Patch::Apply(manifest(&long, "")),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("metadata.name"), "{err}");
}
