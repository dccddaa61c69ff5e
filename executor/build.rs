//! Exports the optimisation level to tests (`NEPTUNE_OPT_LEVEL`), so the stress test can run its
//! full cycle count in every optimised profile (including `ci`, which keeps debug assertions on).

fn main() {
    let level = std::env::var("OPT_LEVEL").unwrap_or_else(|_| "0".into());
    println!("cargo:rustc-env=NEPTUNE_OPT_LEVEL={level}");
    println!("cargo:rerun-if-env-changed=OPT_LEVEL");
}
