//! `ServerConfig::startup_code`: run once after interpreter start and before the app is imported
//! (the enclave's audit hook); a failure is a typed error and the app is not imported.
mod common;

use common::*;
use mse_wsgi::{Bind, Error, Server, ServerConfig};

#[test]
fn startup_code_runs_before_the_app_is_imported() {
    let config = |code: &str| {
        ServerConfig::new(Bind::Addr(([127, 0, 0, 1], 0).into()), "hello_raw:app")
            .app_dir(apps_dir())
            .venv(Some(venv()))
            .startup_code(Some(code.to_string()))
    };
    let err = Server::new(config(
        "import os, sys\nos.environ['MSE_T_FAILED_SAW_APP'] = str('hello_raw' in sys.modules)\nraise RuntimeError('boom')",
    ))
    .err()
    .expect("startup code raised");
    assert!(
        matches!(&err, Error::StartupCode(reason) if reason.ends_with("RuntimeError: boom\n")),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("startup code failed: Traceback"),
        "{err}"
    );
    assert_eq!(std::env::var("MSE_T_FAILED_SAW_APP").unwrap(), "False");

    let server = Server::new(config(
        "import os, sys\nos.environ['MSE_T_SAW_APP'] = str('hello_raw' in sys.modules)\nleaked = 1",
    ))
    .expect("server");
    assert_eq!(std::env::var("MSE_T_SAW_APP").unwrap(), "False");
    drop(server);

    let err = Server::new(config("a = '\0'")).err().expect("NUL refused");
    assert_eq!(
        err.to_string(),
        "startup code failed: the source contains a NUL byte"
    );
}
