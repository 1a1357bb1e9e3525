//! Comparison of a desired remote object with the observed one.

use serde_json::Value;

/// Paths where `observed` differs from `desired`, comparing only what `desired` states:
/// object keys absent from `desired` (server defaults, computed fields) are ignored, arrays
/// must have the same length and match element by element.
pub fn subset_diff(desired: &Value, observed: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(desired, observed, String::new(), &mut out);
    out
}

fn walk(desired: &Value, observed: &Value, path: String, out: &mut Vec<String>) {
    match (desired, observed) {
        (Value::Object(d), Value::Object(o)) => {
            for (k, dv) in d {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(dv, o.get(k).unwrap_or(&Value::Null), child, out);
            }
        }
        (Value::Array(d), Value::Array(o)) if d.len() == o.len() => {
            let before = out.len();
            for (i, (dv, ov)) in d.iter().zip(o).enumerate() {
                walk(dv, ov, format!("{path}[{i}]"), out);
            }
            // One entry for the list is clearer than one per element.
            if out.len() > before {
                out.truncate(before);
                out.push(path);
            }
        }
        (Value::Number(d), Value::Number(o)) if d.as_f64() == o.as_f64() => {}
        (d, o) if d == o => {}
        _ => out.push(path),
    }
}

/// `ldap_host` → `ldapHost`, for reporting wire paths in the spec's words.
pub fn camel_case(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut upper = false;
    for c in path.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_stated_fields_are_compared() {
        let desired = json!({"name": "a", "roles": [{"id": "r1"}], "opts": {"m": 1}});
        let observed = json!({"name": "a", "roles": [{"id": "r1", "name": "R", "scopes": []}], "opts": {"m": 1.0, "extra": 2}, "features": ["x"]});
        assert!(subset_diff(&desired, &observed).is_empty());
    }

    #[test]
    fn differences_are_reported_by_path() {
        let desired =
            json!({"name": "a", "roles": [{"id": "r1"}], "smtp": {"port": 25}, "flag": false});
        let observed = json!({"name": "b", "roles": [], "smtp": {"port": 587}});
        assert_eq!(
            subset_diff(&desired, &observed),
            vec!["flag", "name", "roles", "smtp.port"]
        );
        let observed =
            json!({"name": "a", "roles": [{"id": "r2"}], "smtp": {"port": 25}, "flag": false});
        assert_eq!(subset_diff(&desired, &observed), vec!["roles"]);
    }

    #[test]
    fn camel_cases_wire_paths() {
        assert_eq!(camel_case("ldap_master_dn"), "ldapMasterDn");
        assert_eq!(camel_case("roles"), "roles");
    }
}
