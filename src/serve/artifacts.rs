//! A job's artifacts over HTTP: `GET /api/v1/jobs/{id}/artifacts` lists the
//! files its isolated tool left in the workspace's `artifacts/` folder
//! (kept in the job's directory when the run ended, see
//! `jobs::artifacts_dir`), and `GET /api/v1/jobs/{id}/artifacts/{name}`
//! streams one of them. The same ownership rule as `GET /api/v1/jobs/{id}`
//! (a job of another principal is "not found" unless the caller is an
//! admin). Names are percent-decoded once and checked by
//! `workspace::artifact_name` (no `..`, absolute path, NUL byte, empty
//! part); the resolved file must stay inside the folder (a symlink leading
//! out is "not found") and weigh at most `GATHM_MAX_ARTIFACT_MB` (default
//! 64; 413 past it). The body is read in 64 KiB chunks, never whole.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::bodies::{Artifact, ArtifactList};
use super::http::{self, Reply, error, error_with};
use super::{App, HResult, Outcome};
use crate::workspace::{self, OpenError};

/// Largest artifact served, in bytes (`GATHM_MAX_ARTIFACT_MB`, 1 to
/// 1,048,576; default 64).
pub fn max_bytes() -> u64 {
    let mb: u64 = crate::config::env_parse("GATHM_MAX_ARTIFACT_MB")
        .filter(|n| (1..=1 << 20).contains(n))
        .unwrap_or(64);
    mb << 20
}

/// An artifact ready to stream.
#[derive(Debug)]
pub struct Download {
    opened: workspace::Opened,
    name: String,
}

/// `GET /api/v1/jobs/{id}/artifacts`: `{job_id, status, count, truncated,
/// max_bytes, artifacts: [{name, size, url}]}`. A job that has not ended
/// (or whose tool is not isolated) lists nothing.
pub(super) fn list(app: &App, id: &str, owner: &str, admin: bool) -> HResult {
    let job = app
        .jobs
        .get(id, owner, admin)
        .ok_or_else(super::job_not_found)?;
    let dir = app.jobs.artifacts(&job.id);
    let (files, more) = workspace::list_artifacts(&dir)
        .map_err(|e| error(500, &format!("cannot list the artifacts: {e}")))?;
    let artifacts: Vec<_> = files
        .iter()
        .map(|a| Artifact {
            name: a.name.clone(),
            size: a.size,
            url: format!("/api/v1/jobs/{}/artifacts/{}", job.id, encode(&a.name)),
        })
        .collect();
    Ok(Reply::json(
        200,
        &ArtifactList {
            job_id: job.id.clone(),
            status: job.status,
            count: artifacts.len(),
            truncated: more,
            max_bytes: max_bytes(),
            artifacts,
        },
    )
    .into())
}

/// `GET /api/v1/jobs/{id}/artifacts/{name}`: the file's bytes.
pub(super) fn fetch(app: &App, id: &str, raw: &str, owner: &str, admin: bool) -> HResult {
    let job = app
        .jobs
        .get(id, owner, admin)
        .ok_or_else(super::job_not_found)?;
    let name =
        decode(raw).ok_or_else(|| error(400, "invalid percent-encoding in the artifact name"))?;
    let rel = workspace::artifact_name(&name)
        .map_err(|workspace::BadName::Invalid(why)| error_with(400, why, json!({"name": name})))?;
    let dir = app.jobs.artifacts(&job.id);
    let max = max_bytes();
    match workspace::open_artifact(&dir, &rel, max) {
        Ok(opened) => Ok(Outcome::File(Box::new(Download { opened, name }))),
        Err(OpenError::NotFound) => {
            Err(error_with(404, "Artifact not found", json!({"name": name})))
        }
        Err(OpenError::TooLarge { size }) => Err(error_with(
            413,
            "artifact larger than GATHM_MAX_ARTIFACT_MB",
            json!({"name": name, "size": size, "max_bytes": max}),
        )),
        Err(OpenError::Io(e)) => Err(error(500, &format!("cannot read the artifact: {e}"))),
    }
}

/// The response streaming a download: exactly its size at opening, in
/// 64 KiB chunks, as an attachment.
pub(super) fn respond(d: Download) -> Response {
    let size = d.opened.size;
    let state = (d.opened.file, size);
    let stream = futures_util::stream::unfold(state, |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(64 * 1024) as usize];
        match f.read(&mut buf) {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the artifact shrank while it was sent",
                )),
                (f, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (f, left - n as u64)))
            }
            Err(e) => Some((Err(e), (f, 0))),
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    for (k, v) in http::SECURITY_HEADERS {
        h.insert(k, HeaderValue::from_static(v));
    }
    h.insert(
        "Content-Type",
        HeaderValue::from_static(content_type(&d.name)),
    );
    if let Ok(v) = HeaderValue::from_str(&size.to_string()) {
        h.insert("Content-Length", v);
    }
    let file = d.name.rsplit('/').next().unwrap_or("artifact");
    let disposition = format!("attachment; filename*=UTF-8''{}", encode(file));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert("Content-Disposition", v);
    }
    resp
}

/// The content types named from an extension, for a few inert types;
/// anything else is `application/octet-stream` (never HTML, never inline).
pub const TYPES: [(&str, &str); 10] = [
    ("txt", "text/plain; charset=utf-8"),
    ("log", "text/plain; charset=utf-8"),
    ("json", "application/json"),
    ("csv", "text/csv; charset=utf-8"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("pdf", "application/pdf"),
    ("gz", "application/gzip"),
    ("zip", "application/zip"),
];

/// The default content type of an artifact.
pub const OCTETS: &str = "application/octet-stream";

fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    TYPES
        .iter()
        .find(|(e, _)| ext.as_deref() == Some(*e))
        .map_or(OCTETS, |(_, t)| *t)
}

/// Percent-decode a path (`+` stays `+`); `None` for a bad escape or
/// bytes that are not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encode everything but unreserved characters and `/`.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_escapes_are_refused() {
        assert_eq!(decode("a%20b/c+d").as_deref(), Some("a b/c+d"));
        assert_eq!(decode("..%2f..%2fetc").as_deref(), Some("../../etc"));
        assert_eq!(decode("%2e%2e").as_deref(), Some(".."));
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%ff"), None);
        let name = "d/ä b&c.txt";
        assert_eq!(decode(&encode(name)).as_deref(), Some(name));
        assert_eq!(encode("x/y z"), "x/y%20z");
    }

    #[test]
    fn only_inert_types_are_named() {
        assert_eq!(content_type("a.TXT"), "text/plain; charset=utf-8");
        assert_eq!(content_type("page.html"), "application/octet-stream");
        assert_eq!(content_type("x.svg"), "application/octet-stream");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
