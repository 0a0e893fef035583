//! How the daemon's process asks for memory: jemalloc, configured for a small, steady footprint.
//!
//! The store's writer thread is what limits ingest, and a third of its samples were glibc's
//! `malloc`/`free` (redb allocates a buffer for every page it copies on write). jemalloc cut
//! the daemon's CPU per webhook by 6–9 % and raised ingest by 6–11 % in alternating runs on the
//! same machine (BENCHMARKS.md, "What changed"). mimalloc was as fast but held twice the memory;
//! jemalloc with its defaults held ~8 MiB more than glibc and peaked over the footprint target
//! (100 MiB with 100k queued messages). The settings below bring it back to glibc's:
//! - one arena: the daemon's threads are few and mostly on two cores; more arenas only keep
//!   more partly used pages;
//! - freed pages go back to the kernel 200 ms after they fall idle, by jemalloc's background
//!   thread, so an idle daemon shrinks without waiting for its next allocation (the thread
//!   sleeps while there is nothing to return: idle CPU stays at zero);
//! - per-thread caches only for small objects (≤ 1 KiB): caching 4 KiB page buffers per thread
//!   is what kept the extra memory, and it bought no measurable speed.
//!
//! Declared in the library, so that the criterion benches and tests run on the daemon's
//! allocator too.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options from this symbol at start (`_RJEM_MALLOC_CONF` in the
/// environment still overrides them, for experiments).
#[allow(non_upper_case_globals, unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: COptions = COptions(OPTIONS.as_ptr());

/// A `const char *`, as jemalloc declares `malloc_conf`.
#[repr(transparent)]
pub struct COptions(*const u8);

// SAFETY: it points at a `'static` byte string that nothing writes.
#[allow(unsafe_code)]
unsafe impl Sync for COptions {}

/// jemalloc's option string (NUL-terminated, as C reads it). See the module docs for why.
const OPTIONS: &[u8] = b"narenas:1,background_thread:true,dirty_decay_ms:200,muzzy_decay_ms:0,tcache_max:1024\0";

#[cfg(test)]
mod tests {
    #[test]
    fn the_options_are_one_c_string() {
        let opts = super::OPTIONS;
        assert_eq!(opts.last(), Some(&0));
        assert!(!opts[..opts.len() - 1].contains(&0));
    }
}
