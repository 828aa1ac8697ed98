//! Import and export: OCI image layout directories, oci-archive tarballs (a layout in a
//! tar) and docker-archive tarballs (`docker save`'s format).

mod docker;
mod oci;

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::ImageError;
use crate::records::ImageRecord;
use crate::service::ImageService;
use crate::unpack::{self, Whiteouts};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OciLayout,
    OciArchive,
    DockerArchive,
}

fn io_err(what: String) -> impl FnOnce(io::Error) -> ImageError {
    ImageError::io(what)
}

/// A directory removed on drop (temporary extraction of an archive).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl ImageService {
    fn temp_dir(&self, what: &str) -> Result<TempDir, ImageError> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self
            .root()
            .join("tmp")
            .join(format!("{what}-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        Ok(TempDir(dir))
    }

    /// Imports every image of `path` (layout dir, oci-archive or docker-archive); `name`
    /// names the image (required when the source names none).
    pub fn import(&self, path: &Path, name: Option<&str>) -> Result<Vec<ImageRecord>, ImageError> {
        let _gc = self.gc_lock(false)?;
        if path.is_dir() {
            return oci::import_layout(self, path, name);
        }
        let file = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
        let format = detect_archive(file, path)?;
        // Extracted with the layer unpacker: an archive cannot write outside its temp dir.
        let tmp = self.temp_dir("import")?;
        let file = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
        unpack::unpack(io::BufReader::new(file), &tmp.0, Whiteouts::Apply).map_err(|e| {
            ImageError::Invalid {
                name: path.display().to_string(),
                why: format!("not a readable tar archive: {e}"),
            }
        })?;
        match format {
            Format::OciArchive => oci::import_layout(self, &tmp.0, name),
            Format::DockerArchive => docker::import(self, &tmp.0, name),
            Format::OciLayout => unreachable!("detect_archive returns archives"),
        }
    }

    /// Exports image `name` to `dest` in `format` (`-` as dest writes an archive to stdout).
    pub fn export(&self, name: &str, dest: &Path, format: Format) -> Result<(), ImageError> {
        let image = self.load(name)?;
        match format {
            Format::OciLayout => oci::export_layout(self, &image, dest),
            Format::OciArchive => {
                let tmp = self.temp_dir("export")?;
                oci::export_layout(self, &image, &tmp.0)?;
                write_archive(&tmp.0, dest)
            }
            Format::DockerArchive => {
                let tmp = self.temp_dir("export")?;
                docker::export(self, &image, &tmp.0)?;
                write_archive(&tmp.0, dest)
            }
        }
    }
}

fn detect_archive(file: File, path: &Path) -> Result<Format, ImageError> {
    let mut ar = tar::Archive::new(io::BufReader::new(file));
    let bad = |why: String| ImageError::Invalid {
        name: path.display().to_string(),
        why,
    };
    for entry in ar
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?
    {
        let entry = entry.map_err(|e| bad(format!("not a tar archive: {e}")))?;
        let p = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let p = p.strip_prefix("./").unwrap_or(&p);
        if p == Path::new("oci-layout") {
            return Ok(Format::OciArchive);
        }
        if p == Path::new("manifest.json") {
            return Ok(Format::DockerArchive);
        }
    }
    Err(bad(
        "neither an oci-archive (no oci-layout file) nor a docker-archive (no manifest.json)"
            .into(),
    ))
}

/// Tars up `dir`'s contents into `dest` (a file, or stdout for `-`); written to a temp
/// file and renamed, so a failed export leaves no half archive.
fn write_archive(dir: &Path, dest: &Path) -> Result<(), ImageError> {
    let io_dest = |e| ImageError::Io {
        what: format!("writing {}", dest.display()),
        source: e,
    };
    if dest == Path::new("-") {
        let out = io::stdout().lock();
        let mut b = tar::Builder::new(out);
        b.follow_symlinks(false);
        b.append_dir_all(".", dir).map_err(io_dest)?;
        let mut out = b.into_inner().map_err(io_dest)?;
        io::Write::flush(&mut out).map_err(io_dest)?;
        return Ok(());
    }
    let tmp = dest.with_extension("peapod-tmp");
    let result = (|| -> io::Result<()> {
        let f = File::create(&tmp)?;
        let mut b = tar::Builder::new(io::BufWriter::new(f));
        b.follow_symlinks(false);
        b.append_dir_all(".", dir)?;
        let w = b.into_inner()?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_dest)
}

/// Copies a blob file into the store, verified against `digest`.
fn ingest_file(
    svc: &ImageService,
    path: &Path,
    digest: &crate::digest::Digest,
    size: Option<u64>,
) -> Result<(), ImageError> {
    if svc.store().exists(digest) {
        return Ok(());
    }
    let mut f = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    svc.store().ingest(&mut f as &mut dyn Read, digest, size)?;
    Ok(())
}
