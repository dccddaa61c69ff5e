//! The admin bearer token: what an HTTP request must carry (`Authorization: Bearer <token>`) to
//! reach an endpoint that changes state. It lives in the credentials directory (`token`), so
//! whoever may operate the app (the operator, via the app's Secret) has it and nobody else does.
//! Read-only endpoints (`/metrics`, probes, `/status`) stay open: they carry no secrets.
//!
//! [`require_admin`] guards a router: no token configured → 403 (admin disabled), no or wrong
//! credential → 401. The comparison is constant-time (`subtle`), so response timing does not
//! reveal how much of a guess was right.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Shortest token accepted from a file (hex digits of 16 random bytes).
const MIN_LEN: usize = 32;

/// A bearer token.
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// A new random token: 32 bytes from the OS generator, hex.
    pub fn generate() -> Self {
        // `rand::rng()` is a CSPRNG (ChaCha) seeded from the OS and reseeded periodically.
        let mut b = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut b);
        Self(b.iter().map(|x| format!("{x:02x}")).collect())
    }

    /// A token read from a file (surrounding whitespace ignored).
    ///
    /// # Errors
    /// When it is shorter than 32 characters or has characters a header cannot carry.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.len() < MIN_LEN {
            return Err(format!(
                "the token must be at least {MIN_LEN} characters (it has {})",
                t.len()
            ));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token may only hold printable ASCII without spaces".into());
        }
        Ok(Self(t.to_string()))
    }

    /// The token text (to write it to a file or send it).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this token, in time independent of where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        // Lengths are not secret (every generated token has the same); contents are.
        a.len() == b.len() && bool::from(a.ct_eq(b))
    }
}

/// The token an admin router checks; `None` disables admin endpoints.
pub type AdminState = Option<Arc<AdminToken>>;

/// Middleware for admin routes: `router.route_layer(axum::middleware::from_fn_with_state(token,
/// require_admin))`.
pub async fn require_admin(State(token): State<AdminState>, req: Request, next: Next) -> Response {
    let Some(token) = token else {
        return (
            StatusCode::FORBIDDEN,
            "admin endpoints are disabled: no token in the credentials directory\n",
        )
            .into_response();
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if token.matches(g.trim()) => next.run(req).await,
        _ => {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                "this endpoint needs `Authorization: Bearer <token>` with the app's admin token\n",
            )
                .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    }
}

/// `router` with every route requiring the admin token.
pub fn guard<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
    token: AdminState,
) -> axum::Router<S> {
    router.route_layer(axum::middleware::from_fn_with_state(token, require_admin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use tower_util::call;

    mod tower_util {
        use axum::body::Body;
        use axum::http::Request;

        pub async fn call(router: axum::Router, req: Request<Body>) -> u16 {
            use tower::ServiceExt as _;
            router.oneshot(req).await.unwrap().status().as_u16()
        }
    }

    fn req(auth: Option<&str>) -> axum::http::Request<Body> {
        let mut b = axum::http::Request::post("/admin/x");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn admin_routes_need_the_exact_token() {
        let t = AdminToken::generate();
        let router = || {
            guard(
                axum::Router::new().route("/admin/x", post(|| async { "done" })),
                Some(Arc::new(t.clone())),
            )
        };
        assert_eq!(call(router(), req(None)).await, 401);
        assert_eq!(call(router(), req(Some("Bearer nope"))).await, 401);
        let mut wrong = t.expose().to_string();
        wrong.replace_range(0..1, if wrong.starts_with('0') { "1" } else { "0" });
        assert_eq!(
            call(router(), req(Some(&format!("Bearer {wrong}")))).await,
            401
        );
        assert_eq!(call(router(), req(Some(t.expose()))).await, 401);
        assert_eq!(
            call(router(), req(Some(&format!("Bearer {}", t.expose())))).await,
            200
        );
    }

    #[tokio::test]
    async fn without_a_token_admin_routes_are_disabled() {
        let router = guard(
            axum::Router::new().route("/admin/x", post(|| async { "done" })),
            None,
        );
        assert_eq!(call(router, req(Some("Bearer anything"))).await, 403);
    }

    #[test]
    fn short_or_odd_tokens_are_refused() {
        assert!(AdminToken::parse("short").is_err());
        assert!(AdminToken::parse(&"a b".repeat(20)).is_err());
        let t = AdminToken::parse(&format!("  {}\n", "x".repeat(40))).unwrap();
        assert!(t.matches(&"x".repeat(40)));
        assert!(!t.matches(&"x".repeat(39)));
    }
}
