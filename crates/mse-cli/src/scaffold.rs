//! `mse scaffold NAME`: a ready-to-deploy Flask app with its mse.toml, secrets and tests.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

#[derive(Args)]
pub struct ScaffoldArgs {
    /// Directory to create; its last component is the app name.
    pub name: PathBuf,
}

/// Every file of a scaffolded app: path relative to the app directory, content.
fn files(name: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "mse.toml",
            include_str!("../templates/mse.toml").replace("{name}", name),
        ),
        ("mse_src/app.py", include_str!("../templates/app.py").into()),
        (
            "mse_src/requirements.txt",
            include_str!("../templates/requirements.txt").into(),
        ),
        ("mse_src/.mseignore", mse_conf::DEFAULT_MSEIGNORE.into()),
        (
            "secrets.json",
            include_str!("../templates/secrets.json").into(),
        ),
        (
            "tests/conftest.py",
            include_str!("../templates/tests/conftest.py").into(),
        ),
        (
            "tests/test_app.py",
            include_str!("../templates/tests/test_app.py").into(),
        ),
    ]
}

pub fn run(args: &ScaffoldArgs) -> anyhow::Result<ExitCode> {
    let target = &args.name;
    let name = app_name(target)?;
    if target.exists() {
        bail!(
            "{} already exists: choose another name or remove it",
            target.display()
        );
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Built in a temporary sibling and renamed at the end: never a half-scaffolded app.
    let staging = tempfile::Builder::new()
        .prefix(".mse-scaffold-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
    for (rel, content) in files(&name) {
        let path = staging.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("templates are in directories"))?;
        std::fs::write(&path, content).with_context(|| format!("cannot write {rel}"))?;
    }
    let staged = staging.keep();
    // tempdir() makes the directory private (0700); an app directory is an ordinary one.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))?;
    if let Err(e) = std::fs::rename(&staged, target) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e).with_context(|| format!("cannot create {}", target.display()));
    }
    println!("App {name} created in {}", target.display());
    println!("  code:    {}/mse_src/app.py (Flask)", target.display());
    println!("  config:  {}/mse.toml", target.display());
    println!(
        "  secrets: {}/secrets.json (sent only to the attested enclave)",
        target.display()
    );
    println!(
        "  tests:   {}/tests (pytest, against TEST_REMOTE_URL)",
        target.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn app_name(target: &Path) -> anyhow::Result<String> {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let valid = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if !valid {
        bail!(
            "invalid app name {:?}: use letters, digits, '-', '_' and '.' (not first), at most 255",
            target.display().to_string()
        );
    }
    Ok(name)
}
