//! `kubectl identity …`: the operator's binary is also a kubectl plugin.
//!
//! kubectl runs `kubectl identity ARGS` as `kubectl-identity ARGS` from `PATH`, so installing
//! (or linking) the binary under that name is the whole installation. Called so, it offers the
//! subcommands meant for people at a terminal (`status`; `plan` and `export` are to join it)
//! and hides those meant for the cluster (`run`, `crds`, `reference`). Every plugin
//! subcommand reaches the cluster the way kubectl does, with the same flags
//! ([`ClusterArgs`]).

pub mod status;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The file name kubectl looks for on `PATH` to run `kubectl identity`.
pub const PLUGIN_BINARY: &str = "kubectl-identity";

/// Whether the process was started as the kubectl plugin (its `argv[0]`).
pub fn invoked_as_plugin(argv0: &OsStr) -> bool {
    Path::new(argv0).file_name() == Some(OsStr::new(PLUGIN_BINARY))
}

/// How to reach the cluster, named as kubectl names it (kubectl hands a plugin its flags
/// untouched).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Namespace to look in (default: the context's namespace).
    #[arg(short = 'n', long, global = true, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Look in every namespace.
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
}

/// Where a subcommand looks: one namespace, or all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespace(String),
    All,
}

/// Errors of the plugin's subcommands: each becomes one line on stderr and exit status 1.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("no cluster configuration: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Usage(String),
}

impl ClusterArgs {
    /// A client for the selected kubeconfig and context, and the scope to look in.
    pub async fn connect(&self) -> Result<(Client, Scope), Error> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options).await?,
            (None, None) => Config::infer().await?,
        };
        let scope = match (&self.namespace, self.all_namespaces) {
            (_, true) => Scope::All,
            (Some(ns), false) => Scope::Namespace(ns.clone()),
            (None, false) => Scope::Namespace(config.default_namespace.clone()),
        };
        Ok((Client::try_from(config)?, scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_is_recognised_by_its_file_name() {
        assert!(invoked_as_plugin(OsStr::new("kubectl-identity")));
        assert!(invoked_as_plugin(OsStr::new(
            "/usr/local/bin/kubectl-identity"
        )));
        assert!(!invoked_as_plugin(OsStr::new(
            "/usr/local/bin/identity-operator"
        )));
        assert!(!invoked_as_plugin(OsStr::new("kubectl-identity-old")));
    }
}
