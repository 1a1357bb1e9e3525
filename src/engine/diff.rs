//! Comparison of a desired remote object with the observed one.

use serde_json::Value;

/// Paths where `observed` differs from `desired`, comparing only what `desired` states:
/// object keys absent from `desired` (server defaults, computed fields) are ignored, arrays
/// must have the same length and match element by element.
pub fn subset_diff(desired: &Value, observed: &Value) -> Vec<String> {
    shaped_diff(desired, observed, &Shape::default())
}

/// Where a vendor's answer is not compared as [`subset_diff`] compares it. Paths are wire paths
/// with `[]` for "every element of a list": `roles`, `federated_servers[]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape<'a> {
    /// Lists the vendor may answer in an order of its own, with the field that identifies an
    /// element: elements are matched by it, in any order, and an observed element the desired
    /// list lacks is a difference. Reported as `path[<key value>]`.
    pub keyed: &'a [(&'a str, &'a str)],
    /// Objects the vendor stores as they were sent (free-form JSON columns): a key the
    /// desired object lacks is a difference too.
    pub exact: &'a [&'a str],
}

impl Shape<'_> {
    fn key_of(&self, shape: &str) -> Option<&str> {
        self.keyed
            .iter()
            .find(|(path, _)| *path == shape)
            .map(|(_, key)| *key)
    }
}

/// [`subset_diff`], with the lists and objects of `shape` compared as it says.
pub fn shaped_diff(desired: &Value, observed: &Value, shape: &Shape) -> Vec<String> {
    let mut out = Vec::new();
    let at = At {
        path: String::new(),
        shape: String::new(),
    };
    walk(desired, observed, &at, shape, &mut out);
    out
}

/// Where the walk is: the reported path, and the same path with `[]` for list elements.
struct At {
    path: String,
    shape: String,
}

impl At {
    fn field(&self, key: &str) -> At {
        let join = |base: &str| {
            if base.is_empty() {
                key.to_owned()
            } else {
                format!("{base}.{key}")
            }
        };
        At {
            path: join(&self.path),
            shape: join(&self.shape),
        }
    }

    fn element(&self, label: &str) -> At {
        At {
            path: format!("{}[{label}]", self.path),
            shape: format!("{}[]", self.shape),
        }
    }
}

fn walk(desired: &Value, observed: &Value, at: &At, shape: &Shape, out: &mut Vec<String>) {
    match (desired, observed) {
        (Value::Object(d), Value::Object(o)) => {
            for (k, dv) in d {
                walk(
                    dv,
                    o.get(k).unwrap_or(&Value::Null),
                    &at.field(k),
                    shape,
                    out,
                );
            }
            if shape.exact.contains(&at.shape.as_str()) {
                let extra = o
                    .iter()
                    .filter(|(k, v)| !v.is_null() && !d.contains_key(*k));
                out.extend(extra.map(|(k, _)| at.field(k).path));
            }
        }
        (Value::Array(d), Value::Array(o)) => {
            let by_key = shape
                .key_of(&at.shape)
                .and_then(|key| Some((keyed(d, key)?, keyed(o, key)?)));
            match by_key {
                Some((d, o)) => walk_keyed(&d, &o, at, shape, out),
                None if d.len() == o.len() => {
                    let before = out.len();
                    for (i, (dv, ov)) in d.iter().zip(o).enumerate() {
                        walk(dv, ov, &at.element(&i.to_string()), shape, out);
                    }
                    // One entry for the list is clearer than one per element.
                    if out.len() > before {
                        out.truncate(before);
                        out.push(at.path.clone());
                    }
                }
                None => out.push(at.path.clone()),
            }
        }
        (Value::Number(d), Value::Number(o)) if d.as_f64() == o.as_f64() => {}
        (d, o) if d == o => {}
        _ => out.push(at.path.clone()),
    }
}

/// The elements of a list by the value of their `key` field, when every element has one and
/// no two share it (otherwise the list is compared element by element).
fn keyed<'v>(items: &'v [Value], key: &str) -> Option<Vec<(String, &'v Value)>> {
    let mut labelled = Vec::with_capacity(items.len());
    for item in items {
        let label = match item.get(key)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        if labelled.iter().any(|(l, _)| *l == label) {
            return None;
        }
        labelled.push((label, item));
    }
    Some(labelled)
}

type Labelled<'v> = [(String, &'v Value)];

fn walk_keyed(
    desired: &Labelled,
    observed: &Labelled,
    at: &At,
    shape: &Shape,
    out: &mut Vec<String>,
) {
    for (label, dv) in desired {
        match observed.iter().find(|(l, _)| l == label) {
            Some((_, ov)) => walk(dv, ov, &at.element(label), shape, out),
            None => out.push(at.element(label).path),
        }
    }
    let extra = observed
        .iter()
        .filter(|(label, _)| !desired.iter().any(|(l, _)| l == label));
    out.extend(extra.map(|(label, _)| at.element(label).path));
}

/// `remote` as far as `view` speaks of it: the keys of objects that `view` has (recursively);
/// arrays and scalars whole.
pub fn project(remote: &Value, view: &Value) -> Value {
    match (remote, view) {
        (Value::Object(r), Value::Object(v)) => Value::Object(
            v.iter()
                .map(|(k, vv)| (k.clone(), project(r.get(k).unwrap_or(&Value::Null), vv)))
                .collect(),
        ),
        (r, _) => r.clone(),
    }
}

/// A stable digest of a value (of its `Debug` form); never of anything holding a secret value
/// in the clear.
pub fn fingerprint(value: &impl std::fmt::Debug) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    format!("{value:?}").hash(&mut h);
    h.finish()
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

/// `ldapHost` → `ldap_host`: the inverse of [`camel_case`], to find a spec path in a vendor's
/// snake_case JSON.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
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
    fn projection_keeps_what_the_view_states() {
        let remote = json!({"name": "a", "lastLogin": "t", "smtp": {"port": 25, "x": 1}, "roles": [{"id": "r", "scopes": []}]});
        let view = json!({"name": "b", "smtp": {"port": 1}, "roles": [], "missing": 1});
        assert_eq!(
            project(&remote, &view),
            json!({"name": "a", "smtp": {"port": 25}, "roles": [{"id": "r", "scopes": []}], "missing": null})
        );
    }

    #[test]
    fn camel_cases_wire_paths() {
        assert_eq!(camel_case("ldap_master_dn"), "ldapMasterDn");
        assert_eq!(camel_case("roles"), "roles");
    }

    const SHAPE: Shape = Shape {
        keyed: &[("roles", "id"), ("servers", "name")],
        exact: &["servers[]"],
    };

    #[test]
    fn keyed_lists_match_by_key_in_any_order() {
        let desired = json!({"roles": [{"id": "a"}, {"id": "b"}]});
        let observed = json!({"roles": [{"id": "b", "name": "B"}, {"id": "a", "name": "A"}]});
        assert!(shaped_diff(&desired, &observed, &SHAPE).is_empty());
        // Positionally, the same lists differ.
        assert_eq!(subset_diff(&desired, &observed), vec!["roles"]);
        let observed = json!({"roles": [{"id": "c"}, {"id": "a"}]});
        assert_eq!(
            shaped_diff(&desired, &observed, &SHAPE),
            vec!["roles[b]", "roles[c]"]
        );
        // Elements without their key, or with a key twice, are compared by position.
        let twice = json!({"roles": [{"id": "a"}, {"id": "a"}]});
        assert_eq!(shaped_diff(&twice, &desired, &SHAPE), vec!["roles"]);
    }

    #[test]
    fn exact_objects_differ_on_keys_the_desired_one_lacks() {
        let desired = json!({"servers": [{"name": "x", "scope": "openid"}]});
        let observed =
            json!({"servers": [{"name": "x", "scope": "openid", "client_id": "c", "gone": null}]});
        assert_eq!(
            shaped_diff(&desired, &observed, &SHAPE),
            vec!["servers[x].client_id"]
        );
        let changed = json!({"servers": [{"name": "x", "scope": "email"}]});
        assert_eq!(
            shaped_diff(&desired, &changed, &SHAPE),
            vec!["servers[x].scope"]
        );
    }
}

/// Property tests: arbitrary JSON on both sides.
#[cfg(test)]
pub(crate) mod props {
    use super::*;
    use proptest::prelude::*;

    /// Small JSON values: a few keys, short arrays, integers and floats that compare equal.
    pub(crate) fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..3).prop_map(Value::from),
            (-3i64..3).prop_map(|i| Value::from(i as f64)),
            "[a-c]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// What a write of `desired` does to `observed` when the API merges objects field by field
    /// and replaces everything else (arrays, scalars) whole.
    pub(crate) fn overlay(observed: &Value, desired: &Value) -> Value {
        match (observed, desired) {
            (Value::Object(o), Value::Object(d)) => {
                let mut out = o.clone();
                for (k, dv) in d {
                    let merged = overlay(o.get(k).unwrap_or(&Value::Null), dv);
                    out.insert(k.clone(), merged);
                }
                Value::Object(out)
            }
            (_, d) => d.clone(),
        }
    }

    /// Every path of `desired` down to its leaves (object keys joined by `.`, array indexes).
    fn leaf_paths(v: &Value, path: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    leaf_paths(child, p, out);
                }
            }
            _ => out.push(path),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn equal_values_have_no_diff(v in json_value()) {
            prop_assert!(subset_diff(&v, &v).is_empty());
        }

        #[test]
        fn writing_desired_leaves_no_diff(desired in json_value(), observed in json_value()) {
            let written = overlay(&observed, &desired);
            prop_assert_eq!(subset_diff(&desired, &written), Vec::<String>::new());
        }

        #[test]
        fn fields_desired_does_not_state_are_never_compared(
            desired in json_value(), extra in json_value(), key in "[e-f]"
        ) {
            // A server default or computed field beside the stated ones is no difference.
            let mut observed = desired.clone();
            if let Value::Object(m) = &mut observed {
                m.insert(key, extra);
            }
            prop_assert!(subset_diff(&desired, &observed).is_empty());
        }

        #[test]
        fn a_changed_leaf_is_reported_on_its_path(desired in json_value(), pick in any::<prop::sample::Index>()) {
            let mut leaves = Vec::new();
            leaf_paths(&desired, String::new(), &mut leaves);
            let path = pick.get(&leaves).clone();
            let pointer: String = if path.is_empty() {
                String::new()
            } else {
                path.split('.').map(|k| format!("/{k}")).collect()
            };
            let mut observed = desired.clone();
            // A value no generated leaf has (strings are at most 2 characters).
            *observed.pointer_mut(&pointer).expect("a leaf path") = Value::from("changed!");
            let diff = subset_diff(&desired, &observed);
            // Reported at the leaf, or at the array that holds it (one entry per list).
            prop_assert!(
                diff.iter().any(|d| path == *d || path.starts_with(&format!("{d}."))),
                "{:?} not in {:?}", path, diff
            );
        }

        #[test]
        fn reordered_keyed_lists_have_no_diff(
            items in prop::collection::btree_map("[a-f]{1,2}", json_value(), 0..5),
            shuffle in any::<prop::sample::Index>(),
        ) {
            let list: Vec<Value> = items
                .iter()
                .map(|(k, v)| serde_json::json!({"id": k, "v": v}))
                .collect();
            let mut turned = list.clone();
            if !turned.is_empty() {
                let by = shuffle.index(turned.len());
                turned.rotate_left(by);
            }
            let shape = Shape { keyed: &[("l", "id")], exact: &["l[]"] };
            let (d, o) = (serde_json::json!({"l": list}), serde_json::json!({"l": turned}));
            prop_assert!(shaped_diff(&d, &o, &shape).is_empty());
        }

        #[test]
        fn arbitrary_pairs_never_panic_and_paths_are_unique(a in json_value(), b in json_value()) {
            let diff = subset_diff(&a, &b);
            let mut sorted = diff.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), diff.len());
        }
    }
}
