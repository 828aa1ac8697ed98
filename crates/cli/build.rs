//! Links `peapod` at a fixed address (no PIE). Every pod keeps a supervisor
//! and an infra process of this binary alive; as a position-independent
//! executable each of them would relocate (and so privately copy) about
//! 0.5 MiB of the binary's tables at start. Linked at a fixed address those
//! pages stay shared among all of them. Shared libraries, heap and stack
//! are still placed at random; `pea`, the OCI runtime, stays a PIE.
fn main() {
    println!("cargo:rustc-link-arg-bin=peapod=-no-pie");
}
