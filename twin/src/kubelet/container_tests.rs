//! Tests of container preparation and exit interpretation.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    ConfigMap, PodSecurityContext, PodSpec, PodStatus, Secret, SecurityContext, VolumeMount,
};

use super::*;

struct NoObjects;

impl Objects for NoObjects {
    fn config_map(&self, _: &str, _: &str) -> Option<Arc<ConfigMap>> {
        None
    }
    fn secret(&self, _: &str, _: &str) -> Option<Arc<Secret>> {
        None
    }
}

fn pod(c: &Container, non_root: bool) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some("drv".into());
    p.metadata.namespace = Some("ns".into());
    p.metadata.uid = Some("u".into());
    p.spec = Some(PodSpec {
        containers: vec![c.clone()],
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(non_root),
            fs_group: Some(65532),
            ..Default::default()
        }),
        ..Default::default()
    });
    p.status = Some(PodStatus {
        pod_ip: Some("127.0.4.2".into()),
        ..Default::default()
    });
    p
}

fn paths(dir: &Path) -> RunPaths {
    RunPaths {
        dir: dir.join("run"),
        termination_log: dir.join("termination-log"),
        hosts: dir.join("hosts"),
        service_account: None,
    }
}

#[test]
fn a_prepared_container_has_its_image_files_volumes_hosts_and_termination_log() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("neptune");
    std::fs::write(&bin, "").unwrap();
    let image = Image::new("neptune:*")
        .unwrap()
        .file("/usr/local/bin/neptune", &bin)
        .entrypoint(&["/usr/local/bin/neptune"])
        .user(65532);
    let c = Container {
        name: "driver".into(),
        image: Some("neptune:dev".into()),
        args: Some(vec![
            "driver".into(),
            "--listen".into(),
            "$(POD_IP):7077".into(),
        ]),
        env: Some(vec![k8s_openapi::api::core::v1::EnvVar {
            name: "POD_IP".into(),
            value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                    field_path: "status.podIP".into(),
                    api_version: None,
                }),
                ..Default::default()
            }),
            value: None,
        }]),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp/sub".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let p = pod(&c, true);
    let vols: BTreeMap<String, PathBuf> = [("tmp".to_string(), dir.path().to_path_buf())].into();
    let prepared = prepare(
        &PodContext {
            pod: &p,
            objects: &NoObjects,
            image: Some(&image),
            volumes: &vols,
            cluster_env: Vec::new(),
            node_cpu_millis: 1000,
            node_memory: 1 << 30,
        },
        &c,
        &paths(dir.path()),
    )
    .unwrap();
    let s = prepared.spec;
    assert_eq!(
        s.argv,
        [
            "/usr/local/bin/neptune",
            "driver",
            "--listen",
            "127.0.4.2:7077"
        ]
    );
    assert_eq!((s.uid, s.gid), (65532, 65532));
    assert_eq!(s.groups, [65532]);
    assert!(s.read_only_root);
    let targets: Vec<&str> = s.mounts.iter().map(|m| m.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/usr/local/bin/neptune",
            "/etc/hosts",
            "/tmp",
            "/tmp/sub",
            "/dev/termination-log"
        ],
        "image files, hosts, volumes parents first, termination log"
    );
    assert!(s.mounts[2].read_only && !s.mounts[3].read_only);
}

#[test]
fn unknown_images_and_root_under_run_as_non_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = Container {
        name: "c".into(),
        image: Some("nginx:1".into()),
        ..Default::default()
    };
    let p = pod(&c, true);
    let vols = BTreeMap::new();
    let ctx = |image| PodContext {
        pod: &p,
        objects: &NoObjects,
        image,
        volumes: &vols,
        cluster_env: Vec::new(),
        node_cpu_millis: 1000,
        node_memory: 1 << 30,
    };
    let err = prepare(&ctx(None), &c, &paths(dir.path())).unwrap_err();
    assert!(
        matches!(&err, Refusal::Image(m) if m.contains("\"nginx:1\"")),
        "{err:?}"
    );
    let root_image = Image::new("*").unwrap().entrypoint(&["/bin/true"]);
    let err = prepare(&ctx(Some(&root_image)), &c, &paths(dir.path())).unwrap_err();
    assert_eq!(
        err,
        Refusal::Config(
            "container has runAsNonRoot and image will run as root (pod: \"drv_ns(u)\", container: c)".into()
        )
    );
}

#[test]
fn exits_become_terminated_states() {
    let dir = tempfile::tempdir().unwrap();
    let p = paths(dir.path());
    std::fs::create_dir_all(&p.dir).unwrap();
    let log = dir.path().join("0.log");
    std::fs::write(&log, "starting\npanic: boom\n").unwrap();
    let mut c = Container {
        name: "c".into(),
        ..Default::default()
    };
    let exit = |code, oom| Exit {
        code,
        signal: None,
        oom,
    };
    let t0 = Timestamp::UNIX_EPOCH;
    let t = terminated(exit(0, false), t0, &c, &p, &log);
    assert_eq!(
        (t.exit_code, t.reason.as_str(), t.message),
        (0, "Completed", None)
    );
    let t = terminated(exit(137, true), t0, &c, &p, &log);
    assert_eq!((t.exit_code, t.reason.as_str()), (137, "OOMKilled"));
    c.termination_message_policy = Some("FallbackToLogsOnError".into());
    let t = terminated(exit(2, false), t0, &c, &p, &log);
    assert_eq!(t.reason, "Error");
    assert_eq!(
        t.message.as_deref(),
        Some("starting\npanic: boom\n"),
        "falls back to the log"
    );
    std::fs::write(&p.termination_log, "explicit").unwrap();
    let t = terminated(exit(2, false), t0, &c, &p, &log);
    assert_eq!(
        t.message.as_deref(),
        Some("explicit"),
        "the file wins over the log"
    );
    std::fs::write(
        p.dir.join("error"),
        "exec: \"x\": executable file not found in $PATH",
    )
    .unwrap();
    let t = terminated(exit(128, false), t0, &c, &p, &log);
    assert_eq!((t.exit_code, t.reason.as_str()), (128, "StartError"));
    assert!(t.message.unwrap().contains("executable file not found"));
}
