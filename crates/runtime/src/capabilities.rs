//! Linux capabilities of the container process: the five sets of
//! `process.capabilities`, applied after the user switch.

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::LinuxCapabilities;

#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error(
        "capability {name:?} is not known to this kernel (highest is {last}); remove it from process.capabilities"
    )]
    Unknown { name: String, last: String },
    #[error("setting the {set} capability set: {source}")]
    Apply {
        set: &'static str,
        source: caps::errors::CapsError,
    },
}

/// The five capability sets, validated against the running kernel.
#[derive(Debug, Clone, Default)]
pub struct CapSets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
}

fn convert(
    list: &Option<oci_spec::runtime::Capabilities>,
    supported: &CapsHashSet,
) -> Result<CapsHashSet, CapabilityError> {
    let mut out = CapsHashSet::new();
    for c in list.iter().flatten() {
        // oci-spec's names (CAP_X) are the kernel's; re-parse to the caps crate type.
        let name = c.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        let cap: Capability = name.parse().map_err(|_| unknown(&name, supported))?;
        if !supported.contains(&cap) {
            return Err(unknown(&name, supported));
        }
        out.insert(cap);
    }
    Ok(out)
}

fn unknown(name: &str, supported: &CapsHashSet) -> CapabilityError {
    let last = supported
        .iter()
        .max_by_key(|c| c.index())
        .map(|c| c.to_string())
        .unwrap_or_default();
    CapabilityError::Unknown {
        name: name.to_string(),
        last,
    }
}

impl CapSets {
    pub fn from_oci(c: &LinuxCapabilities) -> Result<Self, CapabilityError> {
        let supported = caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all());
        Ok(CapSets {
            bounding: convert(c.bounding(), &supported)?,
            effective: convert(c.effective(), &supported)?,
            inheritable: convert(c.inheritable(), &supported)?,
            permitted: convert(c.permitted(), &supported)?,
            ambient: convert(c.ambient(), &supported)?,
        })
    }

    /// Drops from the bounding set whatever it does not list (needs
    /// CAP_SETPCAP, so before the user switch).
    pub fn apply_bounding(&self) -> Result<(), CapabilityError> {
        let current =
            caps::read(None, CapSet::Bounding).map_err(|source| CapabilityError::Apply {
                set: "bounding",
                source,
            })?;
        for cap in current.difference(&self.bounding) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(|source| CapabilityError::Apply {
                set: "bounding",
                source,
            })?;
        }
        Ok(())
    }

    /// Sets permitted, inheritable, effective, then raises ambient.
    pub fn apply_rest(&self) -> Result<(), CapabilityError> {
        let set = |which, caps_: &CapsHashSet, name| {
            caps::set(None, which, caps_)
                .map_err(|source| CapabilityError::Apply { set: name, source })
        };
        // Each step must keep effective within permitted; inheritable goes
        // first while CAP_SETPCAP is still effective.
        set(CapSet::Inheritable, &self.inheritable, "inheritable")?;
        set(CapSet::Effective, &self.effective, "effective")?;
        set(CapSet::Permitted, &self.permitted, "permitted")?;
        caps::clear(None, CapSet::Ambient).map_err(|source| CapabilityError::Apply {
            set: "ambient",
            source,
        })?;
        for cap in &self.ambient {
            // Ambient needs the cap in permitted and inheritable; runc skips failures.
            let _ = caps::raise(None, CapSet::Ambient, *cap);
        }
        Ok(())
    }
}
