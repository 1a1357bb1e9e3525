//! Starts the real `identity-api-sim` binary for a test and talks to its `/_sim` endpoints.
//!
//! ```ignore
//! let sim = SimProcess::start(SimOptions::default());
//! let boruta_url = sim.url("boruta"); // http://127.0.0.1:PORT/boruta
//! sim.seed(json!({"boruta": {"backends": [{"name": "existing"}]}})).await;
//! ```
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// The Auth0 audience (`https://{tenant}/api/v2/`) of the simulator's tenant.
pub const AUTH0_AUDIENCE: &str = "https://tenant.example/api/v2/";

const LISTENING: &str = "identity-api-sim listening on ";

#[derive(Clone, Debug)]
pub struct SimOptions {
    pub client_id: String,
    pub client_secret: String,
    pub latency_ms: u64,
    pub token_ttl_seconds: u64,
    /// Further command-line flags, e.g. `["--boruta-oauth-rate-limit", "0"]`.
    pub extra_args: Vec<String>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            client_id: "sim-client".into(),
            client_secret: "sim-secret".into(),
            latency_ms: 0,
            token_ttl_seconds: 3600,
            extra_args: vec![],
        }
    }
}

/// A running simulator; the process is killed when this is dropped.
pub struct SimProcess {
    child: Child,
    base_url: String,
    pub options: SimOptions,
    http: reqwest::Client,
}

impl SimProcess {
    /// Spawns the binary on a free loopback port and waits (up to 30 s) until it listens.
    pub fn start(options: SimOptions) -> SimProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_identity-api-sim"))
            .args(["--listen", "127.0.0.1:0"])
            .args(["--client-id", &options.client_id])
            .args(["--client-secret", &options.client_secret])
            .args(["--latency-ms", &options.latency_ms.to_string()])
            .args([
                "--token-ttl-seconds",
                &options.token_ttl_seconds.to_string(),
            ])
            .args(&options.extra_args)
            .env("RUST_LOG", "identity_api_sim=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn identity-api-sim");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Keeps reading so the pipe never fills, and reports the listening line.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(LISTENING) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let base_url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("identity-api-sim did not print its listening line within 30 s");
            }
        };
        SimProcess {
            child,
            base_url,
            options,
            http: reqwest::Client::new(),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The base URL of one API, e.g. `url("auth0")` → `http://127.0.0.1:PORT/auth0`.
    pub fn url(&self, api_prefix: &str) -> String {
        format!("{}/{}", self.base_url, api_prefix.trim_matches('/'))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A token of `api` (`boruta`, `auth0` or `entrust`) for the simulator's client
    /// credentials: how a test or the benchmark acts on an API beside the operator.
    pub async fn token(&self, api: &str) -> String {
        let (id, secret) = (&self.options.client_id, &self.options.client_secret);
        let url = format!("{}/oauth/token", self.url(api));
        let request = match api {
            "boruta" => self.http.post(url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
                ("scope", "identity-providers:manage:all"),
            ]),
            "auth0" => self.http.post(url).json(&json!({
                "grant_type": "client_credentials",
                "client_id": id,
                "client_secret": secret,
                "audience": AUTH0_AUDIENCE,
            })),
            "entrust" => {
                return self
                    .entrust_token(id, secret)
                    .await
                    .expect("the simulator's own Entrust credentials are accepted");
            }
            other => panic!("no token flow for {other}"),
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no {api} token: {answer}"))
            .to_owned()
    }

    /// An Entrust admin API token for an application; `None` when Entrust refuses the pair.
    pub async fn entrust_token(&self, application_id: &str, shared_secret: &str) -> Option<String> {
        let reply: Value = answer(
            self.http
                .post(format!(
                    "{}/api/web/v1/adminapi/authenticate",
                    self.url("entrust")
                ))
                .json(&json!({"applicationId": application_id, "sharedSecret": shared_secret})),
        )
        .await;
        reply["authToken"].as_str().map(str::to_owned)
    }

    pub async fn state(&self) -> Value {
        self.get("/_sim/state").await
    }

    pub async fn calls(&self) -> Value {
        self.get("/_sim/calls").await
    }

    /// All log entries (`{"lastSeq": N, "entries": [...]}`).
    pub async fn log(&self) -> Value {
        self.get("/_sim/log").await
    }

    /// The sequence number of the last call logged so far.
    pub async fn last_seq(&self) -> u64 {
        self.get("/_sim/log?limit=0").await["lastSeq"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Log entries of one API after sequence number `since`.
    pub async fn log_since(&self, api: &str, since: u64) -> Value {
        self.get(&format!("/_sim/log?api={api}&since={since}"))
            .await
    }

    pub async fn seed(&self, seed: Value) -> Value {
        self.post("/_sim/seed", Some(seed)).await
    }

    pub async fn faults(&self, faults: Value) -> Value {
        self.post("/_sim/faults", Some(faults)).await
    }

    /// The faults in force, per API (`burst429` counts what is left of the burst).
    pub async fn get_faults(&self) -> Value {
        self.get("/_sim/faults").await
    }

    pub async fn clear_faults(&self) {
        let url = format!("{}/_sim/faults", self.base_url);
        let response = self
            .http
            .delete(url)
            .send()
            .await
            .expect("DELETE /_sim/faults");
        assert!(
            response.status().is_success(),
            "DELETE /_sim/faults: {}",
            response.status()
        );
    }

    pub async fn reset(&self) {
        self.post("/_sim/reset", None).await;
    }

    /// Makes every issued token of `api` (or of all APIs) expire now.
    pub async fn expire_tokens(&self, api: Option<&str>) -> Value {
        let path = match api {
            Some(api) => format!("/_sim/tokens/expire?api={api}"),
            None => "/_sim/tokens/expire".to_string(),
        };
        self.post(&path, None).await
    }

    /// Asks the simulator to stop as on Ctrl-C (it writes `--state FILE` first) and waits.
    pub fn stop_gracefully(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for identity-api-sim")
    }

    async fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base_url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        Self::json_ok(&url, response).await
    }

    async fn post(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.post(&url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        Self::json_ok(&url, response).await
    }

    async fn json_ok(url: &str, response: reqwest::Response) -> Value {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{url}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a test's own request and reads the answer as JSON.
pub async fn answer(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}
