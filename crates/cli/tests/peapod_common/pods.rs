//! Pods made by `apply` in a test: a guard that deletes them, and what
//! `get pods`, `describe` and the record say of one.

use serde_json::Value;

use super::Peapod;

/// Deletes the pods when the test ends, even on a panic; declared after
/// the [`Peapod`] so it runs first.
pub struct Pods<'a> {
    pub pp: &'a Peapod,
    pub names: Vec<String>,
}

impl Drop for Pods<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.pp.output(&["delete", "pod", n, "--grace-period", "0"]);
        }
    }
}

/// Applies `yaml` (written in the test's dir as NAME.yaml) and returns
/// the guard that deletes pod `name`.
pub fn apply<'a>(pp: &'a Peapod, name: &str, yaml: &str) -> Pods<'a> {
    let file = pp.dir().join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).expect("write the manifest");
    let guard = Pods {
        pp,
        names: vec![name.to_string()],
    };
    pp.ok(&["apply", "-f", &file.to_string_lossy()]);
    guard
}

/// The `get pods` row of `name`: READY, STATUS, RESTARTS.
pub fn row(pp: &Peapod, name: &str) -> Option<(String, String, u32)> {
    let out = pp.ok(&["get", "pods"]);
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&name) && f.len() >= 4).then(|| {
            (
                f[1].to_string(),
                f[2].to_string(),
                f[3].parse().unwrap_or(0),
            )
        })
    })
}

pub fn describe(pp: &Peapod, name: &str) -> String {
    pp.ok(&["describe", "pod", name])
}

/// The record of pod `name`.
pub fn record(pp: &Peapod, name: &str) -> Option<Value> {
    std::fs::read_dir(pp.root.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("pod.json")).ok())
        .filter_map(|d| serde_json::from_slice::<Value>(&d).ok())
        .find(|r| r["name"] == name)
}
