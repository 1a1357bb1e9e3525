//! The Helm chart: rendered with the real `helm`, linted, and every rendered object (cluster-
//! scoped ones too) validated by the real API server with a server-side dry run, for the
//! value combinations users pick; plus the promises the chart makes (least-privilege RBAC,
//! hardened pod, guards against unsafe values) and a real install and uninstall.

mod support;

use serde_json::{Value, json};
use std::time::Duration;

use support::chart::{CHART, TEST_IMAGE, documents, render, render_ok, stream, values_file};
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::operator::{
    Operator, apply, identity_documents, install_crds, service_account_kubeconfig, wait_condition,
};
use support::sim::{SimOptions, SimProcess};

const CHART_CRDS: &str =
    include_str!("../charts/identity-operator/crds/identity.operator.dev.yaml");
const CRDS: &str = include_str!("../crds/identity.operator.dev.yaml");

/// `helm template --validate`: Helm asks the cluster for its API versions (as `helm install`
/// does) and checks the templates against its OpenAPI schema.
fn render_for_cluster(cluster: &Cluster, release: &str, ns: &str, values: &Value) -> Vec<Value> {
    documents(&render_ok(cluster, release, ns, values, &["--validate"]))
}

/// Every document through `kubectl apply --dry-run=server`: the API server validates and
/// admits each object without storing it.
fn server_dry_run(cluster: &Cluster, docs: &[Value]) {
    let out = cluster.kubectl_stdin_ok(&["apply", "--dry-run=server", "-f", "-"], &stream(docs));
    assert_eq!(
        out.lines().count(),
        docs.len(),
        "one line per object expected:\n{out}"
    );
    assert!(
        out.lines().all(|l| l.ends_with("(server dry run)")),
        "{out}"
    );
}

fn by_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = by_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    kinds
}

fn args(docs: &[Value]) -> Vec<String> {
    one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn chart_crds_are_the_generated_crds() {
    assert!(
        CHART_CRDS == CRDS,
        "charts/identity-operator/crds/ differs from crds/: run \
         `cp crds/identity.operator.dev.yaml charts/identity-operator/crds/`"
    );
}

#[test]
fn the_crds_pass_a_server_side_dry_run() {
    let cluster = ensure_cluster();
    let docs = documents(CHART_CRDS);
    assert_eq!(docs.len(), 7);
    // kubectl's client-side check predates x-kubernetes-validations on 1.20; the server accepts it.
    let out = cluster.kubectl_stdin_ok(
        &["apply", "--dry-run=server", "--validate=false", "-f", "-"],
        CHART_CRDS,
    );
    assert_eq!(out.matches("(server dry run)").count(), 7, "{out}");
}

#[test]
fn helm_lint_passes_for_every_value_combination() {
    let cluster = ensure_cluster();
    for values in [
        json!({}),
        json!({"watchNamespaces": ["team-a", "team-b"]}),
        json!({"podDisruptionBudget": {"enabled": true}, "networkPolicy": {"enabled": true}}),
        json!({"replicaCount": 1, "leaderElection": {"enabled": false}, "rbac": {"secretWrites": false}}),
        json!({"serviceMonitor": {"enabled": true}}),
        json!({
            "prometheusRule": {"enabled": true, "runbookBaseUrl": "https://docs.example/troubleshooting.md"},
            "grafanaDashboard": {"enabled": true},
        }),
    ] {
        let (_dir, file) = values_file(&values);
        let out = cluster.helm(&["lint", "--strict", CHART, "-f", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "helm lint with {values}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn defaults_pass_a_server_side_dry_run() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "helm-defaults");
    let docs = render_for_cluster(cluster, "io", &ns.name, &json!({}));
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    server_dry_run(cluster, &docs);
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let args = args(&docs);
    for flag in [
        "--leader-election",
        "--lease-name=io-identity-operator",
        "--metrics-addr=0.0.0.0:8080",
        "--resync-interval=10m",
        "--log-format=json",
        "--max-concurrent-reconciles=64",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} missing in {args:?}");
    }
    assert!(
        !args.iter().any(|a| a.starts_with("--namespace")),
        "{args:?}"
    );
    // The Lease Role is in the release namespace, for this release's Lease only.
    let lease = |r: &&&Value| {
        r["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-leader-election")
    };
    let role = *by_kind(&docs, "Role")
        .iter()
        .find(lease)
        .expect("the Lease Role");
    assert_eq!(role["metadata"]["namespace"], ns.name.as_str());
    assert_eq!(
        role["rules"][1]["resourceNames"],
        json!(["io-identity-operator"])
    );
}

#[test]
fn watch_namespaces_get_a_role_each_and_no_cluster_role() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "helm-ns-release");
    let team_a = TestNamespace::new(cluster, "helm-ns-a");
    let team_b = TestNamespace::new(cluster, "helm-ns-b");
    let values = json!({"watchNamespaces": [team_a.name, team_b.name]});
    let docs = render_for_cluster(cluster, "io", &ns.name, &values);
    assert!(by_kind(&docs, "ClusterRole").is_empty());
    assert!(by_kind(&docs, "ClusterRoleBinding").is_empty());
    server_dry_run(cluster, &docs);

    let roles = by_kind(&docs, "Role");
    let in_ns = |n: &str| {
        roles
            .iter()
            .filter(|r| r["metadata"]["namespace"] == n)
            .count()
    };
    // Each watched namespace gets the operator's Role; the release namespace the Lease Role.
    assert_eq!(
        (in_ns(&team_a.name), in_ns(&team_b.name), in_ns(&ns.name)),
        (1, 1, 1)
    );
    for binding in by_kind(&docs, "RoleBinding") {
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "io-identity-operator", "namespace": ns.name}])
        );
    }
    let args = args(&docs);
    for watched in [&team_a.name, &team_b.name] {
        assert!(args.contains(&format!("--namespace={watched}")), "{args:?}");
    }
}

/// With watchNamespaces the operator needs no cluster-wide permission: it runs, elects itself
/// leader and reconciles with nothing but the Roles the chart renders.
#[tokio::test(flavor = "multi_thread")]
async fn watch_namespaces_mode_runs_on_roles_alone() {
    let cluster = ensure_cluster();
    install_crds(cluster);
    let ns = TestNamespace::new(cluster, "helm-roles-only");
    let values = json!({"watchNamespaces": [ns.name]});
    let docs = identity_documents(&render_ok(cluster, "scoped", &ns.name, &values, &[]));
    assert!(
        docs.iter()
            .all(|d| d["metadata"]["namespace"] == ns.name.as_str()),
        "only namespaced objects expected"
    );
    cluster.kubectl_stdin_ok(&["apply", "-f", "-"], &stream(&docs));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("scoped.kubeconfig");
    service_account_kubeconfig(cluster, &docs, &["--namespace", &ns.name], &kubeconfig);
    let user = format!("system:serviceaccount:{}:scoped-identity-operator", ns.name);
    let cluster_wide = cluster.kubectl(&[
        "auth",
        "can-i",
        "list",
        "secrets",
        "--all-namespaces",
        "--as",
        &user,
    ]);
    assert!(
        !cluster_wide.status.success(),
        "no cluster-wide Secret access expected"
    );

    let sim = SimProcess::start(SimOptions {
        extra_args: vec!["--boruta-oauth-rate-limit".into(), "0".into()],
        ..SimOptions::default()
    });
    let manifests = json!([
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "boruta-client"},
         "stringData": {"secret": sim.options.client_secret}},
        {"apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
         "metadata": {"name": "boruta"},
         "spec": {"provider": "boruta", "url": sim.url("boruta"), "auth": {"oauth2ClientCredentials": {
             "tokenUrl": "oauth/token", "clientId": sim.options.client_id,
             "clientSecretRef": {"name": "boruta-client", "key": "secret"},
             "scopes": ["identity-providers:manage:all"]}}}},
        {"apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityBackend",
         "metadata": {"name": "scoped"},
         "spec": {"apiRef": {"name": "boruta"}, "name": "scoped", "passwordHashingAlg": "argon2"}},
    ]);
    for doc in manifests.as_array().unwrap() {
        apply(cluster, &ns, &doc.to_string());
    }
    let op = Operator::start_as(
        cluster,
        &ns,
        &[
            "--leader-election",
            "--lease-name",
            "scoped-identity-operator",
            "--leader-election-namespace",
            &ns.name,
        ],
        &kubeconfig,
    );
    let timeout = Duration::from_secs(45);
    wait_condition(
        cluster,
        &ns,
        "identitybackend/scoped",
        "Ready",
        "True",
        None,
        timeout,
    )
    .await;
    assert!(op.log().contains("became the leader"));
    let holder = ns.kubectl_ok(&[
        "get",
        "lease",
        "scoped-identity-operator",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.is_empty(), "the Lease has a holder");
    // Deleted while the operator runs, so no finalizer keeps the namespace.
    ns.kubectl_ok(&["delete", "identitybackends", "--all", "--timeout=60s"]);
}

#[test]
fn pdb_and_network_policy_pass_a_server_side_dry_run() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "helm-pdb-np");
    let values = json!({
        "podDisruptionBudget": {"enabled": true},
        "networkPolicy": {
            "enabled": true,
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 443, "protocol": "TCP"}]}],
        },
    });
    let docs = render_for_cluster(cluster, "io", &ns.name, &values);
    server_dry_run(cluster, &docs);
    let pdb = one(&docs, "PodDisruptionBudget");
    // The local server is Kubernetes 1.20: policy/v1 does not exist there yet.
    assert_eq!(pdb["apiVersion"], "policy/v1beta1");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let policy = one(&docs, "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        policy["spec"]["ingress"][0]["ports"],
        json!([{"port": "metrics", "protocol": "TCP"}])
    );
    let selector = &one(&docs, "Deployment")["spec"]["selector"]["matchLabels"];
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);
    assert_eq!(&policy["spec"]["podSelector"]["matchLabels"], selector);

    // Egress stays open unless rules are given.
    let open = json!({"networkPolicy": {"enabled": true}});
    let docs = render_for_cluster(cluster, "io", &ns.name, &open);
    let policy = one(&docs, "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    assert!(policy["spec"]["ingress"][0]["from"].is_null());
}

#[test]
fn pdb_api_version_follows_the_cluster() {
    let cluster = ensure_cluster();
    let pdb = |extra: &[&str]| {
        let values = json!({"podDisruptionBudget": {"enabled": true}});
        let docs = documents(&render_ok(cluster, "io", "ops", &values, extra));
        one(&docs, "PodDisruptionBudget")["apiVersion"].clone()
    };
    // What Argo CD passes for a 1.28 cluster, and a client-only render (helm's own default).
    let modern = [
        "--kube-version",
        "1.28.0",
        "--api-versions",
        "policy/v1/PodDisruptionBudget",
    ];
    assert_eq!(pdb(&modern), "policy/v1");
    assert_eq!(pdb(&["--kube-version", "1.28.0"]), "policy/v1");
    assert_eq!(pdb(&[]), "policy/v1");
    assert_eq!(pdb(&["--kube-version", "1.20.2"]), "policy/v1beta1");
    assert_eq!(pdb(&["--validate"]), "policy/v1beta1");
}

#[test]
fn service_monitor_scrapes_the_metrics_service() {
    let cluster = ensure_cluster();
    let values = json!({"serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}}});
    // No ServiceMonitor CRD on the local server: a client-only render, checked structurally.
    let docs = documents(&render_ok(cluster, "io", "ops", &values, &[]));
    let monitor = one(&docs, "ServiceMonitor");
    let service = one(&docs, "Service");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    for (k, v) in selector {
        assert_eq!(&service["metadata"]["labels"][k], v, "Service label {k}");
    }
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!(["ops"])
    );
    let port = &monitor["spec"]["endpoints"][0];
    assert_eq!(port["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(port["path"], "/metrics");
    let off = documents(&render_ok(cluster, "io", "ops", &json!({}), &[]));
    assert!(by_kind(&off, "ServiceMonitor").is_empty());
}

/// The optional alerts: a PrometheusRule in the release namespace with the labels asked for,
/// its rules selecting the release's metrics (promtool checks them in tests/observability.rs).
#[test]
fn prometheus_rule_carries_the_alerts() {
    let cluster = ensure_cluster();
    let values = json!({"prometheusRule": {
        "enabled": true, "runbookBaseUrl": "https://docs.example/troubleshooting.md",
        "labels": {"release": "prometheus"},
    }});
    // No PrometheusRule CRD on the local server: a client-only render, checked structurally.
    let docs = documents(&render_ok(cluster, "io", "ops", &values, &[]));
    let rule = one(&docs, "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "ops");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let alerts = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(alerts.len(), 7);
    for alert in alerts {
        let expr = alert["expr"].as_str().unwrap();
        assert!(expr.contains(r#"namespace="ops""#), "{expr}");
    }
    // Another scrape setup: the release's metrics by other labels.
    let values = json!({"prometheusRule": {
        "enabled": true, "runbookBaseUrl": "https://docs.example/t.md",
        "selector": r#"job="identity-operator""#,
    }});
    let docs = documents(&render_ok(cluster, "io", "ops", &values, &[]));
    let expr = one(&docs, "PrometheusRule")["spec"]["groups"][0]["rules"][0]["expr"].clone();
    assert!(
        expr.as_str()
            .unwrap()
            .contains(r#"{job="identity-operator", ready="False"}"#),
        "{expr}"
    );
    let off = documents(&render_ok(cluster, "io", "ops", &json!({}), &[]));
    assert!(by_kind(&off, "PrometheusRule").is_empty());
}

/// The optional dashboard: a ConfigMap Grafana's sidecar finds by its label, holding the
/// dashboard file as it is; the API server admits it.
#[test]
fn grafana_dashboard_config_map_holds_the_dashboard() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "helm-dashboard");
    let values = json!({"grafanaDashboard": {
        "enabled": true, "annotations": {"grafana_folder": "Identity"},
    }});
    let docs = render_for_cluster(cluster, "io", &ns.name, &values);
    let map = one(&docs, "ConfigMap");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(map["metadata"]["annotations"]["grafana_folder"], "Identity");
    let file = include_str!("../charts/identity-operator/dashboards/identity-operator.json");
    assert_eq!(
        map["data"]["identity-operator.json"],
        json!(file.trim_end())
    );
    server_dry_run(cluster, std::slice::from_ref(map));
    // Where the sidecar looks, if it watches one namespace.
    let values = json!({"grafanaDashboard": {"enabled": true, "namespace": "monitoring"}});
    let docs = documents(&render_ok(cluster, "io", "ops", &values, &[]));
    assert_eq!(
        one(&docs, "ConfigMap")["metadata"]["namespace"],
        "monitoring"
    );
    let off = documents(&render_ok(cluster, "io", "ops", &json!({}), &[]));
    assert!(by_kind(&off, "ConfigMap").is_empty());
}

#[test]
fn the_pod_is_hardened_and_configurable() {
    let cluster = ensure_cluster();
    let values = json!({
        "image": {"tag": "1.2.3", "pullPolicy": "Always"},
        "operator": {
            "resyncInterval": "5m", "logFormat": "text", "maxConcurrentReconciles": 8,
            "selector": "team in (a, b)", "extraArgs": ["--deletion-grace-period=5m"],
            "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        },
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}},
    });
    let docs = documents(&render_ok(cluster, "io", "ops", &values, &[]));
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], format!("{TEST_IMAGE}:1.2.3"));
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(
        container["securityContext"],
        json!({
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
        })
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["serviceAccountName"], "io-identity-operator");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "metrics");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    let env = container["env"].as_array().unwrap();
    let field = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
    };
    assert_eq!(field("POD_NAME"), Some(json!("metadata.name")));
    assert_eq!(field("POD_NAMESPACE"), Some(json!("metadata.namespace")));
    assert!(env.iter().any(|e| e["name"] == "HTTPS_PROXY"));
    let args = args(&docs);
    for flag in [
        "--resync-interval=5m",
        "--log-format=text",
        "--max-concurrent-reconciles=8",
        "--selector=team in (a, b)",
        "--deletion-grace-period=5m",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} missing in {args:?}");
    }
    assert_eq!(pod["nodeSelector"], values["nodeSelector"]);
    assert_eq!(pod["tolerations"], values["tolerations"]);
    assert_eq!(pod["affinity"], values["affinity"]);

    let digest = format!("sha256:{}", "a".repeat(64));
    let pinned = json!({"image": {"tag": "ignored", "digest": digest}});
    let docs = documents(&render_ok(cluster, "io", "ops", &pinned, &[]));
    let image = &one(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"];
    assert_eq!(image, &json!(format!("{TEST_IMAGE}@{digest}")));
}

#[test]
fn rbac_is_least_privilege() {
    let cluster = ensure_cluster();
    let rules = |values: Value| {
        let docs = documents(&render_ok(cluster, "io", "ops", &values, &[]));
        one(&docs, "ClusterRole")["rules"]
            .as_array()
            .unwrap()
            .clone()
    };
    let verbs = |rules: &[Value], group: &str, resource: &str| {
        let mut verbs: Vec<String> = rules
            .iter()
            .filter(|r| r["apiGroups"].as_array().unwrap().contains(&json!(group)))
            .filter(|r| {
                r["resources"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(resource))
            })
            .flat_map(|r| r["verbs"].as_array().unwrap().clone())
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        verbs.sort();
        verbs
    };
    let all = rules(json!({}));
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains('*'), "no wildcards: {text}");
    assert!(
        !text.contains("delete") && !text.contains("update"),
        "{text}"
    );
    assert_eq!(
        verbs(&all, "", "secrets"),
        ["create", "get", "list", "patch", "watch"]
    );
    assert_eq!(verbs(&all, "", "configmaps"), ["get"]);
    assert_eq!(verbs(&all, "events.k8s.io", "events"), ["create", "patch"]);
    // The in-use finalizer of IdentityApis and their credential Secrets is patched in.
    assert_eq!(
        verbs(&all, "identity.operator.dev", "identityapis"),
        ["get", "list", "patch", "watch"]
    );
    assert_eq!(
        verbs(&all, "identity.operator.dev", "identitybackends"),
        ["get", "list", "patch", "watch"]
    );
    assert_eq!(
        verbs(&all, "identity.operator.dev", "adminapiapps/status"),
        ["patch"]
    );
    let read_only = rules(json!({"rbac": {"secretWrites": false}}));
    assert_eq!(
        verbs(&read_only, "", "secrets"),
        ["get", "list", "patch", "watch"]
    );
    // ClusterIdentityApis: the kind, its finalizer and status; namespaces' labels, read only.
    assert_eq!(
        verbs(&all, "identity.operator.dev", "clusteridentityapis"),
        ["get", "list", "patch", "watch"]
    );
    assert_eq!(verbs(&all, "", "namespaces"), ["get", "list", "watch"]);
}

#[test]
fn cluster_identity_api_secrets_are_read_only_in_the_credentials_namespace() {
    let cluster = ensure_cluster();
    let render = |values: Value| documents(&render_ok(cluster, "io", "ops", &values, &[]));
    let credentials = |docs: &[Value]| {
        let roles: Vec<&Value> = by_kind(docs, "Role")
            .into_iter()
            .filter(|r| {
                r["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .ends_with("-credentials")
            })
            .collect();
        assert_eq!(roles.len(), 1, "one credentials Role");
        roles[0].clone()
    };
    // By default the release namespace holds them.
    let role = credentials(&render(json!({})));
    assert_eq!(role["metadata"]["namespace"], "ops");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "patch"]}])
    );
    // A namespace of their own, and the operator is told which.
    let values = json!({"clusterIdentityApi": {"credentialsNamespace": "identity-credentials"}});
    let docs = render(values);
    assert_eq!(
        credentials(&docs)["metadata"]["namespace"],
        "identity-credentials"
    );
    let args =
        one(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    assert!(
        args.as_array()
            .unwrap()
            .contains(&json!("--credentials-namespace=identity-credentials")),
        "{args}"
    );
    // With watchNamespaces nothing is cluster-wide, ClusterIdentityApis included.
    let docs = render(json!({"watchNamespaces": ["team-a", "team-b"]}));
    assert!(by_kind(&docs, "ClusterRole").is_empty());
}

#[test]
fn unsafe_or_mistyped_values_are_refused() {
    let cluster = ensure_cluster();
    let refused = |values: Value, why: &str| {
        let err = render(cluster, "io", "ops", &values, &[])
            .expect_err(&format!("{values} should be refused"));
        assert!(err.contains(why), "{values}: {err}");
    };
    refused(
        json!({"image": {"repository": ""}}),
        "image.repository is required",
    );
    refused(
        json!({"leaderElection": {"enabled": false}}),
        "replicaCount > 1 needs leaderElection.enabled",
    );
    refused(
        json!({"replicaCount": 1, "podDisruptionBudget": {"enabled": true}}),
        "would block every node drain",
    );
    refused(json!({"operator": {"logFormat": "yaml"}}), "logFormat");
    refused(
        json!({"operator": {"resyncInterval": "ten minutes"}}),
        "resyncInterval",
    );
    refused(json!({"replicas": 3}), "replicas");
    refused(
        json!({"watchNamespaces": ["Not_A_Namespace"]}),
        "watchNamespaces",
    );
    refused(
        json!({"prometheusRule": {"enabled": true}}),
        "prometheusRule.runbookBaseUrl is required",
    );
    refused(
        json!({"prometheusRule": {"enabled": true, "runbookBaseUrl": "docs/troubleshooting.md"}}),
        "runbookBaseUrl",
    );
    refused(json!({"grafanaDashboard": {"label": "x"}}), "label");
    // One replica without a Lease is fine.
    let single = json!({"replicaCount": 1, "leaderElection": {"enabled": false}});
    let docs = documents(&render_ok(cluster, "io", "ops", &single, &[]));
    assert!(!args(&docs).iter().any(|a| a == "--leader-election"));
    assert!(
        !by_kind(&docs, "Role").iter().any(|r| r["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-leader-election")),
        "no Lease Role without leader election"
    );
}

#[test]
fn helm_install_and_uninstall() {
    let cluster = ensure_cluster();
    install_crds(cluster);
    let ns = TestNamespace::new(cluster, "helm-install");
    let release = ns.name.clone();
    let image = format!("image.repository={TEST_IMAGE}");
    // The CRDs exist already (shared with the other tests): Helm skips them, as on every
    // install after the first.
    let out = cluster.helm(&[
        "install",
        &release,
        CHART,
        "--namespace",
        &ns.name,
        "--set",
        &image,
    ]);
    let mut installed = Uninstall {
        cluster,
        release: release.clone(),
        namespace: ns.name.clone(),
        done: false,
    };
    assert!(
        out.status.success(),
        "helm install:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fullname = format!("{release}-identity-operator");
    ns.kubectl_ok(&["get", "deployment", &fullname]);
    ns.kubectl_ok(&["get", "serviceaccount", &fullname]);
    cluster.kubectl_ok(&["get", "clusterrole", &fullname]);
    cluster.kubectl_ok(&["get", "clusterrolebinding", &fullname]);

    installed.done = true;
    let out = cluster.helm(&["uninstall", &release, "--namespace", &ns.name, "--wait"]);
    assert!(
        out.status.success(),
        "helm uninstall:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone = cluster.kubectl(&["get", "clusterrole", &fullname]);
    assert!(
        !gone.status.success(),
        "the ClusterRole outlived the release"
    );
    // CRDs stay (Helm never deletes them): the custom resources would go with them.
    cluster.kubectl_ok(&["get", "crd", "identitybackends.identity.operator.dev"]);
}

/// Uninstalls a release when a failed test unwinds: its ClusterRole and ClusterRoleBinding are
/// cluster-scoped and would outlive the test namespace.
struct Uninstall<'a> {
    cluster: &'a Cluster,
    release: String,
    namespace: String,
    /// Set once the test uninstalls the release itself.
    done: bool,
}

impl Drop for Uninstall<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let _ = self
            .cluster
            .helm(&["uninstall", &self.release, "--namespace", &self.namespace]);
    }
}
