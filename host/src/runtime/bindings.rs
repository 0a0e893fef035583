//! The one place bindings are generated. Everything else in the crate uses these names.

wasmtime::component::bindgen!({
    world: "channel-adapter",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::exports::switchboard::plugin::channel;
pub use self::switchboard::plugin::types as wit;
