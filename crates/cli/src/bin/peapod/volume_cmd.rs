//! `peapod volume create|ls|rm|inspect`, printing as `docker volume` does.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use peapod_engine::paths::Paths;
use peapod_engine::volume::{Volume, VolumeStore};
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume (a random name when none is given).
    Create {
        name: Option<String>,
        /// Set metadata on the volume (KEY=VALUE; repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        #[arg(long, value_enum, default_value = "table")]
        format: VolumeFormat,
        /// Only display volume names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove one or more volumes.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
        /// Remove them even when containers use them.
        #[arg(short, long)]
        force: bool,
    },
    /// Show volumes' details as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeFormat {
    Table,
    Json,
}

fn labels(args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for l in args {
        match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.insert(k.to_string(), v.to_string()),
            None if !l.is_empty() => out.insert(l.clone(), String::new()),
            _ => bail!("--label {l:?}: expected KEY=VALUE"),
        };
    }
    Ok(out)
}

/// `docker volume inspect`'s object for one volume.
fn inspect_json(v: &Volume) -> Value {
    json!({
        "CreatedAt": v.created,
        "Driver": "local",
        "Labels": if v.labels.is_empty() { Value::Null } else { json!(v.labels) },
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": Value::Null,
        "Scope": "local",
    })
}

/// `docker volume ls --format json`'s line for one volume.
fn ls_json(v: &Volume) -> Value {
    let labels: Vec<String> = v
        .labels
        .iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect();
    json!({
        "Driver": "local",
        "Labels": labels.join(","),
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Scope": "local",
    })
}

fn table(vols: &[Volume]) -> String {
    let mut s = format!("{:<10}{}\n", "DRIVER", "VOLUME NAME");
    for v in vols {
        s.push_str(&format!("{:<10}{}\n", "local", v.name));
    }
    s
}

pub fn run(
    cmd: &VolumeCommand,
    paths: &Paths,
    in_use: &dyn Fn(&str) -> Vec<String>,
) -> anyhow::Result<()> {
    let store = VolumeStore::new(paths.volumes());
    let mut out = std::io::stdout().lock();
    match cmd {
        VolumeCommand::Create { name, labels: l } => {
            let v = store.create(name.as_deref(), labels(l)?)?;
            writeln!(out, "{}", v.name)?;
        }
        VolumeCommand::Ls { format, quiet } => {
            let vols = store.list()?;
            if *quiet {
                for v in &vols {
                    writeln!(out, "{}", v.name)?;
                }
            } else {
                match format {
                    VolumeFormat::Table => write!(out, "{}", table(&vols))?,
                    VolumeFormat::Json => {
                        for v in &vols {
                            writeln!(out, "{}", ls_json(v))?;
                        }
                    }
                }
            }
        }
        VolumeCommand::Rm { names, force } => {
            let mut failed = Vec::new();
            for n in names {
                match store.remove(n, *force, &in_use(n)) {
                    Ok(()) => writeln!(out, "{n}")?,
                    Err(e) => failed.push(e.to_string()),
                }
            }
            if !failed.is_empty() {
                bail!("{}", failed.join("; "));
            }
        }
        VolumeCommand::Inspect { names } => {
            let mut found = Vec::new();
            let mut failed = Vec::new();
            for n in names {
                match store.get(n) {
                    Ok(v) => found.push(inspect_json(&v)),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            let text = serde_json::to_string_pretty(&Value::Array(found))
                .context("formatting the volumes as JSON")?;
            writeln!(out, "{text}")?;
            if !failed.is_empty() {
                bail!("{}", failed.join("; "));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_formats() {
        let l = labels(&["a=b".into(), "c".into()]).unwrap();
        assert_eq!(l.get("a").map(String::as_str), Some("b"));
        assert_eq!(l.get("c").map(String::as_str), Some(""));
        assert!(labels(&["=x".into()]).is_err());

        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(d.path().join("root"), d.path().join("run"), d.path());
        let store = VolumeStore::new(paths.volumes());
        let v = store.create(Some("data"), l).unwrap();
        assert_eq!(
            table(std::slice::from_ref(&v)),
            "DRIVER    VOLUME NAME\nlocal     data\n"
        );
        assert_eq!(inspect_json(&v)["Labels"]["a"], "b");
        assert_eq!(ls_json(&v)["Labels"], "a=b,c=");
        let busy = |_: &str| vec!["web".to_string()];
        let rm = VolumeCommand::Rm {
            names: vec!["data".into()],
            force: false,
        };
        let e = run(&rm, &paths, &busy).unwrap_err().to_string();
        assert!(e.contains("in use by container web"), "{e}");
        let rm = VolumeCommand::Rm {
            names: vec!["data".into()],
            force: true,
        };
        run(&rm, &paths, &busy).unwrap();
        assert!(store.list().unwrap().is_empty());
    }
}
