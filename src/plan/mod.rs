//! `identity-operator plan`: what the operator would change in the identity APIs, before
//! anything is written.
//!
//! Each resource's answer comes from the reconcile's own code path (`engine::preview`:
//! dereference, observe, decide), stopped before any write. The identity APIs see only reads
//! (and logins); the cluster sees only reads. Manifests given with `-f` are planned as they
//! would be once applied: where the cluster already holds the resource, its status (the remote
//! object it is linked to, the Secret versions last sent, a rejection on record) comes along.

pub mod input;
pub mod report;
mod sources;

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;

use crate::engine::reader::{ClusterReader, Reader};
use crate::engine::registry::ManagedKind;
use crate::engine::{Context, Settings};
use crate::kinds::identity_api::connection::IdentityApis;
use crate::kinds::identity_api::{ApiAuth, IdentityApi};
use crate::kinds::{GROUP, MANAGED};
use crate::kubectl::ClusterArgs;
use crate::metrics::Metrics;
use input::Document;
use report::{PlanDocument, ResourcePlan};
use sources::{Name, PlanReader};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// `plan`'s flags.
#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// Manifests to plan: files, directories (their .yaml, .yml and .json files) or `-` for
    /// standard input. Repeatable.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Plan every managed resource the cluster holds (in --namespace, or all with -A).
    #[arg(long)]
    pub from_cluster: bool,
    /// The cluster, as kubectl reaches it; `-n`: the namespace of manifests without one and of
    /// --from-cluster; `-A`: with --from-cluster, every namespace.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
}

/// Why `plan` could not answer (exit code 1).
#[derive(thiserror::Error, Debug)]
pub enum PlanError {
    #[error(transparent)]
    Input(#[from] input::InputError),
    #[error("--from-cluster needs a reachable cluster: {0}")]
    NoCluster(String),
    #[error("nothing to plan: give manifests with -f, or --from-cluster")]
    NothingToPlan,
    #[error("{file}: {kind} {name:?} is not a valid object: {message}")]
    Invalid {
        file: String,
        kind: String,
        name: String,
        message: String,
    },
    #[error("reading the cluster: {0}")]
    Kube(#[from] kube::Error),
}

/// Runs `plan` and prints it; returns the process' exit code.
pub async fn run(args: PlanArgs) -> i32 {
    match plan(&args).await {
        Ok(doc) => {
            match args.output {
                Output::Json => print!("{}", doc.json()),
                Output::Text => print!("{}", doc.text(std::io::stdout().is_terminal())),
            }
            doc.exit_code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// A managed resource to plan, with the registry entry of its kind.
pub(crate) struct Target {
    pub kind: &'static dyn ManagedKind,
    pub value: Value,
}

/// What the manifests hold, sorted by what `plan` does with it.
#[derive(Default)]
pub(crate) struct Given {
    pub apis: Vec<IdentityApi>,
    pub secrets: BTreeMap<Name, Secret>,
    pub config_maps: BTreeMap<Name, ConfigMap>,
    managed: Vec<Target>,
}

pub async fn plan(args: &PlanArgs) -> Result<PlanDocument, PlanError> {
    if args.files.is_empty() && !args.from_cluster {
        return Err(PlanError::NothingToPlan);
    }
    let docs = input::read(&args.files)?;
    let cluster = connect(&args.cluster).await;
    let client = match (&cluster, args.from_cluster) {
        (Ok(client), _) => Some(client.clone()),
        (Err(e), true) => return Err(PlanError::NoCluster(e.clone())),
        (Err(_), false) => None,
    };
    let default_ns = default_namespace(&args.cluster, client.as_ref());
    let given = classify(docs, &default_ns)?;
    let held = match &client {
        Some(client) => Held::read(client, args, &default_ns, &given).await?,
        None => Held::default(),
    };
    let mut targets = merge_with_cluster(given.managed, &held.managed);
    if args.from_cluster {
        let planned: BTreeSet<_> = targets.iter().map(identity).collect();
        for t in &held.managed {
            if !planned.contains(&identity(t)) && in_scope(t, args, &default_ns) {
                targets.push(Target {
                    kind: t.kind,
                    value: t.value.clone(),
                });
            }
        }
    }
    let (ctx, apis) = context(client, given.apis, given.secrets, given.config_maps, &held).await?;
    // Singleton checks see every resource of the kind: the planned ones and the cluster's.
    for kind in MANAGED {
        let of_kind = targets
            .iter()
            .chain(&held.managed)
            .filter(|t| std::ptr::addr_eq(t.kind, *kind))
            .map(|t| t.value.clone());
        kind.register(&ctx, of_kind.collect());
    }
    let plans: Vec<ResourcePlan> = futures::stream::iter(targets)
        .map(|t| {
            let ctx = &ctx;
            async move {
                let preview = t.kind.preview(ctx, t.value.clone()).await;
                ResourcePlan::new(t.kind, &t.value, preview)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    apis.clients.close_all().await;
    Ok(PlanDocument::new(sorted(plans)))
}

/// The namespace of manifests without one: `-n`'s, else the kubeconfig's, else `default`.
pub(crate) fn default_namespace(cluster: &ClusterArgs, client: Option<&Client>) -> String {
    match (&cluster.namespace, client) {
        (Some(ns), _) => ns.clone(),
        (None, Some(c)) => c.default_namespace().to_owned(),
        (None, None) => "default".to_owned(),
    }
}

/// The cluster the kubeconfig names, if it answers.
pub(crate) async fn connect(cluster: &ClusterArgs) -> Result<Client, String> {
    let (client, _) = cluster.connect().await.map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5 s".into()),
    }
}

fn identity(t: &Target) -> (String, String, String) {
    (
        t.kind.kind().to_owned(),
        t.value["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        t.value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn in_scope(t: &Target, args: &PlanArgs, default_ns: &str) -> bool {
    args.cluster.all_namespaces || t.value["metadata"]["namespace"].as_str() == Some(default_ns)
}

pub(crate) fn classify(docs: Vec<Document>, default_ns: &str) -> Result<Given, PlanError> {
    let mut given = Given::default();
    for doc in docs {
        let value = sources::with_namespace(doc.value.clone(), default_ns);
        let name = |v: &Value| {
            (
                v["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        };
        let invalid = |e: serde_json::Error| PlanError::Invalid {
            file: doc.source.clone(),
            kind: doc.kind().to_owned(),
            name: doc.name().to_owned(),
            message: e.to_string(),
        };
        let group = doc.api_version().split('/').next().unwrap_or_default();
        match (group, doc.kind()) {
            ("v1", "Secret") => {
                let secret = serde_json::from_value(value.clone()).map_err(invalid)?;
                given.secrets.insert(name(&value), secret);
            }
            ("v1", "ConfigMap") => {
                let cm = serde_json::from_value(value.clone()).map_err(invalid)?;
                given.config_maps.insert(name(&value), cm);
            }
            (GROUP, "IdentityApi") => {
                given
                    .apis
                    .push(serde_json::from_value(value).map_err(invalid)?);
            }
            (GROUP, kind) => {
                if let Some(entry) = MANAGED.iter().find(|k| k.kind() == kind) {
                    given.managed.push(Target {
                        kind: *entry,
                        value,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(given)
}

/// What the cluster holds that `plan` needs: the managed resources of the namespaces
/// concerned (their status, and the other owners of a singleton), IdentityApis, and the
/// versions of Secrets.
#[derive(Default)]
pub(crate) struct Held {
    pub managed: Vec<Target>,
    pub apis: Vec<IdentityApi>,
    secrets: Vec<PartialObjectMeta<Secret>>,
    /// Secrets given in the manifests whose data is the cluster's.
    same: BTreeSet<Name>,
}

impl Held {
    async fn read(
        client: &Client,
        args: &PlanArgs,
        default_ns: &str,
        given: &Given,
    ) -> Result<Held, PlanError> {
        let mut namespaces: BTreeSet<String> = given
            .managed
            .iter()
            .map(|t| {
                t.value["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        namespaces.extend(given.apis.iter().filter_map(|a| a.namespace()));
        if args.from_cluster && !args.cluster.all_namespaces {
            namespaces.insert(default_ns.to_owned());
        }
        let scopes: Vec<Option<String>> = if args.from_cluster && args.cluster.all_namespaces {
            vec![None]
        } else {
            namespaces.into_iter().map(Some).collect()
        };
        let mut held = Held::default();
        for ns in &scopes {
            held.read_namespace(client, ns.as_deref()).await?;
        }
        for (name, secret) in &given.secrets {
            let api: Api<Secret> = Api::namespaced(client.clone(), &name.0);
            if let Some(current) = api.get_opt(&name.1).await?
                && sources::data(&current) == sources::data(secret)
            {
                held.same.insert(name.clone());
            }
        }
        Ok(held)
    }

    pub(crate) async fn read_namespace(
        &mut self,
        client: &Client,
        ns: Option<&str>,
    ) -> Result<(), PlanError> {
        fn api<K>(c: &Client, ns: Option<&str>) -> Api<K>
        where
            K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
        {
            match ns {
                Some(ns) => Api::namespaced(c.clone(), ns),
                None => Api::all(c.clone()),
            }
        }
        let lp = ListParams::default();
        self.apis
            .extend(api::<IdentityApi>(client, ns).list(&lp).await?.items);
        let secrets: Api<Secret> = api(client, ns);
        self.secrets.extend(secrets.list_metadata(&lp).await?.items);
        for kind in MANAGED {
            let resource: ApiResource = kind.api_resource();
            let dynamic: Api<DynamicObject> = match ns {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            for obj in dynamic.list(&lp).await?.items {
                let mut value = serde_json::to_value(&obj).expect("an object serializes");
                value["apiVersion"] = resource.api_version.clone().into();
                value["kind"] = resource.kind.clone().into();
                self.managed.push(Target { kind: *kind, value });
            }
        }
        Ok(())
    }
}

/// A manifest planned as it would be once applied: where the cluster holds the resource, the
/// operator's records on it come along (status, finalizers, the creation record, uid), and
/// its generation moves on if the spec differs.
fn merge_with_cluster(given: Vec<Target>, held: &[Target]) -> Vec<Target> {
    let held: BTreeMap<_, _> = held.iter().map(|t| (identity(t), &t.value)).collect();
    given
        .into_iter()
        .map(|mut t| {
            if let Some(current) = held.get(&identity(&t)) {
                merge(&mut t.value, current);
            }
            t
        })
        .collect()
}

fn merge(value: &mut Value, current: &Value) {
    let meta = &current["metadata"];
    let generation = meta["generation"].as_i64().unwrap_or(1);
    let changed = value["spec"] != current["spec"];
    value["metadata"]["generation"] = (generation + i64::from(changed)).into();
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "finalizers",
        "deletionTimestamp",
    ] {
        if !meta[field].is_null() {
            value["metadata"][field] = meta[field].clone();
        }
    }
    if let Some(annotations) = meta["annotations"].as_object() {
        for (k, v) in annotations {
            if k.starts_with(GROUP) && value["metadata"]["annotations"][k].is_null() {
                value["metadata"]["annotations"][k] = v.clone();
            }
        }
    }
    value["status"] = current["status"].clone();
}

pub(crate) async fn context(
    client: Option<Client>,
    given_apis: Vec<IdentityApi>,
    given_secrets: BTreeMap<Name, Secret>,
    config_maps: BTreeMap<Name, ConfigMap>,
    held: &Held,
) -> Result<(Context, Arc<IdentityApis>), PlanError> {
    let secrets = Arc::new(sources::secret_versions(
        &given_secrets,
        &held.secrets,
        &held.same,
    ));
    let reader: Arc<dyn Reader> = Arc::new(PlanReader {
        secrets: given_secrets,
        config_maps,
        cluster: client.clone().map(ClusterReader),
    });
    // Given IdentityApis win over the cluster's of the same name.
    let (store, mut writer) = reflector::store::<IdentityApi>();
    writer.apply_watcher_event(&watcher::Event::Init);
    let given: BTreeSet<_> = given_apis
        .iter()
        .map(|a| (a.namespace(), a.name_any()))
        .collect();
    let held_apis = held
        .apis
        .iter()
        .filter(|a| !given.contains(&(a.namespace(), a.name_any())));
    let run = format!("{:08x}", rand::random::<u32>());
    for api in given_apis.iter().chain(held_apis) {
        writer.apply_watcher_event(&watcher::Event::InitApply(own_session(api.clone(), &run)));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let metrics = Arc::new(Metrics::default());
    let kube = match client {
        Some(client) => client,
        None => offline_client(),
    };
    let apis = Arc::new(IdentityApis::new(
        store,
        reader.clone(),
        secrets.clone(),
        metrics.clone(),
        "plan",
    ));
    let settings = Settings {
        resync: Duration::from_secs(600),
        deletion_grace: Duration::from_secs(120),
        instance: "plan".into(),
    };
    let ctx = Context::new(kube, apis.clone(), reader, secrets, metrics, settings);
    Ok((ctx, apis))
}

/// Xelion keeps one session per user and user space and refuses a second login (10005) while
/// one lives, the running operator's for one: `plan` logs in with a user space of its own,
/// `<userSpace>-plan-<run>` (unique per run, so two plans at once do not collide either, and
/// within the documented 200 characters), and ends that session before it exits.
fn own_session(mut api: IdentityApi, run: &str) -> IdentityApi {
    if let ApiAuth::XelionLogin(login) = &mut api.spec.auth {
        login.user_space = plan_user_space(&login.user_space, run);
    }
    api
}

fn plan_user_space(user_space: &str, run: &str) -> String {
    let suffix = format!("-plan-{run}");
    let keep = 200usize.saturating_sub(suffix.chars().count());
    user_space.chars().take(keep).collect::<String>() + &suffix
}

/// A client for when no cluster is reachable: `plan` reads everything through its reader
/// then, and this client is never called.
fn offline_client() -> Client {
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a valid URL"));
    Client::try_from(config).expect("a client builds without a connection")
}

/// In the order of the kinds' CRDs, then namespace and name: the same plan prints the same.
fn sorted(mut plans: Vec<ResourcePlan>) -> Vec<ResourcePlan> {
    let order = |kind: &str| MANAGED.iter().position(|k| k.kind() == kind);
    plans.sort_by(|a, b| {
        (order(&a.kind), &a.namespace, &a.name).cmp(&(order(&b.kind), &b.namespace, &b.name))
    });
    for p in &mut plans {
        p.preview.changes.sort_by(|a, b| a.path.cmp(&b.path));
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::plan_user_space;

    #[test]
    fn plan_logs_in_with_a_user_space_of_its_own_within_the_documented_length() {
        assert_eq!(
            plan_user_space("identity-operator", "0badcafe"),
            "identity-operator-plan-0badcafe"
        );
        let long = "é".repeat(200);
        let own = plan_user_space(&long, "0badcafe");
        assert_eq!(own.chars().count(), 200);
        assert!(own.ends_with("-plan-0badcafe"), "{own}");
    }
}
