//! `mse-node`: thin CLI over the mse-node library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mse_node::NodeConfig;

#[derive(Parser)]
#[command(
    name = "mse-node",
    version,
    about = "Host daemon running MSE apps in enclaves"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the API and the SNI router, and run apps.
    Serve {
        /// node.toml (embedded defaults without it).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Manage projects.
    Project {
        #[command(subcommand)]
        command: ProjectCmd,
    },
    /// The guest image of VM enclaves.
    Image {
        #[command(subcommand)]
        command: mse_node::image_cmd::ImageCmd,
    },
}

#[derive(Subcommand)]
enum ProjectCmd {
    /// Create a project and print its bearer token (shown once; stored hashed).
    Create {
        name: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a new bearer token for an existing project (its other tokens stay valid).
    Token {
        name: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List the projects.
    List {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load(config: Option<&PathBuf>) -> anyhow::Result<NodeConfig> {
    Ok(match config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::defaults(),
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Image { command } => mse_node::image_cmd::run(command),
        Cmd::Serve { config } => {
            let cfg = load(config.as_ref())?;
            if cfg.tee.is_simulated() {
                tracing::warn!(
                    "SIMULATED TEE: apps on this node run without hardware protection; their evidence only verifies with --allow-simulation"
                );
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("tokio runtime")?;
            rt.block_on(mse_node::serve(
                cfg,
                |r| {
                    println!(
                        "mse-node: API on http://{} , router on {} , data in {}",
                        r.api,
                        r.router,
                        r.node.cfg.data_dir.display()
                    );
                },
                async {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .expect("SIGTERM handler");
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                    tracing::info!("shutting down");
                },
            ))?;
            Ok(())
        }
        Cmd::Project { command } => project(command),
    }
}

/// Runs a project subcommand on the store of the data dir its node.toml names.
fn project(command: ProjectCmd) -> anyhow::Result<()> {
    let (ProjectCmd::Create { config, .. }
    | ProjectCmd::Token { config, .. }
    | ProjectCmd::List { config }) = &command;
    let (store, _) = mse_node::node::open_data_dir(&load(config.as_ref())?)?;
    match command {
        ProjectCmd::Create { name, .. } => {
            let (project, token) = store.create_project(&name)?;
            eprintln!("project {} created (id {})", project.name, project.id);
            println!("{token}");
        }
        ProjectCmd::Token { name, .. } => println!("{}", store.new_token(&name)?),
        ProjectCmd::List { .. } => {
            for (p, tokens) in store.projects()? {
                println!("{}\t{}\t{} token(s)", p.name, p.id, tokens);
            }
        }
    }
    Ok(())
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Err(e) = run(Cli::parse()) {
        if std::env::var("MSE_BACKTRACE").as_deref() == Ok("full") {
            eprintln!("Error: {e:?}");
        } else {
            eprintln!("Error: {e:#}");
        }
        std::process::exit(1);
    }
}
