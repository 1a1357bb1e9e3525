//! Proves the local API server (scripts/local-kube.sh) behaves the way the operator and
//! its end-to-end tests need: CRDs with schemas and status, server-side apply, server
//! dry runs, watches, RBAC, namespace deletion and garbage collection.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, WatchEvent,
    WatchParams,
};
use serde_json::json;
use support::cluster::{Cluster, TestNamespace, ensure_cluster, eventually, namespace_name};

const GROUP: &str = "clustertest.identity-operator.dev";
const CRD_NAME: &str = "widgets.clustertest.identity-operator.dev";

/// Installs (once per process) a v1 CRD with a schema and a status subresource.
fn widget_crd(cluster: &Cluster) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": { "name": CRD_NAME },
            "spec": {
                "group": GROUP,
                "names": { "kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList" },
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "subresources": { "status": {} },
                    "additionalPrinterColumns": [
                        { "name": "Phase", "type": "string", "jsonPath": ".status.phase" }
                    ],
                    "schema": { "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": { "type": "integer", "minimum": 1, "maximum": 10 },
                                    "color": { "type": "string", "enum": ["red", "green"] }
                                }
                            },
                            "status": {
                                "type": "object",
                                "properties": { "phase": { "type": "string" } }
                            }
                        }
                    }}
                }]
            }
        });
        // Server-side apply: idempotent, and conflict-free when test binaries race.
        cluster.kubectl_stdin_ok(
            &["apply", "--server-side", "--force-conflicts", "--field-manager=cluster-test", "-f", "-"],
            &crd.to_string(),
        );
        cluster.wait_established(CRD_NAME);
    });
}

fn widget(name: &str, spec: serde_json::Value) -> String {
    json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": "Widget",
        "metadata": { "name": name },
        "spec": spec,
    })
    .to_string()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn namespace_names_are_valid_dns_labels() {
    assert_eq!(namespace_name("CRD_status", 0xab), "crd-status-000000ab");
    assert_eq!(namespace_name("--", 1), "test-00000001");
    let long = namespace_name(&"x".repeat(100), u32::MAX);
    assert_eq!(long.len(), 63);
    assert!(long.ends_with("-ffffffff"));
}

#[tokio::test(flavor = "multi_thread")]
async fn api_server_is_kubernetes_1_20_and_the_kube_client_connects() {
    let cluster = ensure_cluster();
    let client = cluster.client().await;
    let version = client.apiserver_version().await.expect("GET /version");
    assert!(
        version.git_version.starts_with("v1.20."),
        "unexpected server version {version:?}"
    );
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("list namespaces")
        .items
        .into_iter()
        .filter_map(|ns| ns.metadata.name)
        .collect();
    assert!(names.iter().any(|n| n == "default"), "{names:?}");
}

#[test]
fn crd_with_schema_and_status_subresource_is_served() {
    let cluster = ensure_cluster();
    widget_crd(cluster);
    let ns = TestNamespace::new(cluster, "crd-status");

    cluster.kubectl_stdin_ok(
        &["-n", &ns.name, "create", "-f", "-"],
        &widget("w", json!({ "size": 3, "color": "red" })),
    );
    assert_eq!(
        ns.kubectl_ok(&["get", "widget", "w", "-o", "jsonpath={.spec.size}"]),
        "3"
    );

    // Status goes through the subresource only: a status change on the main resource is dropped.
    ns.kubectl_ok(&[
        "patch",
        "widget",
        "w",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Sneaky"}}"#,
    ]);
    assert_eq!(
        ns.kubectl_ok(&["get", "widget", "w", "-o", "jsonpath={.status.phase}"]),
        ""
    );
    ns.kubectl_ok(&[
        "patch",
        "widget",
        "w",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Ready"}}"#,
    ]);
    assert_eq!(
        ns.kubectl_ok(&["get", "widget", "w", "-o", "jsonpath={.status.phase}"]),
        "Ready"
    );
    // The printer column comes from the CRD.
    let table = ns.kubectl_ok(&["get", "widgets"]);
    assert!(
        table.contains("PHASE") && table.contains("Ready"),
        "{table}"
    );
}

#[test]
fn schema_violations_are_rejected_and_unknown_fields_pruned() {
    let cluster = ensure_cluster();
    widget_crd(cluster);
    let ns = TestNamespace::new(cluster, "crd-schema");
    let create = [
        "-n",
        ns.name.as_str(),
        "create",
        "--validate=false",
        "-f",
        "-",
    ];

    for (name, spec, field) in [
        ("wrong-type", json!({ "size": "three" }), "spec.size"),
        ("too-big", json!({ "size": 11 }), "spec.size"),
        (
            "bad-enum",
            json!({ "size": 1, "color": "blue" }),
            "spec.color",
        ),
        ("missing", json!({ "color": "red" }), "spec.size"),
    ] {
        let out = cluster.kubectl_stdin(&create, &widget(name, spec));
        assert!(!out.status.success(), "{name} was accepted");
        let err = stderr(&out);
        assert!(
            err.contains("is invalid") && err.contains(field),
            "{name}: {err}"
        );
    }

    cluster.kubectl_stdin_ok(
        &create,
        &widget("pruned", json!({ "size": 1, "bogus": "x" })),
    );
    let spec = ns.kubectl_ok(&["get", "widget", "pruned", "-o", "jsonpath={.spec}"]);
    assert!(!spec.contains("bogus"), "unknown field kept: {spec}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kube_client_writes_status_with_server_side_apply() {
    let cluster = ensure_cluster();
    widget_crd(cluster);
    let ns = TestNamespace::new(cluster, "kube-status");
    cluster.kubectl_stdin_ok(
        &["-n", &ns.name, "create", "-f", "-"],
        &widget("w", json!({ "size": 2 })),
    );

    let gvk = GroupVersionKind::gvk(GROUP, "v1", "Widget");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(cluster.client().await, &ns.name, &resource);
    let status = json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": "Widget",
        "status": { "phase": "Ready" },
    });
    let patched = widgets
        .patch_status(
            "w",
            &PatchParams::apply("identity-operator-test").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("server-side apply of status");
    assert_eq!(patched.data["status"]["phase"], "Ready");
    assert_eq!(patched.data["spec"]["size"], 2);
    let managers: Vec<_> = patched
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.iter().any(|m| m == "identity-operator-test"),
        "{managers:?}"
    );
}

#[test]
fn server_side_apply_tracks_owners_and_conflicts() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "ssa");
    let cm = |value: &str| {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "shared" },
            "data": { "key": value },
        })
        .to_string()
    };
    let apply = |manager: &str, value: &str, force: bool| {
        let manager = format!("--field-manager={manager}");
        let mut args = vec![
            "-n",
            ns.name.as_str(),
            "apply",
            "--server-side",
            manager.as_str(),
        ];
        if force {
            args.push("--force-conflicts");
        }
        args.extend(["-f", "-"]);
        cluster.kubectl_stdin(&args, &cm(value))
    };

    assert!(apply("test-a", "1", false).status.success());
    assert!(
        apply("test-a", "1", false).status.success(),
        "re-apply is idempotent"
    );
    let conflict = apply("test-b", "2", false);
    assert!(
        !conflict.status.success(),
        "a second manager took a field silently"
    );
    assert!(
        stderr(&conflict).to_lowercase().contains("conflict"),
        "{}",
        stderr(&conflict)
    );
    assert!(apply("test-b", "2", true).status.success());
    assert_eq!(
        ns.kubectl_ok(&["get", "cm", "shared", "-o", "jsonpath={.data.key}"]),
        "2"
    );
    let managers = ns.kubectl_ok(&[
        "get",
        "cm",
        "shared",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.contains("test-b"), "{managers}");
}

#[test]
fn server_dry_run_validates_without_persisting() {
    let cluster = ensure_cluster();
    widget_crd(cluster);
    let ns = TestNamespace::new(cluster, "dry-run");

    ns.kubectl_ok(&[
        "create",
        "configmap",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
    ]);
    let get = cluster.kubectl(&["-n", &ns.name, "get", "configmap", "dry"]);
    assert!(!get.status.success(), "a dry run persisted its object");
    assert!(stderr(&get).contains("NotFound"), "{}", stderr(&get));

    let dry = [
        "-n",
        ns.name.as_str(),
        "apply",
        "--dry-run=server",
        "-f",
        "-",
    ];
    cluster.kubectl_stdin_ok(&dry, &widget("ok", json!({ "size": 5 })));
    let bad = cluster.kubectl_stdin(&dry, &widget("bad", json!({ "size": 0 })));
    assert!(!bad.status.success(), "dry run accepted an invalid Widget");
    assert!(ns.kubectl_ok(&["get", "widgets", "-o", "name"]).is_empty());
}

#[test]
fn namespaces_get_service_accounts_rbac_and_really_go_away() {
    let cluster = ensure_cluster();
    widget_crd(cluster);
    let ns = TestNamespace::new(cluster, "ns-lifecycle");

    // The controller-manager's service-account controllers.
    eventually(
        Duration::from_secs(30),
        "the default ServiceAccount",
        || {
            cluster
                .kubectl(&["-n", &ns.name, "get", "serviceaccount", "default"])
                .status
                .success()
        },
    );
    // RBAC: a service account may do nothing it was not granted.
    let sa = format!("--as=system:serviceaccount:{}:default", ns.name);
    let can = cluster.kubectl(&["-n", &ns.name, "auth", "can-i", "list", "secrets", &sa]);
    assert_eq!(String::from_utf8_lossy(&can.stdout).trim(), "no");

    ns.kubectl_ok(&["create", "configmap", "content", "--from-literal=a=b"]);
    cluster.kubectl_stdin_ok(
        &["-n", &ns.name, "create", "-f", "-"],
        &widget("content", json!({ "size": 1 })),
    );
    cluster.kubectl_ok(&["delete", "namespace", &ns.name, "--wait=false"]);
    eventually(
        Duration::from_secs(60),
        "the namespace to be deleted",
        || {
            let get = cluster.kubectl(&["get", "namespace", &ns.name]);
            !get.status.success() && stderr(&get).contains("NotFound")
        },
    );
}

#[test]
fn owned_objects_are_garbage_collected_with_their_owner() {
    let cluster = ensure_cluster();
    widget_crd(cluster);
    let ns = TestNamespace::new(cluster, "gc");
    let owned_secret = |name: &str, owner_kind: &str, owner_api: &str, owner: &str| {
        let uid = ns.kubectl_ok(&["get", owner_kind, owner, "-o", "jsonpath={.metadata.uid}"]);
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": name,
                "ownerReferences": [{
                    "apiVersion": owner_api, "kind": owner_kind, "name": owner, "uid": uid,
                    "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "stringData": { "token": "s3cr3t" },
        });
        cluster.kubectl_stdin_ok(&["-n", &ns.name, "create", "-f", "-"], &secret.to_string());
    };

    ns.kubectl_ok(&["create", "configmap", "owner", "--from-literal=a=b"]);
    owned_secret("owned-by-configmap", "ConfigMap", "v1", "owner");
    cluster.kubectl_stdin_ok(
        &["-n", &ns.name, "create", "-f", "-"],
        &widget("owner", json!({ "size": 1 })),
    );
    owned_secret("owned-by-widget", "Widget", &format!("{GROUP}/v1"), "owner");

    ns.kubectl_ok(&["delete", "configmap", "owner"]);
    ns.kubectl_ok(&["delete", "widget", "owner"]);
    for secret in ["owned-by-configmap", "owned-by-widget"] {
        // A custom resource the garbage collector has not seen yet is picked up on its
        // next discovery resync (30 s), hence the generous limit.
        eventually(Duration::from_secs(90), &format!("GC of {secret}"), || {
            let get = cluster.kubectl(&["-n", &ns.name, "get", "secret", secret]);
            !get.status.success() && stderr(&get).contains("NotFound")
        });
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_deliver_events() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "watch");
    let configmaps: Api<ConfigMap> = Api::namespaced(cluster.client().await, &ns.name);
    let list = configmaps
        .list(&ListParams::default())
        .await
        .expect("list configmaps");
    let version = list
        .metadata
        .resource_version
        .expect("list has a resourceVersion");
    let mut events = configmaps
        .watch(&WatchParams::default().timeout(30), &version)
        .await
        .expect("watch configmaps")
        .boxed();

    ns.kubectl_ok(&["create", "configmap", "watched", "--from-literal=a=b"]);
    let added = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.next().await {
            if let WatchEvent::Added(cm) = event.expect("watch event")
                && cm.metadata.name.as_deref() == Some("watched")
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(added, Ok(true), "no Added event for the ConfigMap");
}

/// The operator's Event publisher against the real API server: a repeat of the same Event
/// within six minutes is counted in the first one's series; another note is another Event.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_events_are_counted_in_a_series() {
    use identity_operator::engine::events::{Events, Report};
    use k8s_openapi::api::events::v1::Event;
    use kube::Resource;
    use kube::runtime::events::EventType;

    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "events");
    let client = cluster.client().await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "regarded"}})).unwrap();
    let cm = configmaps.create(&Default::default(), &cm).await.unwrap();
    let regarding = cm.object_ref(&());

    let dropped = prometheus_client::metrics::counter::Counter::default();
    let events = Events::new(client.clone(), "identity-operator", "test-replica", dropped);
    let failing = Report {
        type_: EventType::Warning,
        reason: "Rejected",
        action: "Update",
        note: "name is taken",
    };
    for _ in 0..3 {
        events.publish(&failing, &regarding).await.unwrap();
    }
    let other = Report {
        note: "roles are invalid",
        ..failing
    };
    events.publish(&other, &regarding).await.unwrap();
    // Queued: published in the background.
    let queued = Report {
        type_: EventType::Normal,
        note: "sent later",
        ..failing
    };
    events.send(&queued, regarding.clone());

    let api: Api<Event> = Api::namespaced(client, &ns.name);
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = api.list(&ListParams::default()).await.unwrap().items;
        if listed.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    listed.sort_by_key(|e| e.note.clone());
    let summary: Vec<(Option<String>, Option<i32>)> = listed
        .iter()
        .map(|e| (e.note.clone(), e.series.as_ref().map(|s| s.count)))
        .collect();
    assert_eq!(
        summary,
        [
            (Some("name is taken".into()), Some(3)),
            (Some("roles are invalid".into()), None),
            (Some("sent later".into()), None),
        ]
    );
    let first = &listed[0];
    assert_eq!(first.type_.as_deref(), Some("Warning"));
    assert_eq!(first.reporting_instance.as_deref(), Some("test-replica"));
    assert_eq!(
        first.regarding.as_ref().and_then(|r| r.uid.clone()),
        cm.metadata.uid
    );
}
