//! Parsing and validation of `mse.toml`, `secrets.json` and `.mseignore`.
