//! Volume set-up on a temporary directory.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, DownwardAPIVolumeSource, EmptyDirVolumeSource,
    ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodSpec, Secret, SecretVolumeSource,
};

use super::*;

struct Fake(Option<Arc<ConfigMap>>, Option<Arc<Secret>>);

impl Objects for Fake {
    fn config_map(&self, _: &str, name: &str) -> Option<Arc<ConfigMap>> {
        self.0
            .clone()
            .filter(|c| c.metadata.name.as_deref() == Some(name))
    }
    fn secret(&self, _: &str, name: &str) -> Option<Arc<Secret>> {
        self.1
            .clone()
            .filter(|c| c.metadata.name.as_deref() == Some(name))
    }
}

fn cm(data: &[(&str, &str)]) -> Arc<ConfigMap> {
    let mut c = ConfigMap::default();
    c.metadata.name = Some("cfg".into());
    c.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    Arc::new(c)
}

fn pod(volumes: Vec<Volume>) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some("p".into());
    p.metadata.namespace = Some("ns".into());
    p.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
    p.spec = Some(PodSpec {
        volumes: Some(volumes),
        ..Default::default()
    });
    p
}

fn vol(name: &str) -> Volume {
    Volume {
        name: name.into(),
        ..Default::default()
    }
}

fn run(p: &Pod, objects: &Fake, root: &Path) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    set_up(&VolumeInputs {
        pod: p,
        objects,
        pod_volumes: &root.join("pod"),
        shared_volumes: &root.join("shared"),
        token: Some("tok"),
        node_cpu_millis: 1000,
        node_memory: 1 << 30,
    })
}

#[test]
fn config_maps_secrets_and_downward_files_are_written_and_updated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut secret = Secret::default();
    secret.metadata.name = Some("s".into());
    secret.data = Some([("pw".to_string(), ByteString(b"x".to_vec()))].into());
    let p = pod(vec![
        Volume {
            config_map: Some(ConfigMapVolumeSource {
                name: "cfg".into(),
                ..Default::default()
            }),
            ..vol("config")
        },
        Volume {
            secret: Some(SecretVolumeSource {
                secret_name: Some("s".into()),
                default_mode: Some(0o400),
                ..Default::default()
            }),
            ..vol("secret")
        },
        Volume {
            downward_api: Some(DownwardAPIVolumeSource {
                items: Some(vec![DownwardAPIVolumeFile {
                    path: "meta/labels".into(),
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.labels".into(),
                        api_version: None,
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..vol("info")
        },
        Volume {
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..vol("scratch")
        },
        Volume {
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: "data".into(),
                read_only: None,
            }),
            ..vol("data")
        },
    ]);
    let objects = Fake(Some(cm(&[("app.conf", "v1")])), Some(Arc::new(secret)));
    let paths = run(&p, &objects, dir.path()).unwrap();
    let conf = paths["config"].join("app.conf");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "v1");
    let pw = paths["secret"].join("pw");
    assert_eq!(std::fs::read_to_string(&pw).unwrap(), "x");
    let mode = std::fs::metadata(&pw).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);
    assert_eq!(
        std::fs::read_to_string(paths["info"].join("meta/labels")).unwrap(),
        "a=\"b\""
    );
    let scratch = std::fs::metadata(&paths["scratch"])
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(scratch, 0o777);
    assert!(paths["data"].ends_with("shared/pvc/ns/data"));

    // An update goes through the ..data swap; a file opened through the volume's link sees it.
    let objects = Fake(Some(cm(&[("app.conf", "v2"), ("extra", "e")])), objects.1);
    run(&p, &objects, dir.path()).unwrap();
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "v2");
    assert_eq!(
        std::fs::read_to_string(paths["config"].join("extra")).unwrap(),
        "e"
    );
    let payloads = std::fs::read_dir(&paths["config"])
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("..") && n != "..data"
        })
        .count();
    assert_eq!(payloads, 1, "the previous payload is removed");
}

#[test]
fn missing_objects_and_keys_are_named_unless_optional() {
    let dir = tempfile::tempdir().unwrap();
    let with = |name: &str, items: Option<Vec<KeyToPath>>, optional: Option<bool>| {
        pod(vec![Volume {
            config_map: Some(ConfigMapVolumeSource {
                name: name.into(),
                items,
                optional,
                ..Default::default()
            }),
            ..vol("config")
        }])
    };
    let objects = Fake(Some(cm(&[("a", "1")])), None);
    let err = run(&with("other", None, None), &objects, dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"config\" : configmap \"other\" not found"
    );
    let item = |key: &str| KeyToPath {
        key: key.into(),
        path: "renamed".into(),
        ..Default::default()
    };
    let err = run(
        &with("cfg", Some(vec![item("zz")]), None),
        &objects,
        dir.path(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("non-existent config key: zz"),
        "{err}"
    );
    assert!(run(&with("other", None, Some(true)), &objects, dir.path()).is_ok());
    let paths = run(
        &with("cfg", Some(vec![item("a")]), None),
        &objects,
        dir.path(),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(paths["config"].join("renamed")).unwrap(),
        "1"
    );
    assert!(!paths["config"].join("a").exists(), "only the listed items");
}

#[test]
fn sub_paths_stay_inside_their_volume() {
    let dir = tempfile::tempdir().unwrap();
    let vols: BTreeMap<String, PathBuf> = [("v".to_string(), dir.path().to_path_buf())].into();
    assert!(
        mount_source(&vols, "v", Some("a/b"))
            .unwrap()
            .ends_with("a/b")
    );
    assert!(matches!(
        mount_source(&vols, "v", Some("../x")),
        Err(VolumeError::SubPath(_))
    ));
    assert!(matches!(
        mount_source(&vols, "v", Some("/etc")),
        Err(VolumeError::SubPath(_))
    ));
    assert!(matches!(
        mount_source(&vols, "nope", None),
        Err(VolumeError::NoVolume(_))
    ));
}

#[test]
fn unsupported_volume_types_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = pod(vec![vol("nfs-thing")]);
    let err = run(&p, &Fake(None, None), dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"nfs-thing\" : volume type not supported by the cluster twin"
    );
}
