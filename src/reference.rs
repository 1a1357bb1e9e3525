//! The API reference in `docs/reference/`: one Markdown page per kind, written from the same
//! CRDs that `identity-operator crds` prints, so the reference can never describe a field the
//! API server does not have (`identity-operator reference DIR` writes it; `tests/docs.rs`
//! fails when the committed pages are stale).
//!
//! The CRDs carry no schema defaults (the operator applies its own, so the API server never
//! writes a field into a spec: see `kinds::crds`). A field's default is therefore the one its
//! description states, which is where the Rust types document it.

use std::fmt::Write;

use serde_json::Value;

use crate::kinds;

/// One generated file: its name inside the reference directory, and its Markdown.
pub struct Page {
    pub file: String,
    pub markdown: String,
}

const GENERATED: &str = "<!-- Generated from the CRDs by `identity-operator reference docs/reference`: do not edit. -->";

/// Every page of the reference: an index, then one page per kind.
pub fn pages() -> Vec<Page> {
    let crds: Vec<Value> = kinds::crds()
        .iter()
        .map(|crd| serde_json::to_value(crd).expect("a CRD serializes"))
        .collect();
    let mut pages = vec![Page {
        file: "README.md".into(),
        markdown: index(&crds),
    }];
    pages.extend(crds.iter().map(|crd| Page {
        file: page_file(kind_of(crd)),
        markdown: kind_page(crd),
    }));
    pages
}

fn kind_of(crd: &Value) -> &str {
    crd["spec"]["names"]["kind"]
        .as_str()
        .expect("a CRD names its kind")
}

fn page_file(kind: &str) -> String {
    format!("{}.md", kind.to_lowercase())
}

/// `IdentityBackend` → `identity-backend`: the file name of the kind's guide in `docs/kinds/`.
fn kebab(kind: &str) -> String {
    let mut out = String::new();
    for (i, c) in kind.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn index(crds: &[Value]) -> String {
    let mut out = format!("{GENERATED}\n\n# API reference\n\n");
    out.push_str(
        "Every field of every kind, generated from the CRDs (`crds/`). The guides in \
         [`docs/kinds/`](../kinds/) explain what each kind does; this is the field-by-field \
         contract.\n\n\
         The CRDs declare no schema defaults: the operator applies its own, so the API server \
         never writes a field you did not (and Argo CD stays in sync). The **default** column \
         is the default a field's description states; a field without one that you leave out \
         is not managed (the identity system keeps its value) unless its description says \
         otherwise.\n\n\
         | kind | short name | scope | what it is |\n|---|---|---|---|\n",
    );
    for crd in crds {
        let kind = kind_of(crd);
        let _ = writeln!(
            out,
            "| [{kind}]({}) | `{}` | {} | {} |",
            page_file(kind),
            short_names(crd),
            crd["spec"]["scope"].as_str().unwrap_or_default(),
            cell(
                version(crd)["schema"]["openAPIV3Schema"]["description"]
                    .as_str()
                    .unwrap_or_default()
            )
        );
    }
    out
}

fn version(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]
}

fn short_names(crd: &Value) -> String {
    crd["spec"]["names"]["shortNames"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("`, `")
        })
        .unwrap_or_default()
}

fn kind_page(crd: &Value) -> String {
    let kind = kind_of(crd);
    let version = version(crd);
    let schema = &version["schema"]["openAPIV3Schema"];
    let mut out = format!("{GENERATED}\n\n# {kind}\n\n");
    let _ = writeln!(
        out,
        "`{}/{}`, {}, short name `{}`, categories `{}`. Guide: [{kind}](../kinds/{}.md). \
         All kinds: [reference](README.md).\n",
        crd["spec"]["group"].as_str().unwrap_or_default(),
        version["name"].as_str().unwrap_or_default(),
        crd["spec"]["scope"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase(),
        short_names(crd),
        list(&crd["spec"]["names"]["categories"]),
        kebab(kind),
    );
    if let Some(d) = schema["description"].as_str() {
        let _ = writeln!(out, "{d}\n");
    }
    out.push_str(&printer_columns(version));
    for part in ["spec", "status"] {
        let node = &schema["properties"][part];
        if node.is_null() {
            continue;
        }
        let _ = writeln!(out, "## {part}\n");
        if let Some(d) = node["description"].as_str() {
            let _ = writeln!(out, "{}\n", one_line(d));
        }
        for rule in rules(node) {
            let _ = writeln!(out, "Rule on `{part}`: {rule}\n");
        }
        out.push_str("| field | type | constraints | default | description |\n");
        out.push_str("|---|---|---|---|---|\n");
        let mut rows = Vec::new();
        fields(node, part, &mut rows);
        for row in rows {
            out.push_str(&row);
        }
        out.push('\n');
    }
    out
}

fn printer_columns(version: &Value) -> String {
    let Some(columns) = version["additionalPrinterColumns"].as_array() else {
        return String::new();
    };
    let mut out = String::from("`kubectl get` shows:\n\n| column | type | from |\n|---|---|---|\n");
    for c in columns {
        let _ = writeln!(
            out,
            "| {} | {} | `{}` |",
            c["name"].as_str().unwrap_or_default(),
            c["type"].as_str().unwrap_or_default(),
            cell(c["jsonPath"].as_str().unwrap_or_default()),
        );
    }
    out.push('\n');
    out
}

/// One table row per field under `node` (whose path is `path`), depth first, in the schema's
/// (alphabetical) order.
fn fields(node: &Value, path: &str, rows: &mut Vec<String>) {
    let required: Vec<&str> = node["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = node["properties"].as_object() else {
        return;
    };
    for (name, field) in properties {
        let field_path = format!("{path}.{name}");
        rows.push(row(&field_path, field, required.contains(&name.as_str())));
        let (inner, inner_path) = match field["type"].as_str() {
            Some("array") => (&field["items"], format!("{field_path}[]")),
            _ => (field, field_path),
        };
        fields(inner, &inner_path, rows);
    }
}

fn row(path: &str, field: &Value, required: bool) -> String {
    let description = field["description"].as_str().unwrap_or_default();
    let mut constraints = Vec::new();
    if required {
        constraints.push("required".to_owned());
    }
    constraints.extend(constraints_of(field));
    if field["type"] == "array" {
        constraints.extend(constraints_of(&field["items"]).map(|c| format!("each item: {c}")));
    }
    constraints.extend(rules(field));
    let default = field
        .get("default")
        .map(|d| format!("`{d}`"))
        .or_else(|| stated_default(description).map(|d| cell(&d)))
        .unwrap_or_default();
    format!(
        "| `{path}` | {} | {} | {default} | {} |\n",
        type_of(field),
        cell(&constraints.join("; ")),
        cell(description),
    )
}

fn type_of(field: &Value) -> String {
    if field["x-kubernetes-preserve-unknown-fields"] == true {
        return "object (free-form JSON)".into();
    }
    match field["type"].as_str() {
        Some("array") => format!("[]{}", type_of(&field["items"])),
        Some("object") if field["additionalProperties"].is_object() => {
            format!("map[string]{}", type_of(&field["additionalProperties"]))
        }
        Some(t) => match field["format"].as_str() {
            Some(f) => format!("{t} ({f})"),
            None => t.to_owned(),
        },
        None => "any".into(),
    }
}

/// The schema's own constraints of one node (not its rules).
fn constraints_of(field: &Value) -> impl Iterator<Item = String> + '_ {
    let range = |min: &str, max: &str, what: &str| {
        let bounds = match (field[min].as_f64(), field[max].as_f64()) {
            (Some(a), Some(b)) => format!("{a}–{b}"),
            (Some(a), None) => format!("≥ {a}"),
            (None, Some(b)) => format!("≤ {b}"),
            (None, None) => return None,
        };
        Some(format!("{what}{bounds}"))
    };
    let enumeration = field["enum"].as_array().map(|values| {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", plain(v))).collect();
        format!("one of {}", values.join(", "))
    });
    let list_map = field["x-kubernetes-list-map-keys"]
        .as_array()
        .map(|keys| format!("unique by `{}`", list(&Value::Array(keys.clone()))));
    let list_set = (field["x-kubernetes-list-type"] == "set").then(|| "unique items".to_owned());
    [
        range("minimum", "maximum", ""),
        range("minLength", "maxLength", "length "),
        range("minItems", "maxItems", "items "),
        range("minProperties", "maxProperties", "entries "),
        field["pattern"].as_str().map(|p| format!("pattern `{p}`")),
        enumeration,
        list_map,
        list_set,
    ]
    .into_iter()
    .flatten()
}

/// The CEL rules (`x-kubernetes-validations`) of one node, as their messages and rules.
fn rules(field: &Value) -> Vec<String> {
    field["x-kubernetes-validations"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    format!(
                        "{} (CEL `{}`)",
                        r["message"].as_str().unwrap_or("rule"),
                        r["rule"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The default a description states: `(default 30)`, `(default: requestsPerSecond)`,
/// `(Boruta's default 5)`, `Default: no client-side limit — …`, `Default false: …`,
/// `` `Apply` (default) ``.
pub fn stated_default(description: &str) -> Option<String> {
    let text = one_line(description);
    if let Some(at) = text.find(" (default)") {
        let before = &text[..at];
        if let Some(open) = before.strip_suffix('`').and_then(|b| b.rfind('`')) {
            return Some(before[open..].to_owned());
        }
    }
    for (at, _) in text.match_indices("default") {
        let before = text[..at].trim_end();
        let after = text[at + "default".len()..]
            .trim_start_matches(':')
            .trim_start();
        if let Some(vendor) = before.strip_suffix("'s") {
            let vendor = vendor.rsplit([' ', '(']).next().unwrap_or_default();
            return Some(format!("{} ({vendor}'s)", value_until_end(after)));
        }
        if before.ends_with('(') || before.ends_with("; ") || before.ends_with(';') {
            return Some(value_until_end(after));
        }
    }
    for (at, _) in text.match_indices("Default") {
        let sentence_start = text[..at].trim_end();
        if at == 0 || sentence_start.ends_with('.') {
            let after = text[at + "Default".len()..]
                .trim_start_matches(':')
                .trim_start();
            return Some(value_until_end(after));
        }
    }
    None
}

/// A stated default runs to the end of its parenthesis, clause or sentence.
fn value_until_end(text: &str) -> String {
    let end = [")", ",", ". ", ": ", " — ", ";"]
        .iter()
        .filter_map(|stop| text.find(stop))
        .min()
        .unwrap_or(text.len());
    text[..end].trim().trim_end_matches('.').to_owned()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text for a Markdown table cell: one line, `|` escaped.
fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

fn plain(v: &Value) -> String {
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}

fn list(values: &Value) -> String {
    values
        .as_array()
        .map(|vs| vs.iter().map(plain).collect::<Vec<_>>().join("`, `"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_read_from_descriptions() {
        for (description, default) in [
            (
                "Timeout of one HTTP call, in seconds (default 30).",
                Some("30"),
            ),
            (
                "Burst size (default: requestsPerSecond).",
                Some("requestsPerSecond"),
            ),
            (
                "LDAP connection pool size (1..50, Boruta's default 5).",
                Some("5 (Boruta's)"),
            ),
            (
                "Show a login button (enterprise connections; Auth0's default true).",
                Some("true (Auth0's)"),
            ),
            (
                "Sustained requests per second. Default: no client-side limit — the cap paces.",
                Some("no client-side limit"),
            ),
            (
                "Disable LDAP on deletion.\n\nDefault false: the settings are left as they are.",
                Some("false"),
            ),
            (
                "`Internal` (Boruta's own user store) or `Ldap`. Default `Internal`.",
                Some("`Internal`"),
            ),
            (
                "`Apply` (default) makes the remote object match the spec; `Observe` only reports.",
                Some("`Apply`"),
            ),
            (
                "Make this the default backend (it demotes the previous default).",
                None,
            ),
            ("Create a default organisation for new users.", None),
        ] {
            assert_eq!(
                stated_default(description).as_deref(),
                default,
                "{description}"
            );
        }
    }

    #[test]
    fn every_kind_has_a_page_with_its_fields() {
        let pages = pages();
        assert_eq!(pages.len(), 1 + kinds::crds().len());
        let backend = pages
            .iter()
            .find(|p| p.file == "identitybackend.md")
            .expect("an IdentityBackend page");
        for expected in [
            "| `spec.apiRef.name` | string | required; length 1–253 |",
            "| `spec.roles[].id` |",
            "apiRef is immutable (CEL `self == oldSelf`)",
            "Guide: [IdentityBackend](../kinds/identity-backend.md)",
            "| `status.conditions[].reason` | string | required |",
        ] {
            assert!(
                backend.markdown.contains(expected),
                "{expected}\n{}",
                backend.markdown
            );
        }
        assert!(
            pages[0]
                .markdown
                .contains("| [IdentityApi](identityapi.md) | `idapi` |")
        );
    }
}
