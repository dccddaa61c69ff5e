//! The app's credentials Secret `<app>-tls` (type `kubernetes.io/tls`): the CA certificate, the
//! member certificate and key every driver and executor pod presents, and the admin token. Pods
//! mount it read-only at [`TLS_MOUNT`]; the binaries read it through `NEPTUNE_TLS_DIR`.
//!
//! A fresh CA is made for every driver attempt (rotation is a restart, as with `neptune certs`):
//! the CA key exists only in the operator's memory while the Secret is written, so nothing can
//! issue another member certificate later. See docs/security.md, "On Kubernetes".

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use neptune_crds::StreamBatchApp;
use neptune_net::creds::{CA_FILE, CERT_FILE, KEY_FILE, TOKEN_FILE};
use neptune_net::issue::Issued;

use super::{app_labels, owner_reference};

/// The pods' volume of the Secret.
pub const TLS_VOLUME: &str = "neptune-tls";
/// Where pods mount it.
pub const TLS_MOUNT: &str = "/var/run/neptune/tls";
/// File mode of the mounted files: readable by the pods' `fsGroup`, by no other user (the
/// binaries refuse a key others may read).
pub const TLS_FILE_MODE: i32 = 0o440;

/// Name of the credentials Secret of the app called `app_name`.
pub fn tls_secret_name(app_name: &str) -> String {
    format!("{app_name}-tls")
}

/// The credentials Secret holding `issued`, owned by `app` (deleted with it).
pub fn tls_secret(app: &StreamBatchApp, issued: &Issued) -> Secret {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let data = BTreeMap::from([
        (CA_FILE.to_string(), bytes(&issued.ca_pem)),
        (CERT_FILE.to_string(), bytes(&issued.cert_pem)),
        (KEY_FILE.to_string(), bytes(&issued.key_pem)),
        (TOKEN_FILE.to_string(), bytes(issued.token.expose())),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(tls_secret_name(name)),
            namespace: app.metadata.namespace.clone(),
            labels: Some(app_labels(app)),
            owner_references: Some(vec![owner_reference(app)]),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        immutable: Some(false),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_holds_what_the_binaries_load_and_is_owned_by_the_app() {
        let app: StreamBatchApp = serde_yaml::from_str(
            "apiVersion: neptune.dev/v1alpha1\nkind: StreamBatchApp\nmetadata: {name: fd, namespace: ns, uid: u1}\nspec: {image: 'neptune:dev', app: {name: fraud-detection}}\n",
        )
        .unwrap();
        let issued = neptune_net::issue::issue("fd", &[], 1).unwrap();
        let s = tls_secret(&app, &issued);
        assert_eq!(s.metadata.name.as_deref(), Some("fd-tls"));
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(s.metadata.owner_references.as_ref().unwrap()[0].uid, "u1");
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[neptune_crds::labels::APP], "fd");
        // The whole app's, not a role's: no role or component label.
        assert!(
            !labels.contains_key(neptune_crds::labels::ROLE),
            "{labels:?}"
        );
        assert!(
            !labels.contains_key(neptune_crds::labels::COMPONENT),
            "{labels:?}"
        );
        let data = s.data.unwrap();
        let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
        // Written out as a mounted Secret would be, the binaries accept it.
        let dir = tempfile::tempdir().unwrap();
        for k in [CA_FILE, CERT_FILE, KEY_FILE, TOKEN_FILE] {
            let p = dir.path().join(k);
            std::fs::write(&p, text(k)).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(TLS_FILE_MODE as u32))
                .unwrap();
        }
        neptune_net::creds::Credentials::load(dir.path()).unwrap();
    }
}
