//! How the daemon's process asks for memory.
//!
//! glibc's malloc gives threads their own arenas, up to eight per core, and each arena keeps
//! what was freed in it. The daemon's threads come and go (tokio's blocking pool; compiling
//! plugins at start on every core), so arenas multiply and hold memory an idle daemon no
//! longer uses: the footprint benchmark (100k messages queued, 10 plugins) read 91–100 MiB
//! of RSS with glibc's default, 85–91 MiB with four arenas, and ingest was as fast either way
//! in back-to-back runs; two arenas saved no more and cost ~6 % of ingest throughput
//! (BENCHMARKS.md).

/// Malloc arenas the process may use.
const ARENAS: i32 = 4;

/// Caps glibc's malloc arenas at [`ARENAS`]. Call first thing in `main`, before any thread
/// exists. Does nothing where the C library is not glibc.
pub fn limit_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    set_arena_max(ARENAS);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(arenas: i32) {
    // SAFETY: `mallopt` takes two integers and touches only malloc's own settings; glibc
    // documents M_ARENA_MAX as settable at any time, and we call it before other threads run.
    let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    debug_assert_eq!(ok, 1, "glibc accepts M_ARENA_MAX");
}
