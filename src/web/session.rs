//! Sessions of the web pages: a random 256-bit id in the cookie [`COOKIE`], mapped in memory to
//! the principal that signed in and its CSRF token.
//!
//! The store keeps only the SHA-256 of each id, is bounded (in total and per principal; the
//! least recently used session goes first), and ends a session after [`SessionLimits::idle`]
//! without a request or [`SessionLimits::absolute`] after sign-in, whichever comes first. "Now"
//! is a parameter of every call. Sessions live in one process: several replicas behind a load
//! balancer need sticky sessions, or the user signs in again on each replica.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use axum::http::header;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest as _, Sha256};

use crate::auth::Principal;

/// The session cookie. `__Host-`: the browser accepts it only with `Secure`, `Path=/` and no
/// `Domain`, so no other host (or a subdomain) can set or shadow it.
pub const COOKIE: &str = "__Host-sasgate_session";
/// The short-lived cookie of the sign-in form's CSRF token (there is no session yet).
pub const SIGNIN_COOKIE: &str = "__Host-sasgate_signin";
/// How long the sign-in form's token is good for.
pub const SIGNIN_TTL: Duration = Duration::minutes(10);

/// How long sessions last and how many are kept.
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: Duration,
    /// Sessions kept in total; the least recently used goes first.
    pub max_sessions: usize,
    /// Sessions kept per principal; its least recently used goes first.
    pub max_per_principal: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle: Duration::minutes(30),
            absolute: Duration::hours(8),
            max_sessions: 10_000,
            max_per_principal: 16,
        }
    }
}

/// A new session id: a secret, shown to the browser once in `Set-Cookie`, never logged.
pub struct SessionId(String);

impl SessionId {
    /// The id as the cookie carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// What a request learns from its session.
#[derive(Clone)]
pub struct SessionView {
    pub principal: Principal,
    /// The synchronizer token every form of this session carries (a secret).
    pub csrf: String,
}

impl std::fmt::Debug for SessionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionView")
            .field("principal", &self.principal.name)
            .finish_non_exhaustive()
    }
}

struct Session {
    principal: Principal,
    csrf: String,
    created: DateTime<Utc>,
    seen: DateTime<Utc>,
}

impl Session {
    fn live(&self, now: DateTime<Utc>, limits: &SessionLimits) -> bool {
        now - self.seen < limits.idle && now - self.created < limits.absolute
    }
}

/// The sessions of this process.
pub struct Sessions {
    limits: SessionLimits,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

/// 32 random bytes, base64url without padding (43 characters).
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    /// Starts a session for `principal` at `now`, with a fresh id and CSRF token. Expired
    /// sessions are dropped, then the least recently used ones beyond the bounds.
    pub fn create(
        &self,
        principal: Principal,
        now: DateTime<Utc>,
    ) -> Result<(SessionId, SessionView), getrandom::Error> {
        let id = random_token()?;
        let csrf = random_token()?;
        // Nothing here can panic while holding the lock; if something did, keep going.
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.live(now, &self.limits));
        let owner = principal.ledger_name();
        let mut own: Vec<([u8; 32], DateTime<Utc>)> = map
            .iter()
            .filter(|(_, s)| s.principal.ledger_name() == owner)
            .map(|(k, s)| (*k, s.seen))
            .collect();
        own.sort_by_key(|(_, seen)| *seen);
        let excess = (own.len() + 1).saturating_sub(self.limits.max_per_principal.max(1));
        for (k, _) in own.iter().take(excess) {
            map.remove(k);
        }
        while map.len() >= self.limits.max_sessions.max(1) {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            key(&id),
            Session {
                principal: principal.clone(),
                csrf: csrf.clone(),
                created: now,
                seen: now,
            },
        );
        Ok((SessionId(id), SessionView { principal, csrf }))
    }

    /// The live session with this id at `now`, marked as used; an expired one is removed.
    pub fn get(&self, id: &str, now: DateTime<Utc>) -> Option<SessionView> {
        let k = key(id);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let session = map.get_mut(&k)?;
        if !session.live(now, &self.limits) {
            map.remove(&k);
            return None;
        }
        session.seen = session.seen.max(now);
        Some(SessionView {
            principal: session.principal.clone(),
            csrf: session.csrf.clone(),
        })
    }

    /// Ends the session with this id (sign-out).
    pub fn remove(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&key(id));
    }

    /// Sessions held (live or not yet pruned).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `Set-Cookie` value that gives the browser `value` under `name` for `max_age`:
/// `HttpOnly` (no script reads it), `Secure` (never over plain HTTP, except to a loopback
/// address, which browsers treat as secure), `SameSite=Strict` (never sent with a request that
/// another site starts), `Path=/` and no `Domain` (as `__Host-` requires).
pub fn set_cookie(name: &str, value: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        max_age.num_seconds().max(0)
    )
}

/// The `Set-Cookie` value that deletes the cookie `name`.
pub fn clear_cookie(name: &str) -> String {
    set_cookie(name, "", Duration::zero())
}

/// Every value of the cookie `name` in the request (HTTP/2 may split `Cookie` into several
/// headers; a browser may send two cookies of one name).
pub fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn alice() -> Principal {
        Principal {
            name: "alice".into(),
            roles: vec!["researcher".into()],
            oidc: None,
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_session_ends_after_the_idle_timeout() {
        let s = Sessions::new(SessionLimits::default());
        let (id, view) = s.create(alice(), t0()).unwrap();
        assert_eq!(id.expose().len(), 43, "256 random bits, base64url");
        assert_eq!(view.csrf.len(), 43);
        assert_ne!(id.expose(), view.csrf);
        // Used every 29 minutes: it lives on.
        let mut t = t0();
        for _ in 0..5 {
            t += Duration::minutes(29);
            assert!(s.get(id.expose(), t).is_some(), "used at {t}");
        }
        // Then 30 minutes without a request: gone, and removed.
        assert!(s.get(id.expose(), t + Duration::minutes(30)).is_none());
        assert!(s.is_empty());
        assert!(
            s.get(id.expose(), t).is_none(),
            "going back in time does not revive it"
        );
    }

    #[test]
    fn a_session_ends_eight_hours_after_sign_in_however_busy() {
        let s = Sessions::new(SessionLimits::default());
        let (id, _) = s.create(alice(), t0()).unwrap();
        let mut t = t0();
        while t < t0() + Duration::hours(8) - Duration::minutes(10) {
            t += Duration::minutes(10);
            assert!(s.get(id.expose(), t).is_some());
        }
        assert!(s.get(id.expose(), t0() + Duration::hours(8)).is_none());
    }

    #[test]
    fn unknown_ids_and_signed_out_sessions_find_nothing() {
        let s = Sessions::new(SessionLimits::default());
        let (id, view) = s.create(alice(), t0()).unwrap();
        assert!(s.get("", t0()).is_none());
        assert!(s.get(&view.csrf, t0()).is_none(), "the CSRF token is no id");
        s.remove(id.expose());
        assert!(s.get(id.expose(), t0()).is_none());
        assert!(!format!("{id:?}{view:?}").contains(id.expose()));
        assert!(!format!("{view:?}").contains(&view.csrf));
    }

    #[test]
    fn the_store_is_bounded_in_total_and_per_principal() {
        let limits = SessionLimits {
            max_sessions: 5,
            max_per_principal: 2,
            ..SessionLimits::default()
        };
        let s = Sessions::new(limits);
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(s.create(alice(), t0() + Duration::seconds(i)).unwrap().0);
        }
        // Alice's oldest session made way for her third.
        assert!(
            s.get(ids[0].expose(), t0() + Duration::seconds(5))
                .is_none()
        );
        assert!(
            s.get(ids[2].expose(), t0() + Duration::seconds(5))
                .is_some()
        );
        for i in 0..10 {
            let p = Principal {
                name: format!("p{i}"),
                roles: vec![],
                oidc: None,
            };
            s.create(p, t0() + Duration::seconds(10 + i)).unwrap();
        }
        assert!(s.len() <= 5, "{}", s.len());
    }

    #[test]
    fn cookies_are_host_only_secure_http_only_and_strict() {
        let c = set_cookie(COOKIE, "abc", Duration::hours(8));
        assert_eq!(
            c,
            "__Host-sasgate_session=abc; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=28800"
        );
        assert!(!c.contains("Domain"), "__Host- cookies carry no Domain");
        let gone = clear_cookie(COOKIE);
        assert!(gone.starts_with("__Host-sasgate_session=;") && gone.ends_with("Max-Age=0"));

        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; __Host-sasgate_session=one".parse().unwrap(),
        );
        h.append(
            header::COOKIE,
            "__Host-sasgate_session=two".parse().unwrap(),
        );
        assert_eq!(
            cookie_values(&h, COOKIE).collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(cookie_values(&h, "a").collect::<Vec<_>>(), ["1"]);
        assert_eq!(cookie_values(&h, "missing").count(), 0);
    }
}
