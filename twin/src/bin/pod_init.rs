//! `neptune-pod-init SPEC.json`: the twin kubelet's container runtime step between spawn and
//! `exec` (private mount/UTS namespaces, the container's root and mounts, its user), see
//! `neptune_twin::kubelet::init`. Exits 128 with the reason in the spec's error file when the
//! container cannot be started.

use neptune_twin::kubelet::init::{self, InitSpec, START_ERROR_EXIT};

fn main() {
    let code = match std::env::args_os().nth(1) {
        None => {
            eprintln!("usage: neptune-pod-init SPEC.json (started by the twin kubelet)");
            2
        }
        Some(path) => match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<InitSpec>(&b).map_err(|e| e.to_string()))
        {
            Err(e) => {
                eprintln!("neptune-pod-init: {}: {e}", path.to_string_lossy());
                START_ERROR_EXIT
            }
            Ok(spec) => {
                let e = init::run(&spec);
                eprintln!("neptune-pod-init: {e}");
                START_ERROR_EXIT
            }
        },
    };
    std::process::exit(code);
}
