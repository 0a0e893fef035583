//! The one place bindings are generated. Everything else in the crate uses these names.

wasmtime::component::bindgen!({
    world: "channel-adapter",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use exports::switchboard::plugin::channel as channel;
pub use switchboard::plugin::types as wit;
