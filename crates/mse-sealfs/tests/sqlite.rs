//! SQLite through Python's sqlite3 (a C extension: no Python-level hook could see its I/O),
//! in WAL and rollback-journal modes, with several connections, then after a remount.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::TestMount;

fn python() -> PathBuf {
    let venv = std::env::var_os("MSE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    venv.join("bin/python")
}

const SCRIPT: &str = r#"
import sqlite3, sys
path, mode, phase = sys.argv[1], sys.argv[2], sys.argv[3]
if phase == "write":
    a = sqlite3.connect(path, timeout=10)
    got = a.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
    assert got == mode.lower(), got
    a.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    a.commit()
    for batch in range(20):
        a.executemany("INSERT INTO t (v) VALUES (?)", [(f"row-{batch}-{i}-" + "x" * 300,) for i in range(100)])
        a.commit()
    # A rolled-back transaction leaves no trace.
    a.execute("INSERT INTO t (v) VALUES ('rolled back')")
    a.rollback()
    # A second connection sees committed data and writes too.
    b = sqlite3.connect(path, timeout=10)
    assert b.execute("SELECT count(*) FROM t").fetchone()[0] == 2000
    b.execute("DELETE FROM t WHERE id % 10 = 0")
    b.commit()
    b.close()
    if mode == "WAL":
        a.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    a.execute("VACUUM")
    a.close()
c = sqlite3.connect(path)
print(c.execute("PRAGMA integrity_check").fetchone()[0],
      c.execute("SELECT count(*) FROM t").fetchone()[0],
      c.execute("SELECT count(*) FROM t WHERE v = 'rolled back'").fetchone()[0])
"#;

fn run(db: &std::path::Path, mode: &str, phase: &str) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(SCRIPT)
        .arg(db)
        .arg(mode)
        .arg(phase)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn check_mode(mode: &str) {
    let mut t = TestMount::new();
    std::fs::create_dir(t.p("db")).unwrap();
    let db = t.p("db/app.sqlite3");
    assert_eq!(run(&db, mode, "write"), "ok 1800 0");
    t.remount();
    assert_eq!(run(&db, mode, "read"), "ok 1800 0");
}

#[test]
fn sqlite_wal_mode() {
    check_mode("WAL");
}

#[test]
fn sqlite_rollback_journal_mode() {
    check_mode("DELETE");
}
