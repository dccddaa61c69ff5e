//! `make proto`: compiles `proto/proto/neptune.proto` with protox (pure Rust, no `protoc`) and
//! tonic-prost-build, formats the code with rustfmt and writes it to `proto/src/v2.rs` under a
//! header that records the SHA-256 of the .proto and of the code, which neptune-proto's test
//! `generated_code_is_current` checks without compiling any of this.

use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::Command;

/// The header's lines before the hashes; the code starts after the first empty line.
const PREAMBLE: &str = "\
//! Generated from `proto/proto/neptune.proto` by `make proto` (protox and tonic-prost-build, in
//! `proto/gen/`: outside the workspace, so `make test` does not build them). Do not edit: the
//! test `generated_code_is_current` fails when this file or the .proto changed without the other.
//!";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let proto_dir = crate_dir.parent().ok_or("proto/gen has a parent")?;
    let proto = proto_dir.join("proto/neptune.proto");
    let out = proto_dir.join("src/v2.rs");
    let tmp = tempfile::tempdir()?;
    let tmp = tmp.path();

    let fds = protox::compile([&proto], [proto_dir.join("proto")])?;
    tonic_prost_build::configure()
        .out_dir(tmp)
        .compile_fds(fds)?;
    let generated = std::fs::read_to_string(tmp.join("neptune.v2.rs"))?;

    // Formatted as the rest of the tree (`cargo fmt --check` reads this file too).
    let code =
        format!("#![allow(missing_docs, clippy::all, reason = \"generated code\")]\n\n{generated}");
    let formatted = tmp.join("v2.rs");
    std::fs::write(&formatted, &code)?;
    let rustfmt_toml = proto_dir
        .parent()
        .ok_or("proto/ has a parent")?
        .join("rustfmt.toml");
    let status = Command::new("rustfmt")
        .arg("--config-path")
        .arg(&rustfmt_toml)
        .arg(&formatted)
        .status()?;
    if !status.success() {
        return Err(format!("rustfmt failed on {}", formatted.display()).into());
    }
    let code = std::fs::read_to_string(&formatted)?;
    let header = format!(
        "{PREAMBLE}\n//! proto sha256: {:x}\n//! code sha256: {:x}\n\n",
        Sha256::digest(std::fs::read(&proto)?),
        Sha256::digest(code.as_bytes())
    );
    std::fs::write(&out, header + &code)?;
    println!("wrote {}", out.display());
    Ok(())
}
