//! `-u USER[:GROUP]` (names or numbers) resolved through the rootfs's
//! /etc/passwd and /etc/group, read inside the root.

use std::path::Path;

use super::{BundleError, root};

/// The process's identity inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// From passwd, "/" when unknown.
    pub home: String,
}

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Passwd {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f
                    .get(5)
                    .map_or("/", |h| if h.is_empty() { "/" } else { h })
                    .into(),
            })
        })
        .collect()
}

fn groups(text: &str) -> Vec<Group> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Group {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(|s| s.trim().to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `spec` (None or empty: root). A numeric uid need not be in
/// passwd (its group is then 0, as Docker); a name must be.
pub fn resolve(rootfs: &Path, spec: Option<&str>) -> Result<ResolvedUser, BundleError> {
    let spec = spec.unwrap_or("").trim();
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let users = passwd(&root::read_file(rootfs, "/etc/passwd")?.unwrap_or_default());
    let entry = if user.is_empty() {
        users.iter().find(|p| p.uid == 0)
    } else if let Ok(uid) = user.parse::<u32>() {
        users.iter().find(|p| p.uid == uid)
    } else {
        Some(
            users
                .iter()
                .find(|p| p.name == user)
                .ok_or_else(|| BundleError::NoSuchUser(user.to_string()))?,
        )
    };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => entry.map_or(0, |p| p.uid),
    };
    let all_groups = match group {
        Some(_) => Some(groups(
            &root::read_file(rootfs, "/etc/group")?.unwrap_or_default(),
        )),
        None => None,
    };
    let gid = match group {
        None | Some("") => entry.map_or(0, |p| p.gid),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => all_groups
                .iter()
                .flatten()
                .find(|gr| gr.name == g)
                .map(|gr| gr.gid)
                .ok_or_else(|| BundleError::NoSuchGroup(g.to_string()))?,
        },
    };
    let mut additional = Vec::new();
    if let Some(p) = entry {
        let all = match all_groups {
            Some(a) => a,
            None => groups(&root::read_file(rootfs, "/etc/group")?.unwrap_or_default()),
        };
        for g in all {
            if g.gid != gid && g.members.contains(&p.name) && !additional.contains(&g.gid) {
                additional.push(g.gid);
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        home: entry.map_or_else(|| "/".to_string(), |p| p.home.clone()),
    })
}
