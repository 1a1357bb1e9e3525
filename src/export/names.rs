//! The names of exported resources: DNS labels derived from the remote objects' names, the
//! same on every run. Remote names that would give the same label all get a suffix made from
//! their remote id, so a name depends only on its own object and whether another one collides
//! with it, never on the order of a list.

use std::collections::BTreeMap;

use crate::engine::export::Draft;

/// A DNS label (RFC 1123: lowercase letters, digits and `-`, at most 63 characters) from
/// `name`, or from `fallback` when nothing of `name` is left.
pub fn label(name: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    let out = if out.is_empty() {
        fallback.to_lowercase()
    } else {
        out.to_owned()
    };
    truncate(&out, 63)
}

fn truncate(label: &str, max: usize) -> String {
    label[..label.len().min(max)]
        .trim_end_matches('-')
        .to_owned()
}

/// FNV-1a: a hash that is the same on every platform and release.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Names every draft of one kind; `(name, remote id, draft)` sorted by name.
pub fn assign(kind: &str, drafts: Vec<(String, Draft)>) -> Vec<(String, String, Draft)> {
    let mut by_label: BTreeMap<String, Vec<(String, Draft)>> = BTreeMap::new();
    for (id, draft) in drafts {
        by_label
            .entry(label(&draft.name, kind))
            .or_default()
            .push((id, draft));
    }
    let mut named: Vec<(String, String, Draft)> = Vec::new();
    for (base, group) in by_label {
        let alone = group.len() == 1;
        for (id, draft) in group {
            let name = match alone {
                true => base.clone(),
                false => format!("{}-{:06x}", truncate(&base, 56), fnv1a(&id) & 0xff_ffff),
            };
            named.push((name, id, draft));
        }
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_dns_safe() {
        assert_eq!(label("Corp LDAP (EU)", "x"), "corp-ldap-eu");
        assert_eq!(label("___", "IdentityBackend"), "identitybackend");
        assert_eq!(label("Ärger_über", "x"), "rger-ber");
        let long = label(&"a-".repeat(100), "x");
        assert!(long.len() <= 63 && !long.ends_with('-'), "{long}");
    }

    #[test]
    fn colliding_names_all_get_a_suffix_from_their_id() {
        let draft = |name: &str| Draft::new(name, name, serde_json::json!({}));
        let named = assign(
            "K",
            vec![
                ("id-2".into(), draft("Corp LDAP")),
                ("id-1".into(), draft("corp-ldap")),
                ("id-3".into(), draft("Other")),
            ],
        );
        let names: Vec<&str> = named.iter().map(|n| n.0.as_str()).collect();
        assert_eq!(names.len(), 3);
        assert!(names.contains(&"other"));
        let suffixed: Vec<&&str> = names
            .iter()
            .filter(|n| n.starts_with("corp-ldap-"))
            .collect();
        assert_eq!(suffixed.len(), 2, "{names:?}");
        // The same object keeps its name whatever else is listed with it.
        let again = assign(
            "K",
            vec![
                ("id-1".into(), draft("corp-ldap")),
                ("id-2".into(), draft("Corp LDAP")),
            ],
        );
        let id1 =
            |v: &[(String, String, Draft)]| v.iter().find(|n| n.1 == "id-1").map(|n| n.0.clone());
        assert_eq!(id1(&named), id1(&again));
    }
}
