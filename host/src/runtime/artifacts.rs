//! The compiled-plugin cache: a plugin's native code, compiled once by cranelift, kept as a
//! file and mapped back in on the next load (a restart, a hot reload of the same bytes, a
//! `plugin inspect`).
//!
//! wasmtime's own cache stores artifacts zstd-compressed and decompresses and copies them on
//! every hit (~1.7 ms for a 200 KiB plugin, most of it in zstd). Here an artifact is the
//! uncompressed `Engine::precompile_component` output, loaded with
//! `Component::deserialize_file`, which maps the file instead of copying it.
//!
//! Trust: an artifact is native code, so whoever can write this directory can run code in the
//! daemon — exactly as with wasmtime's built-in cache, which this replaces. The directory lives
//! in the daemon's data dir (created 0700, files 0600, written only by the daemon). Files are
//! named by the SHA-256 of the wasm bytes and the engine's compatibility hash, written to a
//! temp file and renamed (a crash never leaves a torn artifact under a real name), and
//! wasmtime checks the header (version, target, settings) before using one; a file it
//! refuses is deleted and the plugin compiled again.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

pub(super) struct ArtifactCache {
    dir: PathBuf,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

impl ArtifactCache {
    pub(super) fn new(dir: PathBuf) -> std::io::Result<Self> {
        create_private_dir(&dir)?;
        Ok(Self { dir, hits: AtomicUsize::new(0), misses: AtomicUsize::new(0) })
    }

    /// Hits and misses since start.
    pub(super) fn stats(&self) -> (usize, usize) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// The component for `wasm`: mapped from its artifact if there is a usable one, else
    /// compiled (and its artifact written for next time; a failed write only costs the cache).
    pub(super) fn component(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
        let path = self.dir.join(artifact_name(engine, wasm));
        if path.exists() {
            match load(engine, &path) {
                Ok(c) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(c);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "unusable compiled-plugin artifact; compiling again");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let compiled = engine.precompile_component(wasm)?;
        if let Err(e) = write_atomically(&path, &compiled) {
            tracing::warn!(path = %path.display(), error = %e, "could not keep the compiled plugin; the next load compiles again");
        }
        // The bytes come from `precompile_component` of this engine, just now, in memory.
        from_own_bytes(engine, &compiled)
    }
}

/// `<sha256 of the wasm>-<engine compatibility hash>.cwasm`: another wasmtime version or
/// engine setting never even looks at an artifact that is not its own.
fn artifact_name(engine: &Engine, wasm: &[u8]) -> String {
    // SipHash with fixed keys: stable across runs of one build, which is all the name needs
    // (a new build with another hash only misses the cache once).
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{}-{:016x}.cwasm", hex::encode(Sha256::digest(wasm)), h.finish())
}

#[allow(unsafe_code)]
fn load(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` runs the file's native code, so the file must be an artifact
    // wasmtime produced. This directory is written only by the daemon (0700 dir, 0600 files,
    // atomic renames, named by the wasm's hash and the engine's compatibility hash), the same
    // trust wasmtime's built-in cache places in its cache directory; wasmtime validates the
    // header and refuses artifacts of another version or configuration.
    unsafe { Component::deserialize_file(engine, path) }
}

#[allow(unsafe_code)]
fn from_own_bytes(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `bytes` is the output of `engine.precompile_component` a moment ago.
    unsafe { Component::deserialize(engine, bytes) }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut cfg = wasmtime::Config::new();
        cfg.wasm_component_model(true);
        Engine::new(&cfg).unwrap()
    }

    /// The smallest component: the preamble (magic, version 0x0d, layer 1) and nothing else.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn a_second_load_maps_the_artifact_and_a_damaged_one_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let wasm = EMPTY_COMPONENT;
        let cache = ArtifactCache::new(dir.path().join("c")).unwrap();
        cache.component(&engine, wasm).unwrap();
        assert_eq!(cache.stats(), (0, 1));
        cache.component(&engine, wasm).unwrap();
        assert_eq!(cache.stats(), (1, 1), "mapped from the artifact");

        let artifact = std::fs::read_dir(dir.path().join("c")).unwrap().next().unwrap().unwrap().path();
        std::fs::write(&artifact, b"not an artifact").unwrap();
        cache.component(&engine, wasm).unwrap();
        assert_eq!(cache.stats(), (1, 2), "refused, deleted, compiled again");
        cache.component(&engine, wasm).unwrap();
        assert_eq!(cache.stats(), (2, 2), "and rewritten");
    }

    #[cfg(unix)]
    #[test]
    fn the_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        ArtifactCache::new(dir.path().join("c")).unwrap();
        let mode = std::fs::metadata(dir.path().join("c")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
