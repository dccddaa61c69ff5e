//! The driver Service: headless, so executors reach the driver pod directly by DNS
//! (`<app>-driver.<ns>.svc`), published before the pod is Ready so executors can connect early.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use neptune_crds::{StreamBatchApp, ports};

use super::{Role, child_labels, owner_reference, role_selector};

/// Name of the driver Service of the app called `app_name`.
pub fn driver_service_name(app_name: &str) -> String {
    format!("{app_name}-driver")
}

/// URL executors dial: `https://<app>-driver.<ns>.svc:7077` (mutual TLS with the app's
/// credentials).
pub fn driver_url(app: &StreamBatchApp) -> String {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let ns = app.metadata.namespace.as_deref().unwrap_or("default");
    format!(
        "https://{}.{ns}.svc:{}",
        driver_service_name(name),
        ports::DRIVER_GRPC
    )
}

/// The driver Service (gRPC and HTTP ports).
pub fn driver_service(app: &StreamBatchApp) -> Service {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let port = |name: &str, port: i32| ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".into()),
        // gRPC is HTTP/2 over mutual TLS (no standard appProtocol says that); HTTP is plain.
        app_protocol: (name == "http").then(|| "http".into()),
        ..ServicePort::default()
    };
    Service {
        metadata: ObjectMeta {
            name: Some(driver_service_name(name)),
            namespace: app.metadata.namespace.clone(),
            labels: Some(child_labels(app, Role::Driver, &Default::default())),
            owner_references: Some(vec![owner_reference(app)]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(role_selector(app, Role::Driver)),
            ports: Some(vec![
                port("grpc", ports::DRIVER_GRPC),
                port("http", app.spec.monitoring.driver_port),
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
