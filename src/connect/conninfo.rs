//! libpq connection strings (a `postgres://` URL or `key=value` pairs) read into ordered pairs,
//! so every parameter a user gives is either used or refused by name, never dropped.

use crate::error::{Error, Result};

/// The parameters of a connection string, in the order given (a later one wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conninfo {
    pairs: Vec<(String, String)>,
}

impl Conninfo {
    /// Reads a URL (`postgres://` or `postgresql://`) or a `key=value` string.
    pub fn parse(text: &str) -> Result<Conninfo> {
        let trimmed = text.trim();
        let pairs = if let Some(rest) = trimmed
            .strip_prefix("postgresql://")
            .or_else(|| trimmed.strip_prefix("postgres://"))
        {
            parse_url(rest)?
        } else {
            parse_key_values(trimmed)?
        };
        Ok(Conninfo { pairs })
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Removes every value of `key`, returning the last one.
    pub fn take(&mut self, key: &str) -> Option<String> {
        let value = self.get(key).map(str::to_string);
        self.pairs.retain(|(k, _)| k != key);
        value
    }

    /// Sets `key` (replacing earlier values).
    pub fn set(&mut self, key: &str, value: &str) {
        self.pairs.retain(|(k, _)| k != key);
        self.pairs.push((key.to_string(), value.to_string()));
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }

    /// The pairs as a `key='value'` string (quotes and backslashes escaped).
    pub fn to_key_values(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.pairs {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(key);
            out.push_str("='");
            for c in value.chars() {
                if c == '\'' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('\'');
        }
        out
    }
}

fn invalid(problem: String) -> Error {
    Error::InvalidArgument {
        what: "connection string".into(),
        problem,
    }
}

fn parse_url(rest: &str) -> Result<Vec<(String, String)>> {
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (netloc, path) = match before_query.split_once('/') {
        Some((n, p)) => (n, Some(p)),
        None => (before_query, None),
    };
    let mut pairs = Vec::new();
    let hostspec = match netloc.rsplit_once('@') {
        Some((userinfo, hostspec)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                pairs.push(("user".into(), decode(user)?));
            }
            if let Some(p) = password {
                pairs.push(("password".into(), decode(p)?));
            }
            hostspec
        }
        None => netloc,
    };
    if !hostspec.is_empty() {
        let (hosts, ports) = split_hosts(hostspec)?;
        pairs.push(("host".into(), hosts));
        if let Some(ports) = ports {
            pairs.push(("port".into(), ports));
        }
    }
    if let Some(path) = path.filter(|p| !p.is_empty()) {
        pairs.push(("dbname".into(), decode(path)?));
    }
    for param in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').ok_or_else(|| {
            invalid(format!(
                "URL parameter {:?} has no value (write key=value)",
                decode(param).unwrap_or_default()
            ))
        })?;
        let key = decode(key)?;
        // libpq's URL spelling of dbname.
        let key = if key == "database" {
            "dbname".into()
        } else {
            key
        };
        pairs.push((key, decode(value)?));
    }
    Ok(pairs)
}

/// `host1:port1,[::1]:port2` → `("host1,::1", Some("port1,port2"))`.
fn split_hosts(spec: &str) -> Result<(String, Option<String>)> {
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for part in spec.split(',') {
        let (host, port) = if let Some(v6) = part.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid(format!("unclosed [ in URL host {part:?}")))?;
            (host, after.strip_prefix(':'))
        } else {
            match part.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (part, None),
            }
        };
        hosts.push(decode(host)?);
        ports.push(port.map(decode).transpose()?);
    }
    let ports = if ports.iter().all(Option::is_none) {
        None
    } else {
        Some(
            ports
                .into_iter()
                .map(|p| p.unwrap_or_else(|| "5432".into()))
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    Ok((hosts.join(","), ports))
}

fn decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid(format!("bad percent-encoding in URL part {text:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(format!("URL part {text:?} is not UTF-8")))
}

fn parse_key_values(text: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(invalid(format!(
                "missing \"=\" after {key:?} (write key=value)"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(invalid(format!("unterminated quoted value of {key:?}"))),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        Conninfo::parse(text).unwrap().pairs
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn a_url_gives_every_part_and_parameter() {
        assert_eq!(
            pairs("postgres://u%40x:p%3As@db.example:6432/app%20db?sslmode=verify-full&sslrootcert=/etc/ca.pem"),
            vec![
                p("user", "u@x"),
                p("password", "p:s"),
                p("host", "db.example"),
                p("port", "6432"),
                p("dbname", "app db"),
                p("sslmode", "verify-full"),
                p("sslrootcert", "/etc/ca.pem"),
            ]
        );
    }

    #[test]
    fn a_socket_directory_as_host_parameter_or_encoded_host() {
        assert_eq!(
            pairs("postgresql:///gitlab?host=/var/opt/gitlab/postgresql"),
            vec![
                p("dbname", "gitlab"),
                p("host", "/var/opt/gitlab/postgresql")
            ]
        );
        assert_eq!(
            pairs("postgresql://%2Ftmp%2Fpg/db"),
            vec![p("host", "/tmp/pg"), p("dbname", "db")]
        );
    }

    #[test]
    fn several_hosts_and_ipv6() {
        assert_eq!(
            pairs("postgres://a:1,[::1]:2,b/x"),
            vec![
                p("host", "a,::1,b"),
                p("port", "1,2,5432"),
                p("dbname", "x")
            ]
        );
    }

    #[test]
    fn key_values_with_quotes_and_escapes() {
        assert_eq!(
            pairs(r"host=/tmp  dbname = 'my db' password='it\'s' options=-c\ a=b"),
            vec![
                p("host", "/tmp"),
                p("dbname", "my db"),
                p("password", "it's"),
                p("options", "-c a=b")
            ]
        );
    }

    #[test]
    fn round_trips_through_key_values() {
        let info = Conninfo::parse("postgres://u:it's%5C@h/d?options=-c%20x%3D1").unwrap();
        let again = Conninfo::parse(&info.to_key_values()).unwrap();
        assert_eq!(info, again);
    }

    #[test]
    fn malformed_strings_are_refused_by_name() {
        let err = Conninfo::parse("postgres://h/d?sslmode").unwrap_err();
        assert!(
            err.to_string().contains("\"sslmode\" has no value"),
            "{err}"
        );
        let err = Conninfo::parse("host=x dbname").unwrap_err();
        assert!(err.to_string().contains("after \"dbname\""), "{err}");
        let err = Conninfo::parse("postgres://h/%zz").unwrap_err();
        assert!(err.to_string().contains("percent-encoding"), "{err}");
        assert!(Conninfo::parse("password='open").is_err());
    }
}
