//! The browser console, served from the binary at `/console/` (files embedded by `build.rs`).
//!
//! Nothing the page loads comes from elsewhere, and the Content-Security-Policy says so: scripts,
//! styles and connections are limited to this node. Files carry a strong `ETag` (a client that
//! has a file gets `304`) and go out gzip-compressed when the client accepts it, compressed once
//! per file on first request.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{LazyLock, OnceLock};

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/console_files.rs"));
}

/// Where the console lives.
pub const PREFIX: &str = "/console/";

/// No inline script or style, no other origin: the page talks only to this node.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'none'";

/// Files smaller than this are sent as they are: compressing them saves nothing worth a header.
const GZIP_MIN_BYTES: usize = 1024;

struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
    gzip: OnceLock<Option<Vec<u8>>>,
}

static ASSETS: LazyLock<HashMap<&'static str, Asset>> = LazyLock::new(|| {
    embedded::FILES
        .iter()
        .map(|&(path, bytes)| {
            let digest = Sha256::digest(bytes);
            let etag = HeaderValue::from_str(&format!(
                "\"{}\"",
                hex::encode(digest.get(..16).unwrap_or_default())
            ))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
            let asset = Asset {
                bytes,
                content_type: content_type(path),
                etag,
                gzip: OnceLock::new(),
            };
            (path, asset)
        })
        .collect()
});

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET /console`: the console's address ends in a slash, so relative links resolve.
pub async fn redirect_to_console() -> Response {
    redirect(StatusCode::PERMANENT_REDIRECT)
}

/// A `303 See Other` to the console, for a browser's `GET /`.
pub fn redirect(status: StatusCode) -> Response {
    (status, [(header::LOCATION, PREFIX)]).into_response()
}

/// `GET /console/`.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /console/{*path}`: a file of the table, else 404. Paths are looked up, never joined
/// to a directory, so `..` finds nothing.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.get(path) else {
        return with_policy(
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain")],
                "Not found",
            )
                .into_response(),
        );
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tags| matches_etag(tags, &asset.etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if accepts_gzip(headers)
        && let Some(gzip) = asset.gzip.get_or_init(|| compress(asset.bytes)).as_deref()
    {
        let mut response = gzip.to_vec().into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        asset.bytes.into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::ETAG, asset.etag.clone());
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    with_policy(response)
}

fn with_policy(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn matches_etag(tags: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(tags) = tags.to_str() else { return false };
    let Ok(etag) = etag.to_str() else { return false };
    tags.split(',').map(str::trim).any(|t| t == etag || t == "*")
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn compress(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < GZIP_MIN_BYTES {
        return None;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// Whether a request's `Accept` header asks for a page (a browser's navigation).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_accepted_unless_refused() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        assert!(accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0, br"));
        assert!(!accepts_gzip(&h));
    }

    #[test]
    fn every_file_has_a_type_and_the_index_is_there() {
        assert!(ASSETS.contains_key("index.html"));
        assert!(ASSETS.values().all(|a| !a.content_type.is_empty()));
        assert_eq!(content_type("js/main.js"), "text/javascript; charset=utf-8");
    }
}
