//! Attaching to a running container through its monitor's unix socket: the
//! container's output as it is written, input to its stdin or terminal, the
//! terminal's size, and its exit code at the end.

pub mod client;
pub mod proto;
pub mod server;
