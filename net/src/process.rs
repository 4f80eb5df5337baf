//! What every binary of this crate does at start and stop: logging to stderr, and waiting for
//! Ctrl-C or SIGTERM to shut down gracefully.

use tracing::{error, info};

/// Logs to stderr through `RUST_LOG` (default `info`), in colour only on a terminal.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => info!("received Ctrl-C"),
                    _ = term.recv() => info!("received SIGTERM"),
                }
            }
            Err(e) => {
                error!(error = %e, "cannot watch SIGTERM; Ctrl-C still works");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
        info!("received Ctrl-C");
    }
}
