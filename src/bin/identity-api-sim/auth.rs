//! Bearer-style tokens issued by the five auth flows.
//!
//! Tokens are random strings bound to the API that issued them (an Auth0 token is no good
//! for Boruta). Expired tokens are kept for a while so the vendors can answer "expired"
//! rather than "invalid", then pruned, which bounds memory.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::wire::{Api, Locked, now_ms, random_string};

/// Who a token was issued to, where the vendor ties that to the token.
#[derive(Clone, Debug, Default)]
pub enum Subject {
    #[default]
    Client,
    /// Xelion: a session in one tenant (tokens are not valid in another).
    Xelion { tenant: String },
    /// VCD: the organisation the session belongs to (`System` for provider sessions).
    Vcd { org: String, provider: bool },
    /// Entrust: the admin API application that authenticated.
    Entrust { application_id: String },
}

#[derive(Clone, Debug)]
pub struct Token {
    pub api: Api,
    pub expires_at_ms: u64,
    pub scopes: Vec<String>,
    pub subject: Subject,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    Invalid,
    Expired,
}

/// Beyond this many tokens, issuing one first drops those expired for over a minute.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Default)]
pub struct Tokens {
    map: Mutex<HashMap<String, Token>>,
}

impl Tokens {
    /// Issues a token valid for `ttl_ms`; returns it with its expiry (UNIX ms).
    pub fn issue(
        &self,
        api: Api,
        ttl_ms: u64,
        scopes: Vec<String>,
        subject: Subject,
    ) -> (String, u64) {
        let value = random_string(40);
        let expires_at_ms = now_ms() + ttl_ms;
        let token = Token {
            api,
            expires_at_ms,
            scopes,
            subject,
        };
        let mut map = self.map.locked();
        if map.len() > PRUNE_ABOVE {
            let cutoff = now_ms().saturating_sub(60_000);
            map.retain(|_, t| t.expires_at_ms > cutoff);
        }
        map.insert(value.clone(), token);
        (value, expires_at_ms)
    }

    pub fn check(&self, api: Api, value: Option<&str>) -> Result<Token, TokenError> {
        let value = value.filter(|v| !v.is_empty()).ok_or(TokenError::Missing)?;
        let token = {
            let map = self.map.locked();
            map.get(value).cloned()
        };
        match token {
            Some(t) if t.api != api => Err(TokenError::Invalid),
            Some(t) if t.expires_at_ms <= now_ms() => Err(TokenError::Expired),
            Some(t) => Ok(t),
            None => Err(TokenError::Invalid),
        }
    }

    pub fn revoke(&self, value: &str) {
        self.map.locked().remove(value);
    }

    /// Makes every token (of one API, or all) expire now: lets tests exercise re-authentication
    /// without waiting for the TTL.
    pub fn expire_all(&self, api: Option<Api>) -> usize {
        let now = now_ms();
        let mut map = self.map.locked();
        let mut count = 0;
        for token in map.values_mut() {
            if api.is_none_or(|a| a == token.api) && token.expires_at_ms > now {
                token.expires_at_ms = now;
                count += 1;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_their_api_and_expire() {
        let tokens = Tokens::default();
        let (t, _) = tokens.issue(Api::Auth0, 60_000, vec![], Subject::Client);
        assert!(tokens.check(Api::Auth0, Some(&t)).is_ok());
        assert_eq!(
            tokens.check(Api::Boruta, Some(&t)).unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(
            tokens.check(Api::Auth0, None).unwrap_err(),
            TokenError::Missing
        );
        tokens.expire_all(Some(Api::Auth0));
        assert_eq!(
            tokens.check(Api::Auth0, Some(&t)).unwrap_err(),
            TokenError::Expired
        );
    }
}
