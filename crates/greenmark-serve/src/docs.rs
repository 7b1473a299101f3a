//! What the service says about itself: the web page at `/` (a form on `POST /v1/detect`)
//! and the OpenAPI document at `/openapi.json`. Both are files compiled into the binary.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The OpenAPI 3.1 description of every endpoint.
pub const OPENAPI: &str = include_str!("../static/openapi.json");
const PAGE: &str = include_str!("../static/page.html");
const SCRIPT: &str = include_str!("../static/page.js");
const STYLE: &str = include_str!("../static/page.css");

/// Only this service's own files may run or style the page, and it may not be framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self'; form-action 'none'; \
                      frame-ancestors 'none'; base-uri 'none'";

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the detector page.
pub(crate) async fn page() -> Response {
    file("text/html; charset=utf-8", PAGE)
}

/// `GET /page.js`.
pub(crate) async fn script() -> Response {
    file("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /page.css`.
pub(crate) async fn style() -> Response {
    file("text/css; charset=utf-8", STYLE)
}

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> Response {
    file("application/json", OPENAPI)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        for route in crate::api::ROUTES {
            assert!(
                doc["paths"][route].is_object(),
                "{route} is not in openapi.json"
            );
        }
        assert_eq!(
            doc["paths"].as_object().unwrap().len(),
            crate::api::ROUTES.len(),
            "openapi.json documents a route the service does not have"
        );
    }
}
