//! kind as a scenario back end: an existing cluster (`e2e/run.sh` creates it with two workers
//! and loads the image), the operator installed with helm, pods reached through the API
//! server's pod proxy, containers killed with `crictl` inside the node container, nodes lost
//! with `docker stop`.

use std::path::PathBuf;

use crate::cluster::Cluster;
use crate::error::E2eError;
use crate::kubectl::Kubectl;

/// How to reach the kind cluster and what to install.
#[derive(Clone, Debug)]
pub struct KindOptions {
    /// kubectl (with the cluster's context).
    pub kubectl: Kubectl,
    /// helm.
    pub helm: PathBuf,
    /// The chart (`charts/neptune-operator`).
    pub chart: PathBuf,
    /// The image loaded into the cluster (`neptune:e2e`).
    pub image: String,
    /// Namespace of the operator.
    pub operator_namespace: String,
}

/// An existing kind cluster.
#[derive(Debug)]
pub struct KindCluster {
    opts: KindOptions,
}

impl KindCluster {
    /// Wraps the cluster `opts.kubectl` reaches.
    pub fn new(opts: KindOptions) -> Self {
        Self { opts }
    }

    async fn run(&self, program: &str, args: &[&str]) -> Result<String, E2eError> {
        let out = tokio::process::Command::new(program)
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| E2eError::Cluster(format!("{program}: {e}")))?;
        if !out.status.success() {
            return Err(E2eError::Cluster(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn node_of(&self, ns: &str, pod: &str) -> Result<String, E2eError> {
        let p = self
            .opts
            .kubectl
            .get(ns, "pod", pod)
            .await?
            .ok_or_else(|| E2eError::Failed(format!("pod {ns}/{pod} not found")))?;
        p["spec"]["nodeName"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| E2eError::Failed(format!("pod {ns}/{pod} is not scheduled")))
    }
}

impl Cluster for KindCluster {
    fn backend(&self) -> &'static str {
        "kind"
    }

    fn kubectl(&self) -> &Kubectl {
        &self.opts.kubectl
    }

    fn image(&self) -> &str {
        &self.opts.image
    }

    async fn install_operator(&self) -> Result<(), E2eError> {
        let (repo, tag) = self
            .opts
            .image
            .rsplit_once(':')
            .unwrap_or((&self.opts.image, "latest"));
        let mut args: Vec<String> = vec![
            "upgrade".into(),
            "--install".into(),
            "neptune-operator".into(),
        ];
        args.push(self.opts.chart.display().to_string());
        args.extend(
            [
                "--namespace",
                &self.opts.operator_namespace,
                "--create-namespace",
                "--wait",
                "--timeout",
                "300s",
            ]
            .map(String::from),
        );
        if let Some(ctx) = &self.opts.kubectl.context {
            args.extend(["--kube-context".to_string(), ctx.clone()]);
        }
        for set in [
            format!("image.repository={repo}"),
            format!("image.tag={tag}"),
            "image.pullPolicy=IfNotPresent".into(),
        ] {
            args.extend(["--set".to_string(), set]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&self.opts.helm.display().to_string(), &args)
            .await?;
        self.opts
            .kubectl
            .run(&[
                "wait",
                "--for=condition=Established",
                "crd/streambatchapps.neptune.dev",
                "--timeout=60s",
            ])
            .await?;
        Ok(())
    }

    async fn http_get(
        &self,
        ns: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> Result<String, E2eError> {
        let raw = format!("/api/v1/namespaces/{ns}/pods/{pod}:{port}/proxy{path}");
        self.opts.kubectl.run(&["get", "--raw", &raw]).await
    }

    async fn kill_container(&self, ns: &str, pod: &str, container: &str) -> Result<(), E2eError> {
        let node = self.node_of(ns, pod).await?;
        let ids = self
            .run(
                "docker",
                &[
                    "exec",
                    &node,
                    "crictl",
                    "ps",
                    "-q",
                    "--name",
                    container,
                    "--label",
                    &format!("io.kubernetes.pod.name={pod}"),
                    "--label",
                    &format!("io.kubernetes.pod.namespace={ns}"),
                ],
            )
            .await?;
        let id = ids.lines().next().ok_or_else(|| {
            E2eError::Failed(format!("no running container {container} in {ns}/{pod}"))
        })?;
        self.run(
            "docker",
            &["exec", &node, "crictl", "stop", "--timeout", "0", id],
        )
        .await
        .map(|_| ())
    }

    async fn lose_node(&self, node: &str) -> Result<(), E2eError> {
        self.run("docker", &["stop", node]).await.map(|_| ())
    }

    async fn operator_logs(&self) -> String {
        self.opts
            .kubectl
            .run(&[
                "logs",
                "-n",
                &self.opts.operator_namespace,
                "deploy/neptune-operator",
                "--tail=200",
            ])
            .await
            .unwrap_or_else(|e| e.to_string())
    }
}
