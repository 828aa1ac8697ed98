//! `peapod network create|ls|rm|inspect`.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use peapod_engine::network::{DEFAULT_NETWORK, NetworkCreate, NetworkError, NetworkInfo, Networks};
use peapod_engine::paths::Paths;

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a bridge network.
    Create {
        name: String,
        /// IPv4 subnet in CIDR notation (default: a free 10.X.0.0/16).
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway address (default: the subnet's first address).
        #[arg(long)]
        gateway: Option<String>,
        /// Host bridge device name (default: peapodN).
        #[arg(long)]
        bridge: Option<String>,
    },
    /// List networks.
    #[command(visible_alias = "list")]
    Ls {
        /// table, or json (one object per line).
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
        /// Only print network names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove networks (refused while containers use them).
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print networks' details as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

/// Run a network command; `users_of(network)` names the containers attached
/// to it.
pub fn run(
    cmd: &NetworkCommand,
    paths: &Paths,
    users_of: &dyn Fn(&str) -> Vec<String>,
) -> anyhow::Result<()> {
    let nets = Networks::new(paths);
    let mut out = std::io::stdout().lock();
    match cmd {
        NetworkCommand::Create {
            name,
            subnet,
            gateway,
            bridge,
        } => {
            let info = nets.create(&NetworkCreate {
                name: name.clone(),
                subnet: subnet.clone(),
                gateway: gateway.clone(),
                bridge: bridge.clone(),
            })?;
            writeln!(out, "{}", info.name)?;
        }
        NetworkCommand::Ls { format, quiet } => {
            // The default network is always listed (best effort: listing
            // needs no write access).
            let _ = nets.ensure_default();
            let list = nets.list()?;
            if *quiet {
                for n in &list {
                    writeln!(out, "{}", n.name)?;
                }
            } else if *format == ListFormat::Json {
                for n in &list {
                    writeln!(out, "{}", serde_json::to_string(n)?)?;
                }
            } else {
                out.write_all(table(&list).as_bytes())?;
            }
        }
        NetworkCommand::Rm { names } => {
            let mut failed = Vec::new();
            for name in names {
                match nets.remove(name, &users_of(name)) {
                    Ok(()) => writeln!(out, "{name}")?,
                    Err(e) => failed.push((name.as_str(), e)),
                }
            }
            // One failure is the error; several are listed, then summed up.
            if failed.len() == 1 {
                let (_, e) = failed.remove(0);
                return Err(e.into());
            }
            if !failed.is_empty() {
                for (_, e) in &failed {
                    eprintln!("peapod: {e}");
                }
                let names: Vec<&str> = failed.iter().map(|(n, _)| *n).collect();
                bail!("could not remove networks {}", names.join(", "));
            }
        }
        NetworkCommand::Inspect { names } => {
            if names.iter().any(|n| n == DEFAULT_NETWORK) {
                // Best effort: reading needs no write access.
                let _ = nets.ensure_default();
            }
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for name in names {
                match nets.inspect(name) {
                    Ok(info) => found.push(info),
                    Err(NetworkError::NotFound(_)) => missing.push(name.as_str()),
                    Err(e) => return Err(e).with_context(|| format!("network {name}")),
                }
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&found)?)?;
            if !missing.is_empty() {
                bail!("no such network: {}", missing.join(", "));
            }
        }
    }
    Ok(())
}

/// `NAME  DRIVER  SUBNET` columns, as `docker network ls`.
fn table(list: &[NetworkInfo]) -> String {
    let w = list
        .iter()
        .map(|n| n.name.len())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    let mut s = format!("{:<w$}   {:<8} {}\n", "NAME", "DRIVER", "SUBNET");
    for n in list {
        s.push_str(&format!("{:<w$}   {:<8} {}\n", n.name, n.driver, n.subnet));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns() {
        let info = |name: &str, subnet: &str| NetworkInfo {
            name: name.into(),
            driver: "bridge".into(),
            subnet: subnet.into(),
            gateway: String::new(),
            bridge: String::new(),
            created: String::new(),
        };
        let t = table(&[
            info("peapod", "10.89.0.0/16"),
            info("backend", "10.90.0.0/16"),
        ]);
        assert_eq!(
            t,
            "NAME      DRIVER   SUBNET\n\
             peapod    bridge   10.89.0.0/16\n\
             backend   bridge   10.90.0.0/16\n"
        );
    }
}
