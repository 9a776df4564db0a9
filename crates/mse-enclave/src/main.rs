//! `mse-enclave`: see the library documentation. Errors end the process with exit code 1 and
//! one line carrying the cause chain (`MSE_BACKTRACE=full` for the debug report).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The init of a VM enclave: its inputs come from disks and the kernel command line.
    if mse_enclave::guest::is_init() {
        mse_enclave::guest::main();
    }
    let args = mse_enclave::args::Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MSE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match mse_enclave::run::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if std::env::var("MSE_BACKTRACE").is_ok_and(|v| v == "full") {
                eprintln!("mse-enclave: error: {err:?}");
            } else {
                let chain: Vec<String> = err.chain().map(ToString::to_string).collect();
                eprintln!("mse-enclave: error: {}", chain.join(": "));
            }
            ExitCode::FAILURE
        }
    }
}
