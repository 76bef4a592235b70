//! Viewer authentication of every framebus HTTP server: HTTP basic authentication against the
//! deployment's users file (`[auth] users-file`, htdigest). The one check is
//! [`Access::allows`], applied by [`crate::spawn`] to every request before the handler sees it;
//! a refused request gets `401` with `WWW-Authenticate: Basic realm="framebus"`.
//!
//! The password a client sends is hashed as the file's HA1 is (`md5("user:framebus:password")`)
//! and compared with every user's HA1 in constant time ([`subtle`]), so neither the answer's
//! timing nor its content tells a wrong name from a wrong password.

use std::sync::Arc;

use base64::Engine;
use framebus_common::config::{ConfigError, Deployment, ViewerUser, REALM};
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Method, Request};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Who a server answers: everybody, or the users of the users file (except for the requests its
/// `public` rule lets through).
#[derive(Clone)]
pub struct Access {
    users: Option<Arc<Vec<ViewerUser>>>,
    public: fn(&Method, &str) -> bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").field("users", &self.users.as_ref().map(|u| u.len())).finish()
    }
}

fn nothing_public(_: &Method, _: &str) -> bool {
    false
}

impl Access {
    /// Everybody is answered (`[auth]` has no users file).
    pub fn open() -> Access {
        Access { users: None, public: nothing_public }
    }

    /// Only these users are answered.
    pub fn users(users: Vec<ViewerUser>) -> Access {
        Access { users: Some(Arc::new(users)), public: nothing_public }
    }

    /// The deployment's rule: its `[auth] users-file` when set, else open. The error names the
    /// config file and the key.
    pub fn of_deployment(deployment: &Deployment) -> Result<Access, ConfigError> {
        Ok(match deployment.viewer_users()? {
            Some(viewers) => Access::users(viewers.users),
            None => Access::open(),
        })
    }

    /// Requests that `public` accepts (method, path) are answered without credentials (the
    /// media server's player script and CORS preflights: browsers send those without any).
    pub fn with_public(self, public: fn(&Method, &str) -> bool) -> Access {
        Access { public, ..self }
    }

    /// Whether users must authenticate.
    pub fn requires_credentials(&self) -> bool {
        self.users.is_some()
    }

    /// Whether `request` may be answered: open access, a public request, or valid basic
    /// credentials of a user in its `Authorization` header.
    pub fn allows<B>(&self, request: &Request<B>) -> bool {
        let Some(users) = &self.users else { return true };
        if (self.public)(request.method(), request.uri().path()) {
            return true;
        }
        request.headers().get(AUTHORIZATION).is_some_and(|value| basic_matches(users, value))
    }

    /// The `WWW-Authenticate` value of a refusal.
    pub fn challenge() -> HeaderValue {
        HeaderValue::from_static("Basic realm=\"framebus\", charset=\"UTF-8\"")
    }
}

/// Whether `value` is `Basic base64(user:password)` of a user whose HA1 the password gives.
fn basic_matches(users: &[ViewerUser], value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else { return false };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else { return false };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else { return false };
    let (name, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let ha1: [u8; 16] = Md5::new()
        .chain_update(name)
        .chain_update(b":")
        .chain_update(REALM.as_bytes())
        .chain_update(b":")
        .chain_update(password)
        .finalize()
        .into();
    // Every user is compared, whichever matches: the time does not depend on which one did.
    let mut matched = subtle::Choice::from(0);
    for user in users {
        matched |= user.name.as_bytes().ct_eq(name) & user.ha1.ct_eq(&ha1);
    }
    matched.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ha1(name: &str, password: &str) -> [u8; 16] {
        Md5::digest(format!("{name}:{REALM}:{password}")).into()
    }

    fn request(authorization: Option<&str>, method: Method, path: &str) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value);
        }
        builder.body(()).expect("request")
    }

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
    }

    /// Only a user's own name and password pass; malformed headers never do; public requests
    /// and open access need none.
    #[test]
    fn basic_credentials_are_checked() {
        let access = Access::users(vec![
            ViewerUser { name: "viewer".into(), ha1: ha1("viewer", "secret") },
            ViewerUser { name: "nvr".into(), ha1: ha1("nvr", "pa:ss") },
        ]);
        let get = |auth: Option<&str>| access.allows(&request(auth, Method::GET, "/"));
        assert!(get(Some(&basic("viewer:secret"))));
        assert!(get(Some(&basic("nvr:pa:ss"))), "a password may hold ':'");
        assert!(get(Some(&format!("basic  {}", base64::engine::general_purpose::STANDARD.encode("viewer:secret")))));
        for bad in [
            basic("viewer:wrong"),
            basic("nvr:secret"),
            basic("viewer:"),
            basic("viewersecret"),
            basic(":secret"),
            "Basic !!!".into(),
            "Bearer abc".into(),
            "Basic".into(),
            "Digest username=\"viewer\"".into(),
        ] {
            assert!(!get(Some(&bad)), "{bad}");
        }
        assert!(!get(None));
        let public = access.clone().with_public(|m, p| m == Method::GET && p == "/whep.js");
        assert!(public.allows(&request(None, Method::GET, "/whep.js")));
        assert!(!public.allows(&request(None, Method::POST, "/whep.js")));
        assert!(Access::open().allows(&request(None, Method::GET, "/")));
        assert!(!Access::open().requires_credentials() && access.requires_credentials());
    }
}
