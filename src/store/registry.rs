//! Model names, versions and aliases: what a model reference (a UUID, `churn`,
//! `churn@champion`, `churn/versions/3`) resolves to.
//!
//! [`ModelRef`] is the one parser of references; [`Store::resolve_model`] the one lookup.
//! Resolve once at the start of a request and use the id from then on: an alias moved
//! meanwhile does not change the model a request in flight answers from.

use std::fmt;

use uuid::Uuid;

use super::{parse_id, Result, Store, StoreError};

/// The longest name or alias.
pub const MAX_SLUG: usize = 64;

/// The alias every name has without setting it: its latest version (`churn@latest`, as
/// `churn`). It cannot be set or deleted.
pub const LATEST: &str = "latest";

/// What a client names a model by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelRef {
    /// The model's id.
    Id(Uuid),
    /// The highest version of the name that still exists.
    Latest(String),
    /// The version an alias of the name points at.
    Alias { name: String, alias: String },
    /// One version of the name.
    Version { name: String, version: u32 },
}

/// A reference that cannot name any model.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RefError(pub String);

/// Checks a model name or alias (`what` names it in the message): 1 to [`MAX_SLUG`]
/// lower-case letters, digits, `-` and `_`, starting with a letter or a digit.
pub fn check_slug(what: &str, text: &str) -> std::result::Result<(), String> {
    let valid = !text.is_empty()
        && text.len() <= MAX_SLUG
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && text
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{what} must be 1 to {MAX_SLUG} lower-case letters, digits, `-` or `_`, starting \
             with a letter or a digit; got {text:?}"
        ))
    }
}

/// Checks the name a job gives its model: a slug that does not read as a UUID (a
/// reference that reads as one is taken as a model id).
pub fn check_name(what: &str, text: &str) -> std::result::Result<(), String> {
    check_slug(what, text)?;
    if Uuid::parse_str(text).is_ok() {
        return Err(format!(
            "{what} {text:?} reads as a UUID, which a model reference takes as a model id; \
             choose another"
        ));
    }
    Ok(())
}

/// Checks an alias that a client sets: a slug other than [`LATEST`].
pub fn check_alias(what: &str, text: &str) -> std::result::Result<(), String> {
    check_slug(what, text)?;
    if text == LATEST {
        return Err(format!(
            "{what} {LATEST:?} is reserved: it always means the latest version"
        ));
    }
    Ok(())
}

impl ModelRef {
    /// The reference of one path segment: a UUID, `name` (its latest version) or
    /// `name@alias`.
    pub fn parse(text: &str) -> std::result::Result<ModelRef, RefError> {
        if let Ok(id) = Uuid::parse_str(text) {
            return Ok(ModelRef::Id(id));
        }
        let bad = |why: String| {
            RefError(format!(
                "{text:?} is not a model reference (a model id, a name, name@alias or \
                 name/versions/N): {why}"
            ))
        };
        match text.split_once('@') {
            Some((name, alias)) => {
                check_slug("the name", name).map_err(bad)?;
                check_slug("the alias", alias).map_err(bad)?;
                if alias == LATEST {
                    return Ok(ModelRef::Latest(name.to_owned()));
                }
                Ok(ModelRef::Alias {
                    name: name.to_owned(),
                    alias: alias.to_owned(),
                })
            }
            None => {
                check_slug("a name", text).map_err(bad)?;
                Ok(ModelRef::Latest(text.to_owned()))
            }
        }
    }

    /// `name/versions/version`: a name and a version number from 1.
    pub fn version(name: &str, version: &str) -> std::result::Result<ModelRef, RefError> {
        check_slug("the name", name).map_err(RefError)?;
        let number = version
            .parse::<u32>()
            .ok()
            .filter(|&v| v >= 1 && version.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                RefError(format!(
                    "the version must be a whole number from 1 (versions count 1, 2, 3… per \
                     name); got {version:?}"
                ))
            })?;
        Ok(ModelRef::Version {
            name: name.to_owned(),
            version: number,
        })
    }

    /// The name it is a reference into, when it is not an id.
    pub fn name(&self) -> Option<&str> {
        match self {
            ModelRef::Id(_) => None,
            ModelRef::Latest(name)
            | ModelRef::Alias { name, .. }
            | ModelRef::Version { name, .. } => Some(name),
        }
    }
}

impl fmt::Display for ModelRef {
    /// As a client writes it in a path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelRef::Id(id) => write!(f, "{id}"),
            ModelRef::Latest(name) => write!(f, "{name}"),
            ModelRef::Alias { name, alias } => write!(f, "{name}@{alias}"),
            ModelRef::Version { name, version } => write!(f, "{name}/versions/{version}"),
        }
    }
}

impl Store {
    /// The id of the model `reference` names now, or [`StoreError::Missing`] saying what
    /// is missing (no such id, name, alias or version).
    pub async fn resolve_model(&self, reference: &ModelRef) -> Result<Uuid> {
        let found: Option<String> = match reference {
            ModelRef::Id(id) => {
                sqlx::query_scalar("SELECT id FROM models WHERE id = ?")
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?
            }
            ModelRef::Latest(name) => {
                sqlx::query_scalar(
                    "SELECT id FROM models WHERE name = ? ORDER BY version DESC LIMIT 1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
            }
            ModelRef::Alias { name, alias } => {
                sqlx::query_scalar(
                    "SELECT model_id FROM model_aliases WHERE name = ? AND alias = ?",
                )
                .bind(name)
                .bind(alias)
                .fetch_optional(&self.pool)
                .await?
            }
            ModelRef::Version { name, version } => {
                sqlx::query_scalar("SELECT id FROM models WHERE name = ? AND version = ?")
                    .bind(name)
                    .bind(i64::from(*version))
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        match found {
            Some(id) => parse_id(&id),
            None => Err(self.missing(reference).await?),
        }
    }

    /// Whether any job has made a version of `name` (its versions may all be deleted).
    pub async fn name_exists(&self, name: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM model_names WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// What is missing for `reference` to name a model.
    async fn missing(&self, reference: &ModelRef) -> Result<StoreError> {
        if let ModelRef::Id(id) = reference {
            return Ok(StoreError::NotFound {
                kind: "model",
                id: *id,
            });
        }
        let name = reference.name().unwrap_or_default();
        if !self.name_exists(name).await? {
            return Ok(StoreError::Missing(format!(
                "no model is named {name:?} (a job's \"name\" makes one)"
            )));
        }
        Ok(StoreError::Missing(match reference {
            ModelRef::Latest(_) => format!("model {name:?} has no version left"),
            ModelRef::Alias { alias, .. } => format!("model {name:?} has no alias {alias:?}"),
            ModelRef::Version { version, .. } => {
                format!("model {name:?} has no version {version}")
            }
            ModelRef::Id(_) => unreachable!("answered above"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_clients_write_them() {
        let id = Uuid::new_v4();
        assert_eq!(ModelRef::parse(&id.to_string()).unwrap(), ModelRef::Id(id));
        assert_eq!(
            ModelRef::parse("churn").unwrap(),
            ModelRef::Latest("churn".into())
        );
        assert_eq!(
            ModelRef::parse("churn@champion").unwrap(),
            ModelRef::Alias {
                name: "churn".into(),
                alias: "champion".into()
            }
        );
        assert_eq!(
            ModelRef::parse("churn@latest").unwrap(),
            ModelRef::Latest("churn".into())
        );
        assert_eq!(
            ModelRef::version("churn", "12").unwrap(),
            ModelRef::Version {
                name: "churn".into(),
                version: 12
            }
        );
        for reference in [
            ModelRef::Id(id),
            ModelRef::parse("a-b_1").unwrap(),
            ModelRef::parse("a@b").unwrap(),
            ModelRef::version("a", "3").unwrap(),
        ] {
            let text = reference.to_string();
            let again = match text.split_once("/versions/") {
                Some((name, v)) => ModelRef::version(name, v).unwrap(),
                None => ModelRef::parse(&text).unwrap(),
            };
            assert_eq!(again, reference, "{text}");
        }
    }

    #[test]
    fn malformed_references_say_why() {
        for text in [
            "",
            "Churn",
            "churn@",
            "@champion",
            "a@b@c",
            "-x",
            "x y",
            "é",
        ] {
            assert!(ModelRef::parse(text).is_err(), "{text:?}");
        }
        assert!(ModelRef::parse(&"a".repeat(MAX_SLUG)).is_ok());
        assert!(ModelRef::parse(&"a".repeat(MAX_SLUG + 1)).is_err());
        for version in ["0", "-1", "+1", "1.0", "v1", "", "99999999999"] {
            let err = ModelRef::version("churn", version).unwrap_err();
            assert!(err.0.contains("whole number"), "{version:?}: {err}");
        }
        let err = check_name("name", &Uuid::new_v4().simple().to_string()).unwrap_err();
        assert!(err.contains("UUID"), "{err}");
        assert!(check_alias("alias", LATEST)
            .unwrap_err()
            .contains("reserved"));
        assert!(check_alias("alias", "champion").is_ok());
    }
}
