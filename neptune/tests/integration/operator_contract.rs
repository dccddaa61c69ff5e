//! The operator builds pods from the CLI contract; this checks that the `neptune` binary's parser
//! and config validation accept exactly the arguments the operator's golden pods carry.

use clap::Parser;
use neptune::cli::{Cli, Command};
use serde::Deserialize as _;

fn pod_args(doc: &serde_yaml::Value) -> Vec<Vec<String>> {
    let containers = doc["spec"]["containers"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    containers
        .iter()
        .filter(|c| matches!(c["args"][0].as_str(), Some("driver" | "executor")))
        .map(|c| {
            let args = c["args"]
                .as_sequence()
                .expect("neptune containers have args");
            args.iter()
                .map(|a| {
                    a.as_str()
                        .expect("string arg")
                        .replace("$(NEPTUNE_EXECUTOR_ID)", "exec-0")
                        // The kubelet expands it from the downward API's status.podIP.
                        .replace("$(POD_IP)", "10.244.1.7")
                })
                .collect()
        })
        .collect()
}

#[test]
fn every_golden_pod_command_is_accepted_by_the_neptune_cli() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../operator/tests/golden");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("golden dir") {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let doc = serde_yaml::Value::deserialize(doc).unwrap();
            for args in pod_args(&doc) {
                let argv = std::iter::once("neptune".to_string()).chain(args.clone());
                let cli = Cli::try_parse_from(argv)
                    .unwrap_or_else(|e| panic!("{}: {args:?}: {e}", path.display()));
                // Built-in apps are also checked for config keys; a user binary's app is not here.
                let builtin = |name: &str| neptune::apps::BUILTIN.iter().any(|a| a.name == name);
                if let Command::Driver(d) = &cli.command
                    && builtin(&d.app.app)
                {
                    neptune::run::prepare(&d.app, neptune::apps::BUILTIN, d.listen, d.http)
                        .unwrap_or_else(|e| panic!("{}: {args:?}: {e:#}", path.display()));
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 4,
        "expected driver and executor pods in the golden files, saw {checked}"
    );
}
