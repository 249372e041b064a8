//! Bearer tokens with roles. Token values come from the secrets store (and the bootstrap admin
//! token from `SLIPWAY_ADMIN_TOKEN`); they are compared in constant time and never logged:
//! only the token's name reaches logs and run records.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use slipway_config::{Config, Role};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// The cookie the dashboard's login sets (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "slipway_token";
/// The environment variable holding a bootstrap admin token for `slipway serve`.
pub const ADMIN_TOKEN_ENV: &str = "SLIPWAY_ADMIN_TOKEN";

/// Shortest token accepted: anything shorter is guessable.
const MIN_TOKEN_LEN: usize = 16;

struct Token {
    name: String,
    role: Role,
    value: Vec<u8>,
}

/// The known tokens. Built at start and on every config reload.
pub struct Tokens {
    tokens: Vec<Token>,
}

impl Tokens {
    /// Reads every configured token's secret, plus the bootstrap token. Errors name the token
    /// and its secret, never a value.
    pub fn load(config: &Config, bootstrap: Option<&str>) -> Result<Tokens, String> {
        let mut tokens = Vec::new();
        if let Some(value) = bootstrap {
            let value = value.trim();
            if value.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "{ADMIN_TOKEN_ENV} must be at least {MIN_TOKEN_LEN} characters"
                ));
            }
            tokens.push(Token {
                name: "bootstrap-admin".into(),
                role: Role::Admin,
                value: value.as_bytes().to_vec(),
            });
        }
        for t in &config.server.tokens {
            let raw = slipway_engine::read_secret(config, &t.secret)
                .map_err(|e| format!("server.tokens.{} ({}): {e}", t.name, t.loc))?;
            let value = String::from_utf8_lossy(&raw).trim().as_bytes().to_vec();
            if value.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "server.tokens.{} ({}): the value of secret '{}' must be at least {MIN_TOKEN_LEN} characters",
                    t.name, t.loc, t.secret
                ));
            }
            tokens.push(Token {
                name: t.name.clone(),
                role: t.role,
                value,
            });
        }
        Ok(Tokens { tokens })
    }

    /// The caller a presented token belongs to. Every known token is compared, in constant
    /// time each, so timing tells nothing about which one (or how much of one) matched.
    fn identify(&self, presented: &[u8]) -> Option<Caller> {
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.value.as_slice().ct_eq(presented)) && found.is_none() {
                found = Some(Caller {
                    name: t.name.clone(),
                    role: t.role,
                });
            }
        }
        found
    }

    /// The caller a token value belongs to, if any.
    pub fn caller_for(&self, token: &str) -> Option<Caller> {
        self.identify(token.as_bytes())
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Who is calling: a token's name and role.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// The caller of a request, if it presented a valid token (`Authorization: Bearer`, or the
/// dashboard's session cookie). A token that is presented but unknown is a 401, not anonymous.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some((presented, from_cookie)) = presented_token(&parts.headers) else {
            return Ok(MaybeCaller(None));
        };
        if from_cookie && !parts.method.is_safe() && !is_json(parts) {
            // A browser sends the session cookie with whatever a page makes it send; a JSON
            // body cannot come from another site's form without a CORS preflight we never allow.
            return Err(ApiError::Forbidden(
                "requests authenticated by the dashboard cookie must send Content-Type: application/json".into(),
            ));
        }
        let tokens = state.tokens();
        match tokens.identify(presented.as_bytes()) {
            Some(c) => Ok(MaybeCaller(Some(c))),
            None => Err(ApiError::Unauthorized("the token is not valid".into())),
        }
    }
}

fn is_json(parts: &Parts) -> bool {
    parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"))
}

/// The token a request presents, and whether it came from the session cookie.
fn presented_token(headers: &axum::http::HeaderMap) -> Option<(String, bool)> {
    if let Some(h) = headers.get(AUTHORIZATION) {
        let text = h.to_str().ok()?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))?;
        return Some((token.trim().to_string(), false));
    }
    for h in headers.get_all(COOKIE) {
        let Ok(text) = h.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k == SESSION_COOKIE && !v.is_empty() {
                    return Some((v.to_string(), true));
                }
            }
        }
    }
    None
}

/// Which role a request's token carries (`anonymous` without a valid one): what a response
/// shared between requests may depend on.
pub fn role_key(headers: &axum::http::HeaderMap, tokens: &Tokens) -> &'static str {
    presented_token(headers)
        .and_then(|(t, _)| tokens.caller_for(&t))
        .map(|c| c.role.as_str())
        .unwrap_or("anonymous")
}

impl MaybeCaller {
    /// The caller, if it holds at least `role`: 401 without a token, 403 with a weaker one.
    pub fn require(self, role: Role) -> Result<Caller, ApiError> {
        match self.0 {
            None => Err(ApiError::Unauthorized(format!(
                "this needs a token with role {role} or higher (Authorization: Bearer ...)"
            ))),
            Some(c) if c.role >= role => Ok(c),
            Some(c) => Err(ApiError::Forbidden(format!(
                "token '{}' has role {}; this needs {role} or higher",
                c.name, c.role
            ))),
        }
    }

    /// For reads: anyone when reads are public, else a viewer.
    pub fn may_read(self, public_reads: bool) -> Result<Option<Caller>, ApiError> {
        if public_reads {
            return Ok(self.0);
        }
        self.require(Role::Viewer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::{Caller, MaybeCaller, Token, Tokens};
    use slipway_config::Role;

    fn tokens() -> Tokens {
        Tokens {
            tokens: vec![
                Token {
                    name: "ops".into(),
                    role: Role::Releaser,
                    value: b"releaser-token-0123456789".to_vec(),
                },
                Token {
                    name: "bot".into(),
                    role: Role::Trigger,
                    value: b"trigger-token-0123456789".to_vec(),
                },
            ],
        }
    }

    #[test]
    fn identifies_exact_tokens_only() {
        let t = tokens();
        assert_eq!(
            t.identify(b"releaser-token-0123456789").map(|c| c.name),
            Some("ops".to_string())
        );
        assert!(t.identify(b"releaser-token-012345678").is_none());
        assert!(t.identify(b"releaser-token-01234567890").is_none());
        assert!(t.identify(b"").is_none());
    }

    #[test]
    fn roles_are_ordered_and_checked() {
        let caller = |role| {
            MaybeCaller(Some(Caller {
                name: "x".into(),
                role,
            }))
        };
        assert!(caller(Role::Releaser).require(Role::Trigger).is_ok());
        assert!(caller(Role::Trigger).require(Role::Releaser).is_err());
        // A lab's token reports results and reads, and starts nothing.
        assert!(caller(Role::Reporter).require(Role::Reporter).is_ok());
        assert!(caller(Role::Reporter).require(Role::Viewer).is_ok());
        assert!(caller(Role::Reporter).require(Role::Trigger).is_err());
        assert!(caller(Role::Viewer).require(Role::Reporter).is_err());
        assert!(caller(Role::Trigger).require(Role::Reporter).is_ok());
        assert!(MaybeCaller(None).require(Role::Viewer).is_err());
        assert!(MaybeCaller(None).may_read(true).is_ok());
        assert!(MaybeCaller(None).may_read(false).is_err());
    }

    #[test]
    fn a_short_bootstrap_token_is_refused_without_echoing_it() {
        let config = slipway_config::Config::parse(
            slipway_config::SourceText::new(
                "s.toml",
                "[project]\nname = \"p\"\nrepo = \"r\"\n".to_string(),
            ),
            ".".into(),
        )
        .unwrap();
        let e = Tokens::load(&config, Some("short-secret")).err().unwrap();
        assert!(!e.contains("short-secret"), "{e}");
        assert!(Tokens::load(&config, Some("a-long-enough-admin-token")).is_ok());
    }
}
