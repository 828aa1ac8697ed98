//! `peapod rollout status|history|undo|restart` of a Deployment, as
//! kubectl's: each takes `deployment NAME` or `deployment/NAME`.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use peapod_engine::containers::Engine;
use peapod_engine::pod::deployment::{ControllerKind, ControllerStatus};
use peapod_engine::pod::revision::Rollback;

use crate::deploy_cmd::{duration, find, target};

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Wait until a Deployment's pods all run its current template.
    Status(RolloutStatusArgs),
    /// A Deployment's revisions, or one revision's pod template.
    History(RolloutHistoryArgs),
    /// Roll a Deployment back to its previous revision (or --to-revision).
    Undo(RolloutUndoArgs),
    /// Replace every pod of a Deployment by its strategy.
    Restart(RolloutTarget),
}

#[derive(Args, Debug)]
pub struct RolloutTarget {
    /// deployment NAME or deployment/NAME.
    #[arg(required = true)]
    pub what: Vec<String>,
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    pub namespace: String,
}

#[derive(Args, Debug)]
pub struct RolloutStatusArgs {
    #[command(flatten)]
    pub target: RolloutTarget,
    /// Give up after this long (e.g. 90s, 2m; 0 waits forever).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Print the state once and do not wait.
    #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub watch: bool,
}

#[derive(Args, Debug)]
pub struct RolloutHistoryArgs {
    #[command(flatten)]
    pub target: RolloutTarget,
    /// Show the pod template of this revision.
    #[arg(long)]
    pub revision: Option<u64>,
}

#[derive(Args, Debug)]
pub struct RolloutUndoArgs {
    #[command(flatten)]
    pub target: RolloutTarget,
    /// The revision to go back to (0: the previous one).
    #[arg(long = "to-revision", default_value_t = 0)]
    pub to_revision: u64,
}

/// The Deployment named by `t`; rollout is for Deployments only.
fn deployment(t: &RolloutTarget, verb: &str) -> Result<String> {
    let (kind, name) = target(&t.what)?;
    if kind != ControllerKind::Deployment {
        bail!(
            "rollout {verb}: {} {name} has no rollouts; only deployments do (rollout {verb} deployment/NAME)",
            kind.word()
        );
    }
    Ok(name)
}

pub fn run(engine: &Engine, c: &RolloutCommand) -> Result<()> {
    match c {
        RolloutCommand::Status(a) => status(engine, a),
        RolloutCommand::History(a) => history(engine, a),
        RolloutCommand::Undo(a) => {
            let name = deployment(&a.target, "undo")?;
            let to = (a.to_revision > 0).then_some(a.to_revision);
            match engine.rollback_deployment(&a.target.namespace, &name, to)? {
                Rollback::RolledBack(_) => println!("deployment.apps/{name} rolled back"),
                Rollback::Skipped(n) => println!(
                    "deployment.apps/{name} skipped rollback (current template already matches revision {n})"
                ),
            }
            Ok(())
        }
        RolloutCommand::Restart(t) => {
            let name = deployment(t, "restart")?;
            engine.restart_deployment(&t.namespace, &name)?;
            println!("deployment.apps/{name} restarted");
            Ok(())
        }
    }
}

/// kubectl's rollout status message, and whether it is done.
pub(crate) fn rollout_message(name: &str, desired: u32, s: &ControllerStatus) -> (String, bool) {
    if s.updated < desired {
        (
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} out of {desired} new replicas have been updated...",
                s.updated
            ),
            false,
        )
    } else if s.replicas > s.updated {
        (
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                s.replicas - s.updated
            ),
            false,
        )
    } else if s.available < s.updated {
        (
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} of {} updated replicas are available...",
                s.available, s.updated
            ),
            false,
        )
    } else {
        (format!("deployment {name:?} successfully rolled out"), true)
    }
}

/// `peapod rollout status deployment NAME`.
fn status(engine: &Engine, a: &RolloutStatusArgs) -> Result<()> {
    let name = deployment(&a.target, "status")?;
    let (kind, ns) = (ControllerKind::Deployment, a.target.namespace.as_str());
    let timeout = duration(&a.timeout)?;
    find(engine, kind, ns, &name)?;
    let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
    let mut last = String::new();
    loop {
        let rec = find(engine, kind, ns, &name)?;
        let s = engine.controller_status(&rec)?;
        let (msg, done) = rollout_message(&name, rec.replicas, &s);
        if msg != last {
            println!("{msg}");
            last = msg;
        }
        if done || !a.watch {
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            bail!("timed out waiting for the condition");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `peapod rollout history deployment NAME [--revision N]`.
fn history(engine: &Engine, a: &RolloutHistoryArgs) -> Result<()> {
    let name = deployment(&a.target, "history")?;
    let rec = find(
        engine,
        ControllerKind::Deployment,
        &a.target.namespace,
        &name,
    )?;
    let mut o = std::io::stdout().lock();
    if let Some(n) = a.revision.filter(|&n| n > 0) {
        let Some(r) = rec.revisions.iter().find(|r| r.number == n) else {
            bail!(
                "unable to find the specified revision {n} of deployment {name:?}: list them with peapod rollout history deployment/{name}"
            );
        };
        writeln!(o, "deployment.apps/{name} with revision #{n}")?;
        crate::deploy_cmd::print_template(&mut o, &r.template, Some(&r.hash))?;
        return Ok(());
    }
    writeln!(o, "deployment.apps/{name}")?;
    let width = rec
        .revisions
        .iter()
        .map(|r| r.number.to_string().len())
        .max()
        .unwrap_or(0)
        .max("REVISION".len())
        + 2;
    writeln!(o, "{:<width$}CHANGE-CAUSE", "REVISION")?;
    for r in &rec.revisions {
        writeln!(
            o,
            "{:<width$}{}",
            r.number,
            r.change_cause.as_deref().unwrap_or("<none>")
        )?;
    }
    writeln!(o)?;
    Ok(())
}
