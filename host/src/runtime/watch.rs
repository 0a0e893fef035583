//! Hot reload: watch `plugins_dir` and reload a plugin whose `.wasm` or `.toml` changed.
//!
//! Events are gathered until the directory has been quiet for [`QUIET`] (a copy arrives as
//! several writes), then each touched plugin is loaded through [`Runtime::reload`]: compiled,
//! validated and probed off the hot path, then swapped atomically. A failure leaves the
//! previous version serving and shows in [`Runtime::load_errors`] (and so in `/readyz`).
//! A deleted file unloads nothing: accounts keep the version they were started with.

use super::Runtime;
use crate::app::App;
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long the directory must be quiet before changed plugins are reloaded.
pub const QUIET: Duration = Duration::from_millis(150);

/// Watches `app.config.plugins_dir` until shutdown.
pub async fn run(app: Arc<App>, shutdown: watch::Receiver<bool>) {
    let dir = app.config.plugins_dir.clone();
    watch_dir(&app.runtime, &dir, shutdown).await;
}

/// Watches `dir`, reloading into `runtime`, until `shutdown` turns true.
pub async fn watch_dir(runtime: &Runtime, dir: &Path, mut shutdown: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(ev) if matches!(ev.kind, EventKind::Create(_) | EventKind::Modify(_)) => {
            for p in ev.paths {
                let _ = tx.send(p);
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "plugin watcher error"),
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => return tracing::error!(error = %e, "cannot watch plugins; hot reload is off"),
    };
    if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
        return tracing::error!(dir = %dir.display(), error = %e, "cannot watch plugins dir; hot reload is off");
    }
    tracing::info!(dir = %dir.display(), "watching plugins for changes");
    // Whatever changed between the startup load and the watch being in place: a rescan
    // (identical files are no-ops; errors are kept in `load_errors`).
    let _ = runtime.load_all(dir).await;
    loop {
        let first = tokio::select! {
            p = rx.recv() => p,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let Some(first) = first else { return };
        let mut touched = BTreeSet::from([first]);
        loop {
            tokio::select! {
                p = rx.recv() => match p {
                    Some(p) => { touched.insert(p); }
                    None => return,
                },
                _ = tokio::time::sleep(QUIET) => break,
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
        for wasm in plugin_files(&touched) {
            if wasm.exists() {
                // Errors are logged and kept in `load_errors` by `reload` itself.
                let _ = runtime.reload(&wasm).await;
            }
        }
    }
}

/// The `.wasm` of each plugin a changed path belongs to (`NAME.wasm` or its `NAME.toml`).
fn plugin_files(paths: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    paths
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "wasm" || x == "toml"))
        .map(|p| p.with_extension("wasm"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_change_reloads_its_wasm_and_other_files_are_ignored() {
        let paths = BTreeSet::from([
            PathBuf::from("/p/a.toml"),
            PathBuf::from("/p/a.wasm"),
            PathBuf::from("/p/b.toml"),
            PathBuf::from("/p/.a.wasm.swp"),
            PathBuf::from("/p/notes.txt"),
        ]);
        let got: Vec<_> = plugin_files(&paths).into_iter().collect();
        assert_eq!(got, [PathBuf::from("/p/a.wasm"), PathBuf::from("/p/b.wasm")]);
    }
}
