//! Kubernetes name syntax: DNS-1123 labels and subdomains, port names,
//! configuration keys.

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(|b| *b != b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

/// Dot-separated DNS-1123 labels, at most 253 characters.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns1123_label)
}

/// An IANA service name (a port name): at most 15 lowercase letters, digits
/// and single '-', with at least one letter, not starting or ending in '-'.
pub fn is_port_name(name: &str) -> bool {
    name.len() <= 15
        && is_dns1123_label(name)
        && !name.contains("--")
        && name.bytes().any(|b| b.is_ascii_lowercase())
}

/// A ConfigMap or Secret key: `[-._a-zA-Z0-9]+`, at most 253 characters,
/// not "." or "..".
pub fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

pub const LABEL_RULE: &str = "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";
pub const SUBDOMAIN_RULE: &str = "dot-separated DNS-1123 labels, at most 253 characters";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for good in ["a", "web", "web-1", "0abc", &"a".repeat(63)] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in ["", "Web", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn subdomains() {
        assert!(is_dns1123_subdomain("web.example.com"));
        assert!(!is_dns1123_subdomain("web..com"));
        assert!(!is_dns1123_subdomain(".web"));
        assert!(!is_dns1123_subdomain("Web"));
    }

    #[test]
    fn port_names() {
        assert!(is_port_name("http"));
        assert!(is_port_name("http-alt"));
        assert!(!is_port_name("8080"));
        assert!(!is_port_name("a--b"));
        assert!(!is_port_name("averyveryverylongname"));
    }

    #[test]
    fn config_keys() {
        assert!(is_config_key("app.conf"));
        assert!(is_config_key("KEY_1"));
        assert!(!is_config_key(".."));
        assert!(!is_config_key("a/b"));
    }
}
