//! `.mseignore` follows gitignore semantics (not the original's basename fnmatch).

use std::path::Path;

use mse_conf::{DEFAULT_MSEIGNORE, IgnoreError, collect_code_files};

fn touch(root: &Path, rel: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, rel).unwrap();
}

fn listed(root: &Path) -> Vec<String> {
    collect_code_files(root, &[])
        .unwrap()
        .into_iter()
        .map(|f| f.rel)
        .collect()
}

#[test]
fn default_file_excludes_what_the_original_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    std::fs::write(r.join(".mseignore"), DEFAULT_MSEIGNORE).unwrap();
    for f in [
        "app.py",
        "requirements.txt",
        "mse.toml",
        "secrets.json",
        "secrets_to_seal.json",
        "__pycache__/app.cpython-311.pyc",
        "lib/x.pyc",
        "lib/x.py",
        ".gitignore",
        ".vscode/s.json",
        ".idea/w.xml",
        "pkg.egg-info/PKG-INFO",
        "dist/pkg.egg",
        ".venv/bin/python",
        ".env",
        "static/style.css",
    ] {
        touch(r, f);
    }
    assert_eq!(
        listed(r),
        ["app.py", "lib/x.py", "requirements.txt", "static/style.css"]
    );
}

#[test]
fn negation_anchoring_and_directory_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    std::fs::write(
        r.join(".mseignore"),
        "# comment\n*.log\n!keep.log\n/build\ndata/\n!.well-known/\n",
    )
    .unwrap();
    for f in [
        "a.log",
        "keep.log",
        "sub/b.log",
        "build/out.bin",
        "sub/build/src.py",
        "data/x.csv",
        "sub/data/y.csv",
        "datafile",
        ".well-known/security.txt",
        ".hidden",
        "app.py",
    ] {
        touch(r, f);
    }
    assert_eq!(
        listed(r),
        [
            ".well-known/security.txt",
            "app.py",
            "datafile",
            "keep.log",
            "sub/build/src.py"
        ]
    );
}

#[test]
fn always_excluded_files_win_over_the_ignore_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    touch(r, "app.py");
    touch(r, "mse.toml");
    let files = collect_code_files(r, &[r.join("mse.toml")]).unwrap();
    assert_eq!(
        files.iter().map(|f| f.rel.as_str()).collect::<Vec<_>>(),
        ["app.py"]
    );
}

#[test]
fn symlink_leaving_the_code_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    touch(outside.path(), "id_rsa");
    let r = dir.path().join("code");
    std::fs::create_dir(&r).unwrap();
    touch(&r, "app.py");
    std::os::unix::fs::symlink(outside.path().join("id_rsa"), r.join("key")).unwrap();
    let err = collect_code_files(&r, &[]).unwrap_err();
    assert!(matches!(err, IgnoreError::SymlinkOutside { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: symbolic link to {} leaves the code directory",
            r.join("key").display(),
            std::fs::canonicalize(outside.path().join("id_rsa"))
                .unwrap()
                .display()
        )
    );
}

#[test]
fn symlink_loop_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    touch(r, "app.py");
    std::os::unix::fs::symlink(r, r.join("loop")).unwrap();
    let err = collect_code_files(r, &[]).unwrap_err();
    assert!(matches!(err, IgnoreError::SymlinkLoop { .. }), "{err}");
    assert!(err.to_string().ends_with("(a loop)"), "{err}");
}
