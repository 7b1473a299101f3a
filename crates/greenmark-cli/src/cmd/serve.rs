//! `greenmark serve --config serve.toml [--model M.gguf]`: the detection service, and with a
//! `[generation]` table a watermarking chat-completions endpoint (see `greenmark-serve`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use greenmark_serve::generation::ModelChoice;
use greenmark_serve::{ServeConfig, Service};

/// Arguments of `greenmark serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service's config (TOML: listen, tokenizer, keys, tokens, limits; see
    /// examples/serve.toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Generate with this GGUF instead of the config's `generation.model` (needs a
    /// `[generation]` table: the key to watermark with).
    #[arg(long, value_name = "M.gguf")]
    model: Option<PathBuf>,
}

/// Runs the service until Ctrl-C (or SIGTERM), then finishes the requests in flight.
pub fn run(args: Args) -> Result<()> {
    let mut config = ServeConfig::load(&args.config)
        .with_context(|| format!("cannot start from {}", args.config.display()))?;
    if let Some(model) = args.model {
        let Some(generation) = config.generation.as_mut() else {
            bail!(
                "--model needs a [generation] table in {} (at least `key = ...`, the key to \
                 watermark with; see examples/serve.toml)",
                args.config.display()
            );
        };
        generation.model = ModelChoice::Path(model);
    }
    // The service loads its key files itself; the warning is the CLI's, as for every command.
    let generation_key = config.generation.as_ref().map(|g| g.key.as_path());
    for path in config
        .keys
        .iter()
        .map(PathBuf::as_path)
        .chain(generation_key)
    {
        super::warn_if_readable(path);
    }
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
        if let Some(model) = service.generation_model() {
            eprintln!("greenmark serve: POST /v1/chat/completions generates with {model}");
        }
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
