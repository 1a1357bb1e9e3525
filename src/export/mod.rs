//! `identity-operator export`: what an identity API already holds, as manifests that manage it
//! as it is.
//!
//! For the IdentityApi given (as a manifest with `-f`, or by name from the cluster), every
//! remote object of every kind its provider serves is listed (every page of it) and drafted by
//! its kind as a spec (`engine::export`). Before a draft is offered, the kind's own comparison
//! must find no difference between the resource it stands for and the remote object: applying
//! the output makes no identity-API write, and a remote object the CRD cannot express is
//! listed as skipped, with the reason, never emitted as a best guess. Write-only values are
//! never copied: the spec refers to a Secret emitted with those keys empty (`--secrets stubs`).

mod names;

use std::collections::BTreeMap;
use std::path::PathBuf;

use kube::ResourceExt;
use serde_json::{Value, json};

use crate::engine::connector::Request;
use crate::engine::export::Draft;
use crate::engine::registry::ManagedKind;
use crate::engine::spec::{ApiRef, ManagementPolicy};
use crate::kinds::MANAGED;
use crate::kinds::identity_api::IdentityApi;
use crate::kubectl::ClusterArgs;
use crate::plan::{self, Held, input};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// `managementPolicy: Observe`: the operator only reports drift.
    Observe,
    /// `managementPolicy: Apply` with `deletionPolicy: Orphan`.
    Apply,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretsMode {
    /// Also emit the Secrets the resources refer to, write-only keys empty, to be filled in.
    Stubs,
    /// Emit only the references.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Yaml,
    Json,
}

/// `export`'s flags.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The IdentityApi to export from, and its credential Secret, as manifests: files,
    /// directories or `-`. Without it, --api names an IdentityApi of the cluster.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Name of the IdentityApi (needed when the manifests or the namespace hold several).
    #[arg(long)]
    pub api: Option<String>,
    /// The cluster, as kubectl reaches it; `-n`: the namespace of the IdentityApi and of the
    /// emitted manifests.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Only these kinds (comma-separated, e.g. IdentityBackend); the objects of the others are
    /// listed as skipped.
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// The management policy of the emitted resources.
    #[arg(long, value_enum, default_value = "observe")]
    pub policy: Policy,
    /// Whether the Secrets the resources refer to are emitted too.
    #[arg(long, value_enum, default_value = "stubs")]
    pub secrets: SecretsMode,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    pub output: Output,
    /// Exit 2 when any remote object was skipped.
    #[arg(long)]
    pub strict: bool,
}

/// Why `export` could not answer (exit code 1).
#[derive(thiserror::Error, Debug)]
pub enum ExportError {
    #[error(transparent)]
    Input(#[from] input::InputError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error("{0}")]
    Usage(String),
    #[error("the IdentityApi cannot be used: {0}")]
    Connection(crate::engine::Error),
    #[error("listing {kind}: {error}")]
    Listing {
        kind: &'static str,
        error: crate::engine::Error,
    },
}

/// Runs `export` and prints it; returns the process' exit code.
pub async fn run(args: ExportArgs) -> i32 {
    match export(&args).await {
        Ok(out) => {
            print!("{}", out.render(args.output));
            match args.strict && !out.skipped.is_empty() {
                true => 2,
                false => 0,
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// A remote object left out, and why.
#[derive(Debug, serde::Serialize)]
pub struct Skipped {
    pub kind: &'static str,
    pub id: String,
    pub reason: String,
}

/// What `export` found: manifests (rendered, in the CRD's field order) and what it left out.
#[derive(Default)]
pub struct ExportDocument {
    /// Every manifest, in order.
    manifests: Vec<Manifest>,
    pub skipped: Vec<Skipped>,
}

/// One manifest: its comment lines, and the manifest as YAML and as JSON.
struct Manifest {
    comment: Vec<String>,
    yaml: String,
    json: String,
}

impl ExportDocument {
    fn render(&self, output: Output) -> String {
        match output {
            Output::Yaml => self.yaml(),
            Output::Json => self.json(),
        }
    }

    fn yaml(&self) -> String {
        let mut out = String::new();
        for m in &self.manifests {
            out.push_str("---\n");
            for line in &m.comment {
                out.push_str(&format!("# {line}\n"));
            }
            out.push_str(&m.yaml);
        }
        out.push_str("---\n");
        if self.skipped.is_empty() {
            out.push_str("# Skipped: nothing.\n");
        } else {
            let n = self.skipped.len();
            let objects = if n == 1 { "object" } else { "objects" };
            out.push_str(&format!("# Skipped: {n} remote {objects}.\n"));
            for s in &self.skipped {
                out.push_str(&format!("#   {} {}: {}\n", s.kind, s.id, s.reason));
            }
        }
        out
    }

    fn json(&self) -> String {
        let items: Vec<&str> = self.manifests.iter().map(|m| m.json.as_str()).collect();
        let skipped = serde_json::to_string_pretty(&self.skipped).expect("serializable");
        format!(
            "{{\n\"apiVersion\": \"v1\",\n\"kind\": \"List\",\n\"items\": [\n{}\n],\n\"skipped\": {skipped}\n}}\n",
            items.join(",\n")
        )
    }
}

pub async fn export(args: &ExportArgs) -> Result<ExportDocument, ExportError> {
    if args.cluster.all_namespaces {
        return Err(ExportError::Usage(
            "-A: export writes the manifests of one namespace; name it with -n".into(),
        ));
    }
    if args.files.is_empty() && args.api.is_none() {
        return Err(ExportError::Usage(
            "give the IdentityApi with -f, or name one of the cluster with --api".into(),
        ));
    }
    let kinds = wanted_kinds(&args.kinds)?;
    let docs = input::read(&args.files)?;
    let client = plan::connect(&args.cluster).await;
    if args.files.is_empty()
        && let Err(e) = &client
    {
        return Err(ExportError::Usage(format!(
            "--api without -f needs a reachable cluster: {e}"
        )));
    }
    let client = client.ok();
    let default_ns = plan::default_namespace(&args.cluster, client.as_ref());
    let given = plan::classify(docs, &default_ns)?;
    let mut held = Held::default();
    if let Some(client) = &client {
        held.read_namespace(client, Some(&default_ns))
            .await
            .map_err(ExportError::Plan)?;
    }
    let api = choose(&given.apis, &held.apis, args.api.as_deref())?;
    let namespace = api.namespace().unwrap_or(default_ns.clone());
    // An IdentityApi given with a namespace of its own: what that namespace manages, and its
    // Secrets, are the ones that count.
    if let Some(client) = &client
        && namespace != default_ns
    {
        held.read_namespace(client, Some(&namespace))
            .await
            .map_err(ExportError::Plan)?;
    }
    let api_name = api.name_any();
    let managed = managed_by(&held, &namespace, &api_name);
    let (ctx, apis) =
        plan::context(client, given.apis, given.secrets, given.config_maps, &held).await?;
    let api_ref = ApiRef {
        kind: None,
        name: api_name.clone(),
    };
    let request = Request {
        namespace: &namespace,
        kind: MANAGED[0].kind(),
        api_ref: &api_ref,
        policy: ManagementPolicy::Observe,
    };
    let connection = ctx
        .connector
        .resolve(&request)
        .map_err(ExportError::Connection)?;
    let identity = ctx
        .connector
        .client(&connection)
        .await
        .map_err(ExportError::Connection)?;
    let mut out = ExportDocument::default();
    let target = Target {
        namespace: &namespace,
        api: &api_name,
        args,
        managed,
    };
    for kind in MANAGED
        .iter()
        .filter(|k| k.provider() == connection.provider)
    {
        let found = kind.export(&identity).await;
        let found = found.map_err(|error| ExportError::Listing {
            kind: kind.kind(),
            error,
        })?;
        let wanted = kinds.is_empty() || kinds.contains(&kind.kind());
        let mut drafts = Vec::new();
        for item in found {
            match (wanted, item.draft) {
                (true, Ok(draft)) => drafts.push((item.id, draft)),
                (false, _) => out.skipped.push(Skipped {
                    kind: kind.kind(),
                    id: item.id,
                    reason: format!("--kinds leaves {} out", kind.kind()),
                }),
                (true, Err(reason)) => out.skipped.push(Skipped {
                    kind: kind.kind(),
                    id: item.id,
                    reason,
                }),
            }
        }
        target.emit(*kind, drafts, &mut out);
    }
    apis.clients.close_all().await;
    Ok(out)
}

/// The annotation on every exported resource: the IdentityApi it was exported from.
pub const EXPORTED_ANNOTATION: &str = "identity.operator.dev/exported-from";

/// A resource of the namespace that already manages a remote object.
struct Manager {
    name: String,
    /// It carries [`EXPORTED_ANNOTATION`]: an earlier export made it.
    exported: bool,
}

/// The remote objects the namespace's resources already manage through IdentityApi `api`,
/// by (kind, remote id). Exporting them again would make a second resource for the same object
/// or, under the same name, replace the one the team wrote; only an earlier export's own
/// resource, under the name it was given, is exported again (`--policy apply` after Observe).
fn managed_by(
    held: &Held,
    namespace: &str,
    api: &str,
) -> BTreeMap<(&'static str, String), Manager> {
    held.managed
        .iter()
        .filter(|t| t.value["metadata"]["namespace"] == namespace)
        .filter(|t| t.value["spec"]["apiRef"]["name"] == api)
        .filter(|t| {
            t.value["spec"]["apiRef"]["kind"]
                .as_str()
                .unwrap_or("IdentityApi")
                == "IdentityApi"
        })
        .filter_map(|t| {
            let id = t.value["status"]["externalId"].as_str()?;
            let manager = Manager {
                name: t.value["metadata"]["name"].as_str()?.to_owned(),
                exported: t.value["metadata"]["annotations"][EXPORTED_ANNOTATION] == api,
            };
            Some(((t.kind.kind(), id.to_owned()), manager))
        })
        .collect()
}

/// The kinds `--kinds` names, each checked.
fn wanted_kinds(names: &[String]) -> Result<Vec<&'static str>, ExportError> {
    names
        .iter()
        .map(|name| {
            MANAGED
                .iter()
                .map(|k| k.kind())
                .find(|k| k.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    let known: Vec<&str> = MANAGED.iter().map(|k| k.kind()).collect();
                    ExportError::Usage(format!(
                        "--kinds: unknown kind {name:?} (one of {})",
                        known.join(", ")
                    ))
                })
        })
        .collect()
}

/// The IdentityApi to export from: the manifests' (else the cluster's), by name when given.
fn choose(
    given: &[IdentityApi],
    held: &[IdentityApi],
    name: Option<&str>,
) -> Result<IdentityApi, ExportError> {
    let pool = if given.is_empty() { held } else { given };
    let matching: Vec<&IdentityApi> = pool
        .iter()
        .filter(|a| name.is_none_or(|n| a.name_any() == n))
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ExportError::Usage(match name {
            Some(n) => format!("no IdentityApi named {n:?} in the manifests or the namespace"),
            None => "the manifests hold no IdentityApi".into(),
        })),
        several => Err(ExportError::Usage(format!(
            "several IdentityApis ({}): name one with --api",
            several
                .iter()
                .map(|a| a.name_any())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Where the manifests go and how they are written.
struct Target<'a> {
    namespace: &'a str,
    api: &'a str,
    args: &'a ExportArgs,
    managed: BTreeMap<(&'static str, String), Manager>,
}

impl Target<'_> {
    /// Names the drafts of `kind`, and renders each with its Secret.
    fn emit(&self, kind: &dyn ManagedKind, drafts: Vec<(String, Draft)>, out: &mut ExportDocument) {
        let named = names::assign(kind.kind(), drafts);
        for (name, id, mut draft) in named {
            if let Some(manager) = self.managed.get(&(kind.kind(), id.clone()))
                && !(manager.exported && manager.name == name)
            {
                out.skipped.push(Skipped {
                    kind: kind.kind(),
                    id,
                    reason: format!(
                        "already managed by {} {}/{}",
                        kind.kind(),
                        self.namespace,
                        manager.name
                    ),
                });
                continue;
            }
            let secret = match draft.secret_refs.iter().any(|s| s.key.is_none()) {
                true => format!("{name}-shared-secret"),
                false => format!("{name}-credentials"),
            };
            draft.refer_to(&secret);
            let manifest = self.manifest(kind, &name, &draft);
            let rendered = (
                kind.render(manifest.clone(), false),
                kind.render(manifest, true),
            );
            let (yaml, json) = match rendered {
                (Ok(yaml), Ok(json)) => (yaml, json),
                (Err(e), _) | (_, Err(e)) => {
                    out.skipped.push(Skipped {
                        kind: kind.kind(),
                        id,
                        reason: format!("the CRD cannot express it: {e}"),
                    });
                    continue;
                }
            };
            out.manifests.push(Manifest {
                comment: vec![draft.label.clone()],
                yaml,
                json,
            });
            if self.args.secrets == SecretsMode::Stubs && !draft.stub.is_empty() {
                out.manifests.push(self.stub(&secret, &draft));
            }
        }
    }

    fn manifest(&self, kind: &dyn ManagedKind, name: &str, draft: &Draft) -> Value {
        let mut spec = draft.spec.clone();
        spec["apiRef"] = json!({"name": self.api});
        match self.args.policy {
            Policy::Observe => spec["managementPolicy"] = "Observe".into(),
            Policy::Apply => {
                spec["managementPolicy"] = "Apply".into();
                if kind.creates() {
                    spec["deletionPolicy"] = "Orphan".into();
                }
            }
        }
        let resource = kind.api_resource();
        json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": name, "namespace": self.namespace,
                         "annotations": {EXPORTED_ANNOTATION: self.api}},
            "spec": spec,
        })
    }

    /// The Secret a resource refers to, its write-only keys empty and each explained.
    fn stub(&self, name: &str, draft: &Draft) -> Manifest {
        let data: BTreeMap<&str, &str> = draft
            .stub
            .iter()
            .map(|k| (k.key.as_str(), k.value.as_str()))
            .collect();
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.namespace},
            "type": "Opaque",
            "stringData": data,
        });
        let mut comment = vec![format!(
            "Secret for {}: fill in the empty keys (an empty value is never sent)",
            draft.label
        )];
        comment.extend(
            draft
                .stub
                .iter()
                .map(|k| format!("  {}: {}", k.key, k.what)),
        );
        Manifest {
            comment,
            yaml: serde_yaml::to_string(&secret).expect("serializable"),
            json: serde_json::to_string_pretty(&secret).expect("serializable"),
        }
    }
}
