//! The Floe agent: HTTP API, buffering, caching. The binary is `floe-agent`.

pub mod api;
pub mod app;
pub mod cache;
pub mod committer;
pub mod config;
pub mod groups;
pub mod partitioner;
pub mod peers;
pub mod reader;
pub mod writer;

pub use app::Agent;
pub use config::AgentArgs;
