//! The plain HTTP side of the one port: the web client's static files (embedded at build
//! time from `static/`), served with a strict content security policy.

use wsproto::{OutgoingResponse, Request};

/// Where the WebSocket is; a plain GET there gets 426.
pub(crate) const WS_PATH: &str = "/ws";

const INDEX_HTML: &str = include_str!("../static/index.html");
const APP_JS: &str = include_str!("../static/app.js");
const STYLE_CSS: &str = include_str!("../static/style.css");

/// The answer to a request that is not a WebSocket upgrade.
pub(crate) fn respond(request: &Request) -> OutgoingResponse {
    if request.method() != "GET" && request.method() != "HEAD" {
        return OutgoingResponse::new(405).header("Allow", "GET").text("method not allowed\n");
    }
    match request.path() {
        "/" | "/index.html" => static_response("text/html; charset=utf-8", INDEX_HTML),
        "/app.js" => static_response("text/javascript; charset=utf-8", APP_JS),
        "/style.css" => static_response("text/css; charset=utf-8", STYLE_CSS),
        WS_PATH => OutgoingResponse::upgrade_required(),
        _ => OutgoingResponse::new(404).text("not found\n"),
    }
}

fn static_response(content_type: &str, body: &str) -> OutgoingResponse {
    OutgoingResponse::new(200)
        .body(content_type, body.as_bytes().to_vec())
        .header("Cache-Control", "no-cache")
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer")
        .header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
}
