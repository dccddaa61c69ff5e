//! Prints the `StreamBatchApp` CRD as YAML (`cargo run -p neptune-crds --bin crdgen > crds/streambatchapp.yaml`).

fn main() {
    match neptune_crds::crd_yaml() {
        Ok(yaml) => print!("{yaml}"),
        Err(e) => {
            eprintln!("crdgen: cannot serialize the CRD: {e}");
            std::process::exit(1);
        }
    }
}
