//! The host firewall rules of a bridge network, installed once per network
//! instead of per container (as Podman and Docker do): outbound NAT for the
//! subnet and FORWARD accept rules for the bridge. The bridge plugin's own
//! `ipMasq` and the firewall plugin would add a chain and rules per container
//! on every attach.
//!
//! Each network has a chain of its own, `PEAPOD-BR-<bridge>`, in the nat and
//! the filter table, jumped to from peapod's chains `PEAPOD-POSTROUTING`
//! (from nat `POSTROUTING`) and `PEAPOD-FORWARD` (first in filter `FORWARD`):
//!
//! ```text
//! nat:    -A PEAPOD-BR-B -s SUBNET ! -d SUBNET -j MASQUERADE
//! filter: -A PEAPOD-BR-B -o B -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//!         -A PEAPOD-BR-B -o B -m conntrack --ctstate DNAT -j ACCEPT
//!         -A PEAPOD-BR-B -i B -j ACCEPT
//! ```
//!
//! (`--ctstate DNAT`: connections to published ports, when the FORWARD
//! policy is DROP.) Changes go through one `iptables-restore --noflush`
//! after one `iptables-save`. Declaring a network's chain in the restore
//! input flushes and refills it atomically, so ensuring twice, or from two
//! engines at once, never duplicates a rule; peapod's two shared chains are
//! made with `-N`, which fails instead of flushing when a concurrent call
//! made them first (the whole input is then retried on a fresh save).

use std::io::{self, Write};
use std::process::{Command, Stdio};

/// nat chain jumped to from `POSTROUTING`.
pub const NAT_CHAIN: &str = "PEAPOD-POSTROUTING";
/// filter chain jumped to first from `FORWARD`.
pub const FORWARD_CHAIN: &str = "PEAPOD-FORWARD";
/// Prefix of a network's own chains.
const NETWORK_CHAIN_PREFIX: &str = "PEAPOD-BR-";
/// Tries of a save + restore that lost a race with another caller.
const TRIES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum HostRulesError {
    #[error("invalid bridge name {0:?} for host rules: use at most 15 of [A-Za-z0-9_.-]")]
    InvalidBridge(String),
    #[error("invalid subnet {0:?} for host rules: expected an IPv4 CIDR like 10.89.0.0/16")]
    InvalidSubnet(String),
    #[error("run {cmd}: {source}: install iptables")]
    Exec {
        cmd: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{cmd} for network {network:?} failed: {stderr}")]
    Failed {
        cmd: &'static str,
        network: String,
        stderr: String,
    },
}

/// One bridge network's host rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRules {
    network: String,
    bridge: String,
    subnet: String,
}

impl HostRules {
    /// `subnet` is an IPv4 CIDR; `bridge` the network's host bridge.
    pub fn new(network: &str, bridge: &str, subnet: &str) -> Result<Self, HostRulesError> {
        let bridge_ok = !bridge.is_empty()
            && bridge.len() <= 15
            && !bridge.starts_with('-')
            && bridge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !bridge_ok {
            return Err(HostRulesError::InvalidBridge(bridge.to_string()));
        }
        if !valid_cidr(subnet) {
            return Err(HostRulesError::InvalidSubnet(subnet.to_string()));
        }
        // The name only goes into a quoted comment.
        let network: String = network
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
            .take(200)
            .collect();
        Ok(HostRules {
            network,
            bridge: bridge.to_string(),
            subnet: subnet.to_string(),
        })
    }

    /// The network's own chain (in both tables).
    pub fn chain(&self) -> String {
        format!("{NETWORK_CHAIN_PREFIX}{}", self.bridge)
    }

    /// What the rules depend on (for a marker saying they were ensured).
    pub fn fingerprint(&self) -> String {
        format!("{} {} {}", self.network, self.bridge, self.subnet)
    }

    /// The network's chain's rules in `table`, as `iptables-save` prints them
    /// (so they can be compared with what is installed).
    fn rules(&self, table: Table) -> Vec<String> {
        let (chain, s, b) = (self.chain(), &self.subnet, &self.bridge);
        let comment = format!("-m comment --comment \"peapod network {}\"", self.network);
        match table {
            Table::Nat => vec![format!(
                "-A {chain} -s {s} ! -d {s} {comment} -j MASQUERADE"
            )],
            Table::Filter => vec![
                format!(
                    "-A {chain} -o {b} {comment} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
                ),
                format!("-A {chain} -o {b} {comment} -m conntrack --ctstate DNAT -j ACCEPT"),
                format!("-A {chain} -i {b} {comment} -j ACCEPT"),
            ],
        }
    }

    /// Install the rules unless they are in place already. Idempotent.
    pub fn ensure(&self) -> Result<(), HostRulesError> {
        self.apply(|state| self.ensure_script(state))
    }

    /// Whether every rule is in place as [`ensure`](Self::ensure) makes it.
    pub fn in_place(&self) -> Result<bool, HostRulesError> {
        Ok(self.ensure_script(&Saved::parse(&self.save()?)).is_none())
    }

    /// Remove the network's chains and the jumps to them; nothing to do when
    /// they are not there.
    pub fn remove(&self) -> Result<(), HostRulesError> {
        self.apply(|state| self.remove_script(state))
    }

    /// Save, plan, restore; retried when the restore fails (another caller
    /// changed the tables between our save and restore).
    fn apply(&self, plan: impl Fn(&Saved) -> Option<String>) -> Result<(), HostRulesError> {
        let mut last = None;
        for _ in 0..TRIES {
            let state = Saved::parse(&self.save()?);
            let Some(script) = plan(&state) else {
                return Ok(());
            };
            match self.restore(&script) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one try"))
    }

    fn ensure_script(&self, state: &Saved) -> Option<String> {
        let chain = self.chain();
        let mut out = String::new();
        for table in [Table::Nat, Table::Filter] {
            let mut chains = Vec::new();
            let mut cmds = Vec::new();
            let (shared, builtin) = (table.shared_chain(), table.builtin_chain());
            if !state.has_chain(table, shared) {
                cmds.push(format!("-N {shared}"));
            }
            // The jump into peapod's chain, and the one into the network's.
            for (from, to) in [(builtin, shared), (shared, chain.as_str())] {
                let jumps = state.jumps(table, from, to);
                match jumps.len() {
                    0 if from == "FORWARD" => cmds.push(format!("-I {from} 1 -j {to}")),
                    0 => cmds.push(format!("-A {from} -j {to}")),
                    _ => cmds.extend(jumps[1..].iter().map(|r| format!("-D {r}"))),
                }
            }
            let want = self.rules(table);
            if state.rules(table, &chain) != want {
                chains.push(format!(":{chain} - [0:0]"));
                cmds.extend(want);
            }
            if !cmds.is_empty() {
                out.push_str(&section(table, &chains, &cmds));
            }
        }
        (!out.is_empty()).then_some(out)
    }

    fn remove_script(&self, state: &Saved) -> Option<String> {
        let chain = self.chain();
        let mut out = String::new();
        for table in [Table::Nat, Table::Filter] {
            let mut cmds: Vec<String> = Vec::new();
            for from in [table.shared_chain(), table.builtin_chain()] {
                cmds.extend(
                    state
                        .jumps(table, from, &chain)
                        .iter()
                        .map(|r| format!("-D {r}")),
                );
            }
            if state.has_chain(table, &chain) {
                cmds.push(format!("-F {chain}"));
                cmds.push(format!("-X {chain}"));
            }
            if !cmds.is_empty() {
                out.push_str(&section(table, &[], &cmds));
            }
        }
        (!out.is_empty()).then_some(out)
    }

    fn save(&self) -> Result<String, HostRulesError> {
        const CMD: &str = "iptables-save";
        let out = Command::new(CMD)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| HostRulesError::Exec { cmd: CMD, source })?;
        if !out.status.success() {
            return Err(self.failed(CMD, &out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn restore(&self, script: &str) -> Result<(), HostRulesError> {
        const CMD: &str = "iptables-restore";
        let mut child = Command::new(CMD)
            .args(["--noflush", "--wait"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| HostRulesError::Exec { cmd: CMD, source })?;
        let wrote = child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(script.as_bytes());
        let out = child
            .wait_with_output()
            .map_err(|source| HostRulesError::Exec { cmd: CMD, source })?;
        if !out.status.success() || wrote.is_err() {
            return Err(self.failed(CMD, &out.stderr));
        }
        Ok(())
    }

    fn failed(&self, cmd: &'static str, stderr: &[u8]) -> HostRulesError {
        let stderr = String::from_utf8_lossy(stderr);
        let stderr = stderr.trim();
        HostRulesError::Failed {
            cmd,
            network: self.network.clone(),
            stderr: if stderr.is_empty() {
                "no message".into()
            } else {
                stderr.lines().collect::<Vec<_>>().join("; ")
            },
        }
    }
}

fn valid_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    ip.parse::<std::net::Ipv4Addr>().is_ok() && prefix.parse::<u8>().is_ok_and(|p| p <= 32)
}

fn section(table: Table, chains: &[String], cmds: &[String]) -> String {
    let mut s = format!("*{}\n", table.name());
    for line in chains.iter().chain(cmds) {
        s.push_str(line);
        s.push('\n');
    }
    s.push_str("COMMIT\n");
    s
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Nat,
    Filter,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }

    fn shared_chain(self) -> &'static str {
        match self {
            Table::Nat => NAT_CHAIN,
            Table::Filter => FORWARD_CHAIN,
        }
    }

    fn builtin_chain(self) -> &'static str {
        match self {
            Table::Nat => "POSTROUTING",
            Table::Filter => "FORWARD",
        }
    }
}

/// The nat and filter tables as `iptables-save` printed them.
#[derive(Debug, Default)]
struct Saved {
    /// (table, chain) declared.
    chains: Vec<(Table, String)>,
    /// (table, chain, the whole `-A CHAIN ...` line).
    rules: Vec<(Table, String, String)>,
}

impl Saved {
    fn parse(text: &str) -> Saved {
        let mut saved = Saved::default();
        let mut table = None;
        for line in text.lines().map(str::trim_end) {
            if let Some(name) = line.strip_prefix('*') {
                table = match name {
                    "nat" => Some(Table::Nat),
                    "filter" => Some(Table::Filter),
                    _ => None,
                };
                continue;
            }
            let Some(t) = table else { continue };
            if let Some(decl) = line.strip_prefix(':') {
                if let Some(chain) = decl.split_whitespace().next() {
                    saved.chains.push((t, chain.to_string()));
                }
            } else if let Some(rest) = line.strip_prefix("-A ")
                && let Some(chain) = rest.split_whitespace().next()
            {
                saved.rules.push((t, chain.to_string(), line.to_string()));
            }
        }
        saved
    }

    fn has_chain(&self, table: Table, chain: &str) -> bool {
        self.chains.iter().any(|(t, c)| *t == table && c == chain)
    }

    /// Lines of `chain` in `table`, in order.
    fn rules(&self, table: Table, chain: &str) -> Vec<String> {
        self.rules
            .iter()
            .filter(|(t, c, _)| *t == table && c == chain)
            .map(|(_, _, line)| line.clone())
            .collect()
    }

    /// The rules of `from` that jump to `to`, without their `-A `.
    fn jumps(&self, table: Table, from: &str, to: &str) -> Vec<String> {
        self.rules(table, from)
            .into_iter()
            .filter(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                words.windows(2).any(|w| w[0] == "-j" && w[1] == to)
            })
            .map(|line| line["-A ".len()..].to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> HostRules {
        HostRules::new("peapod", "peapod0", "10.89.0.0/16").unwrap()
    }

    #[test]
    fn validates_its_inputs() {
        assert!(HostRules::new("n", "a b", "10.0.0.0/8").is_err());
        assert!(HostRules::new("n", "sixteen-chars-xx", "10.0.0.0/8").is_err());
        assert!(HostRules::new("n", "-j", "10.0.0.0/8").is_err());
        assert!(HostRules::new("n", "br0", "10.0.0.0").is_err());
        assert!(HostRules::new("n", "br0", "10.0.0.0/8 -j DROP").is_err());
        assert_eq!(rules().chain(), "PEAPOD-BR-peapod0");
        // A chain name fits iptables' 28 characters.
        let long = HostRules::new("n", "fifteen-chars-x", "10.0.0.0/8").unwrap();
        assert!(long.chain().len() <= 28);
    }

    #[test]
    fn plans_everything_on_an_empty_host_and_nothing_when_in_place() {
        let r = rules();
        let empty = Saved::parse(
            "*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n",
        );
        let script = r.ensure_script(&empty).unwrap();
        assert_eq!(
            script,
            "*nat\n:PEAPOD-BR-peapod0 - [0:0]\n-N PEAPOD-POSTROUTING\n\
             -A POSTROUTING -j PEAPOD-POSTROUTING\n-A PEAPOD-POSTROUTING -j PEAPOD-BR-peapod0\n\
             -A PEAPOD-BR-peapod0 -s 10.89.0.0/16 ! -d 10.89.0.0/16 -m comment --comment \"peapod network peapod\" -j MASQUERADE\n\
             COMMIT\n\
             *filter\n:PEAPOD-BR-peapod0 - [0:0]\n-N PEAPOD-FORWARD\n\
             -I FORWARD 1 -j PEAPOD-FORWARD\n-A PEAPOD-FORWARD -j PEAPOD-BR-peapod0\n\
             -A PEAPOD-BR-peapod0 -o peapod0 -m comment --comment \"peapod network peapod\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
             -A PEAPOD-BR-peapod0 -o peapod0 -m comment --comment \"peapod network peapod\" -m conntrack --ctstate DNAT -j ACCEPT\n\
             -A PEAPOD-BR-peapod0 -i peapod0 -m comment --comment \"peapod network peapod\" -j ACCEPT\n\
             COMMIT\n"
        );
        // What iptables-save prints once that is applied (plus others' rules).
        let mut installed = String::from("*mangle\n:PEAPOD-BR-peapod0 - [0:0]\nCOMMIT\n");
        for (table, builtin, jump) in [
            ("nat", "POSTROUTING", "-A POSTROUTING -j PEAPOD-POSTROUTING"),
            ("filter", "FORWARD", "-A FORWARD -j PEAPOD-FORWARD"),
        ] {
            installed.push_str(&format!(
                "*{table}\n:{builtin} ACCEPT [0:0]\n:PEAPOD-BR-peapod0 - [0:0]\n:{} - [0:0]\n{jump}\n-A {} -j PEAPOD-BR-peapod0\n-A {builtin} -j OTHER\n",
                if table == "nat" { NAT_CHAIN } else { FORWARD_CHAIN },
                if table == "nat" { NAT_CHAIN } else { FORWARD_CHAIN },
            ));
            let t = if table == "nat" {
                Table::Nat
            } else {
                Table::Filter
            };
            for rule in r.rules(t) {
                installed.push_str(&rule);
                installed.push('\n');
            }
            installed.push_str("COMMIT\n");
        }
        let saved = Saved::parse(&installed);
        assert_eq!(r.ensure_script(&saved), None);

        // Removal deletes the jumps into the network's chains and them.
        assert_eq!(
            r.remove_script(&saved).unwrap(),
            "*nat\n-D PEAPOD-POSTROUTING -j PEAPOD-BR-peapod0\n-F PEAPOD-BR-peapod0\n-X PEAPOD-BR-peapod0\nCOMMIT\n\
             *filter\n-D PEAPOD-FORWARD -j PEAPOD-BR-peapod0\n-F PEAPOD-BR-peapod0\n-X PEAPOD-BR-peapod0\nCOMMIT\n"
        );
        assert_eq!(r.remove_script(&empty), None);
    }

    #[test]
    fn refills_a_changed_chain_and_drops_duplicate_jumps() {
        let r = rules();
        let saved = Saved::parse(
            "*nat\n:PEAPOD-POSTROUTING - [0:0]\n:PEAPOD-BR-peapod0 - [0:0]\n\
             -A POSTROUTING -j PEAPOD-POSTROUTING\n\
             -A PEAPOD-POSTROUTING -j PEAPOD-BR-peapod0\n-A PEAPOD-POSTROUTING -j PEAPOD-BR-peapod0\n\
             -A PEAPOD-BR-peapod0 -s 10.1.0.0/16 ! -d 10.1.0.0/16 -j MASQUERADE\nCOMMIT\n",
        );
        let script = r.ensure_script(&saved).unwrap();
        let nat = script.split("COMMIT\n").next().unwrap();
        assert_eq!(
            nat,
            "*nat\n:PEAPOD-BR-peapod0 - [0:0]\n-D PEAPOD-POSTROUTING -j PEAPOD-BR-peapod0\n\
             -A PEAPOD-BR-peapod0 -s 10.89.0.0/16 ! -d 10.89.0.0/16 -m comment --comment \"peapod network peapod\" -j MASQUERADE\n"
        );
    }
}
