//! pea-runtime: the OCI runtime as a library.
//!
//! An OCI bundle (config.json + root filesystem) goes in, a running container
//! comes out. The engine calls these functions in-process; the `pea` binary is
//! a thin runc-compatible command line over them. Nothing here parses command
//! lines, prints, or keeps process-global state.

pub mod cgroups;
