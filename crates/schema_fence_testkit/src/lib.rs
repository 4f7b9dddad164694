//! Throwaway PostgreSQL clusters for the Rust tests, the RSpec suite, the benches and `bin/demo`
//! (docs/architecture.md section 13). Test tooling: it is not part of the shipped library, which
//! neither links nor loads it; Ruby reaches it through `lib/schema_fence/testing.rb`.
//!
//! [`Cluster::start`] runs `initdb` into a fresh directory under the temporary directory (as the
//! `postgres` user when run as root), tuned for tests (`fsync=off`, ...), listening on a free port
//! of 127.0.0.1, and starts it; [`Cluster::replica`] makes a streaming replica of a running one.
//! Dropping a `Cluster` stops the server and removes its directory, also when a test panics.
//! Each directory holds an `owner.pid` file; every `start` sweeps the directories whose owner died
//! without cleaning up (a test process killed with SIGKILL), stopping their servers.
//!
//! A cluster's directory (`dir()`) holds `owner.pid`, `server.log`, the Unix socket and `data/`
//! (`data_dir()`, the PostgreSQL data directory).

use std::ffi::{CString, OsStr};
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

pub mod netns;

pub use schema_fence::error::describe_pg_error;

/// What went wrong with a throwaway cluster: the step, the command and the tail of the server
/// log, in one message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every cluster directory's name starts with this; the orphan sweep looks only at these.
pub const DIR_PREFIX: &str = "schema_fence-pg-";
/// The environment variable naming the directory of `initdb`, `pg_ctl` and `pg_basebackup`.
pub const BIN_DIR_ENV: &str = "SCHEMA_FENCE_PG_BIN";
/// The superuser every cluster is created with; connections use it with `trust` authentication.
pub const SUPERUSER: &str = "postgres";

const OWNER_FILE: &str = "owner.pid";
const LOG_FILE: &str = "server.log";
const SETTINGS_FILE: &str = "schema_fence.conf";
const LOG_TAIL_LINES: usize = 25;
/// How many free ports `start` tries when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;
/// A directory without `owner.pid` is being created; it is an orphan only once this old.
const UNOWNED_GRACE: Duration = Duration::from_secs(300);
const PG_CTL_START_TIMEOUT: &str = "120";
const PG_CTL_STOP_TIMEOUT: &str = "60";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variables libpq and the server tools read; cleared for the tools we run so that
/// the caller's environment (PGHOST, PGDATA, ...) never points them elsewhere.
const PG_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGDATA",
    "PGSSLMODE",
    "PGCONNECT_TIMEOUT",
    "PGTARGETSESSIONATTRS",
    "PGAPPNAME",
];

/// How to start a cluster; `ClusterOptions::default()` is what [`Cluster::start`] uses.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// The directory holding `initdb`, `pg_ctl` and `pg_basebackup`. Default: `$SCHEMA_FENCE_PG_BIN`,
    /// else the newest `/usr/lib/postgresql/*/bin`, else the directory of `initdb` on `PATH`.
    pub bin_dir: Option<PathBuf>,
    /// Where the cluster's directory is created. Default: [`std::env::temp_dir`].
    pub parent_dir: Option<PathBuf>,
    /// Extra server settings (name, value as written in postgresql.conf, e.g. `'all'`), applied
    /// after the defaults and kept by replicas.
    pub settings: Vec<(String, String)>,
    /// Networks (CIDR) trusted besides loopback, e.g. a [`netns::Link`]'s subnet; the server
    /// must also listen there (`listen_addresses` in `settings`).
    pub trusted_networks: Vec<String>,
}

/// A PostgreSQL server of its own, in a temporary directory, stopped and removed on drop.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    tools: Tools,
    settings: Vec<(String, String)>,
    trusted_networks: Vec<String>,
    /// The process that created the cluster: only it stops and removes it (not a forked child).
    owner_pid: u32,
    torn_down: bool,
}

impl Cluster {
    /// Starts a new cluster with the default options.
    pub fn start() -> Result<Cluster> {
        Cluster::start_with(ClusterOptions::default())
    }

    /// Starts a new cluster: sweeps orphans, runs initdb, writes the settings and starts the
    /// server on a free port of 127.0.0.1.
    pub fn start_with(options: ClusterOptions) -> Result<Cluster> {
        let tools = Tools::find(options.bin_dir.as_deref())?;
        let parent = options.parent_dir.unwrap_or_else(std::env::temp_dir);
        sweep_orphans(&parent, &tools);
        let mut cluster = Cluster::in_new_dir(&parent, tools, options.settings)?;
        cluster.trusted_networks = options.trusted_networks;
        let data = cluster.data_dir.as_os_str();
        cluster.tools.run(
            "initialize the cluster",
            &cluster.dir,
            "initdb",
            &[
                OsStr::new("-D"),
                data,
                OsStr::new("-A"),
                OsStr::new("trust"),
                OsStr::new("-U"),
                OsStr::new(SUPERUSER),
                OsStr::new("--no-sync"),
                OsStr::new("-E"),
                OsStr::new("UTF8"),
                OsStr::new("--locale=C"),
            ],
            None,
        )?;
        cluster.configure()?;
        cluster.start_on_free_port()?;
        Ok(cluster)
    }

    /// A streaming replica of this running cluster (`pg_basebackup -c fast -R -X stream`), in a
    /// new directory, started on a new free port and accepting read-only connections.
    pub fn replica(&self) -> Result<Cluster> {
        self.replica_via("127.0.0.1")
    }

    /// A streaming replica, as [`Cluster::replica`], that copies and streams from `host` (an
    /// address this cluster listens on, e.g. across a [`netns::Link`], so cutting the link cuts
    /// the replication).
    pub fn replica_via(&self, host: &str) -> Result<Cluster> {
        let parent = self.dir.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut replica = Cluster::in_new_dir(&parent, self.tools.clone(), self.settings.clone())?;
        replica.trusted_networks = self.trusted_networks.clone();
        let port = self.port.to_string();
        replica.tools.run(
            "copy the primary for a replica",
            &replica.dir,
            "pg_basebackup",
            &[
                OsStr::new("-D"),
                replica.data_dir.as_os_str(),
                OsStr::new("-h"),
                OsStr::new(host),
                OsStr::new("-p"),
                OsStr::new(&port),
                OsStr::new("-U"),
                OsStr::new(SUPERUSER),
                OsStr::new("-c"),
                OsStr::new("fast"),
                OsStr::new("-R"),
                OsStr::new("-X"),
                OsStr::new("stream"),
                OsStr::new("--no-sync"),
                OsStr::new("-w"),
            ],
            Some(&self.log_path()),
        )?;
        // The copy carries the primary's settings file; its port and socket directory are redone.
        replica.start_on_free_port()?;
        Ok(replica)
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`, the database name percent-encoded.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{}",
            self.port,
            percent_encode(database)
        )
    }

    /// A key-value connection string through the server's Unix socket: it works from any
    /// network namespace, and a cut [`netns::Link`] does not touch it.
    pub fn socket_url(&self, database: &str) -> String {
        let dir = self.dir.display().to_string();
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        format!(
            "host={} port={} user={SUPERUSER} dbname={}",
            quote(&dir),
            self.port,
            quote(database)
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PostgreSQL data directory (`dir()/data`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The cluster's own temporary directory, removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Creates a database named `name` (quoted, so any name PostgreSQL accepts works).
    pub fn create_database(&self, name: &str) -> Result<()> {
        create_database(&self.url("postgres"), name)
    }

    /// Whether the server is a standby (`pg_is_in_recovery()`).
    pub fn is_in_recovery(&self) -> Result<bool> {
        let url = self.url("postgres");
        let mut client = connect(&url)?;
        let row = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .map_err(|e| {
                cluster_error(format!(
                    "could not ask {url} whether it is in recovery: {}",
                    describe_pg_error(&e)
                ))
            })?;
        Ok(row.get(0))
    }

    /// Stops the server (`pg_ctl stop -m fast`, then `-m immediate` if that fails) and keeps the
    /// directory, so [`Cluster::restart`] can start it again. Stopping a stopped server is a no-op.
    pub fn stop(&self) -> Result<()> {
        let data = self.data_dir.as_os_str();
        let fast = self.pg_ctl_stop(data, "fast");
        if fast.is_ok() || !self.is_running() {
            return Ok(());
        }
        self.pg_ctl_stop(data, "immediate").or_else(
            |e| {
                if self.is_running() {
                    Err(e)
                } else {
                    Ok(())
                }
            },
        )
    }

    /// Restarts the server (`pg_ctl restart -m fast`), or starts it when stopped or killed, on the
    /// same port; the data survives. For "server restarted mid-run" tests.
    pub fn restart(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.remove_stale_pid_file();
            let since = self.log_len();
            match self.pg_ctl_with_log(
                "restart the server",
                &[OsStr::new("-m"), OsStr::new("fast"), OsStr::new("restart")],
            ) {
                Ok(_) => return Ok(()),
                // After `kill`, orphaned backends can hold the old shared memory for a moment.
                Err(e)
                    if Instant::now() < deadline
                        && log_since(&self.log_path(), since).contains("shared memory block") =>
                {
                    drop(e);
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Kills the server with SIGKILL, postmaster and backends at once, as a crash would, and waits
    /// until they are gone. [`Cluster::restart`] brings it back (with crash recovery). With the
    /// default `synchronous_commit = off` the last moment's commits are lost, as in a real crash;
    /// start with `synchronous_commit = on` when a test must keep every commit.
    pub fn kill(&self) -> Result<()> {
        let Some(pid) = postmaster_pid(&self.data_dir).filter(|&pid| process_alive(pid)) else {
            return Err(cluster_error(format!(
                "cannot kill the server of {}: it is not running",
                self.data_dir.display()
            )));
        };
        // The backends first (each is its own process group leader), so none outlives the
        // postmaster holding the shared memory.
        let mut pids = child_pids(pid);
        pids.push(pid);
        for &target in &pids {
            // SAFETY: kill(2) on pids of this cluster's server; no memory is shared.
            unsafe { libc::kill(target, libc::SIGKILL) };
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while pids.iter().any(|&p| process_alive(p)) {
            if Instant::now() > deadline {
                return Err(cluster_error(format!(
                    "the server of {} (pid {pid}) is still alive 30 s after SIGKILL",
                    self.data_dir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.remove_stale_pid_file();
        Ok(())
    }

    /// Removes postmaster.pid and the socket's lock file when their process is dead: pg_ctl and
    /// the server take a killed but not yet reaped (zombie) postmaster for a live one.
    fn remove_stale_pid_file(&self) {
        if postmaster_pid(&self.data_dir).is_some_and(|pid| !process_alive(pid)) {
            let _ = fs::remove_file(self.dir.join(format!(".s.PGSQL.{}.lock", self.port)));
            let _ = fs::remove_file(self.data_dir.join("postmaster.pid"));
        }
    }

    /// Stops the server and removes the directory, reporting what failed (drop does the same
    /// silently).
    pub fn destroy(mut self) -> Result<()> {
        self.torn_down = true;
        self.teardown()
    }

    fn in_new_dir(parent: &Path, tools: Tools, settings: Vec<(String, String)>) -> Result<Cluster> {
        let dir = make_dir(parent, &tools)?;
        Ok(Cluster {
            data_dir: dir.join("data"),
            dir,
            port: 0,
            tools,
            settings,
            trusted_networks: Vec::new(),
            owner_pid: std::process::id(),
            torn_down: false,
        })
    }

    /// Makes postgresql.conf include our settings file and replaces pg_hba.conf.
    fn configure(&self) -> Result<()> {
        let conf = self.data_dir.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).map_err(|e| io_error("read", &conf, e))?;
        text.push_str(&format!(
            "\n# schema_fence test settings\ninclude '{SETTINGS_FILE}'\n"
        ));
        self.write_file(&conf, &text)?;
        let hba = "# schema_fence throwaway cluster: trust on loopback only\n\
                   local   all          all                 trust\n\
                   local   replication  all                 trust\n\
                   host    all          all   127.0.0.1/32  trust\n\
                   host    replication  all   127.0.0.1/32  trust\n";
        let mut hba = hba.to_string();
        for network in &self.trusted_networks {
            hba.push_str(&format!(
                "host    all          all   {network}  trust\nhost    replication  all   {network}  trust\n"
            ));
        }
        self.write_file(&self.data_dir.join("pg_hba.conf"), &hba)
    }

    fn write_settings(&self, port: u16) -> Result<()> {
        let socket_dir = self.dir.display().to_string().replace('\'', "''");
        let mut text = format!(
            "# Written by schema_fence_testkit; the port and socket directory are this cluster's.\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{socket_dir}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             wal_level = logical\n\
             max_wal_senders = 10\n\
             max_replication_slots = 10\n\
             wal_keep_size = '256MB'\n\
             hot_standby = on\n\
             shared_buffers = '32MB'\n\
             max_connections = 100\n\
             # An autovacuum of a migrated table puts its migration on hold for ten minutes;\n\
             # suites that drain migrations cannot wait that long.\n\
             autovacuum = off\n"
        );
        for (name, value) in &self.settings {
            text.push_str(&format!("{name} = {value}\n"));
        }
        self.write_file(&self.data_dir.join(SETTINGS_FILE), &text)
    }

    fn start_on_free_port(&mut self) -> Result<()> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            self.write_settings(port)?;
            let since = self.log_len();
            let started = self.pg_ctl_with_log("start the server", &[OsStr::new("start")]);
            match started {
                Ok(_) => {
                    self.port = port;
                    return Ok(());
                }
                Err(e) => {
                    let log = log_since(&self.log_path(), since);
                    let port_taken = log.contains("could not bind")
                        || log.contains("Address already in use")
                        || log.contains("could not create any TCP/IP sockets");
                    if !port_taken {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| cluster_error("no free port found".into())))
    }

    /// `pg_ctl -D data -l log -w -t timeout ARGS`: starting the server, one way or another.
    fn pg_ctl_with_log(&self, what: &str, args: &[&OsStr]) -> Result<String> {
        let log = self.log_path();
        let mut all = vec![
            OsStr::new("-D"),
            self.data_dir.as_os_str(),
            OsStr::new("-l"),
            log.as_os_str(),
            OsStr::new("-w"),
            OsStr::new("-t"),
            OsStr::new(PG_CTL_START_TIMEOUT),
        ];
        all.extend_from_slice(args);
        self.tools.run(what, &self.dir, "pg_ctl", &all, Some(&log))
    }

    fn pg_ctl_stop(&self, data: &OsStr, mode: &str) -> Result<()> {
        self.tools
            .run(
                "stop the server",
                &self.dir,
                "pg_ctl",
                &[
                    OsStr::new("-D"),
                    data,
                    OsStr::new("-w"),
                    OsStr::new("-t"),
                    OsStr::new(PG_CTL_STOP_TIMEOUT),
                    OsStr::new("-m"),
                    OsStr::new(mode),
                    OsStr::new("stop"),
                ],
                Some(&self.log_path()),
            )
            .map(|_| ())
    }

    fn is_running(&self) -> bool {
        postmaster_pid(&self.data_dir).is_some_and(process_alive)
    }

    fn log_len(&self) -> u64 {
        fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0)
    }

    fn write_file(&self, path: &Path, text: &str) -> Result<()> {
        fs::write(path, text).map_err(|e| io_error("write", path, e))?;
        self.tools.give(path)
    }

    fn teardown(&mut self) -> Result<()> {
        if self.owner_pid != std::process::id() {
            return Ok(()); // a forked child: the cluster belongs to the parent
        }
        let stopped = if self.data_dir.join("postmaster.pid").exists() {
            self.stop()
        } else {
            Ok(())
        };
        let removed = match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_error("remove", &self.dir, e))
            }
            _ => Ok(()),
        };
        stopped.and(removed)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.torn_down {
            self.torn_down = true;
            let _ = self.teardown();
        }
    }
}

/// Creates a database named `name` on the server of `server_url` (a URL of any database there),
/// quoting the name as an identifier. For the throwaway clusters and for `DATABASE_URL` servers.
pub fn create_database(server_url: &str, name: &str) -> Result<()> {
    let quoted = quote_identifier(name)?;
    let mut client = connect(server_url)?;
    client
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .map_err(|e| {
            cluster_error(format!(
                "could not create database {name:?} on {}: {}",
                redact(server_url),
                describe_pg_error(&e)
            ))
        })
}

/// `name` as a PostgreSQL identifier: in double quotes, inner double quotes doubled. Refuses
/// names PostgreSQL would reject or silently truncate (empty, NUL, longer than 63 bytes).
pub fn quote_identifier(name: &str) -> Result<String> {
    schema_fence::sql::check_identifier("database", name)
        .map_err(|e| cluster_error(e.to_string()))?;
    Ok(schema_fence::sql::quote_ident(name))
}

fn connect(url: &str) -> Result<postgres::Client> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| cluster_error(format!("invalid database URL {}: {e}", redact(url))))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    config.connect(postgres::NoTls).map_err(|e| {
        cluster_error(format!(
            "could not connect to {}: {}",
            redact(url),
            describe_pg_error(&e)
        ))
    })
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn cluster_error(message: String) -> Error {
    Error { message }
}

fn io_error(action: &str, path: &Path, e: std::io::Error) -> Error {
    cluster_error(format!("could not {action} {}: {e}", path.display()))
}

/// The PostgreSQL server tools, and the user to run them as.
#[derive(Debug, Clone)]
struct Tools {
    bin_dir: PathBuf,
    /// (uid, gid) of `postgres` when we are root: initdb and the server refuse to run as root.
    run_as: Option<(u32, u32)>,
}

impl Tools {
    fn find(bin_dir: Option<&Path>) -> Result<Tools> {
        let bin_dir = find_bin_dir(bin_dir)?;
        // SAFETY: geteuid has no preconditions.
        let run_as = if unsafe { libc::geteuid() } == 0 {
            Some(lookup_user(SUPERUSER).ok_or_else(|| {
                cluster_error(format!(
                    "running as root, and there is no `{SUPERUSER}` user to run PostgreSQL as \
                     (initdb refuses root); create one (Debian's postgresql package does) or run as \
                     another user"
                ))
            })?)
        } else {
            None
        };
        Ok(Tools { bin_dir, run_as })
    }

    /// Runs `tool` (as `postgres` when root) in `cwd`, failing with its output and the tail of
    /// `log` when it exits non-zero.
    fn run(
        &self,
        what: &str,
        cwd: &Path,
        tool: &str,
        args: &[&OsStr],
        log: Option<&Path>,
    ) -> Result<String> {
        let program = self.bin_dir.join(tool);
        let mut command = Command::new(&program);
        command
            .args(args)
            .current_dir(cwd)
            .env("HOME", cwd)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        for var in PG_ENV {
            command.env_remove(var);
        }
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        let shown = self.describe(&program, args);
        let output = command.output().map_err(|e| {
            cluster_error(format!("could not {what}: could not run `{shown}`: {e}"))
        })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok(stdout);
        }
        let mut message = format!("could not {what}: `{shown}` failed ({})", output.status);
        let stderr = String::from_utf8_lossy(&output.stderr);
        for (name, text) in [("stderr", stderr.trim()), ("stdout", stdout.trim())] {
            if !text.is_empty() {
                message.push_str(&format!("\n{name}:\n{text}"));
            }
        }
        if let Some(log) = log {
            let tail = log_tail(log);
            if !tail.is_empty() {
                message.push_str(&format!(
                    "\nserver log {} ends with:\n{tail}",
                    log.display()
                ));
            }
        }
        Err(cluster_error(message))
    }

    fn describe(&self, program: &Path, args: &[&OsStr]) -> String {
        let mut shown = String::new();
        if self.run_as.is_some() {
            shown.push_str(&format!("(as {SUPERUSER}) "));
        }
        shown.push_str(&program.display().to_string());
        for arg in args {
            shown.push(' ');
            shown.push_str(&arg.to_string_lossy());
        }
        shown
    }

    /// Hands `path` to the user the tools run as.
    fn give(&self, path: &Path) -> Result<()> {
        match self.run_as {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| io_error("hand to the postgres user", path, e)),
            None => Ok(()),
        }
    }
}

fn find_bin_dir(given: Option<&Path>) -> Result<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = given {
        return if has_tools(dir) {
            Ok(dir.to_path_buf())
        } else {
            Err(cluster_error(format!(
                "no initdb and pg_ctl in {} (the given PostgreSQL bin directory)",
                dir.display()
            )))
        };
    }
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        let dir = PathBuf::from(dir);
        return if has_tools(&dir) {
            Ok(dir)
        } else {
            Err(cluster_error(format!(
                "no initdb and pg_ctl in {} (from ${BIN_DIR_ENV})",
                dir.display()
            )))
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|dir| has_tools(dir)) {
            return Ok(dir);
        }
    }
    Err(cluster_error(format!(
        "no PostgreSQL server binaries (initdb, pg_ctl) found in ${BIN_DIR_ENV}, \
         /usr/lib/postgresql/*/bin or PATH; install the postgresql package or set ${BIN_DIR_ENV}"
    )))
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let cname = CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pwd`'s strings
    // (we only read the numeric ids).
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

/// A new `DIR_PREFIX…` directory under `parent`, with `owner.pid`, owned by the tools' user.
fn make_dir(parent: &Path, tools: &Tools) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    loop {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("{DIR_PREFIX}{pid}-{n}-{nanos:08x}"));
        match fs::create_dir(&dir) {
            Ok(()) => {
                let owner = format!("{pid} {}\n", process_start_time(pid).unwrap_or_default());
                let owner_path = dir.join(OWNER_FILE);
                let made = fs::write(&owner_path, owner)
                    .map_err(|e| io_error("write", &owner_path, e))
                    .and_then(|_| {
                        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                            .map_err(|e| io_error("set the permissions of", &dir, e))
                    })
                    .and_then(|_| tools.give(&dir))
                    .and_then(|_| tools.give(&owner_path));
                if let Err(e) = made {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(e);
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(cluster_error(format!(
                    "could not create a cluster directory in {}: {e}",
                    parent.display()
                )))
            }
        }
    }
}

/// Stops and removes the cluster directories under `parent` whose owner process is gone.
fn sweep_orphans(parent: &Path, tools: &Tools) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let orphaned = match fs::read_to_string(dir.join(OWNER_FILE)) {
            Ok(owner) => !owner_alive(&owner),
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > UNOWNED_GRACE),
        };
        if orphaned {
            let data = dir.join("data");
            if data.join("postmaster.pid").exists() {
                let _ = tools.run(
                    "stop an orphaned server",
                    &dir,
                    "pg_ctl",
                    &[
                        OsStr::new("-D"),
                        data.as_os_str(),
                        OsStr::new("-w"),
                        OsStr::new("-t"),
                        OsStr::new("10"),
                        OsStr::new("-m"),
                        OsStr::new("immediate"),
                        OsStr::new("stop"),
                    ],
                    None,
                );
            }
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// `owner.pid` holds "PID START_TIME"; the owner lives if that pid runs and started then (a
/// recycled pid has another start time).
fn owner_alive(owner: &str) -> bool {
    let mut fields = owner.split_whitespace();
    let Some(pid) = fields.next().and_then(|p| p.parse::<i32>().ok()) else {
        return false;
    };
    if !process_alive(pid) {
        return false;
    }
    match (fields.next(), process_start_time(pid as u32)) {
        (Some(recorded), Some(now)) if !recorded.is_empty() => recorded == now,
        _ => true,
    }
}

/// Whether `pid` is a live process (a zombie counts as dead: nobody may reap it in a container).
fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) if Path::new("/proc/self/stat").exists() => false,
        // SAFETY: signal 0 only checks that the process exists.
        Err(_) => unsafe { libc::kill(pid, 0) == 0 },
    }
}

/// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
fn process_start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Fields after the command start at field 3 (state); the start time is field 22.
    rest.split_whitespace().nth(19).map(str::to_string)
}

fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The pids of `parent`'s live children, from /proc.
fn child_pids(parent: i32) -> Vec<i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let ppid = rest.split_whitespace().nth(1)?.parse::<i32>().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| cluster_error(format!("could not find a free port on 127.0.0.1: {e}")))
}

fn log_since(path: &Path, offset: u64) -> String {
    let text = fs::read(path).unwrap_or_default();
    let start = (offset as usize).min(text.len());
    String::from_utf8_lossy(&text[start..]).into_owned()
}

fn log_tail(path: &Path) -> String {
    let text = log_since(path, 0);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_identifier("plain").unwrap(), "\"plain\"");
        assert_eq!(quote_identifier("a\"b").unwrap(), "\"a\"\"b\"");
        assert!(quote_identifier("").is_err());
        assert!(quote_identifier("a\0b").is_err());
        assert!(quote_identifier(&"x".repeat(64)).is_err());
        assert!(quote_identifier(&"x".repeat(63)).is_ok());
    }

    #[test]
    fn encodes_database_names_in_urls() {
        assert_eq!(percent_encode("main_test-1"), "main_test-1");
        assert_eq!(percent_encode("a b/\"é"), "a%20b%2F%22%C3%A9");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn reads_owner_files() {
        let me = std::process::id();
        let start = process_start_time(me).unwrap();
        assert!(owner_alive(&format!("{me} {start}\n")));
        assert!(!owner_alive(&format!("{me} 1{start}\n")));
        assert!(!owner_alive("garbage"));
        assert!(!owner_alive(&format!("{} \n", i32::MAX)));
    }
}
