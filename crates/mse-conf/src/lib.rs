//! Parsing and validation of `mse.toml` (all three schema generations of the original system),
//! `secrets.json` and `.mseignore`.
//!
//! Every error names the file, the line and the field, and says what was expected, e.g.
//! `mse.toml:3: python_application must be "module:variable", got "app"`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod app;
pub mod bounded;
mod cert;
mod doc;
mod error;
mod ignore;
mod secrets;

pub use app::{AppConf, CloudConf, LoadOptions, PythonApp, Schema, SslConf};
pub use cert::{CertError, CertInfo, read_certificate};
pub use error::{ConfError, ConfWarning};
pub use ignore::{CodeFile, DEFAULT_MSEIGNORE, IgnoreError, MSEIGNORE_FILE, collect_code_files};
pub use secrets::{SecretsError, load_secrets};
