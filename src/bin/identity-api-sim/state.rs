//! The simulator's shared state: settings, one store per vendor, tokens, faults, records.
//!
//! Each vendor store has its own mutex, locked only inside synchronous handler code, so
//! requests to different APIs never contend and no lock is ever held across an await.

use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::auth::Tokens;
use crate::faults::Faults;
use crate::record::Recorder;
use crate::wire::Locked;
use crate::{auth0, boruta, entrust, vcd, xelion};

/// Settings from the command line; they survive `/_sim/reset`.
#[derive(Clone, Debug)]
pub struct Config {
    pub client_id: String,
    pub client_secret: String,
    pub token_ttl_ms: u64,
    pub latency_ms: u64,
    pub max_body_bytes: usize,
    /// Requests per second and client IP on Boruta's /oauth/* (0: no limit).
    pub boruta_oauth_rate_limit: u32,
    /// API versions VCD's cloudapi accepts in `Accept: application/json;version=X`.
    pub vcd_api_versions: Vec<String>,
}

pub struct Sim {
    pub cfg: Config,
    pub tokens: Tokens,
    pub faults: Faults,
    pub recorder: Recorder,
    pub boruta: Mutex<boruta::Store>,
    pub auth0: Mutex<auth0::Store>,
    pub entrust: Mutex<entrust::Store>,
    pub vcd: Mutex<vcd::Store>,
    pub xelion: Mutex<xelion::Store>,
}

/// The top-level keys of a seed / state document.
const SEED_KEYS: &[&str] = &["boruta", "auth0", "entrust", "vcd", "xelion"];

impl Sim {
    pub fn new(cfg: Config, log_capacity: usize) -> Self {
        Sim {
            cfg,
            tokens: Tokens::default(),
            faults: Faults::default(),
            recorder: Recorder::new(log_capacity),
            xelion: Mutex::default(),
            vcd: Mutex::default(),
            entrust: Mutex::default(),
            boruta: Mutex::default(),
            auth0: Mutex::default(),
        }
    }

    /// The one credential pair every auth flow accepts.
    pub fn client_ok(&self, id: &str, secret: &str) -> bool {
        id == self.cfg.client_id && secret == self.cfg.client_secret
    }

    /// Empties every store (back to what a fresh vendor install has) and clears counters,
    /// log and faults. Issued tokens stay valid so a running operator is not disturbed.
    pub fn reset(&self) {
        *self.boruta.locked() = boruta::Store::default();
        *self.auth0.locked() = auth0::Store::default();
        *self.entrust.locked() = entrust::Store::default();
        *self.vcd.locked() = vcd::Store::default();
        *self.xelion.locked() = xelion::Store::default();
        self.faults.clear();
        self.recorder.clear();
    }

    /// Adds the objects of a seed document (the format of [`Sim::dump`]).
    pub fn seed(&self, seed: &Value) -> Result<(), String> {
        let doc = seed.as_object().ok_or("a seed must be a JSON object")?;
        if let Some(key) = doc.keys().find(|k| !SEED_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "unknown seed key {key:?}; expected one of {SEED_KEYS:?}"
            ));
        }
        if let Some(v) = doc.get("boruta") {
            self.boruta.locked().seed(v)?;
        }
        if let Some(v) = doc.get("auth0") {
            self.auth0.locked().seed(v)?;
        }
        if let Some(v) = doc.get("entrust") {
            self.entrust.locked().seed(v)?;
        }
        if let Some(v) = doc.get("vcd") {
            self.vcd.locked().seed(v)?;
        }
        if let Some(v) = doc.get("xelion") {
            self.xelion.locked().seed(v)?;
        }
        Ok(())
    }

    /// Every object of every API, including stored write-only secrets.
    pub fn dump(&self) -> Value {
        let mut out = Map::new();
        out.insert("boruta".into(), self.boruta.locked().dump());
        out.insert("auth0".into(), self.auth0.locked().dump());
        out.insert("entrust".into(), self.entrust.locked().dump());
        out.insert("vcd".into(), self.vcd.locked().dump());
        out.insert("xelion".into(), self.xelion.locked().dump());
        Value::Object(out)
    }
}
