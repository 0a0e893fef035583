//! Builds the real plugins from `plugins/` so the integration tests run the daemon with the
//! same components users get. Tests name the directory through `SWITCHBOARD_TEST_PLUGINS`.

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("plugins");
    let root = xtask::repo_root();
    for p in ["plugins/Cargo.toml", "plugins/Cargo.lock", "plugins/sdk", "plugins/channels", "plugins/tools", "wit", "tests/guests/Cargo.toml", "tests/guests/hostile"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    if let Err(e) = xtask::build_plugins(&out) {
        panic!("building plugins for the integration tests failed: {e:#}");
    }
    println!("cargo:rustc-env=SWITCHBOARD_TEST_PLUGINS={}", out.display());
    // Hostile guests for the sandbox tests, in their own directory so no other test loads them.
    let guests = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guests");
    if let Err(e) = xtask::build_test_guests(&guests) {
        panic!("building test guests failed: {e:#}");
    }
    println!("cargo:rustc-env=SWITCHBOARD_TEST_GUESTS={}", guests.display());
}
