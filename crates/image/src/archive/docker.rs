//! docker-archive: `docker save`'s tarball. `manifest.json` lists each image's config
//! file, repo tags and layer tarballs.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ingest_file, io_err};
use crate::digest::{Algorithm, HashingReader};
use crate::error::ImageError;
use crate::layer::open_uncompressed;
use crate::manifest::Descriptor;
use crate::media::{self, Compression};
use crate::records::ImageRecord;
use crate::reference::Reference;
use crate::service::{Image, ImageService};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

pub fn import(
    svc: &ImageService,
    dir: &Path,
    name: Option<&str>,
) -> Result<Vec<ImageRecord>, ImageError> {
    let bad = |why: String| ImageError::Invalid {
        name: "docker-archive".into(),
        why,
    };
    let mpath = dir.join("manifest.json");
    let data = fs::read(&mpath).map_err(io_err(format!("reading {}", mpath.display())))?;
    let entries: Vec<Entry> =
        serde_json::from_slice(&data).map_err(|e| bad(format!("malformed manifest.json: {e}")))?;
    if name.is_some() && entries.len() > 1 {
        return Err(bad(format!(
            "it holds {} images; import it without a NAME to keep their own names",
            entries.len()
        )));
    }
    let mut out = Vec::new();
    for e in entries {
        let inside = |rel: &str| -> Result<std::path::PathBuf, ImageError> {
            let p = crate::unpack::fsops::LayerPath::new(Path::new(rel))
                .map_err(|err| bad(err.to_string()))?;
            Ok(dir.join(p.as_path()))
        };
        let config_bytes =
            fs::read(inside(&e.config)?).map_err(io_err(format!("reading {}", e.config)))?;
        let config_digest = svc.store().put(&config_bytes)?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let path = inside(l)?;
            let mut f = File::open(&path).map_err(io_err(format!("opening {l}")))?;
            let mut head = [0u8; 4];
            let n = f.read(&mut head).map_err(io_err(format!("reading {l}")))?;
            let mt = match Compression::sniff(&head[..n]) {
                Compression::None => media::OCI_LAYER,
                Compression::Gzip => media::OCI_LAYER_GZIP,
                Compression::Zstd => media::OCI_LAYER_ZSTD,
            };
            let (digest, size) = HashingReader::new(
                File::open(&path).map_err(io_err(format!("opening {l}")))?,
                Algorithm::Sha256,
            )
            .finish()
            .map_err(io_err(format!("reading {l}")))?;
            ingest_file(svc, &path, &digest, Some(size))?;
            layers.push(Descriptor::new(mt, digest, size));
        }
        serde_json::from_slice::<crate::config::ImageConfig>(&config_bytes)
            .map_err(|err| bad(format!("malformed config {}: {err}", e.config)))?;
        let names: Vec<String> = match name {
            Some(n) => vec![n.to_string()],
            None => e.repo_tags.clone().unwrap_or_default(),
        };
        if names.is_empty() {
            return Err(bad(
                "an image in it has no RepoTags; give a name: peapod image import PATH NAME".into(),
            ));
        }
        for n in names {
            let reference = Reference::parse(&n)?;
            // Keep the archive's config bytes (and so the image ID) as they are.
            let image = svc.store_image_with_config(
                &reference,
                &config_bytes,
                &config_digest,
                layers.clone(),
            )?;
            out.push(image.record);
        }
    }
    Ok(out)
}

pub fn export(svc: &ImageService, image: &Image, dir: &Path) -> Result<(), ImageError> {
    let config_name = format!("{}.json", image.id().hex());
    fs::copy(svc.store().blob_path(image.id()), dir.join(&config_name))
        .map_err(io_err(format!("writing {config_name}")))?;
    let mut layer_names = Vec::new();
    for (desc, diff_id) in image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
    {
        let rel = format!("{}/layer.tar", diff_id.hex());
        let ldir = dir.join(diff_id.hex());
        if !ldir.exists() {
            fs::create_dir_all(&ldir).map_err(io_err(format!("creating {}", ldir.display())))?;
            let mut r = open_uncompressed(svc.store(), desc)?;
            let mut f = File::create(dir.join(&rel)).map_err(io_err(format!("writing {rel}")))?;
            io::copy(&mut r, &mut f).map_err(io_err(format!("writing {rel}")))?;
        }
        layer_names.push(rel);
    }
    let reference = Reference::parse(&image.record.name)?;
    let tags = match reference.tag() {
        Some(t) => vec![format!("{}:{t}", reference.familiar_name())],
        None => Vec::new(),
    };
    let manifest = vec![Entry {
        config: config_name,
        repo_tags: Some(tags),
        layers: layer_names,
    }];
    let data = serde_json::to_vec(&manifest).map_err(|e| ImageError::Other(e.to_string()))?;
    fs::write(dir.join("manifest.json"), data).map_err(io_err("writing manifest.json".into()))?;
    Ok(())
}
