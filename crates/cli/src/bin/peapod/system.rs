//! `peapod system prune` and `peapod container prune`: stopped containers
//! removed; `system prune` first cleans what crashes left (network
//! attachments, runtime state, mounts, snapshots and sockets without a
//! record, records whose processes all died).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use clap::{Args, Subcommand};
use peapod_engine::containers::Engine;

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Remove stopped containers and what crashed containers left behind.
    Prune(PruneArgs),
}

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Remove all stopped containers.
    Prune(PruneArgs),
}

/// Asks on the terminal; without one, only `-f` proceeds.
fn confirmed(force: bool, what: &str) -> Result<bool> {
    if force {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "{what}: not asking without a terminal; use -f to prune without confirmation"
        );
    }
    eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

pub fn system(engine: &Engine, c: &SystemCommand) -> Result<()> {
    let SystemCommand::Prune(a) = c;
    if !confirmed(
        a.force,
        "all stopped containers and what crashed containers left behind",
    )? {
        return Ok(());
    }
    let p = engine.prune_system()?;
    let r = &p.reconciled;
    let section = |title: &str, items: Vec<String>| {
        if !items.is_empty() {
            println!("{title}:");
            for i in items {
                println!("{i}");
            }
            println!();
        }
    };
    section(
        "Settled containers (their processes were gone)",
        r.records.clone(),
    );
    section("Released network attachments", r.networks.clone());
    section("Deleted runtime state", r.runtime.clone());
    let paths = |v: &[std::path::PathBuf]| v.iter().map(|p| p.display().to_string()).collect();
    section("Unmounted leftover root filesystems", paths(&r.mounts));
    section("Deleted leftover snapshots", r.snapshots.clone());
    section("Deleted leftover sockets", paths(&r.sockets));
    section("Deleted Containers", p.containers.clone());
    println!(
        "Total: {} containers removed, {} leftovers cleaned",
        p.containers.len(),
        r.records.len()
            + r.networks.len()
            + r.runtime.len()
            + r.mounts.len()
            + r.snapshots.len()
            + r.sockets.len()
    );
    Ok(())
}

pub fn container(engine: &Engine, c: &ContainerCommand) -> Result<()> {
    let ContainerCommand::Prune(a) = c;
    if !confirmed(a.force, "all stopped containers")? {
        return Ok(());
    }
    let removed = engine.prune_containers()?;
    if !removed.is_empty() {
        println!("Deleted Containers:");
        for id in &removed {
            println!("{id}");
        }
        println!();
    }
    println!("Total: {} containers removed", removed.len());
    Ok(())
}
