//! Which project a deploy goes to: the one mse.toml names, else the one the CLI is logged in
//! to (so that a scaffolded app, whose mse.toml names none, deploys wherever its owner logged
//! in, and says so).

use std::path::Path;

use anyhow::bail;

use super::api::{NodeClient, Project};

/// The project to deploy to, and a note saying where it came from when mse.toml named none.
pub fn resolve(
    client: &NodeClient,
    named: Option<&str>,
    toml: &Path,
) -> anyhow::Result<(Project, Option<String>)> {
    let Some(name) = named else {
        return match client.me()?.project {
            Some(p) => {
                let note = format!(
                    "Using project {:?} (the one you are logged in to; {} names none)",
                    p.name,
                    toml.display()
                );
                Ok((p, Some(note)))
            }
            None => bail!(
                "{} names no project and {} did not say which project this token belongs to: add `project = \"NAME\"` to [cloud]",
                toml.display(),
                client.base()
            ),
        };
    };
    match client.project(name)? {
        Some(p) => Ok((p, None)),
        None => {
            let mine = client
                .me()
                .ok()
                .and_then(|m| m.project)
                .map(|p| format!(" (this token belongs to project {:?})", p.name))
                .unwrap_or_default();
            bail!(
                "project {:?} of {} is not on {}{mine}",
                name,
                toml.display(),
                client.base()
            );
        }
    }
}
