//! `mse seal` / `mse unseal`: libsodium sealed boxes to an enclave's X25519 key, as the
//! original `mse home seal|unseal` (interoperable with PyNaCl's `SealedBox`).

use mse_conf::bounded;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

#[derive(Args)]
pub struct SealArgs {
    /// File to seal (e.g. secrets_to_seal.json).
    #[arg(long)]
    pub input: PathBuf,
    /// The recipient's X25519 public key: 32 raw bytes or 64 hex characters.
    #[arg(long)]
    pub receiver_public_key: PathBuf,
    /// Where to write the sealed box (standard output when absent).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Args)]
pub struct UnsealArgs {
    /// The sealed box.
    #[arg(long)]
    pub input: PathBuf,
    /// The X25519 private key: 32 raw bytes, 64 hex characters, or a 64-byte `pk ‖ sk` key file.
    #[arg(long)]
    pub private_key: PathBuf,
    /// Where to write the plaintext (standard output when absent).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

pub fn run_seal(args: &SealArgs) -> anyhow::Result<ExitCode> {
    let pk = read_key32(&args.receiver_public_key, "public key", false)?;
    let data = bounded::read_bounded(&args.input, bounded::MAX_SECRETS_FILE)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let sealed = mse_crypto::seal(&pk, &data)?;
    emit(args.output.as_deref(), &sealed)
}

pub fn run_unseal(args: &UnsealArgs) -> anyhow::Result<ExitCode> {
    let sk = zeroize_on_drop(read_key32(&args.private_key, "private key", true)?);
    // A sealed box is 48 bytes longer than what it seals.
    let sealed = bounded::read_bounded(&args.input, bounded::MAX_SECRETS_FILE + 48)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let plain = mse_crypto::open_sealed(&sk, &sealed)
        .with_context(|| format!("cannot unseal {}", args.input.display()))?;
    emit(args.output.as_deref(), &plain)
}

fn zeroize_on_drop(key: [u8; 32]) -> zeroize::Zeroizing<[u8; 32]> {
    zeroize::Zeroizing::new(key)
}

/// 32 raw bytes, 64 hex characters, or (for a private key) the 64-byte `pk ‖ sk` form.
fn read_key32(path: &Path, what: &str, pair_ok: bool) -> anyhow::Result<[u8; 32]> {
    let data = zeroize::Zeroizing::new(
        bounded::read_bounded(path, 4096)
            .with_context(|| format!("cannot read {what} {}", path.display()))?,
    );
    let mut out = [0u8; 32];
    if data.len() == 32 {
        out.copy_from_slice(&data);
        return Ok(out);
    }
    if pair_ok && data.len() == 64 && hex::decode_to_slice(&data[..], &mut [0u8; 32]).is_err() {
        out.copy_from_slice(&data[32..]);
        return Ok(out);
    }
    let text = std::str::from_utf8(&data).unwrap_or("").trim();
    if text.len() == 64 && hex::decode_to_slice(text, &mut out).is_ok() {
        return Ok(out);
    }
    bail!(
        "{what} {} must hold 32 raw bytes or 64 hexadecimal characters, got {} bytes",
        path.display(),
        data.len()
    )
}

fn emit(output: Option<&Path>, data: &[u8]) -> anyhow::Result<ExitCode> {
    match output {
        Some(path) => std::fs::write(path, data)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(data)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
