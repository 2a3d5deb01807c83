//! Where the `sql` store backends connect: `DATABASE_URL`, or the source
//! project's `CLOUDSQL_*` variables (its rollback guide sets
//! `SESSION_BACKEND=cloudsql` with them), turned into the same kind of URL.
//!
//! # `CLOUDSQL_*`
//!
//! | variable | meaning |
//! |---|---|
//! | `CLOUDSQL_HOST` | the server's address (TCP); not needed with a socket |
//! | `CLOUDSQL_UNIX_SOCKET` | on Cloud Run, `/cloudsql/<project:region:instance>`: for PostgreSQL the directory holding `.s.PGSQL.<port>`, for MySQL the socket itself |
//! | `CLOUDSQL_PORT` | the port (over a socket PostgreSQL still names its socket file by it); default 5432 or 3306 by dialect |
//! | `CLOUDSQL_DIALECT` | `postgres` or `mysql`; when unset, from the port: 5432 is PostgreSQL, 3306 MySQL, any other port needs it |
//! | `CLOUDSQL_DATABASE`, `CLOUDSQL_USER` | required |
//! | `CLOUDSQL_PASSWORD` | a secret: never logged, printed or echoed in an error |
//!
//! `DATABASE_URL` wins when both are set. The URL built here is held as a
//! [`Secret`] (it carries the password), percent-encoded, and says nothing
//! about TLS (sqlx's default: `prefer` / `PREFERRED`); TLS with
//! verification is set in `DATABASE_URL` (`sslmode=verify-full&sslrootcert=…`).

use url::Url;

use super::{ConfigError, Env, Secret};

/// The database of the `sql` backends: `DATABASE_URL` when set, else a URL
/// built from `CLOUDSQL_*` when `CLOUDSQL_HOST` or `CLOUDSQL_UNIX_SOCKET` is
/// set (see the module documentation), else `None`.
///
/// # Errors
/// A `CLOUDSQL_*` setting that is missing or unusable, named; never a
/// password.
pub fn database_url(env: &Env<'_>) -> Result<Option<Secret>, ConfigError> {
    if let Some(url) = env.get("DATABASE_URL") {
        return Ok(Some(Secret::new(url)));
    }
    let host = env.get("CLOUDSQL_HOST");
    let socket = env.get("CLOUDSQL_UNIX_SOCKET");
    if host.is_none() && socket.is_none() {
        return Ok(None);
    }
    let port = match env.get("CLOUDSQL_PORT") {
        None => None,
        Some(_) => Some(env.range("CLOUDSQL_PORT", 0, 1, 65_535)? as u16),
    };
    let dialect = match env
        .get("CLOUDSQL_DIALECT")
        .map(|d| d.to_ascii_lowercase())
        .as_deref()
    {
        Some("postgres" | "postgresql") => "postgres",
        Some("mysql" | "mariadb") => "mysql",
        Some(_) => {
            return Err(ConfigError::new(
                "CLOUDSQL_DIALECT",
                "expected postgres or mysql",
            ));
        }
        None => match port {
            Some(5432) => "postgres",
            Some(3306) => "mysql",
            _ => {
                return Err(ConfigError::new(
                    "CLOUDSQL_DIALECT",
                    "is required unless CLOUDSQL_PORT is 5432 (postgres) or 3306 (mysql)",
                ));
            }
        },
    };
    let port = port.unwrap_or(if dialect == "postgres" { 5432 } else { 3306 });
    let database = env.get("CLOUDSQL_DATABASE").ok_or_else(|| {
        ConfigError::new(
            "CLOUDSQL_DATABASE",
            "is required with CLOUDSQL_HOST or CLOUDSQL_UNIX_SOCKET",
        )
    })?;
    let user = env.get("CLOUDSQL_USER").ok_or_else(|| {
        ConfigError::new(
            "CLOUDSQL_USER",
            "is required with CLOUDSQL_HOST or CLOUDSQL_UNIX_SOCKET",
        )
    })?;
    let password = env.get("CLOUDSQL_PASSWORD").map(Secret::new);
    if let Some(path) = &socket
        && !path.starts_with('/')
    {
        return Err(ConfigError::new(
            "CLOUDSQL_UNIX_SOCKET",
            "must be an absolute path (on Cloud Run: /cloudsql/<project:region:instance>)",
        ));
    }
    // Over a socket the host part is a placeholder: the socket is a query
    // parameter (`host=` for PostgreSQL, `socket=` for MySQL).
    let host = match &socket {
        Some(_) => "localhost".to_owned(),
        None => host.unwrap_or_default(),
    };
    let mut url = Url::parse(&format!("{dialect}://placeholder/"))
        .map_err(|_| ConfigError::new("CLOUDSQL_HOST", "cannot build a URL"))?;
    url.set_host(Some(&host))
        .map_err(|_| ConfigError::new("CLOUDSQL_HOST", "is not a host name or an IP address"))?;
    let invalid = |var: &'static str| move |()| ConfigError::new(var, "cannot be put in a URL");
    url.set_port(Some(port)).map_err(invalid("CLOUDSQL_PORT"))?;
    url.set_username(&user).map_err(invalid("CLOUDSQL_USER"))?;
    if let Some(password) = &password {
        url.set_password(Some(password.expose()))
            .map_err(invalid("CLOUDSQL_PASSWORD"))?;
    }
    url.path_segments_mut()
        .map_err(invalid("CLOUDSQL_DATABASE"))?
        .clear()
        .push(&database);
    if let Some(path) = &socket {
        let name = if dialect == "postgres" {
            "host"
        } else {
            "socket"
        };
        url.query_pairs_mut().append_pair(name, path);
    }
    Ok(Some(Secret::new(String::from(url))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(vars: &[(&str, &str)]) -> Result<Option<String>, ConfigError> {
        let env = Env::from_fn(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        });
        database_url(&env).map(|u| u.map(|s| s.expose().to_owned()))
    }

    const BASE: [(&str, &str); 3] = [
        ("CLOUDSQL_DATABASE", "sessions db"),
        ("CLOUDSQL_USER", "app@example"),
        ("CLOUDSQL_PASSWORD", "p@ss:w/rd?#%"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = BASE.to_vec();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn the_dialect_comes_from_the_port_or_is_named() {
        let pg = url(&with(&[
            ("CLOUDSQL_HOST", "10.0.0.5"),
            ("CLOUDSQL_PORT", "5432"),
        ]))
        .unwrap()
        .unwrap();
        let parsed = Url::parse(&pg).unwrap();
        let decoded = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .unwrap()
                .into_owned()
        };
        assert_eq!(parsed.scheme(), "postgres");
        assert_eq!(parsed.host_str(), Some("10.0.0.5"));
        assert_eq!(parsed.port(), Some(5432));
        assert_eq!(decoded(parsed.username()), "app@example");
        assert_eq!(decoded(parsed.password().unwrap()), "p@ss:w/rd?#%");
        assert_eq!(decoded(parsed.path()), "/sessions db");
        assert_eq!(parsed.query(), None);
        let my = url(&with(&[
            ("CLOUDSQL_HOST", "db.internal"),
            ("CLOUDSQL_PORT", "3306"),
        ]))
        .unwrap()
        .unwrap();
        assert!(
            my.starts_with("mysql://") && my.contains("@db.internal:3306/"),
            "{my}"
        );
        let named = url(&with(&[
            ("CLOUDSQL_HOST", "127.0.0.1"),
            ("CLOUDSQL_PORT", "6543"),
            ("CLOUDSQL_DIALECT", "MariaDB"),
        ]))
        .unwrap()
        .unwrap();
        assert!(
            named.starts_with("mysql://") && named.contains(":6543/"),
            "{named}"
        );
        let default_port = url(&with(&[
            ("CLOUDSQL_HOST", "h"),
            ("CLOUDSQL_DIALECT", "postgres"),
        ]))
        .unwrap()
        .unwrap();
        assert!(default_port.contains("@h:5432/"), "{default_port}");
        let err = url(&with(&[("CLOUDSQL_HOST", "h"), ("CLOUDSQL_PORT", "6543")])).unwrap_err();
        assert_eq!(err.var, "CLOUDSQL_DIALECT");
        let err = url(&with(&[("CLOUDSQL_HOST", "h")])).unwrap_err();
        assert_eq!(err.var, "CLOUDSQL_DIALECT");
        let err = url(&with(&[
            ("CLOUDSQL_HOST", "h"),
            ("CLOUDSQL_DIALECT", "oracle"),
        ]))
        .unwrap_err();
        assert_eq!(err.var, "CLOUDSQL_DIALECT");
    }

    #[test]
    fn a_unix_socket_is_the_host_parameter_for_postgres_and_the_socket_for_mysql() {
        let pg = url(&with(&[
            ("CLOUDSQL_UNIX_SOCKET", "/cloudsql/proj:europe-west1:db"),
            ("CLOUDSQL_DIALECT", "postgres"),
        ]))
        .unwrap()
        .unwrap();
        let parsed = Url::parse(&pg).unwrap();
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [("host".into(), "/cloudsql/proj:europe-west1:db".into())]
        );
        assert_eq!(parsed.port(), Some(5432));
        let my = url(&with(&[
            ("CLOUDSQL_UNIX_SOCKET", "/cloudsql/proj:europe-west1:db"),
            ("CLOUDSQL_PORT", "3306"),
        ]))
        .unwrap()
        .unwrap();
        let pairs: Vec<(String, String)> = Url::parse(&my)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        assert_eq!(
            pairs,
            [("socket".into(), "/cloudsql/proj:europe-west1:db".into())]
        );
        let err = url(&with(&[
            ("CLOUDSQL_UNIX_SOCKET", "cloudsql/x"),
            ("CLOUDSQL_PORT", "3306"),
        ]))
        .unwrap_err();
        assert_eq!(err.var, "CLOUDSQL_UNIX_SOCKET");
    }

    #[test]
    fn required_parts_are_named_and_the_password_never_shown() {
        assert_eq!(url(&[]).unwrap(), None);
        assert_eq!(
            url(&[("DATABASE_URL", "postgres://u@h/d"), ("CLOUDSQL_HOST", "x")]).unwrap(),
            Some("postgres://u@h/d".to_owned()),
            "DATABASE_URL wins"
        );
        let err = url(&[
            ("CLOUDSQL_HOST", "h"),
            ("CLOUDSQL_PORT", "5432"),
            ("CLOUDSQL_USER", "u"),
            ("CLOUDSQL_PASSWORD", "hunter2-secret"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "CLOUDSQL_DATABASE");
        let err = url(&[
            ("CLOUDSQL_HOST", "h"),
            ("CLOUDSQL_PORT", "5432"),
            ("CLOUDSQL_DATABASE", "d"),
            ("CLOUDSQL_PASSWORD", "hunter2-secret"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "CLOUDSQL_USER");
        assert!(!err.to_string().contains("hunter2"));
        let err = url(&with(&[
            ("CLOUDSQL_HOST", "bad host/"),
            ("CLOUDSQL_PORT", "5432"),
        ]))
        .unwrap_err();
        assert_eq!(err.var, "CLOUDSQL_HOST");
        assert!(!err.to_string().contains("p@ss"));
    }
}
