//! What a host program needs at run time, read from its ELF headers the way ld.so reads
//! them: PT_INTERP, DT_NEEDED, DT_RPATH/DT_RUNPATH (with `$ORIGIN`), /etc/ld.so.conf and
//! the default library directories. No ldd: nothing on the host is executed.

use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use goblin::elf::Elf;

use super::HostBuildError;

/// The ELF class and machine a library must have to be loadable by a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Kind {
    is_64: bool,
    machine: u16,
}

struct Object {
    kind: Kind,
    interpreter: Option<String>,
    needed: Vec<String>,
    rpaths: Vec<String>,
    runpaths: Vec<String>,
}

fn read_object(path: &Path) -> Result<Option<Object>, HostBuildError> {
    let data = fs::read(path).map_err(|e| HostBuildError::io(path, e))?;
    if !data.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    let elf =
        Elf::parse(&data).map_err(|e| HostBuildError::Elf(path.to_path_buf(), e.to_string()))?;
    Ok(Some(Object {
        kind: Kind {
            is_64: elf.is_64,
            machine: elf.header.e_machine,
        },
        interpreter: elf.interpreter.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpaths: elf
            .rpaths
            .iter()
            .flat_map(|s| s.split(':'))
            .map(str::to_string)
            .collect(),
        runpaths: elf
            .runpaths
            .iter()
            .flat_map(|s| s.split(':'))
            .map(str::to_string)
            .collect(),
    }))
}

fn kind_of(path: &Path) -> Option<Kind> {
    let data = fs::read(path).ok()?;
    let elf = Elf::parse(&data).ok()?;
    Some(Kind {
        is_64: elf.is_64,
        machine: elf.header.e_machine,
    })
}

/// The directories of /etc/ld.so.conf and its includes, in order.
pub fn ld_so_conf_dirs(conf: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    read_conf(conf, &mut out, 0);
    out
}

fn read_conf(conf: &Path, out: &mut Vec<PathBuf>, depth: u32) {
    let Ok(text) = fs::read_to_string(conf) else {
        return;
    };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line.strip_prefix("include").map(str::trim) {
            if depth > 8 {
                continue;
            }
            let pattern = if Path::new(pattern).is_absolute() {
                PathBuf::from(pattern)
            } else {
                conf.parent().unwrap_or(Path::new("/")).join(pattern)
            };
            for file in glob_files(&pattern) {
                read_conf(&file, out, depth + 1);
            }
        } else if line.starts_with('/') {
            out.push(PathBuf::from(line));
        }
    }
}

/// Files matching a pattern whose last component may hold one `*` (`/etc/ld.so.conf.d/*.conf`).
fn glob_files(pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (
        pattern.parent(),
        pattern.file_name().and_then(|n| n.to_str()),
    ) else {
        return Vec::new();
    };
    let Some((pre, post)) = name.split_once('*') else {
        return if pattern.is_file() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        };
    };
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.len() >= pre.len() + post.len() && n.starts_with(pre) && n.ends_with(post)
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Where ld.so looks when nothing else says: the multiarch and classic directories.
pub fn default_dirs() -> Vec<PathBuf> {
    let triple = match std::env::consts::ARCH {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "x86" => "i386-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        other => other,
    };
    [
        format!("/lib/{triple}"),
        format!("/usr/lib/{triple}"),
        "/lib64".into(),
        "/usr/lib64".into(),
        "/lib".into(),
        "/usr/lib".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

fn expand_origin(dir: &str, origin: &Path) -> PathBuf {
    let o = origin.to_string_lossy();
    PathBuf::from(dir.replace("${ORIGIN}", &o).replace("$ORIGIN", &o))
}

/// Every file `program` needs to run: itself, its interpreter and all shared libraries,
/// transitively, as host paths (not canonicalized: the layer keeps the host's symlinks).
pub fn dependencies(program: &Path) -> Result<Vec<PathBuf>, HostBuildError> {
    let conf_dirs = ld_so_conf_dirs(Path::new("/etc/ld.so.conf"));
    let defaults = default_dirs();
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    files.insert(program.to_path_buf());
    let Some(main) = read_object(program)? else {
        return Ok(files.into_iter().collect());
    };
    if let Some(interp) = &main.interpreter {
        files.insert(PathBuf::from(interp));
    }
    let exe_rpaths = main.rpaths.clone();
    let exe_origin = origin_of(program);
    let mut queue: VecDeque<(PathBuf, Object)> = VecDeque::new();
    queue.push_back((program.to_path_buf(), main));
    let mut seen_names: BTreeSet<String> = BTreeSet::new();
    while let Some((path, obj)) = queue.pop_front() {
        let origin = origin_of(&path);
        for name in &obj.needed {
            if !seen_names.insert(name.clone()) {
                continue;
            }
            let found = if name.contains('/') {
                let p = PathBuf::from(name);
                p.is_file().then_some(p)
            } else {
                let mut dirs: Vec<PathBuf> = Vec::new();
                // DT_RPATH applies only when there is no DT_RUNPATH; the executable's RPATH
                // also applies to the libraries it loads.
                if obj.runpaths.is_empty() {
                    dirs.extend(obj.rpaths.iter().map(|d| expand_origin(d, &origin)));
                    dirs.extend(exe_rpaths.iter().map(|d| expand_origin(d, &exe_origin)));
                }
                dirs.extend(obj.runpaths.iter().map(|d| expand_origin(d, &origin)));
                dirs.extend(conf_dirs.iter().cloned());
                dirs.extend(defaults.iter().cloned());
                dirs.into_iter()
                    .map(|d| d.join(name))
                    .find(|p| p.is_file() && kind_of(p) == Some(obj.kind))
            };
            let lib = found.ok_or_else(|| HostBuildError::MissingLibrary {
                library: name.clone(),
                needed_by: path.clone(),
            })?;
            if files.insert(lib.clone())
                && let Some(o) = read_object(&lib)?
            {
                queue.push_back((lib, o));
            }
        }
    }
    Ok(files.into_iter().collect())
}

fn origin_of(path: &Path) -> PathBuf {
    fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_libraries_of_a_dynamic_program() {
        // /bin/sh on Debian is dash, dynamically linked against libc.
        let sh = Path::new("/bin/sh");
        if !sh.exists() {
            return;
        }
        let deps = dependencies(sh).unwrap();
        let names: Vec<String> = deps
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        if read_object(sh)
            .unwrap()
            .is_some_and(|o| o.interpreter.is_some())
        {
            assert!(names.iter().any(|n| n.starts_with("libc.so")), "{names:?}");
            assert!(names.iter().any(|n| n.starts_with("ld-linux")), "{names:?}");
        }
    }

    #[test]
    fn reads_ld_so_conf_includes() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        fs::write(tmp.path().join("d/a.conf"), "/opt/a/lib # comment\n").unwrap();
        fs::write(tmp.path().join("d/b.conf"), "/opt/b/lib\n").unwrap();
        fs::write(tmp.path().join("d/ignored.txt"), "/nope\n").unwrap();
        fs::write(
            tmp.path().join("ld.so.conf"),
            "include d/*.conf\n/usr/local/lib\n",
        )
        .unwrap();
        let dirs = ld_so_conf_dirs(&tmp.path().join("ld.so.conf"));
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/opt/a/lib"),
                PathBuf::from("/opt/b/lib"),
                PathBuf::from("/usr/local/lib")
            ]
        );
    }

    #[test]
    fn origin_is_expanded() {
        assert_eq!(
            expand_origin("$ORIGIN/../lib", Path::new("/opt/x/bin")),
            PathBuf::from("/opt/x/bin/../lib")
        );
        assert_eq!(
            expand_origin("${ORIGIN}/l", Path::new("/o")),
            PathBuf::from("/o/l")
        );
    }
}
