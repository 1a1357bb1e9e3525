//! `kubectl identity status`: every identity resource with its conditions, in one table.
//!
//! `kubectl get identity` shows READY and SYNCED per kind, in one table per kind, and no
//! reason; this puts all kinds in one list with the reason and message that say what to do
//! (docs/troubleshooting.md has a section per reason), and ends with a count per reason.
//! Kinds are read generically (`DynamicObject`) from the same CRD definitions the operator
//! serves, so a new kind shows up here without code.

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Serialize;
use serde_json::Value;

use super::{ClusterArgs, Error, Scope};
use crate::kinds;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Kinds to show, by kind, plural, singular or short name (`IdentityBackend`,
    /// `identitybackends`, `idb`, …); default: every kind.
    pub kinds: Vec<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// One resource as `status` shows it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    /// The Ready condition's status (`True`, `False`, `Unknown`), empty when there is none.
    pub ready: String,
    /// The Synced condition's status; IdentityApis have none.
    pub synced: String,
    /// The reason that says most: the first of Ready and Synced that is not `True`, else
    /// Ready's.
    pub reason: String,
    pub message: String,
    /// False while the operator has not reconciled the current generation yet.
    pub current: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// The JSON document of `-o json`. `formatVersion` changes only when a field changes meaning.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub format_version: u32,
    pub resources: Vec<Row>,
    pub ready: usize,
    pub not_ready: BTreeMap<String, usize>,
}

/// Runs the subcommand and returns what to print.
pub async fn run(args: &StatusArgs) -> Result<String, Error> {
    let selected = select(&args.kinds)?;
    let (client, scope) = args.cluster.connect().await?;
    let mut rows = Vec::new();
    for (resource, namespaced) in &selected {
        let api: Api<DynamicObject> = match &scope {
            Scope::Namespace(ns) if *namespaced => {
                Api::namespaced_with(client.clone(), ns, resource)
            }
            // Like `kubectl get`, a namespace's listing leaves cluster-scoped kinds
            // (ClusterIdentityApi) out unless they are asked for by name.
            Scope::Namespace(_) if args.kinds.is_empty() => continue,
            _ => Api::all_with(client.clone(), resource),
        };
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) if status.code == 404 => Error::Usage(format!(
                    "the {} CRD is not installed (identity-operator crds | kubectl apply -f -)",
                    resource.kind
                )),
                e => Error::Kube(e),
            })?;
        rows.extend(list.items.iter().map(|o| row(&resource.kind, o)));
    }
    rows.sort_by(|a, b| (&a.namespace, &a.kind, &a.name).cmp(&(&b.namespace, &b.kind, &b.name)));
    let report = report(rows);
    Ok(match args.output {
        Output::Json => serde_json::to_string_pretty(&report).expect("a report serializes") + "\n",
        Output::Table => table(&report, scope == Scope::All),
    })
}

/// The API resources of the kinds asked for (all when none is named), each with whether it
/// is namespaced.
fn select(names: &[String]) -> Result<Vec<(ApiResource, bool)>, Error> {
    let all: Vec<((ApiResource, bool), Vec<String>)> = kinds::crds()
        .into_iter()
        .map(|crd| {
            let n = &crd.spec.names;
            let version = &crd.spec.versions[0].name;
            let gvk = GroupVersionKind::gvk(&crd.spec.group, version, &n.kind);
            let mut aliases = vec![n.kind.to_lowercase(), n.plural.clone()];
            aliases.extend(n.singular.clone());
            aliases.extend(n.short_names.clone().unwrap_or_default());
            let resource = ApiResource::from_gvk_with_plural(&gvk, &n.plural);
            ((resource, crd.spec.scope == "Namespaced"), aliases)
        })
        .collect();
    if names.is_empty() {
        return Ok(all.into_iter().map(|(r, _)| r).collect());
    }
    names
        .iter()
        .flat_map(|n| n.split(','))
        .map(|name| {
            let wanted = name.trim().to_lowercase();
            all.iter()
                .find(|(_, aliases)| aliases.contains(&wanted))
                .map(|(r, _)| r.clone())
                .ok_or_else(|| {
                    let known: Vec<String> = all.iter().map(|(_, a)| a.join("/")).collect();
                    Error::Usage(format!(
                        "unknown kind {name:?}; the identity kinds are: {}",
                        known.join(", ")
                    ))
                })
        })
        .collect()
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// What `status` shows of one object.
pub fn row(kind: &str, obj: &DynamicObject) -> Row {
    let status = &obj.data["status"];
    let ready = condition(status, "Ready");
    let synced = condition(status, "Synced");
    let telling = [ready, synced]
        .into_iter()
        .flatten()
        .find(|c| c["status"] != "True")
        .or(ready);
    let generation = obj.metadata.generation;
    let observed = status["observedGeneration"].as_i64();
    Row {
        namespace: obj.metadata.namespace.clone().unwrap_or_default(),
        kind: kind.to_owned(),
        name: obj.metadata.name.clone().unwrap_or_default(),
        ready: ready.map(|c| text(&c["status"])).unwrap_or_default(),
        synced: synced.map(|c| text(&c["status"])).unwrap_or_default(),
        reason: telling.map(|c| text(&c["reason"])).unwrap_or_default(),
        message: telling.map(|c| text(&c["message"])).unwrap_or_default(),
        current: generation.is_none() || observed == generation,
        external_id: status["externalId"].as_str().map(str::to_owned),
    }
}

fn report(resources: Vec<Row>) -> Report {
    let ready = resources.iter().filter(|r| r.ready == "True").count();
    let mut not_ready = BTreeMap::new();
    for r in resources.iter().filter(|r| r.ready != "True") {
        let reason = if r.reason.is_empty() {
            "NotReconciled".to_owned()
        } else {
            r.reason.clone()
        };
        *not_ready.entry(reason).or_default() += 1;
    }
    Report {
        format_version: 1,
        resources,
        ready,
        not_ready,
    }
}

/// kubectl's layout: upper-case headers, columns three spaces apart, `<none>`-style dashes.
pub fn table(report: &Report, with_namespace: bool) -> String {
    if report.resources.is_empty() {
        return "No identity resources found.\n".into();
    }
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    let mut lines: Vec<Vec<String>> = vec![];
    let mut header = vec!["KIND", "NAME", "READY", "SYNCED", "REASON", "MESSAGE"];
    if with_namespace {
        header.insert(0, "NAMESPACE");
    }
    lines.push(header.into_iter().map(str::to_owned).collect());
    for r in &report.resources {
        let mut message = r.message.clone();
        if !r.current {
            message = format!("(the operator has not seen the latest spec yet) {message}");
        }
        let mut line = vec![
            r.kind.clone(),
            r.name.clone(),
            dash(&r.ready),
            dash(&r.synced),
            dash(&r.reason),
            message.trim().to_owned(),
        ];
        if with_namespace {
            line.insert(0, dash(&r.namespace));
        }
        lines.push(line);
    }
    let mut out = align(&lines);
    let total = report.resources.len();
    out.push_str(&format!("\n{total} resources: {} Ready", report.ready));
    for (reason, n) in &report.not_ready {
        out.push_str(&format!(", {n} {reason}"));
    }
    out.push('\n');
    let failing: Vec<&String> = report
        .not_ready
        .keys()
        .filter(|r| crate::engine::conditions::Reason::find(r).is_some())
        .collect();
    if !failing.is_empty() {
        out.push_str("What each reason means and what to do: docs/troubleshooting.md");
        let anchors: Vec<String> = failing
            .iter()
            .map(|r| format!("#{}", r.to_lowercase()))
            .collect();
        out.push_str(&format!(" ({})\n", anchors.join(", ")));
    }
    out
}

fn align(lines: &[Vec<String>]) -> String {
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == columns {
                    c.clone()
                } else {
                    format!("{c:<width$}", width = widths[i])
                }
            })
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(kind: &str, name: &str, generation: i64, status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "identity.operator.dev/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": "team", "generation": generation},
            "spec": {}, "status": status,
        }))
        .unwrap()
    }

    fn conditions(ready: (&str, &str, &str), synced: (&str, &str, &str)) -> Value {
        json!({"observedGeneration": 2, "conditions": [
            {"type": "Ready", "status": ready.0, "reason": ready.1, "message": ready.2},
            {"type": "Synced", "status": synced.0, "reason": synced.1, "message": synced.2},
        ]})
    }

    #[test]
    fn the_telling_condition_is_the_first_that_is_not_true() {
        let ok = ("True", "Synced", "remote object matches the spec");
        let failing = ("False", "IdentityApiError", "timed out");
        let r = row(
            "OrgConnection",
            &object("OrgConnection", "a", 2, conditions(ok, failing)),
        );
        assert_eq!(
            (
                r.ready.as_str(),
                r.synced.as_str(),
                r.reason.as_str(),
                r.message.as_str()
            ),
            ("True", "False", "IdentityApiError", "timed out")
        );
        assert!(r.current);
        let r = row(
            "OrgConnection",
            &object("OrgConnection", "a", 3, conditions(ok, ok)),
        );
        assert_eq!(r.reason, "Synced");
        assert!(!r.current, "generation 3 was not reconciled yet");
        let r = row(
            "IdentityBackend",
            &object("IdentityBackend", "b", 1, Value::Null),
        );
        assert_eq!((r.ready.as_str(), r.reason.as_str()), ("", ""));
    }

    #[test]
    fn the_table_counts_reasons_and_points_at_troubleshooting() {
        let ok = ("True", "Synced", "remote object matches the spec");
        let missing = ("False", "SecretNotFound", "Secret \"bind\" not found");
        let rows = vec![
            row(
                "IdentityBackend",
                &object("IdentityBackend", "good", 2, conditions(ok, ok)),
            ),
            row(
                "IdentityBackend",
                &object("IdentityBackend", "bad", 2, conditions(missing, missing)),
            ),
            row(
                "LdapSettings",
                &object("LdapSettings", "new", 1, Value::Null),
            ),
        ];
        let text = table(&report(rows), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "KIND              NAME   READY   SYNCED   REASON           MESSAGE"
        );
        assert!(
            lines[2]
                .starts_with("IdentityBackend   bad    False   False    SecretNotFound   Secret"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("LdapSettings      new    -       -        -"),
            "{text}"
        );
        assert!(
            text.contains("3 resources: 1 Ready, 1 NotReconciled, 1 SecretNotFound\n"),
            "{text}"
        );
        assert!(
            text.contains("docs/troubleshooting.md (#secretnotfound)"),
            "{text}"
        );
    }

    #[test]
    fn kinds_are_chosen_by_any_of_their_names() {
        let chosen = select(&["idb".into(), "OrgConnection,ldapsettings".into()]).unwrap();
        let kinds: Vec<&str> = chosen.iter().map(|(r, _)| r.kind.as_str()).collect();
        assert_eq!(kinds, ["IdentityBackend", "OrgConnection", "LdapSettings"]);
        let cluster_scoped: Vec<String> = select(&[])
            .unwrap()
            .into_iter()
            .filter(|(_, namespaced)| !namespaced)
            .map(|(r, _)| r.kind)
            .collect();
        assert_eq!(cluster_scoped, ["ClusterIdentityApi"]);
        assert_eq!(select(&[]).unwrap().len(), kinds::crds().len());
        let err = select(&["pods".into()]).unwrap_err().to_string();
        assert!(err.contains("unknown kind \"pods\""), "{err}");
    }
}
