//! `peapod top`: a running container's processes (as `docker top`).

use anyhow::Result;
use clap::Args;
use peapod_engine::containers::{Engine, TOP_TITLES};

#[derive(Args, Debug)]
pub struct TopArgs {
    pub container: String,
}

pub fn run(engine: &Engine, a: &TopArgs) -> Result<()> {
    let rows: Vec<Vec<String>> = engine
        .top(&a.container)?
        .iter()
        .map(|p| p.columns().to_vec())
        .collect();
    crate::table::print(&TOP_TITLES, &rows);
    Ok(())
}
