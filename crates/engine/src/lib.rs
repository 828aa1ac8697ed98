//! peapod-engine: containers as the engine sees them.
//!
//! Records on disk (`record`), the Kubernetes CRI log format with rotation
//! (`logs`), restart policies and their back-off (`restart`), and the
//! supervisor that runs one container through the runtime library and turns
//! its output and exit into a log and a durable record (`supervisor`).

pub mod attach;
pub mod bundle;
pub mod containers;
mod durable;
pub mod logs;
pub mod monitor;
pub mod network;
pub mod paths;
pub mod pod;
pub mod record;
pub mod request;
pub mod request_parse;
pub mod restart;
pub mod supervise;
pub mod supervisor;
pub mod time;
pub mod userns;
pub mod volume;
