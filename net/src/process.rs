//! What the crate's servers and binaries share: logging to stderr, the accept loop, and waiting for
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

/// Accepts connections on `listener` until `shutdown` completes, handing each one to `serve`,
/// which spawns its task on the set. Finished tasks are reaped as they end (a panicked one is
/// logged under `what`), and a failed accept (typically out of file descriptors) backs off
/// instead of spinning. Returns the connections still open, for the caller to drain or close.
pub async fn accept_until(
    listener: &tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
    what: &'static str,
    mut serve: impl FnMut(tokio::net::TcpStream, std::net::SocketAddr, &mut tokio::task::JoinSet<()>),
) -> tokio::task::JoinSet<()> {
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    error!(error = %e, what, "connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => serve(stream, peer, &mut connections),
                Err(e) => {
                    tracing::warn!(error = %e, what, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
    connections
}
