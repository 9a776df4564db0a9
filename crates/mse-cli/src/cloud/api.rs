//! A thin client of the node API (shape of the original MSE SaaS API, served by `mse-node`).
//!
//! Every call sends the bearer token; every failure is one line naming the method, the URL,
//! the HTTP status and the node's `{"error": ...}` message. The token never appears in one.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Largest JSON answer read from the node (logs are at most 64 kB, lists are small).
const MAX_RESPONSE_BYTES: u64 = 8 << 20;
/// Time for one ordinary API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest an upload may stall (one write to the node not accepted).
const UPLOAD_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for the node's answer once the whole request is sent.
const UPLOAD_ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

/// An app as the node describes it. Only `id`, `name` and `status` are required: the rest is
/// read when present so that small API changes do not break the client.
#[derive(Debug, Clone, Deserialize)]
pub struct App {
    pub id: String,
    pub name: String,
    pub status: String,
    /// Where end users reach the app (the owner's domain in owner mode).
    #[serde(default)]
    pub domain_name: Option<String>,
    /// The enclave's RA-TLS certificate SAN, and the SNI the router routes on.
    #[serde(default)]
    pub config_domain_name: Option<String>,
    #[serde(default)]
    pub docker: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub ready_at: Option<String>,
    #[serde(default)]
    pub stopped_at: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Owner mode: SHA-256 (hex) of the certificate chain the node gave the enclave.
    #[serde(default)]
    pub owner_certificate_sha256: Option<String>,
    #[serde(default)]
    pub exit_reason: Option<String>,
    #[serde(default)]
    pub hardware_name: Option<String>,
    #[serde(default)]
    pub enclave_size: Option<u64>,
    #[serde(default)]
    pub ssl_certificate_origin: Option<String>,
    #[serde(default)]
    pub python_application: Option<String>,
    #[serde(default)]
    pub healthcheck_endpoint: Option<String>,
    /// The TEE the node runs apps in.
    #[serde(default)]
    pub tee: Option<mse_launch::TeeKind>,
    /// The app's launch spec, once the node built its environment (its hash is the
    /// measurement the simulated TEE reports).
    #[serde(default)]
    pub launch_spec: Option<mse_launch::LaunchSpec>,
    /// SHA-256 of what runs the app (hex): the `mse-enclave` executable, or the guest
    /// image's `image.json` on a VM node.
    #[serde(default)]
    pub runtime_digest: Option<String>,
    /// Environment digest of the app's virtualenv (hex), known once it is built.
    #[serde(default)]
    pub environment_digest: Option<String>,
    /// The lock the environment was packed from (`mse_launch::envlock::EnvLock`, checked only
    /// by `--rebuild-env`).
    #[serde(default)]
    pub environment_lock: Option<serde_json::Value>,
    /// The SNI router's address (`host:port`).
    #[serde(default)]
    pub router_address: Option<String>,
}

impl App {
    /// Replaces control characters in every text the node sent, so that printing an app
    /// cannot drive the terminal (escape sequences) or fake extra lines.
    fn sanitized(mut self) -> App {
        let clean = |s: &mut String| {
            if s.chars().any(char::is_control) {
                *s = s
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
            }
        };
        for s in [&mut self.id, &mut self.name, &mut self.status] {
            clean(s);
        }
        for s in [
            &mut self.domain_name,
            &mut self.config_domain_name,
            &mut self.docker,
            &mut self.created_at,
            &mut self.ready_at,
            &mut self.stopped_at,
            &mut self.expires_at,
            &mut self.owner_certificate_sha256,
            &mut self.exit_reason,
            &mut self.hardware_name,
            &mut self.ssl_certificate_origin,
            &mut self.python_application,
            &mut self.healthcheck_endpoint,
            &mut self.runtime_digest,
            &mut self.environment_digest,
            &mut self.router_address,
        ]
        .into_iter()
        .flatten()
        {
            clean(s);
        }
        self
    }
}

/// `GET /hardwares/{name}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Hardware {
    pub name: String,
    /// Enclave size in MB.
    pub enclave_size: u64,
}

/// `GET /projects?name=`.
#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub name: String,
}

/// `GET /users/me`.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    #[serde(default)]
    pub project: Option<Project>,
}

/// A multipart part streamed from a file (the code package).
pub struct FilePart<'a> {
    pub name: &'a str,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub path: &'a Path,
}

pub struct NodeClient {
    base: String,
    token: String,
    agent: ureq::Agent,
    /// Same, without a global timeout (uploads may be long; their progress shows).
    upload_agent: ureq::Agent,
}

impl NodeClient {
    pub fn new(base: &str, token: &str) -> NodeClient {
        let agent = |timeout: Option<Duration>| {
            let config = ureq::Agent::config_builder()
                .timeout_global(timeout)
                .timeout_connect(Some(Duration::from_secs(10)))
                // Uploads have no total budget, but a node that stops reading or never
                // answers must not hang the CLI forever.
                .timeout_per_write(Some(UPLOAD_STALL_TIMEOUT))
                .timeout_recv_response(Some(UPLOAD_ANSWER_TIMEOUT))
                .http_status_as_error(false)
                .user_agent(concat!("mse-cli/", env!("CARGO_PKG_VERSION")))
                .build();
            ureq::Agent::new_with_config(config)
        };
        NodeClient {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            agent: agent(Some(CALL_TIMEOUT)),
            upload_agent: agent(None),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Reads the answer of `method url`: the JSON body on 2xx, else an error with the status
    /// and the node's message.
    fn finish<T: DeserializeOwned>(
        method: &str,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<T> {
        let mut resp = result.map_err(|e| anyhow::anyhow!("{method} {url}: {e}"))?;
        let status = resp.status();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| anyhow::anyhow!("{method} {url}: reading the answer: {e}"))?;
        if !status.is_success() {
            bail!(
                "{method} {url}: {}: {}",
                status_text(status),
                error_message(&body)
            );
        }
        serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("{method} {url}: unexpected answer from the node: {e}"))
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = self.url(path);
        let result = self
            .agent
            .get(&url)
            .header("Authorization", &self.auth())
            .call();
        Self::finish("GET", &url, result)
    }

    fn post_empty<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = self.url(path);
        let result = self
            .agent
            .post(&url)
            .header("Authorization", &self.auth())
            .send_empty();
        Self::finish("POST", &url, result)
    }

    pub fn me(&self) -> anyhow::Result<Me> {
        self.get("/users/me")
    }

    pub fn project(&self, name: &str) -> anyhow::Result<Option<Project>> {
        let list: Vec<Project> = self.get(&format!("/projects?name={}", encode(name)))?;
        Ok(list.into_iter().find(|p| p.name == name))
    }

    pub fn hardware(&self, name: &str) -> anyhow::Result<Hardware> {
        self.get(&format!("/hardwares/{}", encode(name)))
    }

    pub fn app(&self, id: &str) -> anyhow::Result<App> {
        Ok(self
            .get::<App>(&format!("/apps/{}", encode(id)))?
            .sanitized())
    }

    /// `GET /apps` filtered by name and statuses (all when empty).
    pub fn apps(&self, name: Option<&str>, statuses: &[&str]) -> anyhow::Result<Vec<App>> {
        let mut query = Vec::new();
        if let Some(n) = name {
            query.push(format!("name={}", encode(n)));
        }
        if !statuses.is_empty() {
            query.push(format!("status={}", statuses.join(",")));
        }
        let path = if query.is_empty() {
            "/apps".to_owned()
        } else {
            format!("/apps?{}", query.join("&"))
        };
        let apps: Vec<App> = self.get(&path)?;
        Ok(apps.into_iter().map(App::sanitized).collect())
    }

    pub fn stop(&self, id: &str) -> anyhow::Result<App> {
        Ok(self
            .post_empty::<App>(&format!("/apps/{}/stop", encode(id)))?
            .sanitized())
    }

    /// The last 64 kB of the app's output.
    pub fn logs(&self, id: &str) -> anyhow::Result<String> {
        let v: Value = self.get(&format!("/apps/{}/logs", encode(id)))?;
        match v.get("stdout").and_then(Value::as_str) {
            Some(s) => Ok(s.to_owned()),
            None => bail!(
                "GET {}: unexpected answer from the node: no \"stdout\" field",
                self.url(&format!("/apps/{}/logs", encode(id)))
            ),
        }
    }

    /// `POST /apps`: multipart with the `conf` JSON and the code package, streamed from disk;
    /// `progress` is told how many bytes of the package were sent.
    pub fn create_app(
        &self,
        conf: &Value,
        code: &FilePart<'_>,
        progress: impl Fn(u64) + 'static,
    ) -> anyhow::Result<App> {
        let url = self.url("/apps");
        let boundary = format!("mse-{}", hex::encode(rand::random::<[u8; 16]>()));
        let mut head = Vec::new();
        head.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"conf\"\r\nContent-Type: application/json\r\n\r\n"
            )
            .as_bytes(),
        );
        head.extend_from_slice(conf.to_string().as_bytes());
        head.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                code.name, code.file_name, code.content_type
            )
            .as_bytes(),
        );
        let tail = format!("\r\n--{boundary}--\r\n").into_bytes();
        let file = super::config::open(code.path)?;
        let body = std::io::Cursor::new(head)
            .chain(Progress {
                inner: file,
                done: 0,
                report: Box::new(progress),
            })
            .chain(std::io::Cursor::new(tail));
        let result = self
            .upload_agent
            .post(&url)
            .header("Authorization", &self.auth())
            .header(
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            )
            .send(ureq::SendBody::from_owned_reader(body));
        Self::finish::<App>("POST", &url, result)
            .map(App::sanitized)
            .context("uploading the app")
    }
}

/// Counts bytes read through it.
struct Progress<R> {
    inner: R,
    done: u64,
    report: Box<dyn Fn(u64)>,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.report)(self.done);
        Ok(n)
    }
}

fn status_text(status: ureq::http::StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// The node's `{"error": "..."}` message, else the body as text (trimmed and shortened).
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && let Some(msg) = v.get("error").and_then(Value::as_str)
    {
        return one_line(msg);
    }
    let text = String::from_utf8_lossy(body);
    let text = one_line(text.trim());
    if text.is_empty() {
        "(empty answer)".to_owned()
    } else {
        text
    }
}

/// At most 300 characters on one line.
fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > 300 {
        let cut: String = flat.chars().take(300).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
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
    fn error_messages() {
        assert_eq!(
            error_message(br#"{"error":"app not found"}"#),
            "app not found"
        );
        assert_eq!(error_message(b"  plain\ntext "), "plain text");
        assert_eq!(error_message(b""), "(empty answer)");
        assert_eq!(error_message(&[b'x'; 400]).len(), 303);
        assert_eq!(
            status_text(ureq::http::StatusCode::NOT_FOUND),
            "HTTP 404 Not Found"
        );
    }

    #[test]
    fn app_texts_lose_their_control_characters() {
        let app: App = serde_json::from_value(serde_json::json!({
            "id": "a", "name": "x\u{1b}[2Jy", "status": "running\nFAKE", "exit_reason": "ok\r"
        }))
        .unwrap();
        let app = app.sanitized();
        assert_eq!(app.name, "x?[2Jy");
        assert_eq!(app.status, "running?FAKE");
        assert_eq!(app.exit_reason.as_deref(), Some("ok?"));
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("my app/ü"), "my%20app%2F%C3%BC");
        assert_eq!(encode("a-b_c.d~e"), "a-b_c.d~e");
    }
}
