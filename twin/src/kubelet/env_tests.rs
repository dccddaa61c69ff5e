//! Tests of the environment and command-line resolution (the kubelet's documented behaviour).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector, Container, EnvFromSource, EnvVar,
    EnvVarSource, ObjectFieldSelector, Pod, PodSpec, PodStatus, Secret, SecretKeySelector,
};

use super::*;
use crate::kubelet::config::Image;

struct Fake {
    cms: BTreeMap<String, Arc<ConfigMap>>,
    secrets: BTreeMap<String, Arc<Secret>>,
}

impl Objects for Fake {
    fn config_map(&self, ns: &str, name: &str) -> Option<Arc<ConfigMap>> {
        self.cms.get(&format!("{ns}/{name}")).cloned()
    }
    fn secret(&self, ns: &str, name: &str) -> Option<Arc<Secret>> {
        self.secrets.get(&format!("{ns}/{name}")).cloned()
    }
}

fn fake() -> Fake {
    let cm = ConfigMap {
        data: Some(
            [
                ("a".to_string(), "from-cm".to_string()),
                ("bad key".to_string(), "skipped".to_string()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let s = Secret {
        data: Some([("pw".to_string(), ByteString(b"hunter2".to_vec()))].into()),
        ..Default::default()
    };
    Fake {
        cms: [("ns/cm".to_string(), Arc::new(cm))].into(),
        secrets: [("ns/s".to_string(), Arc::new(s))].into(),
    }
}

fn var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn from(name: &str, src: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(src),
    }
}

fn pod(container: Container) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some("web-0".into());
    p.metadata.namespace = Some("ns".into());
    p.spec = Some(PodSpec {
        containers: vec![container],
        ..Default::default()
    });
    p.status = Some(PodStatus {
        pod_ip: Some("127.0.9.7".into()),
        ..Default::default()
    });
    p
}

fn env_of(c: Container, objects: &Fake) -> Result<Vec<(String, String)>, EnvError> {
    let p = pod(c.clone());
    let image = Image::new("*").unwrap();
    environment(&EnvInputs {
        pod: &p,
        container: &c,
        image: &image,
        objects,
        cluster: vec![("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into())],
        node_cpu_millis: 4000,
        node_memory: 1 << 30,
    })
}

fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn env_sources_resolve_and_later_definitions_win() {
    let c = Container {
        name: "c".into(),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "cm".into(),
                optional: None,
            }),
            prefix: Some("CM_".into()),
            secret_ref: None,
        }]),
        env: Some(vec![
            from(
                "POD_IP",
                EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "status.podIP".into(),
                        api_version: None,
                    }),
                    ..Default::default()
                },
            ),
            var("LISTEN", "$(POD_IP):7077"),
            var("KEEP", "$(UNDEFINED) $$(POD_IP) $$ $"),
            from(
                "PW",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "s".into(),
                        key: "pw".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            ),
            var("CM_a", "overridden"),
        ]),
        ..Default::default()
    };
    let env = env_of(c, &fake()).unwrap();
    assert_eq!(get(&env, "HOSTNAME"), Some("web-0"));
    assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("127.0.0.1"));
    assert_eq!(get(&env, "POD_IP"), Some("127.0.9.7"));
    assert_eq!(get(&env, "LISTEN"), Some("127.0.9.7:7077"));
    assert_eq!(get(&env, "KEEP"), Some("$(UNDEFINED) $(POD_IP) $ $"));
    assert_eq!(get(&env, "PW"), Some("hunter2"));
    assert_eq!(get(&env, "CM_a"), Some("overridden"));
    assert_eq!(get(&env, "CM_bad key"), None, "invalid names are skipped");
    assert!(get(&env, "PATH").is_some(), "image ENV comes first");
}

#[test]
fn missing_objects_and_keys_fail_with_the_kubelets_message_unless_optional() {
    let with = |src: EnvVarSource| Container {
        name: "c".into(),
        env: Some(vec![from("X", src)]),
        ..Default::default()
    };
    let cm_key = |name: &str, key: &str, optional: Option<bool>| EnvVarSource {
        config_map_key_ref: Some(ConfigMapKeySelector {
            name: name.into(),
            key: key.into(),
            optional,
        }),
        ..Default::default()
    };
    let f = fake();
    let err = env_of(with(cm_key("nope", "a", None)), &f).unwrap_err();
    assert_eq!(err.to_string(), "configmap \"nope\" not found");
    let err = env_of(with(cm_key("cm", "zz", None)), &f).unwrap_err();
    assert_eq!(err.to_string(), "couldn't find key zz in ConfigMap ns/cm");
    let env = env_of(with(cm_key("nope", "a", Some(true))), &f).unwrap();
    assert_eq!(get(&env, "X"), None);
    let err = env_of(
        with(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "spec.bogus".into(),
                api_version: None,
            }),
            ..Default::default()
        }),
        &f,
    )
    .unwrap_err();
    assert!(err.to_string().contains("spec.bogus"), "{err}");
}

#[test]
fn command_line_follows_the_entrypoint_cmd_rules() {
    let mut image = Image::new("*")
        .unwrap()
        .entrypoint(&["/usr/local/bin/neptune"]);
    image.cmd = vec!["--help".into()];
    let env = vec![("ID".to_string(), "exec-1".to_string())];
    let c = |command: Option<Vec<&str>>, args: Option<Vec<&str>>| Container {
        name: "c".into(),
        command: command.map(|v| v.into_iter().map(String::from).collect()),
        args: args.map(|v| v.into_iter().map(String::from).collect()),
        ..Default::default()
    };
    assert_eq!(
        command_line(&c(None, None), &image, &env).unwrap(),
        ["/usr/local/bin/neptune", "--help"]
    );
    assert_eq!(
        command_line(
            &c(None, Some(vec!["executor", "--id", "$(ID)"])),
            &image,
            &env
        )
        .unwrap(),
        ["/usr/local/bin/neptune", "executor", "--id", "exec-1"]
    );
    assert_eq!(
        command_line(&c(Some(vec!["/bin/sh"]), None), &image, &env).unwrap(),
        ["/bin/sh"],
        "a command drops the image's CMD"
    );
    let bare = Image::new("*").unwrap();
    assert_eq!(
        command_line(&c(None, None), &bare, &env),
        Err(EnvError::NoCommand)
    );
}

#[test]
fn expansion_edge_cases() {
    let vars: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
    assert_eq!(expand("$(A)$(A)", &vars), "11");
    assert_eq!(expand("$(A", &vars), "$(A");
    assert_eq!(expand("$()", &vars), "$()");
    assert_eq!(expand("x$", &vars), "x$");
    assert_eq!(expand("$x", &vars), "$x");
    assert_eq!(expand("$$$(A)", &vars), "$1");
}
