//! What `plan` prints: per resource one action with its field changes, then a summary. The
//! JSON form (`-o json`) is a stable document, `formatVersion: 1`, documented in
//! `docs/plan.md`; the text form is for people (colour only on a terminal).

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::engine::preview::{Action, Change, Preview};
use crate::engine::registry::ManagedKind;

/// The document's format; bumped only for a change that breaks a reader of the previous one.
pub const FORMAT_VERSION: u32 = 1;

/// The plan of one resource: which it is, and its preview.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePlan {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(flatten)]
    pub preview: Preview,
}

impl ResourcePlan {
    pub fn new(kind: &dyn ManagedKind, value: &Value, preview: Preview) -> Self {
        let field = |f: &str| value["metadata"][f].as_str().unwrap_or_default().to_owned();
        Self {
            api_version: kind.api_resource().api_version,
            kind: kind.kind().to_owned(),
            namespace: field("namespace"),
            name: field("name"),
            preview,
        }
    }
}

/// The marker and terminal colour of an action.
fn marker(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::Create | Action::Adopt => ("+", "\x1b[32m"),
        Action::Update => ("~", "\x1b[33m"),
        Action::Delete => ("-", "\x1b[31m"),
        Action::Blocked => ("!", "\x1b[31m"),
        Action::Noop | Action::Observe => ("=", ""),
    }
}

/// How many resources get each action.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub create: usize,
    pub adopt: usize,
    pub update: usize,
    pub delete: usize,
    pub noop: usize,
    pub observe: usize,
    pub blocked: usize,
}

/// The whole plan.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanDocument {
    pub format_version: u32,
    pub resources: Vec<ResourcePlan>,
    pub summary: Summary,
}

impl PlanDocument {
    pub fn new(resources: Vec<ResourcePlan>) -> Self {
        let mut summary = Summary::default();
        for r in &resources {
            *match r.preview.action {
                Action::Create => &mut summary.create,
                Action::Adopt => &mut summary.adopt,
                Action::Update => &mut summary.update,
                Action::Delete => &mut summary.delete,
                Action::Noop => &mut summary.noop,
                Action::Observe => &mut summary.observe,
                Action::Blocked => &mut summary.blocked,
            } += 1;
        }
        Self {
            format_version: FORMAT_VERSION,
            resources,
            summary,
        }
    }

    /// 0: nothing would be written; 2: something would (or is blocked).
    pub fn exit_code(&self) -> i32 {
        let changes = self
            .resources
            .iter()
            .any(|r| r.preview.writes || r.preview.action == Action::Blocked);
        if changes { 2 } else { 0 }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan serializes") + "\n"
    }

    /// The plan for people; `colour` only when printing to a terminal.
    pub fn text(&self, colour: bool) -> String {
        let mut out = String::new();
        for r in &self.resources {
            let p = &r.preview;
            let (mark, code) = marker(p.action);
            let (on, off) = match (colour, code) {
                (true, c) if !c.is_empty() => (c, "\x1b[0m"),
                _ => ("", ""),
            };
            let remote = p
                .remote_id
                .as_deref()
                .map(|id| format!(" (remote {id})"))
                .unwrap_or_default();
            let action = serde_json::to_value(p.action).expect("an action serializes");
            let action = action.as_str().unwrap_or_default();
            let (kind, ns, name) = (&r.kind, &r.namespace, &r.name);
            let _ = writeln!(
                out,
                "{on}{mark}{off} {kind} {ns}/{name}{remote}: {on}{action}{off}"
            );
            if !p.message.is_empty() {
                let reason = p
                    .reason
                    .as_deref()
                    .map(|r| format!("{r}: "))
                    .unwrap_or_default();
                let _ = writeln!(out, "    {reason}{}", p.message);
            }
            for c in &p.changes {
                let _ = writeln!(out, "    {}", change_line(c));
            }
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "\nPlan: {} to create, {} to adopt, {} to update, {} to delete, {} unchanged, {} observed, {} blocked",
            s.create, s.adopt, s.update, s.delete, s.noop, s.observe, s.blocked
        );
        out
    }
}

fn change_line(c: &Change) -> String {
    if c.sensitive {
        let state = c.state.as_deref().unwrap_or("unknown");
        return format!("~ {}: (sensitive) {state}", c.path);
    }
    match (&c.before, &c.after) {
        (Value::Null, after) => format!("+ {}: {}", c.path, short(after)),
        (before, Value::Null) => format!("- {}: {}", c.path, short(before)),
        (before, after) => format!("~ {}: {} → {}", c.path, short(before), short(after)),
    }
}

/// A value on one line, cut to a readable length.
fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= 120 {
        return text;
    }
    let cut: String = text.chars().take(117).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(kind: &str, name: &str, action: Action, writes: bool) -> ResourcePlan {
        ResourcePlan {
            api_version: "identity.operator.dev/v1alpha1".into(),
            kind: kind.into(),
            namespace: "ns".into(),
            name: name.into(),
            preview: Preview {
                action,
                remote_id: None,
                changes: Vec::new(),
                reason: None,
                message: String::new(),
                writes,
            },
        }
    }

    #[test]
    fn text_has_markers_changes_and_a_summary_without_colour() {
        let mut update = plan("LdapSettings", "ldap", Action::Update, true);
        update.preview.remote_id = Some("org".into());
        update.preview.changes = vec![
            Change {
                path: "spec.definedSettings.port".into(),
                before: json!(389),
                after: json!(636),
                sensitive: false,
                state: None,
            },
            Change {
                path: "spec.definedSettings.passwordSecretRef".into(),
                before: json!("(sensitive)"),
                after: json!("(sensitive)"),
                sensitive: true,
                state: Some("unknown; will be sent".into()),
            },
        ];
        let mut blocked = plan("OrgConnection", "sso", Action::Blocked, false);
        blocked.preview.reason = Some("SecretNotFound".into());
        blocked.preview.message = "Secret \"x\" not found".into();
        let doc = PlanDocument::new(vec![
            plan("IdentityBackend", "b", Action::Create, true),
            update,
            blocked,
            plan("AdminApiApp", "a", Action::Noop, false),
        ]);
        let text = doc.text(false);
        assert_eq!(
            text,
            "+ IdentityBackend ns/b: create\n\
             ~ LdapSettings ns/ldap (remote org): update\n    \
             ~ spec.definedSettings.port: 389 → 636\n    \
             ~ spec.definedSettings.passwordSecretRef: (sensitive) unknown; will be sent\n\
             ! OrgConnection ns/sso: blocked\n    SecretNotFound: Secret \"x\" not found\n\
             = AdminApiApp ns/a: noop\n\
             \nPlan: 1 to create, 0 to adopt, 1 to update, 0 to delete, 1 unchanged, 0 observed, 1 blocked\n"
        );
        assert!(!text.contains('\x1b'));
        assert!(doc.text(true).contains("\x1b[32m+\x1b[0m"));
        assert_eq!(doc.exit_code(), 2);
    }

    #[test]
    fn json_is_versioned_and_exit_code_zero_without_writes() {
        let doc = PlanDocument::new(vec![
            plan("AdminApiApp", "a", Action::Noop, false),
            plan("IdentityBackend", "b", Action::Adopt, false),
        ]);
        let json: Value = serde_json::from_str(&doc.json()).unwrap();
        assert_eq!(json["formatVersion"], 1);
        assert_eq!(json["resources"][1]["action"], "adopt");
        assert_eq!(json["resources"][1]["kind"], "IdentityBackend");
        assert!(json["resources"][0].get("remoteId").is_none());
        assert!(json["resources"][0].get("writes").is_none());
        assert_eq!(json["summary"]["adopt"], 1);
        assert_eq!(doc.exit_code(), 0);
    }
}
