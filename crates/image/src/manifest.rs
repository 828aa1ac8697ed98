//! Manifests, image indexes (manifest lists) and platform selection.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::media;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("malformed {what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("unsupported manifest: {0}")]
    Unsupported(String),
    #[error(
        "no image for platform {wanted} in the index (it has: {available}); choose one with --platform"
    )]
    NoPlatform { wanted: Platform, available: String },
    #[error(
        "invalid platform {0:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8"
    )]
    BadPlatform(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: Vec::new(),
            annotations: None,
            platform: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this machine (linux/amd64 on x86_64).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            other => (other, None),
        };
        Platform {
            architecture: architecture.into(),
            os: "linux".into(),
            os_version: None,
            variant: variant.map(Into::into),
        }
    }

    fn matches(&self, other: &Platform) -> bool {
        let norm = |p: &Platform| -> Option<String> {
            match (p.architecture.as_str(), p.variant.as_deref()) {
                ("arm64", None) => Some("v8".into()),
                (_, v) => v.map(str::to_string),
            }
        };
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || norm(self) == norm(other))
    }
}

impl FromStr for Platform {
    type Err = ManifestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(ok) {
            return Err(ManifestError::BadPlatform(s.to_string()));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            os_version: None,
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A manifest document of either kind.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // short-lived: parsed, matched, then moved out
pub enum Parsed {
    Manifest(Manifest),
    Index(Index),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
}

/// Parses a manifest or index; `content_type` is the HTTP Content-Type or descriptor media
/// type when known, used only if the document does not say what it is.
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Parsed, ManifestError> {
    let json = |what, source| ManifestError::Json { what, source };
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| json("manifest", e))?;
    let mt = probe
        .media_type
        .clone()
        .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string()));
    if matches!(
        mt.as_deref(),
        Some(media::DOCKER_SCHEMA1 | media::DOCKER_SCHEMA1_PLAIN)
    ) || probe.schema_version == Some(1)
    {
        return Err(ManifestError::Unsupported(
            "Docker schema 1 manifests are deprecated and not supported; re-push the image with a current client".into(),
        ));
    }
    if probe.schema_version != Some(2) {
        return Err(ManifestError::Unsupported(format!(
            "schemaVersion {:?}, expected 2",
            probe.schema_version
        )));
    }
    let is_index = match mt.as_deref() {
        Some(m) if media::is_index(m) => true,
        Some(m) if media::is_manifest(m) => false,
        _ if probe.manifests.is_some() => true,
        _ if probe.layers.is_some() => false,
        other => {
            return Err(ManifestError::Unsupported(format!(
                "media type {}",
                other.unwrap_or("(none)")
            )));
        }
    };
    if is_index {
        Ok(Parsed::Index(
            serde_json::from_slice(bytes).map_err(|e| json("image index", e))?,
        ))
    } else {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| json("image manifest", e))?;
        if !media::is_config(&m.config.media_type) {
            return Err(ManifestError::Unsupported(format!(
                "config media type {} (not a container image)",
                m.config.media_type
            )));
        }
        for l in &m.layers {
            if media::Compression::from_media_type(&l.media_type).is_none() {
                return Err(ManifestError::Unsupported(format!(
                    "layer media type {}",
                    l.media_type
                )));
            }
        }
        Ok(Parsed::Manifest(m))
    }
}

impl Index {
    /// The descriptor of the image for `wanted`.
    pub fn select(&self, wanted: &Platform) -> Result<&Descriptor, ManifestError> {
        self.manifests
            .iter()
            .filter(|d| media::is_manifest(&d.media_type))
            .find(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(p)))
            .ok_or_else(|| ManifestError::NoPlatform {
                wanted: wanted.clone(),
                available: self
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The media type a manifest document declares, or the OCI default.
pub fn manifest_media_type(m: &Manifest) -> &str {
    m.media_type.as_deref().unwrap_or(media::OCI_MANIFEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(mt: &str, plat: Option<&str>) -> serde_json::Value {
        let mut v = serde_json::json!({
            "mediaType": mt,
            "digest": Digest::sha256_of(mt.as_bytes()).to_string(),
            "size": 1
        });
        if let Some(p) = plat {
            let p: Platform = p.parse().unwrap();
            v["platform"] = serde_json::to_value(p).unwrap();
        }
        v
    }

    #[test]
    fn parses_docker_and_oci_manifests() {
        for (mt, cfg, layer) in [
            (
                media::DOCKER_MANIFEST,
                media::DOCKER_CONFIG,
                media::DOCKER_LAYER_GZIP,
            ),
            (
                media::OCI_MANIFEST,
                media::OCI_CONFIG,
                media::OCI_LAYER_ZSTD,
            ),
        ] {
            let doc = serde_json::json!({
                "schemaVersion": 2, "mediaType": mt,
                "config": desc(cfg, None), "layers": [desc(layer, None)]
            });
            let Parsed::Manifest(m) = parse(None, doc.to_string().as_bytes()).unwrap() else {
                panic!("not a manifest")
            };
            assert_eq!(m.layers.len(), 1);
        }
        // No mediaType field: decided by the Content-Type, then by shape.
        let doc = serde_json::json!({"schemaVersion": 2, "manifests": []});
        assert!(matches!(
            parse(None, doc.to_string().as_bytes()),
            Ok(Parsed::Index(_))
        ));
    }

    #[test]
    fn rejects_malformed_and_unsupported() {
        assert!(matches!(
            parse(None, b"{nope"),
            Err(ManifestError::Json { .. })
        ));
        let s1 = serde_json::json!({"schemaVersion": 1, "name": "x"});
        let e = parse(None, s1.to_string().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("schema 1"), "{e}");
        let bad_layer = serde_json::json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": desc(media::OCI_CONFIG, None), "layers": [desc("text/plain", None)]
        });
        assert!(parse(None, bad_layer.to_string().as_bytes()).is_err());
        let missing = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST});
        assert!(parse(None, missing.to_string().as_bytes()).is_err());
    }

    #[test]
    fn selects_platform() {
        let doc = serde_json::json!({
            "schemaVersion": 2, "mediaType": media::OCI_INDEX,
            "manifests": [
                desc(media::OCI_MANIFEST, Some("linux/arm64")),
                desc(media::DOCKER_MANIFEST, Some("linux/amd64")),
                desc(media::OCI_MANIFEST, Some("linux/arm/v7")),
            ]
        });
        let Parsed::Index(ix) = parse(None, doc.to_string().as_bytes()).unwrap() else {
            panic!()
        };
        let amd = ix.select(&"linux/amd64".parse().unwrap()).unwrap();
        assert_eq!(amd.media_type, media::DOCKER_MANIFEST);
        assert!(ix.select(&"linux/arm64/v8".parse().unwrap()).is_ok());
        assert!(ix.select(&"linux/arm/v7".parse().unwrap()).is_ok());
        let e = ix
            .select(&"linux/s390x".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linux/s390x") && e.contains("linux/arm64") && e.contains("--platform"),
            "{e}"
        );
        assert!("linux".parse::<Platform>().is_err());
    }
}
