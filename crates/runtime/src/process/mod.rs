//! Starting processes inside a container: the parent side (`spawn`), the
//! child side (`child`), the typed channel between them, and waiting.
//!
//! Fork-safety: the runtime may be called from a multi-threaded program. The
//! child is made with glibc's fork(), whose atfork handlers reset the malloc
//! arenas in the child, so the child may allocate; it touches no other lock
//! (no stdio, no environment, no logging) and works only on the `Plan` the
//! parent built before forking. Namespaces that need a single-threaded caller
//! (user, mount) are entered by that child, which is single-threaded.

pub mod channel;
pub mod child;
pub mod exec;
pub mod plan;
pub mod reaper;
pub mod spawn;
pub mod wait;

pub use plan::{InitSetup, Plan, ProcessSpec};
pub use wait::{ExitStatus, wait_pid};
