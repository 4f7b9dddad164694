//! The core's own PostgreSQL connections: every parameter of the connection string is used or
//! refused by name (TLS with libpq's `sslmode` semantics, Unix-socket hosts, timeouts, `options`),
//! each connection says who it is (`application_name` = `schema_fence/<database>/<role>`), and
//! whether it may keep statements prepared across transactions (not behind PgBouncer's
//! transaction pooling: `prepared_statements=false`, Rails' own key).

pub mod conninfo;
pub mod tls;

use std::time::Duration;

use postgres::config::{Host, SslMode as PgSslMode};
use postgres::{CancelToken, Client, NoTls};
use postgres_openssl::MakeTlsConnector;

pub use conninfo::Conninfo;
pub use tls::{SslMode, Tls};

use crate::error::{Error, Result};
use crate::interrupt::Interrupt;

/// How long a connection attempt may take when the connection string gives no `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP keepalives when the connection string sets none: a peer cut off by the network (no RST,
/// packets lost) is probed after 10 s of silence instead of the kernel's two hours, also while a
/// statement waits for its answer; on Linux the TCP user timeout below decides when unanswered
/// probes close the connection (30 s, measured in docs/faults.md).
pub const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(10);
pub const DEFAULT_KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_KEEPALIVES_RETRIES: u32 = 3;
/// How long data sent may stay unacknowledged before the connection is given up (a partition
/// while a statement is being sent), when the string gives no `tcp_user_timeout`.
pub const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Parameters the `postgres` crate reads itself.
const PASSED_ON: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
    "sslnegotiation",
];

/// A parsed connection string, ready to open connections (and to cancel their queries).
#[derive(Clone)]
pub struct Connector {
    config: postgres::Config,
    mode: SslMode,
    tls: Option<MakeTlsConnector>,
    prepared_statements: bool,
    target: String,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Connector({}, sslmode={})",
            self.target,
            self.mode.name()
        )
    }
}

impl Connector {
    /// Reads `url` (a URL or key=value string). `application_name` is used unless the string
    /// names one itself.
    pub fn new(url: &str, application_name: &str) -> Result<Connector> {
        let mut info = Conninfo::parse(url)?;
        let tls_settings = Tls::take(&mut info)?;
        let prepared_statements = match info.take("prepared_statements").as_deref() {
            None | Some("true" | "1" | "on") => true,
            Some("false" | "0" | "off") => false,
            Some(other) => {
                return Err(Error::InvalidArgument {
                    what: "prepared_statements".into(),
                    problem: format!("{other:?} is not true or false"),
                })
            }
        };
        // libpq reads tcp_user_timeout in milliseconds, the postgres crate in seconds: the URL
        // means what it means to libpq (and to the server, which gets it for CREATE SUBSCRIPTION).
        let tcp_user_timeout = match info.take("tcp_user_timeout") {
            None => DEFAULT_TCP_USER_TIMEOUT,
            Some(ms) => Duration::from_millis(ms.trim().parse::<u64>().map_err(|_| {
                Error::InvalidArgument {
                    what: "tcp_user_timeout".into(),
                    problem: format!("{ms:?} is not a whole number of milliseconds"),
                }
            })?),
        };
        // libpq's name for what the postgres crate calls keepalives_retries.
        if let Some(count) = info.take("keepalives_count") {
            info.set("keepalives_retries", &count);
        }
        let fallback = info.take("fallback_application_name");
        if info.get("application_name").is_none() {
            let name = if application_name.is_empty() {
                fallback.unwrap_or_default()
            } else {
                application_name.to_string()
            };
            info.set("application_name", &name);
        }
        match info.take("gssencmode").as_deref() {
            None | Some("disable" | "prefer") => {}
            Some(other) => {
                return Err(Error::InvalidArgument {
                    what: "gssencmode".into(),
                    problem: format!(
                    "{other:?}: the core's connections do not support GSSAPI encryption; use TLS"
                ),
                })
            }
        }
        if let Some(key) = info.keys().find(|k| !PASSED_ON.contains(k)) {
            return Err(Error::InvalidArgument {
                what: "connection parameter".into(),
                problem: format!(
                    "{key:?} is not supported by schema_fence's own connections (supported: {}, {}, \
                     prepared_statements, fallback_application_name, gssencmode)",
                    PASSED_ON.join(", "),
                    tls::KEYS.join(", ")
                ),
            });
        }
        let target = describe(&info);
        let mut config: postgres::Config =
            info.to_key_values()
                .parse()
                .map_err(|e: postgres::Error| Error::InvalidArgument {
                    what: "connection string".into(),
                    problem: crate::error::describe_pg_error(&e),
                })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if info.get("keepalives_idle").is_none() {
            config.keepalives_idle(DEFAULT_KEEPALIVES_IDLE);
        }
        if info.get("keepalives_interval").is_none() {
            config.keepalives_interval(DEFAULT_KEEPALIVES_INTERVAL);
        }
        if info.get("keepalives_retries").is_none() {
            config.keepalives_retries(DEFAULT_KEEPALIVES_RETRIES);
        }
        config.tcp_user_timeout(tcp_user_timeout);
        let hosts = config.get_hosts();
        let unix_only = !hosts.is_empty() && hosts.iter().all(|h| matches!(h, Host::Unix(_)));
        // libpq never uses TLS on a Unix-domain socket, whatever sslmode says.
        let mode = if unix_only {
            SslMode::Disable
        } else {
            tls_settings.mode
        };
        let tls = if mode == SslMode::Disable {
            None
        } else {
            tls_settings.connector()?
        };
        Ok(Connector {
            config,
            mode,
            tls,
            prepared_statements,
            target,
        })
    }

    /// Whether statements may stay prepared on the session (false behind a transaction pooler).
    pub fn prepared_statements(&self) -> bool {
        self.prepared_statements
    }

    /// The ports of the TCP hosts it may connect to (empty when it connects over Unix sockets).
    pub fn tcp_ports(&self) -> Vec<u16> {
        let hosts = self.config.get_hosts();
        if !hosts.iter().any(|h| matches!(h, Host::Tcp(_))) {
            return Vec::new();
        }
        let ports = self.config.get_ports();
        if ports.is_empty() {
            vec![5432]
        } else {
            ports.to_vec()
        }
    }

    /// The sslmode in effect (`disable` on a Unix socket).
    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// Where it connects, for messages (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn application_name(&self) -> Option<&str> {
        self.config.get_application_name()
    }

    /// Opens a connection.
    pub fn connect(&self) -> Result<Client> {
        self.connect_with(&Interrupt::new())
    }

    /// Opens a connection within `connect_timeout` (the whole of it, as libpq bounds it: the
    /// postgres crate bounds only the socket's connect, so a server that accepts and then says
    /// nothing would hang it), ending early when `interrupt` fires. A connection attempt left
    /// behind ends when the server answers or closes; its result is dropped.
    pub fn connect_with(&self, interrupt: &Interrupt) -> Result<Client> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let this = self.clone();
        std::thread::Builder::new()
            .name("schema_fence-connect".into())
            .spawn(move || {
                let _ = sender.send(this.connect_now());
            })
            .map_err(|e| self.failed(format!("cannot start a connection thread: {e}")))?;
        let deadline = self
            .config
            .get_connect_timeout()
            .map(|t| std::time::Instant::now() + *t + Duration::from_millis(250));
        loop {
            match receiver.recv_timeout(Duration::from_millis(50)) {
                Ok(outcome) => return outcome,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(self.failed("the connection attempt ended without a result".into()))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            interrupt.check("connecting")?;
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                let seconds = self
                    .config
                    .get_connect_timeout()
                    .map_or(0, std::time::Duration::as_secs);
                return Err(self.failed(format!(
                    "no answer from the server within connect_timeout ({seconds}s)"
                )));
            }
        }
    }

    fn failed(&self, message: String) -> Error {
        Error::Connection {
            target: self.target.clone(),
            sslmode: self.mode.name(),
            message,
            source: None,
        }
    }

    fn connect_now(&self) -> Result<Client> {
        let mut config = self.config.clone();
        let outcome = match (self.mode, &self.tls) {
            (SslMode::Disable, _) | (_, None) => {
                config.ssl_mode(PgSslMode::Disable);
                config.connect(NoTls)
            }
            (SslMode::Allow, Some(tls)) => {
                config.ssl_mode(PgSslMode::Disable);
                config.connect(NoTls).or_else(|_| {
                    config.ssl_mode(PgSslMode::Require);
                    config.connect(tls.clone())
                })
            }
            (SslMode::Prefer, Some(tls)) => {
                config.ssl_mode(PgSslMode::Prefer);
                config.connect(tls.clone())
            }
            (_, Some(tls)) => {
                config.ssl_mode(PgSslMode::Require);
                config.connect(tls.clone())
            }
        };
        outcome.map_err(|e| Error::Connection {
            target: self.target.clone(),
            sslmode: self.mode.name(),
            message: describe_connect_error(&e),
            source: Some(e),
        })
    }

    /// Asks the server to cancel whatever `token`'s connection is running (best effort).
    pub fn cancel(&self, token: &CancelToken) {
        let _ = match &self.tls {
            Some(tls) if self.mode != SslMode::Disable => token.cancel_query(tls.clone()),
            _ => token.cancel_query(NoTls),
        };
    }
}

/// `application_name` of the core's connections: `schema_fence/<database>/<role>`.
pub fn application_name(database: &str, role: &str) -> String {
    // PostgreSQL keeps 63 bytes of it; keep it ASCII so truncation cannot split a character.
    let name: String = format!("schema_fence/{database}/{role}")
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    name.chars().take(63).collect()
}

/// Opens one connection for `role` on the database of `url` (named after its `dbname`).
pub fn connect(url: &str, database: Option<&str>, role: &str) -> Result<Client> {
    let info = Conninfo::parse(url)?;
    let database = database
        .map(str::to_string)
        .or_else(|| info.get("dbname").map(str::to_string))
        .unwrap_or_default();
    Connector::new(url, &application_name(&database, role))?.connect()
}

/// The server's message, or the error with its causes once each, OpenSSL's error stack entries
/// (`error:0A000086:SSL routines:func:reason:file:line:`) shortened to their reason.
fn describe_connect_error(e: &postgres::Error) -> String {
    if e.as_db_error().is_some() {
        return crate::error::describe_pg_error(e);
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    shorten_openssl_stack(&text)
}

fn shorten_openssl_stack(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("error:") {
        out.push_str(&rest[..at]);
        let entry = &rest[at..];
        let fields: Vec<&str> = entry.splitn(8, ':').collect();
        let is_stack_entry = fields.len() == 8
            && fields[1].len() == 8
            && fields[1].chars().all(|c| c.is_ascii_hexdigit())
            && fields[6].chars().all(|c| c.is_ascii_digit());
        if !is_stack_entry {
            out.push_str("error:");
            rest = &entry["error:".len()..];
            continue;
        }
        out.push_str(fields[4]);
        rest = fields[7];
    }
    out.push_str(rest);
    out
}

fn describe(info: &Conninfo) -> String {
    let mut parts = Vec::new();
    for key in ["host", "hostaddr", "port", "dbname", "user"] {
        if let Some(value) = info.get(key) {
            parts.push(format!("{key}={value}"));
        }
    }
    if parts.is_empty() {
        "the default server".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_name_says_database_and_role() {
        let c = Connector::new("postgres://h/d", &application_name("ci", "runner")).unwrap();
        assert_eq!(c.application_name(), Some("schema_fence/ci/runner"));
        let own = Connector::new("postgres://h/d?application_name=mine", "x").unwrap();
        assert_eq!(own.application_name(), Some("mine"));
    }

    #[test]
    fn a_socket_directory_never_uses_tls() {
        let c =
            Connector::new("postgresql:///d?host=/run/postgresql&sslmode=require", "x").unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn prepared_statements_follow_rails_key() {
        assert!(Connector::new("postgres://h/d", "x")
            .unwrap()
            .prepared_statements());
        let pooled = Connector::new("postgres://h/d?prepared_statements=false", "x").unwrap();
        assert!(!pooled.prepared_statements());
    }

    #[test]
    fn tcp_user_timeout_is_read_in_milliseconds_as_libpq_reads_it() {
        let c = Connector::new("postgres://h/d?tcp_user_timeout=5000", "x").unwrap();
        assert_eq!(
            c.config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(5))
        );
        let c = Connector::new("postgres://h/d", "x").unwrap();
        assert_eq!(
            c.config.get_tcp_user_timeout(),
            Some(&DEFAULT_TCP_USER_TIMEOUT)
        );
        let err = Connector::new("postgres://h/d?tcp_user_timeout=5s", "x").unwrap_err();
        assert!(err.to_string().contains("milliseconds"), "{err}");
    }

    #[test]
    fn the_default_connect_timeout_applies_unless_given() {
        let c = Connector::new("postgres://h/d", "x").unwrap();
        assert_eq!(
            c.config.get_connect_timeout(),
            Some(&DEFAULT_CONNECT_TIMEOUT)
        );
        let c = Connector::new("postgres://h/d?connect_timeout=3", "x").unwrap();
        assert_eq!(
            c.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
    }

    #[test]
    fn an_unsupported_parameter_is_refused_by_name() {
        let err = Connector::new("postgres://h/d?service=prod", "x").unwrap_err();
        assert!(
            err.to_string().contains("\"service\" is not supported"),
            "{err}"
        );
    }

    #[test]
    fn openssl_stack_entries_read_as_their_reason() {
        let raw = "error performing TLS handshake: error:0A000086:SSL routines:\
                   tls_post_process_server_certificate:certificate verify failed:\
                   ../ssl/statem/statem_clnt.c:1889:: IP address mismatch";
        assert_eq!(
            shorten_openssl_stack(raw),
            "error performing TLS handshake: certificate verify failed: IP address mismatch"
        );
        assert_eq!(shorten_openssl_stack("error: plain"), "error: plain");
    }

    #[test]
    fn the_target_in_messages_has_no_password() {
        let c = Connector::new("postgres://u:secret@h:5/d", "x").unwrap();
        assert_eq!(c.target(), "host=h port=5 dbname=d user=u");
    }
}
