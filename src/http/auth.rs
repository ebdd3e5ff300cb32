//! API keys: `Authorization: Bearer <key>` on every endpoint but the health probes once
//! any key is configured. Full keys may do everything; predict keys may only read models
//! and call predict and evaluate.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use subtle::{Choice, ConstantTimeEq};

use super::error::Error;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Full,
    Predict,
}

/// The configured keys; empty means the API is open.
#[derive(Clone, Default)]
pub struct Keys {
    full: Vec<Vec<u8>>,
    predict: Vec<Vec<u8>>,
}

/// Endpoints that answer without a key.
pub(super) const OPEN: [&str; 2] = ["/healthz", "/readyz"];

/// What a predict key may call (method, route as matched): a model's routes by both of
/// their mounts (`/models/{ref}`, `/models/{name}/versions/{version}`).
pub(super) const PREDICT_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/models"),
    (Method::GET, "/models/{ref}"),
    (Method::POST, "/models/{ref}/predict"),
    (Method::POST, "/models/{ref}/evaluate"),
    (Method::GET, "/models/{name}/versions/{version}"),
    (Method::POST, "/models/{name}/versions/{version}/predict"),
    (Method::POST, "/models/{name}/versions/{version}/evaluate"),
    (Method::GET, "/models/{name}/aliases"),
    (Method::GET, "/models/{name}/aliases/{alias}"),
    (Method::GET, "/openapi.json"),
    (Method::GET, "/v1/models/{*path}"),
    (Method::POST, "/v1/models/{*path}"),
    (Method::GET, "/v2"),
    (Method::GET, "/v2/health/live"),
    (Method::GET, "/v2/health/ready"),
    (Method::GET, "/v2/models/{name}"),
    (Method::GET, "/v2/models/{name}/ready"),
    (Method::POST, "/v2/models/{name}/infer"),
    (Method::GET, "/v2/models/{name}/versions/{version}"),
    (Method::GET, "/v2/models/{name}/versions/{version}/ready"),
    (Method::POST, "/v2/models/{name}/versions/{version}/infer"),
];

impl Keys {
    /// Blank entries (`NNSERVE_API_KEYS=a,,b`, a trailing comma) are not keys.
    pub fn new(full: &[String], predict: &[String]) -> Self {
        let keep = |keys: &[String]| {
            keys.iter()
                .map(|k| k.trim())
                .filter(|k| !k.is_empty())
                .map(|k| k.as_bytes().to_vec())
                .collect()
        };
        Self {
            full: keep(full),
            predict: keep(predict),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.full.is_empty() && self.predict.is_empty()
    }

    /// The access `presented` grants. Every configured key is compared, each in constant
    /// time, so the answer's timing does not tell which key (or how much of one) matched.
    fn access(&self, presented: &[u8]) -> Option<Access> {
        let any = |keys: &[Vec<u8>]| {
            keys.iter().fold(Choice::from(0), |hit, key| {
                hit | key.as_slice().ct_eq(presented)
            })
        };
        let (full, predict) = (any(&self.full), any(&self.predict));
        if bool::from(full) {
            Some(Access::Full)
        } else if bool::from(predict) {
            Some(Access::Predict)
        } else {
            None
        }
    }
}

pub async fn require_key(State(keys): State<Keys>, request: Request, next: Next) -> Response {
    match authorize(&keys, &request) {
        Ok(()) => next.run(request).await,
        Err(err) => axum::response::IntoResponse::into_response(err),
    }
}

fn authorize(keys: &Keys, request: &Request) -> Result<(), Error> {
    let path = request.uri().path();
    if keys.is_empty() || OPEN.contains(&path) {
        return Ok(());
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            Error::Unauthorized("an API key is required: send Authorization: Bearer <key>".into())
        })?
        .as_bytes();
    let token = bearer_token(presented).ok_or_else(|| {
        Error::Unauthorized("the Authorization header must be \"Bearer <key>\"".into())
    })?;
    match keys.access(token) {
        None => Err(Error::Unauthorized("the API key is not valid".into())),
        Some(Access::Full) => Ok(()),
        Some(Access::Predict) => {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str);
            let allowed = PREDICT_ROUTES
                .iter()
                .any(|(method, pattern)| request.method() == method && route == Some(*pattern));
            let scores = route.is_some_and(|r| SCORE_ROUTES.contains(&r));
            if allowed && scores && names_a_dataset(request) {
                Err(Error::Forbidden(
                    "a predict key may not score a stored dataset (dataset_id): the answer \
                     would show the dataset's rows, which a predict key may not read"
                        .into(),
                ))
            } else if allowed {
                Ok(())
            } else {
                Err(Error::Forbidden(format!(
                    "a predict key may only read models and call predict and evaluate, not {} {path}",
                    request.method()
                )))
            }
        }
    }
}

/// The routes whose `?dataset_id=` reads a stored dataset.
const SCORE_ROUTES: [&str; 2] = [
    "/models/{ref}/predict",
    "/models/{name}/versions/{version}/predict",
];

/// Whether the query has a `dataset_id`, decoded as the handler decodes it (so an encoded
/// name cannot slip past).
fn names_a_dataset(request: &Request) -> bool {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .is_ok_and(|query| query.0.iter().any(|(name, _)| name == "dataset_id"))
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 7235).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_grant_their_access_and_nothing_else() {
        let keys = Keys::new(&["full-1".into(), " ".into()], &["pred".into()]);
        assert_eq!(keys.access(b"full-1"), Some(Access::Full));
        assert_eq!(keys.access(b"pred"), Some(Access::Predict));
        assert_eq!(keys.access(b"full-"), None, "a prefix is not the key");
        assert_eq!(keys.access(b"full-12"), None);
        assert_eq!(keys.access(b""), None, "a blank entry is not a key");
        assert!(Keys::new(&[",".into()][..0], &[]).is_empty());
    }

    #[test]
    fn only_the_bearer_scheme_carries_a_key() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bear"), None);
    }
}
