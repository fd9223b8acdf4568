//! The JSON Unix socket: newline-delimited native, Jaeger or Zipkin payloads.

use std::path::PathBuf;

use tracing::{debug, info, warn};

use super::Ingest;

/// Concurrent socket connections.
#[cfg(unix)]
const MAX_CONNECTIONS: usize = 128;

/// Serves until `stop` turns true; failures disable the socket, not the daemon.
#[cfg(unix)]
pub async fn serve(path: PathBuf, ingest: Ingest, mut stop: tokio::sync::watch::Receiver<bool>) {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use tokio::io::AsyncBufReadExt;

    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        if meta.file_type().is_symlink() {
            warn!(path = %path.display(), "JSON socket path is a symbolic link; socket disabled");
            return;
        }
        let _ = std::fs::remove_file(&path);
    }
    if path.parent().is_some_and(|p| !p.as_os_str().is_empty() && !p.exists()) {
        info!(path = %path.display(), "JSON socket directory does not exist; socket disabled");
        return;
    }
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot bind the JSON socket; socket disabled");
            return;
        }
    };
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        warn!(path = %path.display(), error = %e, "cannot restrict the JSON socket to its owner; socket disabled");
        let _ = std::fs::remove_file(&path);
        return;
    }
    info!(path = %path.display(), "JSON socket listening");
    let max_line = ingest.shared.settings.max_payload;
    let per_connection = max_line.saturating_mul(16) as u64;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = super::stopped(&mut stop) => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let ingest = ingest.clone();
        let mut stop = stop.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(stream, per_connection));
            let mut lines = reader.split(b'\n');
            loop {
                let line = tokio::select! {
                    () = super::stopped(&mut stop) => break,
                    l = lines.next_segment() => l,
                };
                let Ok(Some(line)) = line else { break };
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if line.len() > max_line {
                    warn!(bytes = line.len(), "JSON socket line over max_payload_size skipped");
                    continue;
                }
                match crate::ingest::parse(&line, "json socket") {
                    Ok(input) if !input.events.is_empty() => {
                        if ingest.submit(input).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => debug!(error = %e, "JSON socket line skipped"),
                }
            }
        });
    }
    tasks.abort_all();
    let _ = std::fs::remove_file(&path);
}

#[cfg(not(unix))]
pub async fn serve(path: PathBuf, _ingest: Ingest, _stop: tokio::sync::watch::Receiver<bool>) {
    warn!(path = %path.display(), "JSON sockets need a Unix system; socket disabled");
}
