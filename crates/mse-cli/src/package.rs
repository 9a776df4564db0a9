//! `mse package` (encrypt the code directory into a package) and `mse decrypt` (the reverse).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mse_conf::AppConf;
use mse_crypto::{CodeKey, PackageFile, UnpackLimits};

#[derive(Args)]
pub struct PackageArgs {
    /// Path to the app's mse.toml.
    #[arg(long, default_value = "mse.toml")]
    pub path: PathBuf,
    /// Directory for the package, its key and its nonces (created if missing).
    #[arg(long)]
    pub output: PathBuf,
    /// Reuse this code key (32 raw bytes or 64 hex characters) instead of a new random one.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Reuse the nonces recorded by an earlier run: with the same key, the same package.
    #[arg(long, requires = "key")]
    pub nonces: Option<PathBuf>,
}

#[derive(Args)]
pub struct DecryptArgs {
    /// The package tar written by `mse package`.
    #[arg(long)]
    pub package: PathBuf,
    /// Its code key file.
    #[arg(long)]
    pub key: PathBuf,
    /// Directory to create with the decrypted code (must not exist, or be empty).
    #[arg(long)]
    pub output: PathBuf,
}

pub fn run_package(args: &PackageArgs) -> anyhow::Result<ExitCode> {
    let conf = AppConf::load(&args.path)?;
    for w in &conf.warnings {
        eprintln!("{w}");
    }
    let cloud = conf.cloud()?;
    let files = code_files(&conf)?;
    let key = match &args.key {
        Some(path) => CodeKey::read_file(path)?,
        None => CodeKey::generate(),
    };
    let nonces = match &args.nonces {
        Some(path) => {
            // About 80 bytes per file: 64 MiB is far beyond any code directory.
            let text = mse_conf::bounded::read_bounded_string(path, 64 << 20)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(mse_crypto::nonces_from_json(&text).with_context(|| path.display().to_string())?)
        }
        None => None,
    };

    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let stem = file_stem(&conf.name);
    let tar_path = args.output.join(format!("{stem}.tar"));
    let key_path = args.output.join(format!("{stem}.key"));
    let nonces_path = args.output.join(format!("{stem}.nonces.json"));
    for p in [&tar_path, &key_path, &nonces_path] {
        if p.exists() {
            bail!("{} already exists: refusing to overwrite it", p.display());
        }
    }

    let summary = write_atomically(&tar_path, |out| {
        encrypt_files(&files, &key, nonces.as_ref(), out)
    })?;
    write_atomically(&key_path, |out| {
        out.write_all(key.as_bytes())?;
        Ok(())
    })?;
    write_atomically(&nonces_path, |out| {
        out.write_all(mse_crypto::nonces_to_json(&summary.nonces).as_bytes())?;
        Ok(())
    })?;

    println!(
        "Packaged {} files from {} ({} encrypted, {} in clear, {} bytes)",
        summary.encrypted_files + summary.clear_files,
        cloud.code.display(),
        summary.encrypted_files,
        summary.clear_files,
        summary.plaintext_bytes
    );
    println!("  package:     {}", tar_path.display());
    println!(
        "  key:         {} (secret: it decrypts your code)",
        key_path.display()
    );
    println!("  nonces:      {}", nonces_path.display());
    println!("  fingerprint: {}", hex::encode(summary.fingerprint));
    Ok(ExitCode::SUCCESS)
}

/// The files of the app's code directory that go into its package (never-packaged paths left
/// out); an error naming the mse.toml if there is none. Shared by `package`, `deploy` and
/// `localtest` so all three package exactly the same files.
pub(crate) fn code_files(conf: &AppConf) -> anyhow::Result<Vec<PackageFile>> {
    let cloud = conf.cloud()?;
    let files: Vec<PackageFile> =
        mse_conf::collect_code_files(&cloud.code, &conf.never_packaged())?
            .into_iter()
            .map(|f| PackageFile {
                rel: f.rel,
                abs: f.abs,
            })
            .collect();
    if files.is_empty() {
        bail!(
            "{}: no file to package in {}",
            conf.file.display(),
            cloud.code.display()
        );
    }
    Ok(files)
}

/// Encrypts `files` into a package written to `out`, with a progress bar on stderr (drawn only
/// when stderr is a terminal).
pub(crate) fn encrypt_files(
    files: &[PackageFile],
    key: &CodeKey,
    nonces: Option<&mse_crypto::Nonces>,
    out: &mut File,
) -> anyhow::Result<mse_crypto::PackageSummary> {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(&f.abs).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("encrypting {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("static template"),
    );
    let summary = mse_crypto::build_package(
        files,
        key,
        nonces,
        BufWriter::with_capacity(1 << 20, out),
        &|done| bar.set_position(done),
    )?;
    bar.finish_and_clear();
    Ok(summary)
}

pub fn run_decrypt(args: &DecryptArgs) -> anyhow::Result<ExitCode> {
    let key = CodeKey::read_file(&args.key)?;
    let file = File::open(&args.package)
        .with_context(|| format!("cannot open {}", args.package.display()))?;
    let summary = mse_crypto::unpack_package(
        BufReader::with_capacity(1 << 20, file),
        &key,
        &args.output,
        &UnpackLimits::default(),
    )
    .with_context(|| format!("cannot decrypt {}", args.package.display()))?;
    println!(
        "Decrypted {} files ({} bytes) into {}",
        summary.files,
        summary.bytes,
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A name usable as a file name, from the app name.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes through a temporary file in the same directory (mode 0600) renamed at the end, so
/// that an error leaves nothing half-written.
fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut File) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".mse-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let value = write(tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(value)
}
