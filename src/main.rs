//! `identity-operator`: runs the controllers, prints its CRDs or their reference, and, also as
//! the kubectl plugin `kubectl identity`, reports on identity resources.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use futures::FutureExt;
use identity_operator::engine::Settings;
use identity_operator::engine::controller::{Scope, Shutdown};
use identity_operator::kubectl;
use identity_operator::metrics::Metrics;
use identity_operator::operator::ClusterOptions;
use kube_lease_manager::LeaseManagerBuilder;
use tracing::{error, info};

#[derive(Parser)]
#[command(
    version,
    about = "Declarative identity-provider configuration for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every CustomResourceDefinition as YAML (what `crds/` holds).
    Crds,
    /// Write the API reference generated from the CRDs (what `docs/reference/` holds) into DIR.
    Reference { dir: std::path::PathBuf },
    /// Run the controllers.
    Run(Box<RunArgs>),
    /// Every identity resource with its conditions (also `kubectl identity status`).
    Status(kubectl::status::StatusArgs),
    /// What the operator would change in the identity APIs, writing nothing (also `kubectl
    /// identity plan`; exit 0: no changes, 2: changes or blocked resources, 1: error).
    Plan(identity_operator::plan::PlanArgs),
    /// What an identity API already holds, as manifests that manage it as it is (also `kubectl
    /// identity export`; applying them makes no identity-API write; exit 2 with --strict when
    /// something was skipped, 1: error).
    Export(identity_operator::export::ExportArgs),
}

/// Subcommands for the cluster, not for a terminal: hidden from `kubectl identity --help`.
const OPERATOR_ONLY: [&str; 3] = ["crds", "reference", "run"];

/// The command line, read as `kubectl identity` when the binary runs under that name.
fn parse_cli() -> Cli {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let mut command = Cli::command();
    if kubectl::invoked_as_plugin(&argv0) {
        command = command
            .name("kubectl identity")
            .bin_name("kubectl identity");
        for name in OPERATOR_ONLY {
            command = command.mut_subcommand(name, |s| s.hide(true));
        }
    }
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Namespace to watch (repeatable; default: all namespaces).
    #[arg(
        long = "namespace",
        env = "IDENTITY_OPERATOR_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// Label selector limiting the resources this replica manages (sharding).
    #[arg(long, env = "IDENTITY_OPERATOR_SELECTOR")]
    selector: Option<String>,
    /// Drift check interval (jittered ±10 %).
    #[arg(long, env = "IDENTITY_OPERATOR_RESYNC_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    resync_interval: Duration,
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(
        long,
        env = "IDENTITY_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    metrics_addr: SocketAddr,
    /// Log format.
    #[arg(
        long,
        env = "IDENTITY_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Run only while holding the Lease (for several replicas).
    #[arg(long, env = "IDENTITY_OPERATOR_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the Secrets of ClusterIdentityApis (default: the pod's namespace, else
    /// `default`).
    #[arg(long, env = "IDENTITY_OPERATOR_CREDENTIALS_NAMESPACE")]
    credentials_namespace: Option<String>,
    /// Serve only the ClusterIdentityApis with these labels.
    #[arg(long, env = "IDENTITY_OPERATOR_CLUSTER_IDENTITY_API_SELECTOR")]
    cluster_identity_api_selector: Option<String>,
    /// Write the status and in-use finalizers of ClusterIdentityApis although `--namespace`
    /// limits this replica (by default only a replica watching every namespace does: one that
    /// sees some namespaces cannot tell who else uses them).
    #[arg(long, env = "IDENTITY_OPERATOR_MANAGE_CLUSTER_IDENTITY_APIS")]
    manage_cluster_identity_apis: bool,
    /// Namespace of the leader-election Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "IDENTITY_OPERATOR_LEASE_NAME",
        default_value = "identity-operator"
    )]
    lease_name: String,
    /// Lease duration in seconds: how long a dead leader blocks the others.
    #[arg(long, env = "IDENTITY_OPERATOR_LEASE_DURATION", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Reconciles running at once, per kind (the others wait their turn, first due first).
    #[arg(
        long,
        env = "IDENTITY_OPERATOR_MAX_CONCURRENT_RECONCILES",
        default_value_t = 64,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    max_concurrent_reconciles: u16,
    /// How long a deletion may wait for a missing IdentityApi or credentials before the remote
    /// object is orphaned and the finalizer released.
    #[arg(long, env = "IDENTITY_OPERATOR_DELETION_GRACE_PERIOD", default_value = "2m", value_parser = humantime::parse_duration)]
    deletion_grace_period: Duration,
    /// Name of this replica in Events and the Lease (default: hostname).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube=warn,kube_lease_manager=warn")
    });
    // Colour codes are for a terminal: in a file, a pipe or a log collector they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// `plan` prints its result on stdout: its logs (warnings only) go to stderr.
fn init_logging_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() {
    tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the Tokio runtime starts")
        .block_on(command());
}

/// glibc's malloc gives every thread that allocates an arena of its own and keeps what is
/// freed there: the operator's resident memory stayed about 80 % above what it used. One
/// arena, and large buffers (list answers) mapped and returned at once (README,
/// "Performance"). Called before any thread starts.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

async fn command() {
    let cli = parse_cli();
    match cli.command {
        Command::Crds => print!("{}", identity_operator::kinds::crds_yaml()),
        Command::Plan(args) => {
            init_logging_to_stderr();
            std::process::exit(identity_operator::plan::run(args).await);
        }
        Command::Export(args) => {
            init_logging_to_stderr();
            std::process::exit(identity_operator::export::run(args).await);
        }
        Command::Reference { dir } => {
            if let Err(e) = write_reference(&dir) {
                eprintln!("error: writing the reference to {}: {e}", dir.display());
                std::process::exit(1);
            }
        }
        Command::Status(args) => match kubectl::status::run(&args).await {
            Ok(out) => print!("{out}"),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        },
        Command::Run(args) => {
            init_logging(args.log_format);
            if let Err(e) = run(*args).await {
                error!(error = %e, "operator stopped");
                std::process::exit(1);
            }
        }
    }
}

fn write_reference(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for page in identity_operator::reference::pages() {
        std::fs::write(dir.join(&page.file), page.markdown)?;
    }
    Ok(())
}

#[derive(Clone)]
struct Health {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

async fn serve(addr: SocketAddr, health: Health) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(h): State<Health>| async move { h.metrics.encode() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(h): State<Health>| async move {
                if h.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .with_state(health);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, app).await
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    info!("shutting down");
}

/// Requests to the Kubernetes API awaiting their answer at once. kube's client speaks
/// HTTP/1.1, so each is a connection (with its TLS state and buffers); without a cap a burst of
/// reconciles opened about 200. 64, as many as the reconciles of one kind at once by default:
/// with 32, 1,000 new resources converged in 1.55 to 1.87 times the floor client's time
/// (medians of three, three invocations), with 64 in 1.34 to 1.40. The watches' streams are
/// not counted: a watch holds its place only until its answer starts.
const KUBE_IN_FLIGHT: usize = 64;

async fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    let client = kube::client::ClientBuilder::try_from(kube::Config::infer().await?)?
        .with_layer(&tower::limit::ConcurrencyLimitLayer::new(KUBE_IN_FLIGHT))
        .build();
    let version = client.apiserver_version().await?;
    info!(kubernetes = %version.git_version, "connected to the Kubernetes API");
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(serve(
        args.metrics_addr,
        Health {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
    ));
    let instance = args
        .instance
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("identity-operator-{}", std::process::id()));
    let shutdown: Shutdown = shutdown_signal().boxed().shared();

    let mut leadership = None;
    metrics.set_leader(!args.leader_election);
    if args.leader_election {
        let ns = args
            .leader_election_namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&ns)
            .with_identity(&instance)
            .with_duration(args.lease_duration_seconds)
            .with_grace((args.lease_duration_seconds / 3).max(1))
            .build()
            .await?;
        let (mut rx, task) = manager.watch().await;
        ready.store(true, Ordering::Relaxed);
        info!(lease = %args.lease_name, namespace = %ns, %instance, "waiting for leadership");
        loop {
            if *rx.borrow_and_update() {
                break;
            }
            tokio::select! {
                changed = rx.changed() => changed?,
                _ = shutdown.clone() => return Ok(()),
            }
        }
        info!(%instance, "became the leader");
        metrics.set_leader(true);
        leadership = Some((rx, task));
    }
    ready.store(true, Ordering::Relaxed);

    let settings = Settings {
        resync: args.resync_interval,
        deletion_grace: args.deletion_grace_period,
        instance,
    };
    // ClusterIdentityApis' Secrets: a namespace of their own, else the operator's.
    let credentials_namespace = args
        .credentials_namespace
        .clone()
        .or_else(|| args.leader_election_namespace.clone())
        .unwrap_or_else(|| "default".into());
    let scopes: Vec<Scope> = if args.namespaces.is_empty() {
        vec![Scope {
            namespace: None,
            label_selector: args.selector.clone(),
        }]
    } else {
        args.namespaces
            .iter()
            .map(|ns| Scope {
                namespace: Some(ns.clone()),
                label_selector: args.selector.clone(),
            })
            .collect()
    };
    let controllers = identity_operator::operator::run(
        client.clone(),
        scopes,
        settings,
        metrics.clone(),
        ClusterOptions {
            credentials_namespace,
            selector: args.cluster_identity_api_selector.clone(),
            manage: args.namespaces.is_empty() || args.manage_cluster_identity_apis,
        },
        args.max_concurrent_reconciles,
        shutdown.clone(),
    );

    match leadership {
        Some((mut rx, _task)) => {
            let lost = async move {
                // Losing the Lease means another replica may start writing: stop at once.
                while rx.changed().await.is_ok() {
                    if !*rx.borrow() {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = controllers => {},
                _ = lost => {
                    error!("lost leadership; exiting so that only one replica writes");
                    std::process::exit(1);
                }
            }
        }
        None => {
            controllers.await;
        }
    }
    server.abort();
    Ok(())
}
