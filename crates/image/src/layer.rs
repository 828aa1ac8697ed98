//! Reading a layer blob: decompression (by media type, else by magic bytes) and the
//! diffID check of the uncompressed stream.

use std::io::{self, BufRead, BufReader, Read};

use crate::digest::{Digest, HashingReader};
use crate::manifest::Descriptor;
use crate::media::Compression;
use crate::store::{ContentStore, StoreError};
use crate::unpack::{self, UnpackError, UnpackStats, Whiteouts};

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("layer {layer}: {source}")]
    Unpack {
        layer: Digest,
        #[source]
        source: UnpackError,
    },
    #[error(
        "layer {layer}: uncompressed content is {actual}, but the image config says {expected}"
    )]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {layer}: decompressing: {source}")]
    Decompress { layer: Digest, source: io::Error },
}

/// A reader of the uncompressed tar inside a layer blob.
pub fn open_uncompressed(
    store: &ContentStore,
    desc: &Descriptor,
) -> Result<Box<dyn Read + Send>, LayerError> {
    let file = store.open_blob(&desc.digest)?;
    let buf = BufReader::with_capacity(256 * 1024, file);
    let compression = Compression::from_media_type(&desc.media_type);
    decompressor(buf, compression).map_err(|source| LayerError::Decompress {
        layer: desc.digest.clone(),
        source,
    })
}

/// A reader of the uncompressed bytes of `input`, compressed as `compression` (`None`:
/// sniffed from its first bytes).
pub fn decompressor<R: BufRead + Send + 'static>(
    mut input: R,
    compression: Option<Compression>,
) -> io::Result<Box<dyn Read + Send>> {
    let compression = match compression {
        Some(c) => c,
        None => Compression::sniff(input.fill_buf()?),
    };
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
    })
}

/// Unpacks layer `desc` into `dest`, checking its uncompressed digest against `diff_id`.
pub fn unpack_layer(
    store: &ContentStore,
    desc: &Descriptor,
    diff_id: &Digest,
    dest: &std::path::Path,
    mode: Whiteouts,
) -> Result<UnpackStats, LayerError> {
    let reader = open_uncompressed(store, desc)?;
    let mut hashing = HashingReader::new(reader, diff_id.algorithm());
    let layer = desc.digest.clone();
    let stats = unpack::unpack(&mut hashing, dest, mode).map_err(|source| match source {
        UnpackError::Read(e) => LayerError::Decompress {
            layer: layer.clone(),
            source: e,
        },
        source => LayerError::Unpack {
            layer: layer.clone(),
            source,
        },
    })?;
    let (actual, _) = hashing.finish().map_err(|source| LayerError::Decompress {
        layer: layer.clone(),
        source,
    })?;
    if &actual != diff_id {
        return Err(LayerError::DiffIdMismatch {
            layer,
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok(stats)
}

/// The diffID (digest of the uncompressed tar) of a layer blob.
pub fn diff_id_of(store: &ContentStore, desc: &Descriptor) -> Result<Digest, LayerError> {
    let reader = open_uncompressed(store, desc)?;
    let (d, _) = HashingReader::new(reader, crate::digest::Algorithm::Sha256)
        .finish()
        .map_err(|source| LayerError::Decompress {
            layer: desc.digest.clone(),
            source,
        })?;
    Ok(d)
}
