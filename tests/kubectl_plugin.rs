//! The operator's binary as the kubectl plugin `kubectl identity`: installed the way a user
//! installs it (a link named `kubectl-identity` on `PATH`), run through the real kubectl, its
//! `status` lists the identity resources of a namespace, of every namespace or of some kinds,
//! with their conditions, as a table or JSON.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use support::boruta;
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::operator::Operator;

/// A directory holding `kubectl-identity`, a link to the operator's binary.
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_identity-operator"),
        dir.path().join("kubectl-identity"),
    )
    .unwrap();
    dir
}

/// `kubectl ARGS` with the plugin on `PATH` and `kubeconfig` as the user's configuration.
fn kubectl(cluster: &Cluster, plugins: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    let path = format!(
        "{}:{}",
        plugins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(&cluster.kubectl)
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .output()
        .expect("kubectl runs")
}

fn stdout(out: &Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The table's cells, one row per line, split on kubectl's column gaps.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| {
            l.split("   ")
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect()
}

/// Deletes a cluster-scoped object when the test ends, passed or not.
struct Deleted<'a>(&'a Cluster, String);

impl Drop for Deleted<'_> {
    fn drop(&mut self) {
        let _ = self.0.kubectl(&["delete", &self.1, "--wait=false"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_identity_status_lists_resources_with_their_conditions() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "kubectl-plugin");
    let _sim = boruta::good_and_broken(cluster, &ns, json!({}));
    let _op = Operator::start(cluster, &ns, &[]);
    boruta::wait_good_and_broken(cluster, &ns).await;

    let plugins = plugin_dir();
    // The user's kubeconfig, with the test namespace as its context's namespace.
    let config_dir = tempfile::tempdir().unwrap();
    let kubeconfig = config_dir.path().join("config");
    std::fs::copy(&cluster.kubeconfig, &kubeconfig).unwrap();
    let run = |args: &[&str]| kubectl(cluster, plugins.path(), &kubeconfig, args);
    stdout(
        &run(&[
            "config",
            "set-context",
            "--current",
            "--namespace",
            &ns.name,
        ]),
        &[],
    );

    let listed = stdout(&run(&["plugin", "list"]), &["plugin", "list"]);
    assert!(listed.contains("kubectl-identity"), "{listed}");

    // The context's namespace, every kind.
    let table = stdout(&run(&["identity", "status"]), &["identity", "status"]);
    assert_eq!(
        rows(&table),
        [
            vec!["KIND", "NAME", "READY", "SYNCED", "REASON", "MESSAGE"],
            vec![
                "IdentityApi",
                "boruta",
                "True",
                "-",
                "Authenticated",
                "authenticated with the identity API"
            ],
            vec![
                "IdentityBackend",
                "broken",
                "False",
                "False",
                "SecretNotFound",
                "Secret \"absent\" not found"
            ],
            vec![
                "IdentityBackend",
                "good",
                "True",
                "True",
                "Synced",
                "remote object matches the spec"
            ],
        ],
        "{table}"
    );
    assert!(
        table.contains("\n3 resources: 2 Ready, 1 SecretNotFound\n"),
        "{table}"
    );
    assert!(
        table.contains("docs/troubleshooting.md (#secretnotfound)"),
        "{table}"
    );

    // Some kinds, as JSON, in a namespace named on the command line.
    let args = [
        "identity",
        "status",
        "idb",
        "-n",
        ns.name.as_str(),
        "-o",
        "json",
    ];
    let report: Value = serde_json::from_str(&stdout(&run(&args), &args)).unwrap();
    assert_eq!(report["formatVersion"], 1);
    let names: Vec<&str> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["broken", "good"]);
    assert_eq!(report["ready"], 1);
    assert_eq!(report["notReady"], json!({"SecretNotFound": 1}));
    assert_eq!(
        report["resources"][1]["externalId"].as_str().map(str::len),
        Some(36)
    );

    // Every namespace: the namespace becomes a column.
    let args = ["identity", "status", "-A", "identityapis"];
    let all = stdout(&run(&args), &args);
    let all = rows(&all);
    assert_eq!(all[0][0], "NAMESPACE");
    assert!(
        all.iter()
            .any(|r| r[..3] == [ns.name.as_str(), "IdentityApi", "boruta"]),
        "{all:?}"
    );

    // Cluster-scoped ClusterIdentityApis: left out of a namespace's listing (as `kubectl get`
    // does), shown when named, without a namespace (a dash) among every namespace's.
    let shared = format!("{}-shared", ns.name);
    let cluster_api = json!({
        "apiVersion": "identity.operator.dev/v1alpha1",
        "kind": "ClusterIdentityApi",
        "metadata": {"name": shared, "labels": {support::cluster::TEST_LABEL: "true"}},
        "spec": {"provider": "boruta", "url": "http://127.0.0.1:9/boruta",
                 "auth": {"bearerToken": {"secretRef": {"name": "absent", "key": "token"}}},
                 "allowedNamespaces": {"names": [ns.name]}},
    });
    cluster.kubectl_stdin_ok(&["apply", "-f", "-"], &cluster_api.to_string());
    let _delete = Deleted(cluster, format!("clusteridentityapi/{shared}"));
    let here = stdout(&run(&["identity", "status"]), &["identity", "status"]);
    assert!(!here.contains("ClusterIdentityApi"), "{here}");
    let args = ["identity", "status", "clusteridentityapi"];
    let named = rows(&stdout(&run(&args), &args));
    assert!(
        named
            .iter()
            .any(|r| r[..2] == ["ClusterIdentityApi", shared.as_str()]),
        "{named:?}"
    );
    let args = [
        "identity",
        "status",
        "-A",
        "clusteridentityapis,identityapis",
    ];
    let all = rows(&stdout(&run(&args), &args));
    assert!(
        all.iter()
            .any(|r| r[..3] == ["-", "ClusterIdentityApi", shared.as_str()]),
        "{all:?}"
    );

    // A mistyped kind is an error that names the kinds.
    let wrong = run(&["identity", "status", "pods"]);
    assert_eq!(wrong.status.code(), Some(1));
    let message = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        message.contains("unknown kind \"pods\"") && message.contains("idb"),
        "{message}"
    );

    // Its help speaks as kubectl identity and offers what a person at a terminal needs.
    let help = stdout(&run(&["identity", "--help"]), &["identity", "--help"]);
    assert!(help.contains("Usage: kubectl identity"), "{help}");
    assert!(help.contains("status"), "{help}");
    assert!(!help.contains("Run the controllers"), "{help}");
}
