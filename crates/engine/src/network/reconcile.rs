//! Cleaning up after crashes: leftover attachments of dead containers, and
//! the bridge plugin's masquerade rules, which its DEL only removes while the
//! container's network namespace still exists.

use std::process::Command;

/// Remove the bridge plugin's outbound NAT rules for `(network, id)`: the
/// `POSTROUTING` jump commented `name: "NETWORK" id: "ID"` and the
/// per-container `CNI-…` chain it jumps to. Best effort: nothing is done when
/// iptables is missing or no rule matches.
pub(super) fn remove_masquerade(network: &str, id: &str) {
    let Ok(out) = Command::new("iptables")
        .args(["-w", "-t", "nat", "-S", "POSTROUTING"])
        .output()
    else {
        return;
    };
    // iptables -S prints the comment quoted with its quotes escaped.
    let want = format!("name: {network:?} id: {id:?}");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let words = split_words(line);
        let matches = words
            .windows(2)
            .any(|w| w[0] == "--comment" && w[1] == want);
        if !matches || words.len() < 3 || words[0] != "-A" {
            continue;
        }
        let chain = words
            .windows(2)
            .find(|w| w[0] == "-j")
            .map(|w| w[1].clone());
        let _ = Command::new("iptables")
            .args(["-w", "-t", "nat", "-D"])
            .args(&words[1..])
            .output();
        if let Some(chain) = chain.filter(|c| c.starts_with("CNI-")) {
            for op in ["-F", "-X"] {
                let _ = Command::new("iptables")
                    .args(["-w", "-t", "nat", op, &chain])
                    .output();
            }
        }
    }
}

/// Split an `iptables -S` line into words: double quotes group, backslash
/// escapes the next character.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn splits_iptables_lines() {
        let line = r#"-A POSTROUTING -s 10.9.0.2/32 -m comment --comment "name: \"n1\" id: \"abc\"" -j CNI-0123"#;
        let w = split_words(line);
        assert_eq!(
            w,
            [
                "-A",
                "POSTROUTING",
                "-s",
                "10.9.0.2/32",
                "-m",
                "comment",
                "--comment",
                "name: \"n1\" id: \"abc\"",
                "-j",
                "CNI-0123"
            ]
        );
        assert_eq!(w[7], format!("name: {:?} id: {:?}", "n1", "abc"));
    }
}
