//! The chart's alerts and Grafana dashboard against the operator's real metrics: the rules
//! `helm template` renders pass `promtool check rules`, every alert fires (and stays quiet)
//! as `tests/prometheus/alerts_test.yaml` expects under `promtool test rules`, each links into
//! the troubleshooting page, and every metric and label the dashboard, the alerts and those test
//! series use is one a running operator serves on `/metrics`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use promql_parser::parser::{self, Expr, LabelModifier};
use serde_json::{Value, json};
use support::boruta;
use support::chart::{documents, render_ok};
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::operator::{Operator, get_json, wait_for};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const DASHBOARD: &str =
    include_str!("../charts/identity-operator/dashboards/identity-operator.json");
const ALERTS_TEST: &str = include_str!("prometheus/alerts_test.yaml");
/// The runbook base the expected annotations of `alerts_test.yaml` were written for.
const RUNBOOK: &str = "https://docs.example/troubleshooting.md";
/// Labels Prometheus adds when it scrapes (a ServiceMonitor's target labels), not the
/// operator.
const TARGET_LABELS: [&str; 7] = [
    "namespace",
    "job",
    "pod",
    "instance",
    "service",
    "endpoint",
    "container",
];

fn promtool() -> &'static Path {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL.get_or_init(|| support::tools::install("install-promtool.sh"))
}

/// The PrometheusRule the chart renders in release namespace `identity-operator`.
fn prometheus_rule(cluster: &Cluster) -> Value {
    let values = json!({"prometheusRule": {"enabled": true, "runbookBaseUrl": RUNBOOK}});
    let docs = documents(&render_ok(cluster, "io", "identity-operator", &values, &[]));
    docs.into_iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("the chart renders a PrometheusRule")
}

fn alerts(rule: &Value) -> Vec<&Value> {
    rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect()
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    text
}

#[test]
fn the_alerts_pass_promtool_check_and_unit_tests() {
    let cluster = ensure_cluster();
    let rule = prometheus_rule(cluster);
    let dir = tempfile::tempdir().unwrap();
    // What Prometheus loads from a PrometheusRule: its spec, as a rules file.
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("alerts_test.yaml"), ALERTS_TEST).unwrap();
    let checked = run(Command::new(promtool())
        .args(["check", "rules"])
        .arg(dir.path().join("rules.yaml")));
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    let tested = run(Command::new(promtool())
        .args(["test", "rules", "alerts_test.yaml"])
        .current_dir(dir.path()));
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Each alert has a test case in which it fires, and one in which it does not.
#[test]
fn every_alert_is_tested_firing_and_quiet() {
    let cluster = ensure_cluster();
    let rule = prometheus_rule(cluster);
    let tests: Value = serde_yaml::from_str(ALERTS_TEST).unwrap();
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .collect();
    for alert in alerts(&rule) {
        let name = alert["alert"].as_str().unwrap();
        let fires = |c: &&&Value| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
        let of_it: Vec<&&Value> = cases.iter().filter(|c| c["alertname"] == name).collect();
        let (firing, quiet): (Vec<&&Value>, Vec<&&Value>) = of_it.into_iter().partition(fires);
        assert!(!firing.is_empty(), "{name}: no case where it fires");
        assert!(!quiet.is_empty(), "{name}: no case where it stays quiet");
    }
}

/// Every alert's runbook link leads to a section of docs/troubleshooting.md: its own, or, for
/// resources not Ready, the section of the condition reason (tests/docs.rs checks that every
/// reason has one).
#[test]
fn every_alert_links_into_the_troubleshooting_page() {
    let cluster = ensure_cluster();
    let rule = prometheus_rule(cluster);
    let page = std::fs::read_to_string(Path::new(ROOT).join("docs/troubleshooting.md")).unwrap();
    for alert in alerts(&rule) {
        let name = alert["alert"].as_str().unwrap();
        let url = alert["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = url
            .strip_prefix(&format!("{RUNBOOK}#"))
            .unwrap_or_else(|| panic!("{name}: {url}"));
        if anchor == "{{ $labels.reason | toLower }}" {
            continue;
        }
        assert_eq!(anchor, name.to_lowercase(), "{name}");
        assert!(
            page.contains(&format!("\n### {name}\n")),
            "docs/troubleshooting.md has no section {name}"
        );
    }
}

/// Metric and label names of a Prometheus text exposition. Counters' and histograms' samples
/// are named after their family (`_total`; `_bucket`, `_sum`, `_count`), as Prometheus sees them.
#[derive(Default, Debug)]
struct Exposition {
    /// Every series name, including families that have no sample yet.
    names: BTreeSet<String>,
    /// The label names seen on each series name's samples.
    labels: BTreeMap<String, BTreeSet<String>>,
}

fn exposition(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap();
            let names: Vec<String> = match kind {
                "counter" => vec![format!("{family}_total")],
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{family}{s}"))
                    .collect(),
                _ => vec![family.to_owned()],
            };
            out.names.extend(names);
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap();
            let name = &line[..name_end];
            let labels = out.labels.entry(name.to_owned()).or_default();
            if let Some(set) = line[name_end..].strip_prefix('{') {
                let set = &set[..set.rfind('}').unwrap()];
                for pair in set.split("\",") {
                    labels.insert(pair.split('=').next().unwrap().trim().to_owned());
                }
            }
        }
    }
    out
}

/// The metrics a PromQL expression reads, and every label name it matches or groups on.
fn queried(expr: &Expr, metrics: &mut BTreeSet<String>, labels: &mut BTreeSet<String>) {
    let grouping = |m: &Option<LabelModifier>, labels: &mut BTreeSet<String>| {
        if let Some(m) = m {
            labels.extend(m.labels().labels.iter().cloned());
        }
    };
    match expr {
        Expr::Aggregate(a) => {
            grouping(&a.modifier, labels);
            queried(&a.expr, metrics, labels);
        }
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier {
                grouping(&m.matching, labels);
            }
            queried(&b.lhs, metrics, labels);
            queried(&b.rhs, metrics, labels);
        }
        Expr::Paren(p) => queried(&p.expr, metrics, labels),
        Expr::Unary(u) => queried(&u.expr, metrics, labels),
        Expr::Subquery(s) => queried(&s.expr, metrics, labels),
        Expr::Call(c) => c.args.args.iter().for_each(|a| queried(a, metrics, labels)),
        Expr::MatrixSelector(m) => selector(&m.vs, metrics, labels),
        Expr::VectorSelector(v) => selector(v, metrics, labels),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn selector(
    v: &parser::VectorSelector,
    metrics: &mut BTreeSet<String>,
    labels: &mut BTreeSet<String>,
) {
    metrics.extend(v.name.clone());
    labels.extend(v.matchers.matchers.iter().map(|m| m.name.clone()));
}

/// Parses one query, with Grafana's variables replaced by what they stand for.
fn parse_query(query: &str) -> Expr {
    let query = query
        .replace("$__rate_interval", "5m")
        .replace("$namespace", ".*");
    parser::parse(&query).unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// Every query of the dashboard: its panels' targets and its variables.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("a target has an expr").to_owned())
        .collect();
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = variable["query"]["query"].as_str() {
            // label_values(METRIC, LABEL): Grafana's, not PromQL.
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .expect("label_values(metric, label)");
            let (metric, label) = inner.split_once(", ").unwrap();
            queries.push(format!("count by ({label}) ({metric})"));
        }
    }
    queries
}

/// `/metrics` of an operator that reconciled a Ready IdentityBackend (and repaired it when it was
/// deleted behind its back), one failing for a missing Secret, and calls paced by its
/// IdentityApi's client-side rate limit.
async fn live_metrics() -> Exposition {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "observability");
    let paced = json!({"rateLimit": {"requestsPerSecond": 2, "burst": 1}});
    let sim = boruta::good_and_broken(cluster, &ns, paced);
    let op = Operator::start(cluster, &ns, &[]);
    boruta::wait_good_and_broken(cluster, &ns).await;
    // Deleted behind the operator's back: drift, repaired at the next resync.
    let good = get_json(&ns, cluster, "identitybackend/good").unwrap();
    let id = good["status"]["externalId"].as_str().unwrap();
    let deleted = reqwest::Client::new()
        .delete(format!("{}/api/backends/{id}", sim.url("boruta")))
        .bearer_auth(sim.token("boruta").await)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let timeout = Duration::from_secs(45);
    // The gauges follow the status write, the wait counter the paced calls, the drift counter
    // the repair.
    let text = wait_for(timeout, "the resource, wait and drift series", || async {
        let text = op.metrics().await;
        (text.contains("reason=\"SecretNotFound\"")
            && text.contains("identity_operator_identity_api_rate_limit_wait_seconds_total{")
            && text.contains("identity_operator_drift_detected_total{"))
        .then_some(text)
    })
    .await;
    exposition(&text)
}

/// What a set of queries (or series) uses that the live operator does not serve.
fn unserved(
    live: &Exposition,
    metrics: &BTreeSet<String>,
    labels: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for m in metrics {
        if !live.names.contains(m) {
            problems.push(format!("metric {m} is not in /metrics"));
        } else if !live.labels.contains_key(m) {
            problems.push(format!("metric {m} has no sample in /metrics"));
        }
    }
    let served: BTreeSet<&String> = metrics
        .iter()
        .flat_map(|m| live.labels.get(m).into_iter().flatten())
        .collect();
    for l in labels {
        if !served.contains(l) && !TARGET_LABELS.contains(&l.as_str()) {
            problems.push(format!("label {l} is on none of {metrics:?}"));
        }
    }
    problems
}

/// The dashboard, the alerts and the alerts' test series, against one running operator's
/// `/metrics`.
#[tokio::test(flavor = "multi_thread")]
async fn dashboard_and_alerts_query_only_what_the_operator_serves() {
    let cluster = ensure_cluster();
    let rule = prometheus_rule(cluster);
    let live = live_metrics().await;
    let mut problems = Vec::new();

    let dashboard = dashboard_queries();
    assert!(dashboard.len() >= 15, "{dashboard:?}");
    let alert_exprs: Vec<String> = alerts(&rule)
        .iter()
        .map(|a| a["expr"].as_str().unwrap().to_owned())
        .collect();
    let mut all_metrics = BTreeSet::new();
    for query in dashboard.iter().chain(&alert_exprs) {
        let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
        queried(&parse_query(query), &mut metrics, &mut labels);
        assert!(!metrics.is_empty(), "{query} reads no metric");
        problems.extend(
            unserved(&live, &metrics, &labels)
                .into_iter()
                .map(|p| format!("{query}: {p}")),
        );
        all_metrics.extend(metrics);
    }

    // promtool's input series must look like what Prometheus scrapes from the operator.
    let tests: Value = serde_yaml::from_str(ALERTS_TEST).unwrap();
    for series in tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["input_series"].as_array().unwrap())
    {
        let series = series["series"].as_str().unwrap();
        let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
        queried(&parse_query(series), &mut metrics, &mut labels);
        problems.extend(
            unserved(&live, &metrics, &labels)
                .into_iter()
                .map(|p| format!("test series {series}: {p}")),
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // What the dashboard was built for (issue: resources by kind and condition, reconcile
    // rate and latency, identity-API calls by status and connection, rate-limit waits).
    for wanted in [
        "identity_operator_resources",
        "identity_operator_reconciles_total",
        "identity_operator_reconcile_duration_seconds_bucket",
        "identity_operator_identity_api_calls_total",
        "identity_operator_identity_api_rate_limit_wait_seconds_total",
        "identity_operator_write_loops_total",
        "identity_operator_events_dropped_total",
        "identity_operator_leader",
    ] {
        assert!(all_metrics.contains(wanted), "nothing queries {wanted}");
    }
}

#[test]
fn the_exposition_parser_reads_families_and_labels() {
    let live = exposition(
        "# TYPE identity_operator_reconciles counter\n\
         identity_operator_reconciles_total{kind=\"IdentityBackend\",result=\"ok\"} 3\n\
         # TYPE identity_operator_reconcile_duration_seconds histogram\n\
         identity_operator_reconcile_duration_seconds_bucket{le=\"0.5\",kind=\"A\"} 1\n\
         # TYPE identity_operator_leader gauge\n\
         identity_operator_leader 1\n\
         # TYPE identity_operator_write_loops counter\n",
    );
    assert!(live.names.contains("identity_operator_write_loops_total"));
    assert!(
        live.names
            .contains("identity_operator_reconcile_duration_seconds_count")
    );
    assert_eq!(
        live.labels["identity_operator_reconciles_total"],
        BTreeSet::from(["kind".to_owned(), "result".to_owned()])
    );
    assert!(live.labels["identity_operator_leader"].is_empty());
    let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
    queried(
        &parse_query(
            "sum by (le, kind) (rate(identity_operator_reconcile_duration_seconds_bucket{namespace=~\"$namespace\"}[$__rate_interval]))",
        ),
        &mut metrics,
        &mut labels,
    );
    assert_eq!(
        metrics,
        BTreeSet::from(["identity_operator_reconcile_duration_seconds_bucket".to_owned()])
    );
    assert_eq!(
        labels,
        BTreeSet::from(["kind".into(), "le".into(), "namespace".into()])
    );
    assert!(unserved(&live, &metrics, &labels).is_empty());
    labels.insert("connection".into());
    assert_eq!(unserved(&live, &metrics, &labels).len(), 1);
}

/// The dashboard is one Grafana can import: every panel on the grid, every query through the
/// dashboard's data source variable.
#[test]
fn the_dashboard_is_a_grafana_dashboard() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    assert_eq!(dashboard["uid"], "identity-operator");
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "namespace"]);
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: id twice"
        );
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24, "{title}: off the grid");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
        }
    }
}
