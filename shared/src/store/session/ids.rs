//! Session and user identities: [`SessionKey`] (app, user, session id) and
//! [`UserKey`] (app, user), validated once, and the id of a new session.

use std::fmt;

use super::StoreError;
use crate::blocks::keys::Tenant;
use crate::blocks::token::random_token;

/// Longest user id, session id, event id, author or state key, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// The identity of a session, validated: build it with [`SessionKey::new`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    tenant: Tenant,
    user: String,
    id: String,
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids may be personal data: the app only.
        f.debug_struct("SessionKey")
            .field("app", &self.tenant.id())
            .finish_non_exhaustive()
    }
}

impl SessionKey {
    /// Validates the three parts of a session's identity.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] naming `app`, `user_id` or `session_id`.
    pub fn new(app: &str, user: &str, id: &str) -> Result<Self, StoreError> {
        let user = UserKey::new(app, user)?;
        validate_id("session_id", id)?;
        Ok(Self {
            tenant: user.tenant,
            user: user.user,
            id: id.to_owned(),
        })
    }

    /// The app (the tenant).
    pub fn app(&self) -> &str {
        self.tenant.id()
    }

    /// The user id.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn tenant(&self) -> &Tenant {
        &self.tenant
    }
}

/// An app, validated: what [`super::SessionStore::list_app`] takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppKey {
    tenant: Tenant,
}

impl AppKey {
    /// Validates an app name.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] naming `app`.
    pub fn new(app: &str) -> Result<Self, StoreError> {
        Ok(Self {
            tenant: Tenant::new("app", app)?,
        })
    }

    /// The app (the tenant).
    pub fn app(&self) -> &str {
        self.tenant.id()
    }

    pub(crate) fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The key of `user` of this app.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] when `user` is not a valid user id.
    pub fn user(&self, user: &str) -> Result<UserKey, StoreError> {
        validate_id("user_id", user)?;
        Ok(UserKey {
            tenant: self.tenant.clone(),
            user: user.to_owned(),
        })
    }
}

/// An (app, user) pair, validated: what `list` and the memory store take.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserKey {
    tenant: Tenant,
    user: String,
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserKey")
            .field("app", &self.tenant.id())
            .finish_non_exhaustive()
    }
}

impl UserKey {
    /// Validates an app and a user id.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] naming `app` or `user_id`.
    pub fn new(app: &str, user: &str) -> Result<Self, StoreError> {
        let tenant = Tenant::new("app", app)?;
        validate_id("user_id", user)?;
        Ok(Self {
            tenant,
            user: user.to_owned(),
        })
    }

    /// The app (the tenant).
    pub fn app(&self) -> &str {
        self.tenant.id()
    }

    /// The user id.
    pub fn user(&self) -> &str {
        &self.user
    }

    pub(crate) fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The key of session `id` of this user.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] when `id` is not a valid session id.
    pub fn session(&self, id: &str) -> Result<SessionKey, StoreError> {
        validate_id("session_id", id)?;
        Ok(SessionKey {
            tenant: self.tenant.clone(),
            user: self.user.clone(),
            id: id.to_owned(),
        })
    }
}

/// Checks an id-like string: 1 to [`MAX_ID_BYTES`] bytes, no control characters.
pub(crate) fn validate_id(field: &'static str, id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(StoreError::invalid(
            field,
            format!("must be 1 to {MAX_ID_BYTES} bytes long"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// The id a new session gets: the caller's, validated, or a random one (32
/// hexadecimal characters from the crate's one token generator).
pub(crate) fn new_session_id(id: Option<&str>) -> Result<String, StoreError> {
    match id {
        Some(id) => {
            validate_id("session_id", id)?;
            Ok(id.to_owned())
        }
        None => Ok(random_token()),
    }
}
