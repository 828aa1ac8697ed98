//! `peapod export`: a container's root filesystem as a tar archive (as
//! `docker export`), walked without following symlinks; devices, fifos
//! and hard links are kept as such. The contents of mount points are left
//! out (none are mounted on the host's view of the root filesystem, so
//! /proc, /sys and /dev hold only what the image put there).

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use peapod_engine::containers::Engine;

use crate::rootfs_tar::{self, TreeWriter};

#[derive(Args, Debug)]
pub struct ContainerExportArgs {
    pub container: String,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

pub fn run(engine: &Engine, a: &ContainerExportArgs) -> Result<()> {
    let record = engine.store.resolve(&a.container)?;
    if !record.setup.rootfs.is_dir() {
        bail!(
            "container {} has no root filesystem on the host: nothing to export",
            record.name
        );
    }
    let root = rootfs_tar::open_root(&record.setup.rootfs)?;
    let write = |out: &mut dyn Write| -> Result<()> {
        let mut w = TreeWriter::new(out);
        w.append(root.as_fd(), ".".as_ref(), Path::new("."), None)?;
        w.finish()?.flush().context("writing the archive")?;
        Ok(())
    };
    match &a.output {
        Some(path) => {
            let mut tmp = path.clone().into_os_string();
            tmp.push(".partial");
            let tmp = PathBuf::from(tmp);
            let mut f = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let done = write(&mut f).and_then(|()| {
                f.sync_all()?;
                std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
            });
            if done.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            done
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!(
                    "refusing to write a tar archive to a terminal: redirect the output or use -o FILE"
                );
            }
            write(&mut stdout.lock())
        }
    }
}
