//! Who may use a ClusterIdentityApi: a namespace it names or whose labels its selector
//! matches, of a kind it allows, under `Observe` if it is read-only. A pure function of the
//! rule, the request and the namespace's labels, so the connector answers it without I/O and a
//! relabelled namespace is answered anew at its next reconcile.

use std::collections::BTreeMap;

use kube::core::{Selector, SelectorExt};

use super::ClusterIdentityApiSpec;
use crate::engine::connector::Request;
use crate::engine::spec::ManagementPolicy;

/// Why `request` may not use the connection; `None` when it may. `labels`: the namespace's
/// labels, `None` when the namespace is not known (yet).
pub fn refusal(
    spec: &ClusterIdentityApiSpec,
    request: &Request,
    labels: Option<&BTreeMap<String, String>>,
) -> Option<String> {
    let ns = request.namespace;
    let allowed = &spec.allowed_namespaces;
    let by_name = allowed.names.iter().any(|n| n == ns);
    let by_label = || match (&allowed.selector, labels) {
        (Some(selector), Some(labels)) => {
            Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(labels))
        }
        _ => false,
    };
    if !by_name && !by_label() {
        return Some(format!("namespace {ns} is not in its allowedNamespaces"));
    }
    let kinds = &spec.allowed_kinds;
    if !kinds.is_empty() && !kinds.iter().any(|k| k == request.kind) {
        return Some(format!(
            "kind {} is not in its allowedKinds ({})",
            request.kind,
            kinds.join(", ")
        ));
    }
    if spec.read_only && request.policy != ManagementPolicy::Observe {
        return Some("it is readOnly: only managementPolicy Observe may use it".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use serde_json::json;

    use super::*;
    use crate::engine::spec::ApiRef;

    fn spec(rule: serde_json::Value) -> ClusterIdentityApiSpec {
        let mut spec = json!({
            "provider": "boruta", "url": "http://127.0.0.1:1/boruta",
            "auth": {"bearerToken": {"secretRef": {"name": "s", "key": "k"}}},
        });
        for (k, v) in rule.as_object().unwrap() {
            spec[k] = v.clone();
        }
        serde_json::from_value(spec).expect("a valid spec")
    }

    fn ask(ns: &str, kind: &'static str, policy: ManagementPolicy) -> Request<'static> {
        static API_REF: std::sync::OnceLock<ApiRef> = std::sync::OnceLock::new();
        let namespace: &'static str = Box::leak(ns.to_owned().into_boxed_str());
        Request {
            namespace,
            kind,
            api_ref: API_REF.get_or_init(ApiRef::default),
            policy,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn namespaces_are_allowed_by_name_or_selector_and_never_by_default() {
        let apply = ManagementPolicy::Apply;
        let team = labels(&[("team", "a")]);
        let cases = [
            (
                "no rule: nobody",
                json!({"allowedNamespaces": {}}),
                "a",
                Some(&team),
                false,
            ),
            (
                "by name",
                json!({"allowedNamespaces": {"names": ["a"]}}),
                "a",
                None,
                true,
            ),
            (
                "another name",
                json!({"allowedNamespaces": {"names": ["b"]}}),
                "a",
                Some(&team),
                false,
            ),
            (
                "by label",
                json!({"allowedNamespaces": {"selector": {"matchLabels": {"team": "a"}}}}),
                "x",
                Some(&team),
                true,
            ),
            (
                "labels unknown",
                json!({"allowedNamespaces": {"selector": {"matchLabels": {"team": "a"}}}}),
                "x",
                None,
                false,
            ),
            (
                "selector {}: everyone",
                json!({"allowedNamespaces": {"selector": {}}}),
                "x",
                Some(&team),
                true,
            ),
        ];
        for (what, rule, ns, labels, want) in cases {
            let refused = refusal(&spec(rule), &ask(ns, "IdentityBackend", apply), labels);
            assert_eq!(refused.is_none(), want, "{what}: {refused:?}");
        }
    }

    #[test]
    fn selector_expressions_are_honoured() {
        let selector = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["prod".into()]),
            }]),
            ..Default::default()
        };
        let rule = json!({"allowedNamespaces": {"selector": selector}});
        let request = ask("x", "IdentityBackend", ManagementPolicy::Apply);
        let dev = labels(&[("tier", "dev")]);
        let prod = labels(&[("tier", "prod")]);
        assert_eq!(refusal(&spec(rule.clone()), &request, Some(&dev)), None);
        assert!(refusal(&spec(rule), &request, Some(&prod)).is_some());
    }

    #[test]
    fn kinds_and_read_only_narrow_it_further() {
        let rule = json!({"allowedNamespaces": {"names": ["a"]},
                          "allowedKinds": ["OrgConnection"], "readOnly": true});
        let spec = spec(rule);
        let backend = refusal(
            &spec,
            &ask("a", "IdentityBackend", ManagementPolicy::Observe),
            None,
        );
        assert!(backend.is_some_and(|why| why.contains("allowedKinds")));
        let apply = refusal(
            &spec,
            &ask("a", "OrgConnection", ManagementPolicy::Apply),
            None,
        );
        assert!(apply.is_some_and(|why| why.contains("readOnly")));
        assert_eq!(
            refusal(
                &spec,
                &ask("a", "OrgConnection", ManagementPolicy::Observe),
                None
            ),
            None
        );
    }
}
