//! Developer tasks for the Warren workspace.
//!
//! `cargo run -p xtask -- codegen [--check]`: generate the AMQP method,
//! constant and test-strategy code of `warren-protocol` from
//! `crates/protocol/spec/amqp-rabbitmq-0.9.1.json`.

mod codegen;

use std::path::PathBuf;
use std::process::ExitCode;

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn usage() -> ExitCode {
    eprintln!("usage: cargo run -p xtask -- codegen [--check]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let check = match args.as_slice() {
        ["codegen"] => false,
        ["codegen", "--check"] => true,
        _ => return usage(),
    };
    match codegen::run(&workspace_root(), check) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask codegen: {e}");
            ExitCode::FAILURE
        }
    }
}
