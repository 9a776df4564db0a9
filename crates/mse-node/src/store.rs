//! The node's state in SQLite (bundled): projects, their hashed bearer tokens and apps.
//! One connection behind a mutex; every statement is short, so callers hold it briefly.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, Row, params};
use sha2::{Digest, Sha256};

/// Why a store operation failed; the conflict and quota variants map to HTTP statuses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file cannot be opened.
    #[error("database {path}: {source}")]
    Open {
        /// The database file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A statement failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The file was migrated by a newer mse-node: (its version, the latest this one knows).
    #[error("database schema version {0} is newer than this mse-node knows ({1})")]
    TooNew(i64, i64),
    /// Creating a project whose name is taken.
    #[error("project {0:?} already exists")]
    ProjectExists(String),
    /// A project name that names none.
    #[error("no project named {0:?}")]
    NoProject(String),
    /// A project name that is empty, too long or has control characters.
    #[error("project name {0:?} must be 1..255 characters without control characters")]
    BadProjectName(String),
    /// Another live app of the project has this name (checked by a unique index, so it holds
    /// whatever the number of concurrent deploys).
    #[error("an app named {name:?} is already alive in this project ({other}); stop it first")]
    NameTaken {
        /// The app name asked for.
        name: String,
        /// Id of the live app that holds it.
        other: String,
    },
    /// Another live app, of any project, claims this custom domain.
    #[error("domain {0:?} is already used by another app")]
    DomainTaken(String),
    /// A per-project limit of this node (named) would be exceeded.
    #[error("{0}")]
    Quota(String),
    /// The node already runs `max_apps` live apps.
    #[error("this node runs its maximum of {0} apps; try again later")]
    NodeFull(usize),
}

/// The node's limits checked when a live app is inserted, under the same lock as the insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Most live apps on the node, all projects together (`max_apps`).
    pub node_apps: usize,
    /// Most live apps per project (`max_apps_per_project`).
    pub apps: usize,
    /// Most package bytes of a project's live apps together (`max_project_package_mb`).
    pub package_bytes: u64,
}

impl Quota {
    /// No limit at all (a store opened for administration or in tests).
    pub const UNLIMITED: Quota = Quota {
        node_apps: usize::MAX,
        apps: usize::MAX,
        package_bytes: u64::MAX,
    };
}

impl StoreError {
    /// The HTTP status of an error the API client caused or must retry (a conflict, a quota,
    /// a full node), if it is one.
    pub fn client_status(&self) -> Option<u16> {
        match self {
            StoreError::NameTaken { .. } | StoreError::DomainTaken(_) => Some(409),
            StoreError::Quota(_) => Some(403),
            StoreError::NodeFull(_) => Some(503),
            _ => None,
        }
    }
}

/// Schema migrations; entry `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    created_at INTEGER NOT NULL
);
CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    project_id TEXT NOT NULL REFERENCES projects(id),
    status TEXT NOT NULL,
    domain TEXT NOT NULL,
    custom_domain TEXT,
    port INTEGER,
    pid INTEGER,
    hardware TEXT NOT NULL,
    env TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    ready_at INTEGER,
    stopped_at INTEGER,
    exit_reason TEXT,
    expires_at INTEGER NOT NULL,
    config TEXT NOT NULL
);
CREATE INDEX apps_by_project ON apps(project_id, status);
"#,
    // Uniqueness of a live app's name in its project and of a live custom domain, enforced by
    // SQLite itself so that concurrent deploys cannot both pass a check-then-insert. A database
    // written before this migration may hold duplicates: the oldest live app keeps the name
    // (or domain), the others are recorded on_error first.
    r#"
UPDATE apps SET status = 'on_error',
    stopped_at = COALESCE(stopped_at, CAST(strftime('%s', 'now') AS INTEGER) * 1000),
    exit_reason = 'another live app of this project had the same name (duplicate removed at upgrade)'
WHERE status IN ('spawning', 'initializing', 'running') AND EXISTS (
    SELECT 1 FROM apps o WHERE o.project_id = apps.project_id AND o.name = apps.name
        AND o.status IN ('spawning', 'initializing', 'running')
        AND (o.created_at < apps.created_at OR (o.created_at = apps.created_at AND o.id < apps.id)));
UPDATE apps SET status = 'on_error',
    stopped_at = COALESCE(stopped_at, CAST(strftime('%s', 'now') AS INTEGER) * 1000),
    exit_reason = 'another live app claimed the same domain (duplicate removed at upgrade)'
WHERE status IN ('spawning', 'initializing', 'running') AND custom_domain IS NOT NULL AND EXISTS (
    SELECT 1 FROM apps o WHERE o.custom_domain = apps.custom_domain
        AND o.status IN ('spawning', 'initializing', 'running')
        AND (o.created_at < apps.created_at OR (o.created_at = apps.created_at AND o.id < apps.id)));
CREATE UNIQUE INDEX apps_live_name ON apps(project_id, name)
    WHERE status IN ('spawning', 'initializing', 'running');
CREATE UNIQUE INDEX apps_live_domain ON apps(custom_domain)
    WHERE custom_domain IS NOT NULL AND status IN ('spawning', 'initializing', 'running');
"#,
];

/// App status, as in the original API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Launched; the enclave's configuration server does not answer yet.
    Spawning,
    /// The configuration server answers: waiting for the code key and secrets.
    Initializing,
    /// The app answers its health check.
    Running,
    /// Stopped by its owner, or expired (terminal).
    Stopped,
    /// Failed, timed out, or lost to a node restart (terminal; `exit_reason` says which).
    OnError,
}

impl Status {
    /// The name stored in the database and shown by the API (`on_error`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Spawning => "spawning",
            Status::Initializing => "initializing",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::OnError => "on_error",
        }
    }

    /// The status [`Status::as_str`] names; `None` for any other text.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "spawning" => Status::Spawning,
            "initializing" => Status::Initializing,
            "running" => Status::Running,
            "stopped" => Status::Stopped,
            "on_error" => Status::OnError,
            _ => return None,
        })
    }

    /// Whether the app's process is (meant to be) alive.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Status::Spawning | Status::Initializing | Status::Running
        )
    }
}

/// A project row: the unit that holds apps and bearer tokens. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// UUID v4.
    pub id: String,
    /// Unique on the node, 1..255 characters without control characters.
    pub name: String,
    /// Creation time.
    pub created_at: i64,
}

/// An app row. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// UUID v4, given by the node at deploy.
    pub id: String,
    /// mse.toml's `name`; unique among the project's live apps.
    pub name: String,
    /// Id of the owning project.
    pub project_id: String,
    /// Where the app is in its life.
    pub status: Status,
    /// Node-given domain, `<id>.<base_domain>` (the RA-TLS certificate's name).
    pub domain: String,
    /// The owner's domain in owner-certificate mode; unique among live apps.
    pub custom_domain: Option<String>,
    /// Host port of the enclave's TLS listener, once launched.
    pub port: Option<u16>,
    /// Process id of the enclave (or its VM), once launched.
    pub pid: Option<u32>,
    /// Name of its hardware tier.
    pub hardware: String,
    /// Name of its environment.
    pub env: String,
    /// Deploy time.
    pub created_at: i64,
    /// When it became `running`.
    pub ready_at: Option<i64>,
    /// When it reached a terminal status.
    pub stopped_at: Option<i64>,
    /// Why it ended, e.g. "expired" or the enclave's exit.
    pub exit_reason: Option<String>,
    /// When the node stops it.
    pub expires_at: i64,
    /// The deploy conf as the node accepted it (JSON).
    pub config: String,
}

/// Now as Unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A bearer token: 32 random bytes, hex, with a recognisable prefix.
fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    format!("mse_{}", hex::encode(raw))
}

/// SHA-256 of a bearer token: tokens are 32 random bytes, so a plain hash resists guessing.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

const APP_COLUMNS: &str = "id, name, project_id, status, domain, custom_domain, port, pid, hardware, env, created_at, ready_at, stopped_at, exit_reason, expires_at, config";

/// A project from columns `id, name, created_at` (in that order, first).
fn project_from_row(r: &Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
    })
}

fn app_from_row(r: &Row<'_>) -> rusqlite::Result<AppRecord> {
    let status: String = r.get(3)?;
    Ok(AppRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        project_id: r.get(2)?,
        status: Status::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                format!("unknown status {status:?}").into(),
            )
        })?,
        domain: r.get(4)?,
        custom_domain: r.get(5)?,
        port: r.get::<_, Option<i64>>(6)?.map(|p| p as u16),
        pid: r.get::<_, Option<i64>>(7)?.map(|p| p as u32),
        hardware: r.get(8)?,
        env: r.get(9)?,
        created_at: r.get(10)?,
        ready_at: r.get(11)?,
        stopped_at: r.get(12)?,
        exit_reason: r.get(13)?,
        expires_at: r.get(14)?,
        config: r.get(15)?,
    })
}

/// The node's database.
pub struct Store {
    conn: Mutex<Connection>,
    quota: Quota,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date;
    /// every later [`Store::insert_app`] of a live app checks `quota`.
    pub fn open(path: &Path, quota: Quota) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        let store = Store {
            conn: Mutex::new(conn),
            quota,
        };
        store.migrate()?;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let latest = MIGRATIONS.len() as i64;
        if version > latest {
            return Err(StoreError::TooNew(version, latest));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Creates a project and its first bearer token; returns both (the token only exists here).
    pub fn create_project(&self, name: &str) -> Result<(Project, String), StoreError> {
        if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
            return Err(StoreError::BadProjectName(name.to_owned()));
        }
        let token = random_token();
        let project = Project {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            created_at: now_ms(),
        };
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let exists: Option<String> = tx
            .query_row("SELECT id FROM projects WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_some() {
            return Err(StoreError::ProjectExists(name.to_owned()));
        }
        tx.execute(
            "INSERT INTO projects (id, name, created_at) VALUES (?1, ?2, ?3)",
            params![project.id, project.name, project.created_at],
        )?;
        tx.execute(
            "INSERT INTO tokens (hash, project_id, created_at) VALUES (?1, ?2, ?3)",
            params![token_hash(&token), project.id, project.created_at],
        )?;
        tx.commit()?;
        Ok((project, token))
    }

    /// A new bearer token for an existing project (the older ones stay valid).
    pub fn new_token(&self, name: &str) -> Result<String, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let id: String = tx
            .query_row("SELECT id FROM projects WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NoProject(name.to_owned()))?;
        let token = random_token();
        tx.execute(
            "INSERT INTO tokens (hash, project_id, created_at) VALUES (?1, ?2, ?3)",
            params![token_hash(&token), id, now_ms()],
        )?;
        tx.commit()?;
        Ok(token)
    }

    /// Every project with its number of tokens, by name.
    pub fn projects(&self) -> Result<Vec<(Project, u64)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT p.id, p.name, p.created_at, (SELECT COUNT(*) FROM tokens t WHERE t.project_id = p.id) FROM projects p ORDER BY p.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((project_from_row(r)?, r.get::<_, i64>(3)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The project a bearer token belongs to.
    pub fn project_for_token(&self, token: &str) -> Result<Option<Project>, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT p.id, p.name, p.created_at FROM tokens t JOIN projects p ON p.id = t.project_id WHERE t.hash = ?1",
                [token_hash(token)],
                project_from_row,
            )
            .optional()?)
    }

    /// The project with id `id`.
    pub fn project(&self, id: &str) -> Result<Option<Project>, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT id, name, created_at FROM projects WHERE id = ?1",
                [id],
                project_from_row,
            )
            .optional()?)
    }

    /// Inserts an app. A live app whose name is already alive in its project, or whose custom
    /// domain another live app claims, is refused ([`StoreError::NameTaken`],
    /// [`StoreError::DomainTaken`]) by the unique indexes, in the same statement that inserts;
    /// one beyond the node's or its project's limits ([`StoreError::NodeFull`],
    /// [`StoreError::Quota`]) by a count under the same lock.
    pub fn insert_app(&self, app: &AppRecord) -> Result<(), StoreError> {
        let conn = self.lock();
        if app.status.is_live() {
            // Counted under the connection's lock, which the insert below also holds:
            // concurrent deploys see each other.
            let q = self.quota;
            let (node_apps, apps, bytes): (i64, i64, i64) = conn.query_row(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE project_id = ?1), COALESCE(SUM(json_extract(config, '$.package_bytes')) FILTER (WHERE project_id = ?1), 0) FROM apps WHERE status IN ('spawning', 'initializing', 'running')",
                [&app.project_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let mine: i64 = serde_json::from_str::<serde_json::Value>(&app.config)
                .ok()
                .and_then(|c| c["package_bytes"].as_i64())
                .unwrap_or(0);
            if node_apps as u64 >= q.node_apps as u64 {
                return Err(StoreError::NodeFull(q.node_apps));
            }
            if apps as u64 >= q.apps as u64 {
                return Err(StoreError::Quota(format!(
                    "this project already runs {apps} apps, the most this node allows per project (max_apps_per_project = {}); stop one first",
                    q.apps
                )));
            }
            if (bytes + mine) as u64 > q.package_bytes {
                return Err(StoreError::Quota(format!(
                    "this project's live apps would hold {} MiB of packages, more than this node allows per project (max_project_package_mb = {})",
                    (bytes + mine) as u64 >> 20,
                    q.package_bytes >> 20
                )));
            }
        }
        let inserted = conn.execute(
            &format!("INSERT INTO apps ({APP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
            params![
                app.id,
                app.name,
                app.project_id,
                app.status.as_str(),
                app.domain,
                app.custom_domain,
                app.port.map(i64::from),
                app.pid.map(i64::from),
                app.hardware,
                app.env,
                app.created_at,
                app.ready_at,
                app.stopped_at,
                app.exit_reason,
                app.expires_at,
                app.config,
            ],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                if msg.contains("apps.custom_domain") {
                    return Err(StoreError::DomainTaken(
                        app.custom_domain.clone().unwrap_or_default(),
                    ));
                }
                if !msg.contains("apps.name") {
                    return Err(StoreError::Sql(rusqlite::Error::SqliteFailure(
                        e,
                        Some(msg),
                    )));
                }
                // Still under the lock: the app that holds the name is the one just checked.
                let other: Option<String> = conn
                    .query_row(
                        "SELECT id FROM apps WHERE project_id = ?1 AND name = ?2 AND status IN ('spawning', 'initializing', 'running')",
                        params![app.project_id, app.name],
                        |r| r.get(0),
                    )
                    .optional()?;
                Err(StoreError::NameTaken {
                    name: app.name.clone(),
                    other: other.unwrap_or_default(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The app with id `id`, whatever its status.
    pub fn app(&self, id: &str) -> Result<Option<AppRecord>, StoreError> {
        Ok(self
            .lock()
            .query_row(
                &format!("SELECT {APP_COLUMNS} FROM apps WHERE id = ?1"),
                [id],
                app_from_row,
            )
            .optional()?)
    }

    /// Apps of `project_id`, newest first, optionally filtered by name and statuses.
    pub fn list_apps(
        &self,
        project_id: &str,
        name: Option<&str>,
        statuses: Option<&[Status]>,
    ) -> Result<Vec<AppRecord>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE project_id = ?1 AND (?2 IS NULL OR name = ?2) ORDER BY created_at DESC, id"
        ))?;
        let rows = stmt.query_map(params![project_id, name], app_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            let app = row?;
            if statuses.is_none_or(|s| s.contains(&app.status)) {
                out.push(app);
            }
        }
        Ok(out)
    }

    /// Every app whose status says its process should be alive.
    pub fn live_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE status IN ('spawning', 'initializing', 'running')"
        ))?;
        let rows = stmt.query_map([], app_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether `domain` is already some live app's custom domain.
    pub fn custom_domain_taken(&self, domain: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT 1 FROM apps WHERE custom_domain = ?1 AND status IN ('spawning', 'initializing', 'running')",
                [domain],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records the digest of the virtualenv the app runs in (known once the venv is built) and
    /// the lock it was packed from (JSON text of an `mse_launch::envlock::EnvLock`; None for a
    /// pre-built venv), both published in the app's view.
    pub fn set_environment(
        &self,
        id: &str,
        digest: &str,
        lock: Option<&str>,
    ) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE apps SET config = json_set(config, '$.environment_digest', ?2, '$.environment_lock', json(?3)) WHERE id = ?1",
            params![id, digest, lock],
        )?;
        Ok(())
    }

    /// Records the app's launch spec (a JSON object in the app's config).
    pub fn set_launch_spec(
        &self,
        id: &str,
        spec: &mse_launch::LaunchSpec,
    ) -> Result<(), StoreError> {
        let text = String::from_utf8_lossy(&spec.canonical_bytes()).into_owned();
        self.lock().execute(
            "UPDATE apps SET config = json_set(config, '$.launch_spec', json(?2)) WHERE id = ?1",
            params![id, text],
        )?;
        Ok(())
    }

    /// Records the launched enclave's port and process id.
    pub fn set_process(&self, id: &str, port: u16, pid: u32) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE apps SET port = ?2, pid = ?3 WHERE id = ?1",
            params![id, i64::from(port), i64::from(pid)],
        )?;
        Ok(())
    }

    /// Moves a live app to `status`; returns false if it was no longer live (a terminal status
    /// is never overwritten).
    pub fn set_status(
        &self,
        id: &str,
        status: Status,
        exit_reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let n = self.lock().execute(
            "UPDATE apps SET status = ?2,
                ready_at = CASE WHEN ?2 = 'running' THEN ?3 ELSE ready_at END,
                stopped_at = CASE WHEN ?2 IN ('stopped', 'on_error') THEN ?3 ELSE stopped_at END,
                exit_reason = COALESCE(?4, exit_reason)
             WHERE id = ?1 AND status IN ('spawning', 'initializing', 'running')",
            params![id, status.as_str(), now, exit_reason],
        )?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, project: &str, name: &str, status: Status) -> AppRecord {
        AppRecord {
            id: id.into(),
            name: name.into(),
            project_id: project.into(),
            status,
            domain: format!("{id}.localhost"),
            custom_domain: None,
            port: None,
            pid: None,
            hardware: "4g-eu-001".into(),
            env: "mse-flask".into(),
            created_at: 1,
            ready_at: None,
            stopped_at: None,
            exit_reason: None,
            expires_at: 2,
            config: "{}".into(),
        }
    }

    #[test]
    fn projects_tokens_and_apps() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("node.db"), Quota::UNLIMITED).unwrap();
        let (p, token) = store.create_project("alpha").unwrap();
        assert!(token.starts_with("mse_") && token.len() == 68);
        assert_eq!(store.project_for_token(&token).unwrap(), Some(p.clone()));
        assert_eq!(store.project_for_token("mse_wrong").unwrap(), None);
        assert_eq!(
            store.create_project("alpha").unwrap_err().to_string(),
            "project \"alpha\" already exists"
        );
        let second = store.new_token("alpha").unwrap();
        assert_ne!(second, token);
        assert_eq!(store.project_for_token(&second).unwrap(), Some(p.clone()));
        assert_eq!(
            store.new_token("nope").unwrap_err().to_string(),
            "no project named \"nope\""
        );
        assert_eq!(store.projects().unwrap(), vec![(p.clone(), 2)]);
        assert_eq!(store.project(&p.id).unwrap(), Some(p.clone()));
        assert_eq!(store.project("no-such-id").unwrap(), None);
        store
            .insert_app(&app("a1", &p.id, "one", Status::Spawning))
            .unwrap();
        store
            .insert_app(&app("a2", &p.id, "two", Status::Stopped))
            .unwrap();
        assert!(store.set_status("a1", Status::Running, None).unwrap());
        assert!(!store.set_status("a2", Status::Running, None).unwrap());
        let a1 = store.app("a1").unwrap().unwrap();
        assert_eq!(a1.status, Status::Running);
        assert!(a1.ready_at.is_some());
        let live = store
            .list_apps(&p.id, None, Some(&[Status::Running]))
            .unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(
            store.list_apps(&p.id, Some("two"), None).unwrap()[0].id,
            "a2"
        );
        assert_eq!(store.live_apps().unwrap().len(), 1);
        // Reopening keeps everything and does not re-run migrations.
        drop(store);
        let store = Store::open(&dir.path().join("node.db"), Quota::UNLIMITED).unwrap();
        assert_eq!(store.app("a2").unwrap().unwrap().status, Status::Stopped);
        // The token itself is never stored.
        drop(store);
        let bytes = std::fs::read(dir.path().join("node.db")).unwrap();
        let wal = std::fs::read(dir.path().join("node.db-wal")).unwrap_or_default();
        let needle = token.as_bytes();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        assert!(!wal.windows(needle.len()).any(|w| w == needle));
    }

    /// A new store under `quota` with projects alpha and beta (the dir must outlive it).
    fn two_projects(quota: Quota) -> (tempfile::TempDir, Store, Project, Project) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("node.db"), quota).unwrap();
        let (p, _) = store.create_project("alpha").unwrap();
        let (q, _) = store.create_project("beta").unwrap();
        (dir, store, p, q)
    }

    /// Inserts `(id, project, name, status)` apps, which must all be accepted.
    fn insert_all(store: &Store, apps: &[(&str, &str, &str, Status)]) {
        for (id, project, name, status) in apps {
            store.insert_app(&app(id, project, name, *status)).unwrap();
        }
    }

    /// Asserts that inserting `app` is refused with the API status `status` and `message`.
    fn refused(store: &Store, app: &AppRecord, status: u16, message: &str) {
        let e = store.insert_app(app).unwrap_err();
        assert_eq!(
            (e.client_status(), e.to_string()),
            (Some(status), message.to_owned())
        );
    }

    #[test]
    fn live_names_and_domains_are_unique() {
        let (_dir, store, p, q) = two_projects(Quota::UNLIMITED);
        insert_all(&store, &[("a1", &p.id, "web", Status::Spawning)]);
        refused(
            &store,
            &app("a2", &p.id, "web", Status::Spawning),
            409,
            "an app named \"web\" is already alive in this project (a1); stop it first",
        );
        // Same name in another project, or next to a stopped app: fine.
        insert_all(&store, &[("b1", &q.id, "web", Status::Spawning)]);
        assert!(store.set_status("a1", Status::Stopped, None).unwrap());
        insert_all(&store, &[("a3", &p.id, "web", Status::Spawning)]);
        // One live custom domain across projects.
        let mut d1 = app("d1", &p.id, "shop", Status::Spawning);
        d1.custom_domain = Some("shop.example.com".into());
        store.insert_app(&d1).unwrap();
        let mut d2 = app("d2", &q.id, "other", Status::Spawning);
        d2.custom_domain = Some("shop.example.com".into());
        refused(
            &store,
            &d2,
            409,
            "domain \"shop.example.com\" is already used by another app",
        );
        assert!(store.set_status("d1", Status::OnError, None).unwrap());
        store.insert_app(&d2).unwrap();
        assert!(store.app("a2").unwrap().is_none());
    }

    #[test]
    fn the_node_wide_app_limit_counts_every_project() {
        let quota = Quota {
            node_apps: 2,
            ..Quota::UNLIMITED
        };
        let (_dir, store, p, q) = two_projects(quota);
        insert_all(
            &store,
            &[
                ("a1", &p.id, "one", Status::Spawning),
                ("b1", &q.id, "one", Status::Running),
            ],
        );
        refused(
            &store,
            &app("b2", &q.id, "two", Status::Spawning),
            503,
            "this node runs its maximum of 2 apps; try again later",
        );
        // A stopped app is not counted, and a record that is not live is not limited.
        insert_all(&store, &[("b3", &q.id, "three", Status::Stopped)]);
        assert!(store.set_status("a1", Status::Stopped, None).unwrap());
        insert_all(&store, &[("b2", &q.id, "two", Status::Spawning)]);
    }

    /// A database of the first schema version holding duplicates (as the racy deploys could
    /// leave it) is migrated: the oldest live app keeps its name or domain.
    #[test]
    fn migration_resolves_existing_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO projects (id, name, created_at) VALUES ('p', 'alpha', 0), ('q', 'beta', 0)",
                [],
            )
            .unwrap();
            for (id, project, name, domain, created) in [
                ("old", "p", "web", None, 1),
                ("new", "p", "web", None, 2),
                ("dom1", "p", "a", Some("x.example.com"), 3),
                ("dom2", "q", "b", Some("x.example.com"), 4),
            ] {
                conn.execute(
                    "INSERT INTO apps (id, name, project_id, status, domain, custom_domain, hardware, env, created_at, expires_at, config) VALUES (?1, ?2, ?3, 'running', ?1, ?4, 'h', 'e', ?5, 9, '{}')",
                    params![id, name, project, domain, created],
                )
                .unwrap();
            }
        }
        let store = Store::open(&path, Quota::UNLIMITED).unwrap();
        let status = |id: &str| store.app(id).unwrap().unwrap().status;
        assert_eq!(status("old"), Status::Running);
        assert_eq!(status("new"), Status::OnError);
        assert_eq!(status("dom1"), Status::Running);
        assert_eq!(status("dom2"), Status::OnError);
        assert_eq!(
            store.app("dom2").unwrap().unwrap().exit_reason.as_deref(),
            Some("another live app claimed the same domain (duplicate removed at upgrade)")
        );
        assert!(
            store
                .insert_app(&app("again", "p", "web", Status::Spawning))
                .unwrap_err()
                .client_status()
                == Some(409)
        );
    }
}
