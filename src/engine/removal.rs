//! Fields taken out of a spec. The operator remembers which spec fields it made the remote
//! object match (`status.appliedFields`); a field taken out of the spec since is cleared
//! remotely where the identity API allows it, and otherwise kept and named in the `FieldsKept`
//! condition, never kept silently. Each kind describes its fields in a table of [`Removable`]
//! (docs/vendor-choices.md says why, per kind).

use serde_json::Value;

use super::conditions::{ConditionType, Reason, set_condition};
use super::spec::ManagedStatus;
/// The paths of `candidates` (dotted, in the spec's names: `definedSettings.pageSize`) that
/// `spec` sets to something other than null.
pub fn stated_fields(spec: &Value, candidates: &[&str]) -> Vec<String> {
    candidates
        .iter()
        .filter(|path| {
            path.split('.')
                .try_fold(spec, |v, key| v.get(key))
                .is_some_and(|v| !v.is_null())
        })
        .map(|path| path.to_string())
        .collect()
}

/// Whether `path` lies below `parent` (`definedSettings.port` below `definedSettings`,
/// `openIdConnections[1001].liveSyncOn` below `openIdConnections[1001]`).
fn below(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent)
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// The fields applied at the last sync that `stated` (what the spec sets now) lacks, leaving
/// out those below a removed field: clearing the parent clears them.
pub fn removed_fields(status: Option<&ManagedStatus>, stated: &[String]) -> Vec<String> {
    let applied = status.map_or(&[][..], |s| s.applied_fields.as_slice());
    let gone: Vec<&String> = applied.iter().filter(|f| !stated.contains(f)).collect();
    gone.iter()
        .filter(|f| !gone.iter().any(|parent| below(f, parent)))
        .map(|f| f.to_string())
        .collect()
}

/// For `export`: takes out of an exported `spec` every top-level field of `table` whose remote
/// value is at its default ([`Removable::at_default`]): a spec states only what differs.
pub fn leave_out_defaults(spec: &mut Value, table: &[Removable], observed: &Value) {
    let Some(fields) = spec.as_object_mut() else {
        return;
    };
    for removable in table.iter().filter(|r| !r.spec.contains('.')) {
        if removable.at_default(observed) {
            fields.remove(removable.spec);
        }
    }
}

/// The empty value a removed field is cleared to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Blank {
    Null,
    Bool(bool),
    Int(i64),
    Str(&'static str),
    List,
    Object,
}

impl Blank {
    pub fn value(self) -> Value {
        match self {
            Blank::Null => Value::Null,
            Blank::Bool(b) => Value::Bool(b),
            Blank::Int(i) => Value::from(i),
            Blank::Str(s) => Value::from(s),
            Blank::List => Value::Array(Vec::new()),
            Blank::Object => Value::Object(serde_json::Map::new()),
        }
    }
}

/// How a field taken out of the spec is cleared remotely (docs/vendor-choices.md, per kind).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clear {
    /// Written as this value; cleared once the remote object holds it, or nothing.
    To(Blank),
    /// Written as this value, which the API never shows (a password): written once.
    Blind(Blank),
    /// Left out of a write that replaces the whole object, which resets it: cleared once the
    /// remote object shows no value (a server default it fills in is written over once).
    Omit,
    /// The API cannot clear it: it keeps its value, and the `FieldsKept` condition says so
    /// while the remote object shows one (always, when the API does not show it).
    Keep { why: &'static str, observable: bool },
}

/// A spec field that may be taken out of the spec: its path in the spec, its dotted path in
/// the vendor's object, and how it is cleared.
#[derive(Debug, PartialEq)]
pub struct Removable {
    pub spec: &'static str,
    pub wire: &'static str,
    pub clear: Clear,
}

impl Removable {
    pub const fn new(spec: &'static str, wire: &'static str, clear: Clear) -> Removable {
        Removable { spec, wire, clear }
    }

    /// A field the spec and the vendor name alike.
    pub const fn same(name: &'static str, clear: Clear) -> Removable {
        Removable::new(name, name, clear)
    }

    /// The remote value, null counting as none.
    fn remote<'v>(&self, observed: &'v Value) -> Option<&'v Value> {
        self.wire
            .split('.')
            .try_fold(observed, |v, key| v.get(key))
            .filter(|v| !v.is_null())
    }

    /// For `export`: whether the remote value is what leaving the field out of a spec gives
    /// (none, the blank it is cleared to, or an unset value the API cannot clear), so that an
    /// exported spec leaves it out. A field that a whole-object write resets (`Omit`) is never
    /// at its default while it has a value; a write-only one always is (it is a reference).
    pub fn at_default(&self, observed: &Value) -> bool {
        match self.clear {
            Clear::To(_) | Clear::Omit => !self.pending(observed),
            Clear::Blind(_) => true,
            Clear::Keep { .. } => !self.remote(observed).is_some_and(holds_value),
        }
    }

    /// Whether the remote object still holds what removing the field should clear.
    pub fn pending(&self, observed: &Value) -> bool {
        let remote = self.remote(observed);
        match self.clear {
            Clear::To(blank) => remote.is_some_and(|v| *v != blank.value()),
            Clear::Blind(_) => true,
            Clear::Omit => remote.is_some(),
            Clear::Keep { .. } => false,
        }
    }

    /// The report of a field the API cannot clear, while it keeps a value.
    fn kept(&self, observed: &Value) -> Option<Kept> {
        let Clear::Keep { why, observable } = self.clear else {
            return None;
        };
        (!observable || self.remote(observed).is_some_and(holds_value)).then(|| Kept {
            path: self.spec.to_owned(),
            why: why.to_owned(),
        })
    }
}

/// Whether a kept field's remote value is one (not `false`, not `""`, which read as unset).
fn holds_value(v: &Value) -> bool {
    !matches!(v, Value::Bool(false)) && v.as_str() != Some("")
}

/// The entries of `table` for the `removed` spec paths.
pub fn removals(table: &'static [Removable], removed: &[String]) -> Vec<&'static Removable> {
    table
        .iter()
        .filter(|r| removed.iter().any(|path| path == r.spec))
        .collect()
}

/// The removed fields the remote object still holds and a write will clear, as spec paths.
pub fn removed_drift(removals: &[&Removable], observed: &Value) -> Vec<String> {
    removals
        .iter()
        .filter(|r| r.pending(observed))
        .map(|r| format!("spec.{}", r.spec))
        .collect()
}

/// The removed fields the API keeps, as reports.
pub fn kept_fields(removals: &[&Removable], observed: &Value) -> Vec<Kept> {
    removals.iter().filter_map(|r| r.kept(observed)).collect()
}

/// A removed field the identity API cannot clear, with what the user should know about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    pub path: String,
    pub why: String,
}

/// After a sync: `stated` is what the remote object now matches. Removed fields the API cannot
/// clear stay listed (so they are reported again at the next sync, until the spec states them
/// again or the remote value is gone) and are named in the `FieldsKept` condition.
pub fn record_applied(
    status: &mut ManagedStatus,
    mut stated: Vec<String>,
    kept: &[Kept],
    generation: Option<i64>,
) {
    stated.extend(kept.iter().map(|k| k.path.clone()));
    status.applied_fields = stated;
    if kept.is_empty() {
        let kept_type = ConditionType::FieldsKept.as_str();
        status.conditions.retain(|c| c.type_ != kept_type);
        return;
    }
    let list: Vec<String> = kept
        .iter()
        .map(|k| format!("spec.{} ({})", k.path, k.why))
        .collect();
    set_condition(
        &mut status.conditions,
        ConditionType::FieldsKept,
        true,
        Reason::CannotClear,
        format!(
            "removed from the spec but kept by the identity API, which cannot clear them: {}",
            list.join("; ")
        ),
        generation,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::HasConditions;
    use serde_json::json;

    #[test]
    fn stated_fields_are_the_set_candidates() {
        let spec = json!({"enabled": true, "definedSettings": {"port": 636, "ssl": null}});
        assert_eq!(
            stated_fields(
                &spec,
                &[
                    "enabled",
                    "settingsSource",
                    "definedSettings",
                    "definedSettings.port",
                    "definedSettings.ssl"
                ]
            ),
            vec!["enabled", "definedSettings", "definedSettings.port"]
        );
    }

    #[test]
    fn removed_fields_leave_out_children_of_removed_parents() {
        let status = ManagedStatus {
            applied_fields: ["a", "b", "b.x", "c[1]", "c[1].y", "cc"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        };
        let stated = ["a".to_owned()];
        assert_eq!(
            removed_fields(Some(&status), &stated),
            vec!["b", "c[1]", "cc"]
        );
        assert!(removed_fields(None, &stated).is_empty());
    }

    const TABLE: &[Removable] = &[
        Removable {
            spec: "name",
            wire: "organization_connection_name",
            clear: Clear::To(Blank::Null),
        },
        Removable {
            spec: "button",
            wire: "show_as_button",
            clear: Clear::To(Blank::Bool(true)),
        },
        Removable {
            spec: "passwordRef",
            wire: "defined.password",
            clear: Clear::Blind(Blank::Null),
        },
        Removable {
            spec: "pageSize",
            wire: "defined.pageSize",
            clear: Clear::Omit,
        },
        Removable {
            spec: "isDefault",
            wire: "is_default",
            clear: Clear::Keep {
                why: "one default",
                observable: true,
            },
        },
        Removable {
            spec: "secret",
            wire: "defined.secret",
            clear: Clear::Keep {
                why: "never shown",
                observable: false,
            },
        },
    ];

    #[test]
    fn removed_fields_are_pending_until_the_remote_object_holds_their_blank() {
        let all: Vec<String> = TABLE.iter().map(|r| r.spec.to_owned()).collect();
        let removed = removals(TABLE, &all);
        let set = json!({"organization_connection_name": "x", "show_as_button": false,
            "is_default": true, "defined": {"pageSize": 200}});
        assert_eq!(
            removed_drift(&removed, &set),
            vec![
                "spec.name",
                "spec.button",
                "spec.passwordRef",
                "spec.pageSize"
            ]
        );
        let kept: Vec<String> = kept_fields(&removed, &set)
            .into_iter()
            .map(|k| k.path)
            .collect();
        assert_eq!(kept, vec!["isDefault", "secret"]);
        let cleared =
            json!({"show_as_button": true, "is_default": false, "defined": {"pageSize": null}});
        // A password cannot be read back: it is written once, whatever the answer shows.
        assert_eq!(removed_drift(&removed, &cleared), vec!["spec.passwordRef"]);
        let kept: Vec<String> = kept_fields(&removed, &cleared)
            .into_iter()
            .map(|k| k.path)
            .collect();
        assert_eq!(kept, vec!["secret"]);
    }

    #[test]
    fn kept_fields_stay_applied_and_are_reported_until_none_is_left() {
        let mut status = ManagedStatus::default();
        let kept = [Kept {
            path: "isDefault".into(),
            why: "Boruta keeps one default backend".into(),
        }];
        record_applied(&mut status, vec!["name".into()], &kept, Some(3));
        assert_eq!(status.applied_fields, vec!["name", "isDefault"]);
        let c = status
            .condition(ConditionType::FieldsKept)
            .expect("reported");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "CannotClear")
        );
        assert!(
            c.message
                .contains("spec.isDefault (Boruta keeps one default backend)")
        );
        record_applied(&mut status, vec!["name".into()], &[], Some(4));
        assert_eq!(status.applied_fields, vec!["name"]);
        assert!(status.condition(ConditionType::FieldsKept).is_none());
    }
}
