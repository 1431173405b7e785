//! The Floe agent: HTTP API, buffering, caching. The binary is `floe-agent`.

pub mod api;
pub mod auth;
pub mod budget;
pub mod cache;
pub mod chunks;
pub mod committer;
pub mod config;
pub mod config_file;
pub mod error;
mod essential;
pub mod groups;
mod one_buffer;
pub mod partitioner;
pub mod peers;
pub mod reader;
mod restarting;
pub mod service;
pub mod spool;
#[cfg(test)]
mod test_alloc;
#[cfg(test)]
mod testing;
pub mod writer;

pub use config::AgentArgs;
pub use service::Agent;
