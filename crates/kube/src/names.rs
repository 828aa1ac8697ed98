//! Kubernetes-style generated names and uids.
//!
//! Generated suffixes use the alphabet Kubernetes uses for them (no vowels,
//! no 0/1/3, so they never spell words or look alike).

use k8s_openapi::api::core::v1::PodTemplateSpec;

pub const ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";
/// Random characters appended to a generated name.
pub const RANDOM_LENGTH: usize = 5;
/// Characters of a pod-template-hash.
pub const HASH_LENGTH: usize = 10;
/// Longest name a generated name may have (a DNS-1123 label).
pub const MAX_NAME_LENGTH: usize = 63;

/// `n` random characters from [`ALPHABET`].
pub fn random_suffix(n: usize) -> String {
    (0..n)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// `prefix` plus 5 random characters, as `metadata.generateName` does; the
/// prefix is cut so the name stays within 63 characters.
pub fn generate_name(prefix: &str) -> String {
    let keep = MAX_NAME_LENGTH - RANDOM_LENGTH;
    let cut = prefix
        .char_indices()
        .nth(keep)
        .map_or(prefix.len(), |(i, _)| i);
    format!("{}{}", &prefix[..cut], random_suffix(RANDOM_LENGTH))
}

/// A name for one pod of a Job: `<job>-<5 chars>`.
pub fn job_pod_name(job: &str) -> String {
    generate_name(&format!("{job}-"))
}

/// The pod-template-hash of a Deployment's template: a stable hash (FNV-1a
/// of the template's JSON form) written as 10 characters of [`ALPHABET`].
/// Equal templates give equal hashes; any change gives a new one.
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    // A typed model always serializes; fall back to the debug form anyway.
    let bytes =
        serde_json::to_vec(template).unwrap_or_else(|_| format!("{template:?}").into_bytes());
    let mut hash = fnv1a64(&bytes);
    let base = ALPHABET.len() as u64;
    (0..HASH_LENGTH)
        .map(|_| {
            // The remainder is below 27, so the index fits.
            let c = ALPHABET[(hash % base) as usize];
            hash /= base;
            char::from(c)
        })
        .collect()
}

/// The ReplicaSet a Deployment runs a template with: `<deploy>-<hash>`.
pub fn replica_set_name(deployment: &str, template_hash: &str) -> String {
    format!("{deployment}-{template_hash}")
}

/// A pod of a Deployment: `<deploy>-<pod-template-hash>-<5 chars>`.
pub fn deployment_pod_name(deployment: &str, template_hash: &str) -> String {
    generate_name(&format!("{deployment}-{template_hash}-"))
}

/// A fresh uid: a random (version 4) UUID in its text form.
pub fn new_uid() -> String {
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn from_alphabet(s: &str) -> bool {
        s.bytes().all(|b| ALPHABET.contains(&b))
    }

    #[test]
    fn generated_names() {
        let name = job_pod_name("shared-pid");
        let suffix = name.strip_prefix("shared-pid-").unwrap_or_default();
        assert_eq!(suffix.len(), 5, "{name}");
        assert!(from_alphabet(suffix), "{name}");
        let long = generate_name(&"x".repeat(100));
        assert_eq!(long.len(), 63);
        assert_ne!(
            job_pod_name("a"),
            job_pod_name("a"),
            "random suffixes (27^5 choices)"
        );
    }

    #[test]
    fn template_hash_is_stable_and_sensitive() {
        let mut template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: None,
        };
        let hash = pod_template_hash(&template);
        assert_eq!(hash.len(), HASH_LENGTH);
        assert!(from_alphabet(&hash));
        assert_eq!(hash, pod_template_hash(&template.clone()));
        template.metadata = None;
        assert_ne!(hash, pod_template_hash(&template));
        // Pinned: a different value means every running Deployment's pods
        // would look out of date after an upgrade.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn deployment_names() {
        assert_eq!(replica_set_name("web", "bcdfghjklm"), "web-bcdfghjklm");
        let pod = deployment_pod_name("web", "bcdfghjklm");
        assert!(pod.starts_with("web-bcdfghjklm-"));
        assert_eq!(pod.len(), "web-bcdfghjklm-".len() + 5);
    }

    #[test]
    fn uids_are_v4_uuids() {
        let uid = new_uid();
        let parts: Vec<&str> = uid.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert!(uid.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
        assert_ne!(new_uid(), new_uid());
    }
}
