//! `greenmark serve --config serve.toml`: the detection service (see `greenmark-serve`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use greenmark_serve::{ServeConfig, Service};

/// Arguments of `greenmark serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service's config (TOML: listen, tokenizer, keys, tokens, limits; see
    /// examples/serve.toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Runs the service until Ctrl-C (or SIGTERM), then finishes the requests in flight.
pub fn run(args: Args) -> Result<()> {
    let config = ServeConfig::load(&args.config)
        .with_context(|| format!("cannot start from {}", args.config.display()))?;
    let service = Arc::new(Service::new(&config)?);
    let runtime = greenmark_serve::runtime().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        eprintln!(
            "greenmark serve: listening on http://{} ({} key(s))",
            listener.local_addr()?,
            config.keys.len()
        );
        greenmark_serve::run(listener, service, shutdown_signal()).await?;
        eprintln!("greenmark serve: stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminate = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
