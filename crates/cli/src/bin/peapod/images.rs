//! Image verbs: pull, push, images, image rm/prune/inspect/import/export/build-from-host, tag.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use peapod_image::archive::Format;
use peapod_image::config::parse_rfc3339;
use peapod_image::manifest::Platform;
use peapod_image::reference::Reference;
use peapod_image::registry::progress::{ProgressMode, human_size};
use peapod_image::registry::pull::PullOptions;
use peapod_image::registry::push::PushOptions;
use peapod_image::{Image, ImageService};
use serde_json::{Value, json};

use crate::args::{
    BuildFromHostArgs, Cli, ExportArgs, ExportFormat, ImagesArgs, ImportArgs, InspectArgs,
    ListFormat, PullArgs, PushArgs, RmArgs, TagArgs, UnpackLayerArgs,
};
use crate::registry::client_options;

pub fn pull(svc: &ImageService, cli: &Cli, a: &PullArgs) -> anyhow::Result<()> {
    let reference = Reference::parse(&a.image)?;
    let platform = match &a.platform {
        Some(p) => p.parse::<Platform>()?,
        None => Platform::host(),
    };
    let opts = PullOptions {
        platform,
        client: client_options(&cli.root, &a.registry, &reference)?,
        progress: if a.quiet {
            ProgressMode::Quiet
        } else {
            ProgressMode::Auto
        },
        concurrency: usize::from(a.max_concurrent_downloads),
        unpack: true,
    };
    let image = svc.pull(&reference, &opts)?;
    if a.quiet {
        println!("{}", image.id());
    } else {
        println!(
            "Digest: {}",
            image
                .record
                .index
                .as_ref()
                .unwrap_or(&image.record.target)
                .digest
        );
        println!("Image: {} ({})", image.record.name, image.id());
    }
    Ok(())
}

pub fn push(svc: &ImageService, cli: &Cli, a: &PushArgs) -> anyhow::Result<()> {
    let record = svc.resolve(&a.image)?;
    let dest = Reference::parse(a.destination.as_deref().unwrap_or(&record.name))?;
    let opts = PushOptions {
        client: client_options(&cli.root, &a.registry, &dest)?,
        progress: if a.quiet {
            ProgressMode::Quiet
        } else {
            ProgressMode::Auto
        },
        chunk_size: a.chunk_size,
    };
    let digest = svc.push(&a.image, &dest, &opts)?;
    println!("{dest}: digest: {digest}");
    Ok(())
}

fn ago(created: Option<&str>) -> String {
    let Some(t) = created.and_then(parse_rfc3339) else {
        return "N/A".into();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let s = now.saturating_sub(t);
    let (n, unit) = match s {
        0..60 => return "Less than a minute ago".into(),
        60..3600 => (s / 60, "minute"),
        3600..86_400 => (s / 3600, "hour"),
        86_400..2_592_000 => (s / 86_400, "day"),
        2_592_000..31_536_000 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn loaded(svc: &ImageService) -> anyhow::Result<Vec<(Reference, Image)>> {
    let mut out = Vec::new();
    for rec in svc.records()? {
        let r = Reference::parse(&rec.name)?;
        let img = svc
            .load_record(&rec)
            .with_context(|| format!("reading image {}", rec.name))?;
        out.push((r, img));
    }
    Ok(out)
}

pub fn list(svc: &ImageService, a: &ImagesArgs) -> anyhow::Result<()> {
    let images = loaded(svc)?;
    if a.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for (_, img) in &images {
            if seen.insert(img.id().clone()) {
                println!("{}", img.id().short());
            }
        }
        return Ok(());
    }
    if a.format == ListFormat::Json {
        let v: Vec<Value> = images
            .iter()
            .map(|(r, img)| {
                json!({
                    "Repository": r.familiar_name(),
                    "Tag": r.tag(),
                    "Name": img.record.name,
                    "Id": img.id().to_string(),
                    "Digest": img.record.index.as_ref().unwrap_or(&img.record.target).digest.to_string(),
                    "Created": img.config.created,
                    "Size": img.size(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let rows: Vec<[String; 5]> = images
        .iter()
        .map(|(r, img)| {
            [
                r.familiar_name(),
                r.tag().unwrap_or("<none>").to_string(),
                img.id().short().to_string(),
                ago(img.config.created.as_deref()),
                human_size(img.size()),
            ]
        })
        .collect();
    let header = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 4 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    Ok(())
}

/// `image rm`: refuses to take the last name of an image a container uses
/// (`users` gives the containers of an image id) unless `-f`, which only
/// removes names: the layers stay while the container's snapshot sits on
/// them, and the next prune after the container is gone frees them.
pub fn remove(
    svc: &ImageService,
    a: &RmArgs,
    users: &dyn Fn(&str) -> Vec<String>,
) -> anyhow::Result<()> {
    for name in &a.images {
        let rec = svc.resolve(name)?;
        let id = svc.load_record(&rec)?.id().to_string();
        let by_name = Reference::parse(name).is_ok_and(|r| r.to_string() == rec.name);
        let other_names = svc
            .records()?
            .iter()
            .filter(|r| r.target.digest == rec.target.digest && r.name != rec.name)
            .count();
        let last_name = !by_name || other_names == 0;
        let used_by = users(&id);
        if last_name && !a.force && !used_by.is_empty() {
            anyhow::bail!(
                "image {name} is in use by container {}: remove the container first or use -f",
                used_by.join(", ")
            );
        }
        for n in svc.untag(name)? {
            println!("Untagged: {n}");
        }
    }
    if a.force {
        return Ok(());
    }
    report_gc(svc)
}

/// Names of the containers made from image `id`.
pub fn image_users(engine: &peapod_engine::containers::Engine, id: &str) -> Vec<String> {
    engine
        .store
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.setup.image_id == id)
        .map(|r| r.name)
        .collect()
}

fn report_gc(svc: &ImageService) -> anyhow::Result<()> {
    let r = svc.gc()?;
    for d in &r.blobs_removed {
        println!("Deleted: {d}");
    }
    println!(
        "Removed {} blobs and {} layer snapshots; {} freed",
        r.blobs_removed.len(),
        r.snapshots_removed.len(),
        human_size(r.bytes_freed)
    );
    Ok(())
}

pub fn prune(svc: &ImageService) -> anyhow::Result<()> {
    report_gc(svc)
}

/// `image inspect`: each name is an image, or else a container, shown with
/// its own overlay paths (as `docker inspect` shows both).
pub fn inspect(
    svc: &ImageService,
    a: &InspectArgs,
    container: &dyn Fn(&str) -> Option<Value>,
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    for name in &a.images {
        match image_value(svc, name) {
            Ok(v) => out.push(v),
            Err(e) => match container(name) {
                Some(v) => out.push(v),
                None => return Err(e),
            },
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// One image as `image inspect` shows it.
pub fn image_value(svc: &ImageService, name: &str) -> anyhow::Result<Value> {
    {
        let img = svc.load(name)?;
        let names: Vec<String> = svc
            .records()?
            .into_iter()
            .filter(|r| r.target.digest == img.record.target.digest)
            .map(|r| r.name)
            .collect();
        let top = img.chain_ids().last().map(|c| c.to_string());
        let graph = match top.as_deref().map(|t| svc.snapshots().graph_driver(t)) {
            Some(Ok(g)) => serde_json::to_value(g)?,
            _ => Value::Null,
        };
        Ok(json!({
            "Id": img.id().to_string(),
            "RepoTags": names,
            "RepoDigests": [img.record.index.as_ref().unwrap_or(&img.record.target).digest.to_string()],
            "ManifestDigest": img.record.target.digest.to_string(),
            "MediaType": img.record.target.media_type,
            "Created": img.config.created,
            "Architecture": img.config.architecture,
            "Os": img.config.os,
            "Size": img.size(),
            "Config": img.config.config,
            "RootFS": {"Type": img.config.rootfs.typ, "Layers": img.config.rootfs.diff_ids},
            "Layers": img.manifest.layers,
            "History": img.config.history,
            "GraphDriver": graph,
        }))
    }
}

pub fn import(svc: &ImageService, a: &ImportArgs) -> anyhow::Result<()> {
    for rec in svc.import(&a.path, a.name.as_deref())? {
        println!("Loaded image: {}", rec.name);
    }
    Ok(())
}

pub fn export(svc: &ImageService, a: &ExportArgs) -> anyhow::Result<()> {
    let format = match a.format {
        ExportFormat::Oci => Format::OciLayout,
        ExportFormat::OciArchive => Format::OciArchive,
        ExportFormat::DockerArchive => Format::DockerArchive,
    };
    svc.export(&a.image, &a.path, format)?;
    Ok(())
}

pub fn build_from_host(svc: &ImageService, a: &BuildFromHostArgs) -> anyhow::Result<()> {
    let img = svc.build_from_host(&a.name, &a.programs)?;
    svc.unpack(&img)?;
    println!("{} {}", img.record.name, img.id());
    Ok(())
}

pub fn tag(svc: &ImageService, a: &TagArgs) -> anyhow::Result<()> {
    svc.tag(&a.source, &a.target)?;
    Ok(())
}

pub fn unpack_layer(a: &UnpackLayerArgs) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(&a.layer).with_context(|| format!("opening {}", a.layer.display()))?;
    let input = std::io::BufReader::with_capacity(256 * 1024, file);
    let reader = peapod_image::layer::decompressor(input, None)
        .with_context(|| format!("reading {}", a.layer.display()))?;
    let stats =
        peapod_image::unpack::unpack(reader, &a.dir, peapod_image::unpack::Whiteouts::Overlay)?;
    println!(
        "{} entries, {} bytes of file data",
        stats.entries, stats.file_bytes
    );
    Ok(())
}

/// The image of the embedded default (`busybox`), built from the host's
/// static busybox when no registry is around.
const EMBEDDED: &str = "busybox";
const HOST_BUSYBOX: &str = "/bin/busybox";

/// Makes sure image `name` is in the local store for `run`/`create`:
/// `busybox` is built from the host's busybox, anything else is pulled.
pub fn ensure_image(
    engine: &peapod_engine::containers::Engine,
    cli: &Cli,
    name: &str,
) -> anyhow::Result<()> {
    let svc = engine.images()?;
    match svc.load(name) {
        Ok(_) => return Ok(()),
        Err(peapod_image::ImageError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let reference = Reference::parse(name)?;
    if reference.repository() == "library/busybox"
        && reference.registry() == peapod_image::reference::DEFAULT_REGISTRY
        && reference.tag() == Some("latest")
        && std::path::Path::new(HOST_BUSYBOX).exists()
    {
        eprintln!(
            "peapod: image {name} not found locally: building it from this host's {HOST_BUSYBOX}"
        );
        let img = svc.build_from_host(EMBEDDED, &[HOST_BUSYBOX.into()])?;
        svc.unpack(&img)?;
        return Ok(());
    }
    eprintln!("peapod: image {name} not found locally: pulling it");
    let opts = PullOptions {
        platform: Platform::host(),
        client: crate::registry::client_options(&cli.root, &Default::default(), &reference)?,
        progress: ProgressMode::Auto,
        concurrency: 3,
        unpack: true,
    };
    svc.pull(&reference, &opts)
        .map_err(|e| anyhow::anyhow!("image {name} is not here and pulling it failed: {e}"))?;
    Ok(())
}
