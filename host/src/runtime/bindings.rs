//! The one place bindings are generated, one `bindgen!` per world. Everything else in the
//! crate uses these names.
//!
//! The `agent-tool` world shares the `types` and `host` interfaces with `channel-adapter`
//! (bindgen `with`), so one `Host` implementation ([`super::host_impl`]) serves both worlds.

wasmtime::component::bindgen!({
    world: "channel-adapter",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::exports::switchboard::plugin::channel;
pub use self::switchboard::plugin::types as wit;

/// Bindings of the `agent-tool` world (the `tool` export); `types` and `host` are the ones above.
pub mod tool_world {
    wasmtime::component::bindgen!({
        world: "agent-tool",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "switchboard:plugin/types": crate::runtime::bindings::switchboard::plugin::types,
            "switchboard:plugin/host": crate::runtime::bindings::switchboard::plugin::host,
        },
    });
}

pub use tool_world::exports::switchboard::plugin::tool;
pub use tool_world::{AgentTool, AgentToolPre};
