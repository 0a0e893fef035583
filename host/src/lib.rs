//! Switchboard: a durable, sandboxed gateway between messaging providers and AI agents.
//!
//! Map (see ARCHITECTURE.md): `api` (HTTP, thin) → `inbound` / `outbox` (services) →
//! `store` (redb, the only module that touches it) and `runtime` (wasmtime, the only module
//! that touches it). `verify` checks webhook signatures before anything else happens.

pub mod clock;
pub mod memory;
pub mod idle;
pub mod config;
pub mod model;
pub mod redact;
pub mod store;
pub mod store_cli;
pub mod accounts;
pub mod admin_cli;
pub mod egress;
pub mod runtime;
pub mod verify;
pub mod app;
pub mod breaker;
pub mod ratelimit;
pub mod inbound;
pub mod lease;
pub mod outbox;
pub mod poller;
pub mod agent;
pub mod api;
pub mod daemon;
pub mod metrics;
pub mod reload;
pub mod systemd;
