//! OCI image layouts (image-spec image-layout.md): `oci-layout`, `index.json`, `blobs/`.

use std::fs;
use std::path::Path;

use serde_json::json;

use super::{ingest_file, io_err};
use crate::digest::Digest;
use crate::error::ImageError;
use crate::manifest::{self, Descriptor, Index, Parsed, Platform};
use crate::media;
use crate::records::ImageRecord;
use crate::reference::Reference;
use crate::service::{Image, ImageService};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

fn blob_path(layout: &Path, d: &Digest) -> std::path::PathBuf {
    layout
        .join("blobs")
        .join(d.algorithm().name())
        .join(d.hex())
}

fn read_blob(layout: &Path, d: &Digest) -> Result<Vec<u8>, ImageError> {
    let p = blob_path(layout, d);
    let data = fs::read(&p).map_err(io_err(format!("reading {}", p.display())))?;
    if Digest::of(d.algorithm(), &data) != *d {
        return Err(ImageError::Invalid {
            name: layout.display().to_string(),
            why: format!("blob {d} does not match its digest"),
        });
    }
    Ok(data)
}

pub fn import_layout(
    svc: &ImageService,
    layout: &Path,
    name: Option<&str>,
) -> Result<Vec<ImageRecord>, ImageError> {
    let bad = |why: String| ImageError::Invalid {
        name: layout.display().to_string(),
        why,
    };
    if !layout.join("oci-layout").is_file() {
        return Err(bad("not an OCI image layout (no oci-layout file)".into()));
    }
    let index_path = layout.join("index.json");
    let data =
        fs::read(&index_path).map_err(io_err(format!("reading {}", index_path.display())))?;
    let index: Index =
        serde_json::from_slice(&data).map_err(|e| bad(format!("malformed index.json: {e}")))?;
    if index.manifests.is_empty() {
        return Err(bad("index.json lists no images".into()));
    }
    if name.is_some() && index.manifests.len() > 1 {
        return Err(bad(format!(
            "it holds {} images; import it without a NAME to keep their own names",
            index.manifests.len()
        )));
    }
    let mut out = Vec::new();
    for desc in &index.manifests {
        let ann = desc.annotations.clone().unwrap_or_default();
        let reference = match (name, ann.get(CONTAINERD_NAME), ann.get(REF_NAME)) {
            (Some(n), _, _) => Reference::parse(n)?,
            (None, Some(full), _) => Reference::parse(full)?,
            (None, None, Some(r))
                if Reference::parse(r).is_ok() && (r.contains('/') || r.contains(':')) =>
            {
                Reference::parse(r)?
            }
            _ => {
                return Err(bad(
                    "an image in it has no name; give one: peapod image import PATH NAME".into(),
                ));
            }
        };
        let (target, index_desc) = import_descriptor(svc, layout, desc)?;
        out.push(svc.set_record(&reference, target, index_desc)?);
    }
    Ok(out)
}

/// Copies the image `desc` names (choosing this host's platform from an index) into the
/// store; returns the manifest and index descriptors.
fn import_descriptor(
    svc: &ImageService,
    layout: &Path,
    desc: &Descriptor,
) -> Result<(Descriptor, Option<Descriptor>), ImageError> {
    let bytes = read_blob(layout, &desc.digest)?;
    match manifest::parse(Some(&desc.media_type), &bytes)? {
        Parsed::Index(ix) => {
            let chosen = ix.select(&Platform::host())?.clone();
            let (m, _) = import_descriptor(svc, layout, &chosen)?;
            svc.store().put_verified(&bytes, &desc.digest)?;
            Ok((
                m,
                Some(Descriptor::new(
                    &desc.media_type,
                    desc.digest.clone(),
                    bytes.len() as u64,
                )),
            ))
        }
        Parsed::Manifest(m) => {
            for blob in std::iter::once(&m.config).chain(&m.layers) {
                ingest_file(
                    svc,
                    &blob_path(layout, &blob.digest),
                    &blob.digest,
                    Some(blob.size),
                )?;
            }
            svc.read_config(&layout.display().to_string(), &m)?;
            svc.store().put_verified(&bytes, &desc.digest)?;
            let mt = m
                .media_type
                .clone()
                .unwrap_or_else(|| desc.media_type.clone());
            Ok((
                Descriptor::new(&mt, desc.digest.clone(), bytes.len() as u64),
                None,
            ))
        }
    }
}

pub fn export_layout(svc: &ImageService, image: &Image, dir: &Path) -> Result<(), ImageError> {
    let mk = |d: &Path| fs::create_dir_all(d).map_err(io_err(format!("creating {}", d.display())));
    mk(&dir.join("blobs/sha256"))?;
    mk(&dir.join("blobs/sha512"))?;
    let copy = |d: &Digest| -> Result<(), ImageError> {
        let to = blob_path(dir, d);
        if !to.exists() {
            fs::copy(svc.store().blob_path(d), &to)
                .map_err(io_err(format!("writing {}", to.display())))?;
        }
        Ok(())
    };
    copy(&image.record.target.digest)?;
    copy(&image.manifest.config.digest)?;
    for l in &image.manifest.layers {
        if svc.store().exists(&l.digest) {
            copy(&l.digest)?;
        } else if !media::is_non_distributable(&l.media_type) {
            return Err(svc
                .store()
                .open_blob(&l.digest)
                .err()
                .map(ImageError::from)
                .unwrap_or_else(|| ImageError::Other("missing layer".into())));
        }
    }
    let reference = Reference::parse(&image.record.name)?;
    let mut desc =
        serde_json::to_value(&image.record.target).map_err(|e| ImageError::Other(e.to_string()))?;
    desc["platform"] = json!({"architecture": image.config.architecture, "os": image.config.os});
    let mut ann = serde_json::Map::new();
    ann.insert(CONTAINERD_NAME.into(), json!(reference.to_string()));
    if let Some(tag) = reference.tag() {
        ann.insert(REF_NAME.into(), json!(tag));
    }
    desc["annotations"] = serde_json::Value::Object(ann);
    let index = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [desc]});
    let w = |p: &Path, data: &[u8]| {
        fs::write(p, data).map_err(io_err(format!("writing {}", p.display())))
    };
    w(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    w(&dir.join("index.json"), index.to_string().as_bytes())
}
