//! `mse`: the developer's and the end user's command line.
//!
//! Both `mse <cmd>` and `mse cloud <cmd>` work, as the original documentation uses both forms.
//! Every error ends the process with exit code 1 and one line carrying the cause chain;
//! `MSE_BACKTRACE=full` prints the full debug report instead.

#![forbid(unsafe_code)]

/// `println!` for this crate: a write error (a closed stdout: `mse list | head`) is returned
/// with `?` as [`StdoutError`] instead of panicking, so that main finds it in the error chain
/// and ends quietly, while a broken *socket* stays an error like any other.
macro_rules! println {
    () => {
        $crate::write_stdout(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// `print!`, likewise.
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))?
    };
}

mod attest;
mod cloud;
mod localtest;
mod measure;
mod package;
mod rebuild_env;
mod scaffold;
mod seal;
mod verify;
mod vm_expect;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mse",
    version,
    about = "Run Python web apps in confidential-computing enclaves"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new app directory with a Flask app, its mse.toml, secrets and tests.
    Scaffold(scaffold::ScaffoldArgs),
    /// Encrypt the code directory named by mse.toml into a code package.
    Package(package::PackageArgs),
    /// Decrypt a code package with its key (the reverse of `package`).
    Decrypt(package::DecryptArgs),
    /// Seal a file to an enclave's X25519 public key (libsodium sealed box).
    Seal(seal::SealArgs),
    /// Open a sealed box with an X25519 private key.
    Unseal(seal::UnsealArgs),
    /// Verify that an app (or a certificate / evidence file) runs the expected code in a genuine TEE.
    Verify(Box<verify::VerifyArgs>),
    /// Store the node URL and project token used by the commands below.
    Login(cloud::ops::LoginArgs),
    /// Forget the stored node URL and token.
    Logout,
    /// Encrypt, upload and attest the app, then send its key and secrets to the enclave.
    Deploy(cloud::deploy::DeployArgs),
    /// Show an app's status.
    Status(cloud::ops::IdArgs),
    /// List the project's apps (live ones unless --all).
    List(cloud::ops::ListArgs),
    /// Print an app's output (the last 64 kB).
    Logs(cloud::ops::LogsArgs),
    /// Stop apps (their sealed storage is erased).
    Stop(cloud::ops::StopArgs),
    /// Run the app's tests (tests_cmd) against the deployed app, trusting only its verified certificate.
    Test(cloud::ops::TestArgs),
    /// Manage the saved deployment contexts.
    Context(cloud::ops::ContextArgs),
    /// Run the app locally in the enclave runtime (simulated TEE), provision it and run its tests.
    Localtest(localtest::LocaltestArgs),
    /// Compute a TEE's expected launch measurement offline (`mse measure snp`).
    Measure(measure::MeasureArgs),
}

/// `mse cloud <cmd>` is the same as `mse <cmd>`: drop the word before clap sees it.
fn normalized_args() -> Vec<std::ffi::OsString> {
    let mut args: Vec<_> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "cloud") {
        args.remove(1);
    }
    args
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalized_args());
    let result = match cli.command {
        Command::Scaffold(args) => scaffold::run(&args),
        Command::Package(args) => package::run_package(&args),
        Command::Decrypt(args) => package::run_decrypt(&args),
        Command::Seal(args) => seal::run_seal(&args),
        Command::Unseal(args) => seal::run_unseal(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Login(args) => cloud::ops::login(&args),
        Command::Logout => cloud::ops::logout(),
        Command::Deploy(args) => cloud::deploy::run(&args),
        Command::Status(args) => cloud::ops::status(&args),
        Command::List(args) => cloud::ops::list(&args),
        Command::Logs(args) => cloud::ops::logs(&args),
        Command::Stop(args) => cloud::ops::stop(&args),
        Command::Test(args) => cloud::ops::test(&args),
        Command::Context(args) => cloud::ops::context(&args),
        Command::Localtest(args) => localtest::run(&args),
        Command::Measure(args) => measure::run(&args),
    };
    match result {
        Ok(code) => code,
        // `mse list | head`: the reader went away; end quietly, as a Unix filter does.
        Err(err) if stdout_closed(&err) => ExitCode::SUCCESS,
        Err(err) => {
            report_error(&err);
            ExitCode::FAILURE
        }
    }
}

/// A failed write to stdout (see the crate's `println!`).
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout: {0}")]
pub struct StdoutError(#[source] std::io::Error);

/// Writes to stdout (locked, flushed), for the crate's `println!` and `print!`.
pub fn write_stdout(args: std::fmt::Arguments<'_>) -> Result<(), StdoutError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Whether `err` is stdout's reader going away (not any other broken pipe: a socket's EPIPE
/// is an error to report).
fn stdout_closed(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<StdoutError>()
            .is_some_and(|s| s.0.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// One line with the whole cause chain, or everything with `MSE_BACKTRACE=full`.
fn report_error(err: &anyhow::Error) {
    if std::env::var("MSE_BACKTRACE").is_ok_and(|v| v == "full") {
        eprintln!("Error: {err:?}");
    } else {
        let chain: Vec<String> = err.chain().map(ToString::to_string).collect();
        eprintln!("Error: {}", dedup_chain(&chain).join(": "));
    }
}

/// Drop a cause whose text is already contained in the message before it, so
/// wrapped errors that repeat their source don't print it twice.
fn dedup_chain(chain: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for msg in chain {
        if out.last().is_some_and(|prev| prev.contains(msg.as_str())) {
            continue;
        }
        out.push(msg);
    }
    out
}
