//! TLS with libpq's `sslmode` semantics, over OpenSSL (the library libpq itself uses, so key
//! formats, the system trust store and verification behave as they do for `psql` and Rails).
//!
//! | sslmode | TLS | certificate checked | host name checked |
//! | --- | --- | --- | --- |
//! | disable | never | - | - |
//! | allow | only if the server refuses plaintext | no | no |
//! | prefer (default) | when the server offers it | no | no |
//! | require | always | only if a root certificate is there (libpq's rule) | no |
//! | verify-ca | always | yes | no |
//! | verify-full | always | yes | yes |
//!
//! As in libpq, Unix-domain sockets never use TLS, whatever the mode.

use std::path::{Path, PathBuf};

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use postgres_openssl::MakeTlsConnector;

use super::conninfo::Conninfo;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::InvalidArgument {
                    what: "sslmode".into(),
                    problem: format!(
                        "{other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                    ),
                })
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    None,
    File(PathBuf),
    /// `sslrootcert=system`: the operating system's trust store (and, as in libpq, verify-full).
    System,
}

/// The TLS parameters of one connection string.
#[derive(Debug, Clone)]
pub struct Tls {
    pub mode: SslMode,
    roots: Roots,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    min_version: Option<SslVersion>,
    max_version: Option<SslVersion>,
}

/// The TLS keys of libpq this module takes out of a connection string.
pub const KEYS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslsni",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
];

impl Tls {
    /// Takes the TLS keys out of `info`, with libpq's defaults (`~/.postgresql/root.crt`,
    /// `postgresql.crt`, `postgresql.key` when present).
    pub fn take(info: &mut Conninfo) -> Result<Tls> {
        let mut mode = SslMode::parse(info.take("sslmode").as_deref().unwrap_or("prefer"))?;
        let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql"));
        let default = |name: &str| home.as_ref().map(|h| h.join(name)).filter(|p| p.exists());
        let roots = match info.take("sslrootcert") {
            Some(s) if s == "system" => Roots::System,
            Some(s) => Roots::File(PathBuf::from(s)),
            None => default("root.crt").map_or(Roots::None, Roots::File),
        };
        let cert = info
            .take("sslcert")
            .map(PathBuf::from)
            .or_else(|| default("postgresql.crt"));
        let key = info
            .take("sslkey")
            .map(PathBuf::from)
            .or_else(|| default("postgresql.key"));
        info.take("sslsni");
        let min_version = info
            .take("ssl_min_protocol_version")
            .map(|v| version("ssl_min_protocol_version", &v))
            .transpose()?;
        let max_version = info
            .take("ssl_max_protocol_version")
            .map(|v| version("ssl_max_protocol_version", &v))
            .transpose()?;
        // libpq: require with a root certificate behaves as verify-ca; system roots force verify-full.
        if mode == SslMode::Require && roots != Roots::None {
            mode = SslMode::VerifyCa;
        }
        if roots == Roots::System && matches!(mode, SslMode::Require | SslMode::VerifyCa) {
            mode = SslMode::VerifyFull;
        }
        Ok(Tls {
            mode,
            roots,
            cert,
            key,
            min_version,
            max_version,
        })
    }

    /// The OpenSSL connector for this mode (`None` for `disable`). Building one loads the
    /// system's trust store (tens of milliseconds), so each process keeps the ones it built, by
    /// settings and by the modification times of their files (a rotated certificate is read
    /// again).
    pub fn connector(&self) -> Result<Option<MakeTlsConnector>> {
        static BUILT: std::sync::OnceLock<
            std::sync::Mutex<std::collections::HashMap<String, SslConnector>>,
        > = std::sync::OnceLock::new();
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let key = self.cache_key();
        let built = BUILT.get_or_init(Default::default);
        let cached = built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        let ssl = if let Some(ssl) = cached {
            ssl
        } else {
            let ssl = self.build()?;
            let mut built = built
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if built.len() > 64 {
                built.clear();
            }
            built.insert(key, ssl.clone());
            ssl
        };
        let mut connector = MakeTlsConnector::new(ssl);
        if self.mode != SslMode::VerifyFull {
            connector.set_callback(|config, _| {
                config.set_verify_hostname(false);
                Ok(())
            });
        }
        Ok(Some(connector))
    }

    fn cache_key(&self) -> String {
        let stamp = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos())
        };
        let file = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| format!("{}@{}", p.display(), stamp(p)))
                .unwrap_or_default()
        };
        let roots = match &self.roots {
            Roots::File(p) => format!("file:{}@{}", p.display(), stamp(p)),
            other => format!("{other:?}"),
        };
        format!(
            "{:?}|{roots}|{}|{}|{:?}|{:?}",
            self.mode,
            file(&self.cert),
            file(&self.key),
            self.min_version.map(|v| format!("{v:?}")),
            self.max_version.map(|v| format!("{v:?}"))
        )
    }

    fn build(&self) -> Result<SslConnector> {
        let mut builder =
            SslConnector::builder(SslMethod::tls_client()).map_err(|e| tls_error(&e))?;
        builder
            .set_min_proto_version(Some(self.min_version.unwrap_or(SslVersion::TLS1_2)))
            .map_err(|e| tls_error(&e))?;
        builder
            .set_max_proto_version(self.max_version)
            .map_err(|e| tls_error(&e))?;
        let verify = matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull);
        if verify {
            match &self.roots {
                Roots::File(path) => {
                    readable("sslrootcert", "root certificate", path)?;
                    builder
                        .set_ca_file(path)
                        .map_err(|e| file_error("sslrootcert", path, &e))?;
                }
                Roots::System => builder
                    .set_default_verify_paths()
                    .map_err(|e| tls_error(&e))?,
                Roots::None => {
                    return Err(Error::InvalidArgument {
                        what: format!("sslmode={}", self.mode.name()),
                        problem: "no root certificate to verify the server with: give \
                                  sslrootcert=<file> (or ~/.postgresql/root.crt), use the system's \
                                  trusted roots with sslrootcert=system, or change sslmode to one \
                                  that does not verify the server"
                            .into(),
                    })
                }
            }
            builder.set_verify(SslVerifyMode::PEER);
        } else {
            builder.set_verify(SslVerifyMode::NONE);
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                readable("sslcert", "client certificate", cert)?;
                key_permissions(key)?;
                builder
                    .set_certificate_chain_file(cert)
                    .map_err(|e| file_error("sslcert", cert, &e))?;
                builder
                    .set_private_key_file(key, SslFiletype::PEM)
                    .map_err(|e| file_error("sslkey", key, &e))?;
                builder
                    .check_private_key()
                    .map_err(|e| file_error("sslkey", key, &e))?;
            }
            (Some(cert), None) => {
                return Err(Error::InvalidArgument {
                    what: "sslcert".into(),
                    problem: format!(
                        "client certificate {} has no private key: give sslkey=<file>",
                        cert.display()
                    ),
                })
            }
            _ => {}
        }
        Ok(builder.build())
    }
}

fn version(key: &str, value: &str) -> Result<SslVersion> {
    Ok(match value {
        "TLSv1" => SslVersion::TLS1,
        "TLSv1.1" => SslVersion::TLS1_1,
        "TLSv1.2" => SslVersion::TLS1_2,
        "TLSv1.3" => SslVersion::TLS1_3,
        other => {
            return Err(Error::InvalidArgument {
                what: key.into(),
                problem: format!("{other:?} is not one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3"),
            })
        }
    })
}

fn readable(key: &str, what: &str, path: &Path) -> Result<()> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| Error::InvalidArgument {
            what: key.into(),
            problem: format!("{what} file {} cannot be read: {e}", path.display()),
        })
}

/// libpq refuses a private key others can read.
fn key_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| io_error("sslkey", path, &e))?;
    let mode = meta.mode() & 0o777;
    let limit = if meta.uid() == 0 { 0o640 } else { 0o600 };
    if mode & !limit != 0 {
        return Err(Error::InvalidArgument {
            what: "sslkey".into(),
            problem: format!(
                "private key file {} has group or world access (mode {mode:o}); it must be u=rw \
                 (0600) or less, or u=rw,g=r (0640) or less when owned by root",
                path.display()
            ),
        });
    }
    Ok(())
}

fn io_error(key: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::InvalidArgument {
        what: key.into(),
        problem: format!("{}: {e}", path.display()),
    }
}

fn file_error(key: &str, path: &Path, e: &openssl::error::ErrorStack) -> Error {
    Error::InvalidArgument {
        what: key.into(),
        problem: format!("{} is not usable: {e}", path.display()),
    }
}

fn tls_error(e: &openssl::error::ErrorStack) -> Error {
    Error::InvalidArgument {
        what: "TLS setup".into(),
        problem: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(url: &str) -> Result<Tls> {
        Tls::take(&mut Conninfo::parse(url)?)
    }

    #[test]
    fn prefer_is_the_default() {
        assert_eq!(tls("postgres://h/d").unwrap().mode, SslMode::Prefer);
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_ca() {
        let t =
            tls("postgres://h/d?sslmode=require&sslrootcert=/etc/ssl/certs/ca-certificates.crt");
        assert_eq!(t.unwrap().mode, SslMode::VerifyCa);
    }

    #[test]
    fn system_roots_verify_the_host_name() {
        let t = tls("postgres://h/d?sslmode=verify-ca&sslrootcert=system").unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
    }

    #[test]
    fn an_unknown_mode_is_refused_with_the_choices() {
        let err = tls("postgres://h/d?sslmode=verify")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"verify\" is not one of"), "{err}");
    }

    #[test]
    fn verification_without_a_root_certificate_says_what_to_give() {
        let err = tls("postgres://h/d?sslmode=verify-full&sslrootcert=/nonexistent/root.crt")
            .unwrap()
            .connector()
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("/nonexistent/root.crt cannot be read"),
            "{err}"
        );
    }

    #[test]
    fn a_certificate_without_a_key_is_refused() {
        let err = tls("postgres://h/d?sslcert=/etc/hostname")
            .unwrap()
            .connector()
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("has no private key"), "{err}");
    }
}
