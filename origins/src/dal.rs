//! [`DalClient`]: the OpenDAL operator wrapper both OpenDAL-backed origins
//! (`S3Origin`, `WebDavOrigin`) share: path checks, error classification,
//! listing, ranged reads, every call through [`remote::call`] (OpenDAL's
//! own retry layer is not installed, so retries are not multiplied).
use crate::remote::{self, CallSite, Cancel, RemoteOptions};
use crate::{Entry, Error, Result, Secret};
use futures::TryStreamExt;
use opendal::{EntryMode, ErrorKind, Metadata, Operator};

/// An OpenDAL operator with musicfs's call discipline around it: checked
/// relative paths, per-call time limits and retries, errors classified
/// (transient or not, which errno) and scrubbed of secrets.
pub(crate) struct DalClient {
    name: String,
    op: Operator,
    opts: RemoteOptions,
    pub(crate) cancel: Cancel,
    /// Values that must never appear in an error message.
    secrets: Vec<Secret>,
}

impl DalClient {
    pub(crate) fn new(
        name: String,
        op: Operator,
        opts: RemoteOptions,
        secrets: Vec<Secret>,
    ) -> DalClient {
        DalClient {
            name,
            op,
            opts,
            cancel: Cancel::default(),
            secrets,
        }
    }

    /// Runs one remote operation with the origin's time limits, retries
    /// and cancellation; OpenDAL errors become [`Error::Remote`].
    fn call<T, F, Fut>(&self, op_name: &'static str, path: &str, attempt: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Operator, String) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = opendal::Result<T>> + Send + 'static,
    {
        let op = self.op.clone();
        let origin = self.name.clone();
        let owned_path = path.to_string();
        let secrets = self.secrets.clone();
        remote::call(
            &self.opts,
            &self.cancel,
            CallSite {
                origin: &self.name,
                op: op_name,
                path,
            },
            move || {
                let fut = attempt(op.clone(), owned_path.clone());
                let origin = origin.clone();
                let path = owned_path.clone();
                let secrets = secrets.clone();
                async move {
                    fut.await
                        .map_err(|e| remote_error(&origin, op_name, &path, &e, &secrets))
                }
            },
        )
    }

    /// The regular files below the root, in path order, and how many
    /// entries of any kind (directories too) the server named.
    pub(crate) fn list(&self) -> Result<(Vec<Entry>, usize)> {
        let listed = self.call("list", "", |op, _| async move {
            op.list_with("/").recursive(true).await
        })?;
        let named = listed.len();
        let mut entries: Vec<Entry> = listed
            .into_iter()
            .filter(|e| e.metadata().mode() == EntryMode::FILE)
            .filter(|e| !e.path().ends_with('/'))
            .filter(|e| !e.path().split('/').any(|c| c.starts_with('.')))
            .map(|e| entry_of(e.path().trim_start_matches('/'), e.metadata()))
            .collect();
        entries.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
        Ok((entries, named))
    }

    pub(crate) fn stat(&self, rel_path: &[u8]) -> Result<Entry> {
        let path = self.checked(rel_path, "stat")?;
        let meta = self.call("stat", &path, |op, p| async move { op.stat(&p).await })?;
        if meta.mode() != EntryMode::FILE {
            return Err(self.refused("stat", &path, "not a regular file", libc::EISDIR));
        }
        Ok(entry_of(&path, &meta))
    }

    /// One ranged GET of `[offset, offset + len)`. The server answers with
    /// the satisfiable part of the range, so a short body means the file
    /// ended there, and a range starting past the end (416) reads 0 bytes,
    /// as pread does. No stat first: one request per read.
    pub(crate) fn read_at(&self, rel_path: &[u8], offset: u64, buf: &mut [u8]) -> Result<usize> {
        let path = self.checked(rel_path, "read")?;
        if buf.is_empty() {
            return Ok(0);
        }
        let end = offset.saturating_add(buf.len() as u64);
        let got = self.call("read", &path, move |op, p| async move {
            let reader = op.reader_with(&p).await?;
            let mut stream = match reader.into_stream(offset..end).await {
                Ok(stream) => stream,
                Err(e) if past_the_end(&e) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut chunks = Vec::new();
            loop {
                match stream.try_next().await {
                    Ok(Some(chunk)) => chunks.push(chunk),
                    Ok(None) => return Ok(chunks),
                    Err(e) if ended_early(&e) || past_the_end(&e) => return Ok(chunks),
                    Err(e) => return Err(e),
                }
            }
        })?;
        let mut filled = 0;
        for bytes in got.into_iter().flatten() {
            let n = bytes.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&bytes[..n]);
            filled += n;
        }
        Ok(filled)
    }

    /// The first page of a listing, at most one entry.
    pub(crate) fn ping_list(&self) -> Result<()> {
        self.call("ping", "", |op, _| async move {
            let mut lister = op.lister_with("/").limit(1).await?;
            lister.try_next().await.map(|_| ())
        })
    }

    /// One listing of the root collection (a `PROPFIND` with depth 1),
    /// which must name at least the collection itself. OpenDAL answers a
    /// stat of the root without asking the server, and reports a missing
    /// collection as an empty listing: neither proves anything.
    pub(crate) fn ping_root(&self) -> Result<()> {
        let seen = self.call("ping", "", |op, _| async move {
            let mut lister = op.lister("/").await?;
            lister.try_next().await.map(|e| e.is_some())
        })?;
        if seen {
            Ok(())
        } else {
            // EIO, not ENOENT: the origin itself is broken, and health
            // checks must count it.
            Err(self.refused("ping", "", "the root collection does not exist", libc::EIO))
        }
    }

    /// The relative path as OpenDAL wants it, refusing anything that could
    /// name something outside the root.
    fn checked(&self, rel_path: &[u8], op: &'static str) -> Result<String> {
        check_rel_path(rel_path)
            .map_err(|why| self.refused(op, &String::from_utf8_lossy(rel_path), &why, libc::EINVAL))
    }

    fn refused(&self, op: &'static str, path: &str, message: &str, errno: i32) -> Error {
        Error::Remote {
            origin: self.name.clone(),
            op,
            path: path.to_string(),
            message: message.to_string(),
            transient: false,
            errno,
        }
    }
}

/// OpenDAL's complaint when a ranged body is complete (the transport
/// checked its Content-Length) but shorter than the range asked for: the
/// range ran past the end of the file.
fn ended_early(e: &opendal::Error) -> bool {
    e.kind() == ErrorKind::Unexpected && e.message() == "reader got too little data"
}

/// 416: the range starts at or past the end of the file (S3 says so with
/// a code OpenDAL knows, WebDAV servers only with the status).
fn past_the_end(e: &opendal::Error) -> bool {
    e.kind() == ErrorKind::RangeNotSatisfied || http_status(e) == Some(416)
}

/// A relative path that stays below the root: UTF-8 (object keys and
/// URLs are), not empty, no leading `/`, no empty, `.` or `..` component.
pub(crate) fn check_rel_path(rel_path: &[u8]) -> std::result::Result<String, String> {
    crate::beneath::check_rel(rel_path).map_err(|e| e.to_string())?;
    std::str::from_utf8(rel_path)
        .map(str::to_string)
        .map_err(|_| "path is not UTF-8".to_string())
}

fn entry_of(rel_path: &str, meta: &Metadata) -> Entry {
    let mtime_ns = meta
        .last_modified()
        .map(std::time::SystemTime::from)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Entry {
        rel_path: rel_path.as_bytes().to_vec(),
        size: meta.content_length(),
        mtime_ns,
    }
}

/// Classifies an OpenDAL error: missing → ENOENT, refused → EACCES (both
/// final), throttling and OpenDAL's temporary errors (connection failures,
/// 5xx) → transient EIO, the rest final EIO.
pub(crate) fn remote_error(
    origin: &str,
    op: &'static str,
    path: &str,
    e: &opendal::Error,
    secrets: &[Secret],
) -> Error {
    let status = http_status(e);
    let (errno, transient) = match e.kind() {
        ErrorKind::NotFound => (libc::ENOENT, false),
        // Some WebDAV servers answer 403 for a locked file and OpenDAL marks
        // it temporary; musicfs never writes, so a 403 is a refusal.
        ErrorKind::PermissionDenied => (libc::EACCES, false),
        ErrorKind::IsADirectory => (libc::EISDIR, false),
        ErrorKind::NotADirectory => (libc::ENOTDIR, false),
        ErrorKind::RateLimited => (libc::EIO, true),
        _ if status == Some(401) => (libc::EACCES, false),
        _ => (libc::EIO, e.is_temporary()),
    };
    Error::Remote {
        origin: origin.to_string(),
        op,
        path: path.to_string(),
        message: describe(e, secrets),
        transient,
        errno,
    }
}

/// The HTTP status OpenDAL recorded in the error's context, if any.
fn http_status(e: &opendal::Error) -> Option<u16> {
    let text = e.to_string();
    let at = text.find("status: ")? + "status: ".len();
    text[at..].get(..3)?.parse().ok()
}

/// A message for admins: the kind, the server's message and the causes,
/// but not OpenDAL's context (it carries whole response headers), cut to a
/// sane length, with every secret replaced.
pub(crate) fn describe(e: &opendal::Error, secrets: &[Secret]) -> String {
    let mut text = match http_status(e) {
        Some(status) => format!("{} (HTTP {status})", e.kind()),
        None => e.kind().to_string(),
    };
    let message = e.message().trim();
    if !message.is_empty() {
        text.push_str(": ");
        text.push_str(message);
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    scrub(cut(text, 600), secrets)
}

fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Replaces every occurrence of a secret (a server may echo a header back).
pub(crate) fn scrub(mut text: String, secrets: &[Secret]) -> String {
    for s in secrets.iter().filter(|s| s.expose().len() >= 4) {
        text = text.replace(s.expose(), "<redacted>");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_root() {
        for bad in [
            &b""[..],
            b"/abs",
            b"a//b",
            b"a/",
            b"..",
            b"a/../b",
            b"./a",
            b"a/.",
            b"\xff.flac",
            b"a\0b",
        ] {
            assert!(
                check_rel_path(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            check_rel_path("Björk/Jóga.flac".as_bytes()).unwrap(),
            "Björk/Jóga.flac"
        );
        assert_eq!(check_rel_path(b"a/..b/c...").unwrap(), "a/..b/c...");
    }

    #[test]
    fn errors_are_classified() {
        let site = |e: opendal::Error| remote_error("o", "read", "a", &e, &[]);
        let e = site(opendal::Error::new(ErrorKind::NotFound, "gone"));
        assert_eq!((e.errno(), e.is_transient()), (libc::ENOENT, false));
        let e = site(opendal::Error::new(ErrorKind::PermissionDenied, "no").set_temporary());
        assert_eq!((e.errno(), e.is_transient()), (libc::EACCES, false));
        let e = site(opendal::Error::new(ErrorKind::RateLimited, "slow down"));
        assert_eq!((e.errno(), e.is_transient()), (libc::EIO, true));
        let e = site(opendal::Error::new(ErrorKind::Unexpected, "refused").set_temporary());
        assert_eq!((e.errno(), e.is_transient()), (libc::EIO, true));
        let e = site(opendal::Error::new(ErrorKind::Unexpected, "bad request"));
        assert_eq!((e.errno(), e.is_transient()), (libc::EIO, false));
        let e = site(
            opendal::Error::new(ErrorKind::Unexpected, "who are you")
                .with_context("response", "Parts { status: 401, version: HTTP/1.1 }"),
        );
        assert_eq!((e.errno(), e.is_transient()), (libc::EACCES, false));
        assert!(e.to_string().contains("HTTP 401"), "{e}");
    }

    #[test]
    fn messages_hold_no_secret_and_no_headers() {
        let secret = Secret::new("hunter2-very-secret");
        let e = opendal::Error::new(
            ErrorKind::PermissionDenied,
            "key hunter2-very-secret refused",
        )
        .with_context(
            "response",
            "Parts { status: 403, headers: {\"x-amz-id\": \"1\"} }",
        );
        let text = describe(&e, &[secret]);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("x-amz-id"), "{text}");
        assert!(text.contains("HTTP 403"), "{text}");
    }
}
