//! `peapod push`: every blob the registry lacks (checked with HEAD), uploaded whole or in
//! chunks, then the manifest (and the index it came from, if the image has one).

use std::io::Read;

use super::RegistryError;
use super::client::{Body, Client, ClientOptions};
use super::progress::{Progress, ProgressMode};
use crate::digest::Digest;
use crate::error::ImageError;
use crate::manifest::Descriptor;
use crate::media;
use crate::reference::Reference;
use crate::service::ImageService;

#[derive(Clone, Debug)]
pub struct PushOptions {
    pub client: ClientOptions,
    pub progress: ProgressMode,
    /// Upload blobs in chunks of this many bytes (PATCH); `None` uploads each in one PUT.
    pub chunk_size: Option<u64>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            client: ClientOptions::default(),
            progress: ProgressMode::Auto,
            chunk_size: None,
        }
    }
}

impl ImageService {
    /// Pushes local image `source` to `dest` (a reference with a tag).
    pub fn push(
        &self,
        source: &str,
        dest: &Reference,
        opts: &PushOptions,
    ) -> Result<Digest, ImageError> {
        let image = self.load(source)?;
        let client = Client::with_root(dest, &opts.client, true, Some(self.root()));
        let progress = Progress::new(opts.progress);
        let mut blobs: Vec<&Descriptor> = vec![&image.manifest.config];
        blobs.extend(
            image
                .manifest
                .layers
                .iter()
                .filter(|l| !media::is_non_distributable(&l.media_type)),
        );
        for desc in blobs {
            if client.blob_exists(&desc.digest)? {
                progress.message(&format!("{}: already exists", desc.digest.short()));
                continue;
            }
            let bar = progress.layer(&desc.digest, desc.size);
            bar.start();
            let mut file = self.store().open_blob(&desc.digest)?;
            upload(&client, &desc.digest, desc.size, &mut file, opts.chunk_size)?;
            bar.inc(desc.size);
            bar.finish("pushed");
        }
        let bytes = self.store().read(&image.record.target.digest)?;
        let tag = dest.manifest_ref();
        let url = client.url(&format!("manifests/{tag}"));
        client.send(
            "PUT",
            &url,
            &[("Content-Type", image.record.target.media_type.as_str())],
            Body::Bytes(&bytes),
            &format!("manifest {tag}"),
        )?;
        progress.message(&format!("{dest}: pushed {}", image.record.target.digest));
        Ok(image.record.target.digest.clone())
    }
}

/// Uploads one blob: POST to open an upload session, then one PUT with everything, or
/// PATCHes of `chunk` bytes and a closing PUT.
fn upload(
    client: &Client,
    digest: &Digest,
    size: u64,
    data: &mut dyn Read,
    chunk: Option<u64>,
) -> Result<(), RegistryError> {
    let what = format!("upload of {digest}");
    let start = client.send(
        "POST",
        &client.url("blobs/uploads/"),
        &[],
        Body::Empty,
        &what,
    )?;
    let mut location = location_of(client, &start, &what)?;
    let len = size.to_string();
    match chunk {
        None => {
            let url = with_digest(&location, digest);
            client.send_reader(
                "PUT",
                &url,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Length", &len),
                ],
                data,
                &what,
            )?;
        }
        Some(chunk) => {
            let mut offset = 0u64;
            while offset < size {
                let n = chunk.min(size - offset);
                let range = format!("{}-{}", offset, offset + n - 1);
                let n_s = n.to_string();
                let mut part = (&mut *data).take(n);
                let resp = client.send_reader(
                    "PATCH",
                    &location,
                    &[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Range", &range),
                        ("Content-Length", &n_s),
                    ],
                    &mut part,
                    &what,
                )?;
                location = location_of(client, &resp, &what)?;
                offset += n;
            }
            let url = with_digest(&location, digest);
            client.send("PUT", &url, &[("Content-Length", "0")], Body::Empty, &what)?;
        }
    }
    Ok(())
}

fn location_of(
    client: &Client,
    resp: &ureq::Response,
    what: &str,
) -> Result<String, RegistryError> {
    resp.header("location")
        .map(|l| client.absolute(l))
        .ok_or_else(|| RegistryError::Protocol {
            host: client.host().to_string(),
            what: what.to_string(),
            detail: "no Location header in the upload response".into(),
        })
}

fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}
