//! Model names, versions and aliases: what a model reference (a UUID, `churn`,
//! `churn@champion`, `churn/versions/3`) resolves to.
//!
//! [`ModelRef`] is the one parser of references; [`Store::resolve_model`] the one lookup.
//! Resolve once at the start of a request and use the id from then on: an alias moved
//! meanwhile does not change the model a request in flight answers from.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::nn::{EpochRecord, Mode};

use super::{now, parse_id, Result, Store, StoreError, Tx};

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
            ModelRef::Id(id) => on_pool!(self, pool => {
                sqlx::query_scalar("SELECT id FROM models WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(pool)
                    .await
            })?,
            ModelRef::Latest(name) => on_pool!(self, pool => {
                sqlx::query_scalar(
                    "SELECT id FROM models WHERE name = $1 ORDER BY version DESC LIMIT 1",
                )
                .bind(name)
                .fetch_optional(pool)
                .await
            })?,
            ModelRef::Alias { name, alias } => on_pool!(self, pool => {
                sqlx::query_scalar(
                    "SELECT model_id FROM model_aliases WHERE name = $1 AND alias = $2",
                )
                .bind(name)
                .bind(alias)
                .fetch_optional(pool)
                .await
            })?,
            ModelRef::Version { name, version } => on_pool!(self, pool => {
                sqlx::query_scalar("SELECT id FROM models WHERE name = $1 AND version = $2")
                    .bind(name)
                    .bind(i64::from(*version))
                    .fetch_optional(pool)
                    .await
            })?,
        };
        match found {
            Some(id) => parse_id(&id),
            None => Err(self.missing(reference).await?),
        }
    }

    /// Whether any job has made a version of `name` (its versions may all be deleted).
    pub async fn name_exists(&self, name: &str) -> Result<bool> {
        let found: Option<String> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT name FROM model_names WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        })?;
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

/// An alias and the version it points at now.
#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub name: String,
    pub alias: String,
    pub version: u32,
    pub model_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// When it last moved (or was set).
    pub updated_at: DateTime<Utc>,
}

type AliasRow = (String, String, i64, String, DateTime<Utc>, DateTime<Utc>);

const ALIAS_COLUMNS: &str = "a.name, a.alias, m.version, a.model_id, a.created_at, a.updated_at \
    FROM model_aliases a JOIN models m ON m.id = a.model_id";

fn alias_of(row: AliasRow) -> Result<Alias> {
    let (name, alias, version, model_id, created_at, updated_at) = row;
    Ok(Alias {
        name,
        alias,
        version: version_of(version)?,
        model_id: parse_id(&model_id)?,
        created_at,
        updated_at,
    })
}

pub(super) fn version_of(stored: i64) -> Result<u32> {
    u32::try_from(stored).map_err(|_| StoreError::Corrupt(format!("model version {stored}")))
}

/// A job's wish to move an alias to its model when it succeeds.
#[derive(Debug, Clone)]
pub struct PromoteRequest {
    pub alias: String,
    /// Only when the model's monitored value is at least as good as the current target's.
    pub if_better: bool,
    /// The job's monitor and its direction.
    pub monitor: String,
    pub mode: Mode,
}

/// Whether a job moved its alias, kept with the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Promotion {
    /// The alias the job asked to move (`promote`).
    pub alias: String,
    /// Whether the alias now points at this job's model.
    pub moved: bool,
    /// Why it moved or stayed, with the values compared.
    pub reason: String,
    /// The version the alias pointed at when the job succeeded; null when it was not set.
    pub previous_version: Option<u32>,
    /// With `promote_if_better` and a previous version: the quantity compared (the job's
    /// monitor), this model's value and the previous version's (each for the weights the
    /// model holds: the best epoch's with `restore_best_weights`, else the last epoch's).
    pub monitor: Option<String>,
    pub value: Option<f64>,
    pub previous_value: Option<f64>,
}

/// A stored model's value of `monitor` for the weights it holds: the best epoch's record
/// when early stopping restored the best weights, the last epoch's otherwise (a job that
/// does not restore them keeps its last weights).
pub(super) fn held_value(
    spec: &Value,
    final_metrics: &Value,
    best_metrics: Option<&Value>,
    monitor: &str,
) -> Option<f64> {
    let restores = spec
        .pointer("/early_stopping/restore_best_weights")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let record = match best_metrics {
        Some(best) if restores => best,
        _ => final_metrics,
    };
    let record: EpochRecord = serde_json::from_value(record.clone()).ok()?;
    record.get(monitor).filter(|v| v.is_finite())
}

/// Whether the alias moves to `version` (whose monitored value is `value`), given what it
/// points at now (`current`: its version and value).
pub(super) fn decide(
    request: &PromoteRequest,
    version: u32,
    value: Option<f64>,
    current: Option<(u32, Option<f64>)>,
) -> Promotion {
    let alias = &request.alias;
    let monitor = &request.monitor;
    let mut promotion = Promotion {
        alias: alias.clone(),
        moved: true,
        reason: String::new(),
        previous_version: current.map(|(v, _)| v),
        monitor: None,
        value: None,
        previous_value: None,
    };
    let Some((previous, previous_value)) = current else {
        promotion.reason = format!("{alias} was not set; it now points at version {version}");
        return promotion;
    };
    if !request.if_better {
        promotion.reason = format!(
            "{alias} moved from version {previous} to version {version} (promote_if_better is \
             false)"
        );
        return promotion;
    }
    promotion.monitor = Some(monitor.clone());
    promotion.value = value;
    promotion.previous_value = previous_value;
    let direction = match request.mode {
        Mode::Min => "lower is better",
        Mode::Max => "higher is better",
    };
    let (moved, reason) = match (value, previous_value) {
        (None, _) => (
            false,
            format!(
                "this model has no finite {monitor} to compare; {alias} stays on version \
                 {previous}"
            ),
        ),
        (Some(_), None) => (
            false,
            format!(
                "version {previous} records no finite {monitor} to compare with (it was trained \
                 without it); {alias} stays on version {previous}: move it with PUT if this \
                 model should serve"
            ),
        ),
        (Some(v), Some(p)) if request.mode.better(p, v) => (
            false,
            format!(
                "{monitor} {v} is worse than version {previous}'s {p} ({direction}); {alias} \
                 stays on version {previous}"
            ),
        ),
        (Some(v), Some(p)) => (
            true,
            format!(
                "{monitor} {v} is at least as good as version {previous}'s {p} ({direction}); \
                 {alias} moved from version {previous} to version {version}"
            ),
        ),
    };
    promotion.moved = moved;
    promotion.reason = reason;
    promotion
}

/// Decides and applies a job's promotion inside the transaction that stores its model
/// (`id`, version `version` of `name`): the comparison and the move see the same target.
pub(super) async fn promote(
    tx: &mut Tx,
    request: &PromoteRequest,
    name: &str,
    id: Uuid,
    version: u32,
    value: Option<f64>,
) -> Result<Promotion> {
    let current: Option<(i64, String, String, Option<String>)> = on_tx!(tx, conn => {
        sqlx::query_as(
            "SELECT m.version, m.spec, m.final_metrics, m.best_metrics FROM model_aliases a \
             JOIN models m ON m.id = a.model_id WHERE a.name = $1 AND a.alias = $2",
        )
        .bind(name)
        .bind(&request.alias)
        .fetch_optional(conn)
        .await
    })?;
    let current = match current {
        Some((version, spec, final_metrics, best_metrics)) => {
            let spec: Value = super::from_json(&spec, "model spec")?;
            let final_metrics: Value = super::from_json(&final_metrics, "model final metrics")?;
            let best_metrics: Option<Value> = best_metrics
                .as_deref()
                .map(|text| super::from_json(text, "model best metrics"))
                .transpose()?;
            let value = held_value(
                &spec,
                &final_metrics,
                best_metrics.as_ref(),
                &request.monitor,
            );
            Some((version_of(version)?, value))
        }
        None => None,
    };
    let promotion = decide(request, version, value, current);
    if promotion.moved {
        upsert_alias(tx, name, &request.alias, id).await?;
    }
    Ok(promotion)
}

/// Points `alias` of `name` at model `id` in one statement.
async fn upsert_alias(tx: &mut Tx, name: &str, alias: &str, id: Uuid) -> Result<()> {
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO model_aliases (name, alias, model_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (name, alias) DO UPDATE SET model_id = excluded.model_id, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(alias)
        .bind(id.to_string())
        .bind(now())
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(())
}

impl Store {
    /// Points `alias` of `name` at `version`; returns the alias and the version it
    /// pointed at before (`None`: it is new).
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: u32,
    ) -> Result<(Alias, Option<u32>)> {
        let mut tx = self.begin().await?;
        // A write first, so the transaction holds the write lock (on PostgreSQL, the
        // alias's row lock) from here: the previous target read here is the one the upsert
        // replaces.
        let previous: Option<String> = on_tx!(&mut tx, conn => {
            sqlx::query_scalar(
                "UPDATE model_aliases SET updated_at = updated_at \
                 WHERE name = $1 AND alias = $2 RETURNING model_id",
            )
            .bind(name)
            .bind(alias)
            .fetch_optional(conn)
            .await
        })?;
        let id: Option<String> = on_tx!(&mut tx, conn => {
            sqlx::query_scalar("SELECT id FROM models WHERE name = $1 AND version = $2")
                .bind(name)
                .bind(i64::from(version))
                .fetch_optional(conn)
                .await
        })?;
        let Some(id) = id else {
            drop(tx);
            return Err(self
                .missing(&ModelRef::Version {
                    name: name.to_owned(),
                    version,
                })
                .await?);
        };
        upsert_alias(&mut tx, name, alias, parse_id(&id)?).await?;
        let previous = match previous {
            Some(model) => {
                let v: i64 = on_tx!(&mut tx, conn => {
                    sqlx::query_scalar("SELECT version FROM models WHERE id = $1")
                        .bind(model)
                        .fetch_one(conn)
                        .await
                })?;
                Some(version_of(v)?)
            }
            None => None,
        };
        let sql = format!("SELECT {ALIAS_COLUMNS} WHERE a.name = $1 AND a.alias = $2");
        let row: AliasRow = on_tx!(&mut tx, conn => {
            sqlx::query_as(&sql)
                .bind(name)
                .bind(alias)
                .fetch_one(conn)
                .await
        })?;
        tx.commit().await?;
        Ok((alias_of(row)?, previous))
    }

    pub async fn alias(&self, name: &str, alias: &str) -> Result<Alias> {
        let sql = format!("SELECT {ALIAS_COLUMNS} WHERE a.name = $1 AND a.alias = $2");
        let row: Option<AliasRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(name)
                .bind(alias)
                .fetch_optional(pool)
                .await
        })?;
        match row {
            Some(row) => alias_of(row),
            None => Err(self
                .missing(&ModelRef::Alias {
                    name: name.to_owned(),
                    alias: alias.to_owned(),
                })
                .await?),
        }
    }

    /// The aliases of `name`, by alias, and its latest version; a name no job has made is
    /// [`StoreError::Missing`].
    pub async fn aliases(&self, name: &str) -> Result<(Vec<Alias>, Option<u32>)> {
        if !self.name_exists(name).await? {
            return Err(self.missing(&ModelRef::Latest(name.to_owned())).await?);
        }
        let sql = format!("SELECT {ALIAS_COLUMNS} WHERE a.name = $1 ORDER BY a.alias");
        let rows: Vec<AliasRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(name).fetch_all(pool).await
        })?;
        let latest: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(version) FROM models WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await
        })?;
        let aliases = rows.into_iter().map(alias_of).collect::<Result<_>>()?;
        Ok((aliases, latest.map(version_of).transpose()?))
    }

    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        let deleted = on_pool!(self, pool => {
            sqlx::query("DELETE FROM model_aliases WHERE name = $1 AND alias = $2")
                .bind(name)
                .bind(alias)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        if deleted == 0 {
            return Err(self
                .missing(&ModelRef::Alias {
                    name: name.to_owned(),
                    alias: alias.to_owned(),
                })
                .await?);
        }
        Ok(())
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

    fn request(if_better: bool, mode: Mode) -> PromoteRequest {
        PromoteRequest {
            alias: "champion".into(),
            if_better,
            monitor: "val_loss".into(),
            mode,
        }
    }

    #[test]
    fn promotion_compares_in_the_monitor_direction_and_ties_move() {
        let min = request(true, Mode::Min);
        assert!(decide(&min, 2, Some(0.3), Some((1, Some(0.4)))).moved);
        assert!(
            decide(&min, 2, Some(0.4), Some((1, Some(0.4)))).moved,
            "a tie moves"
        );
        let worse = decide(&min, 2, Some(0.5), Some((1, Some(0.4))));
        assert!(!worse.moved);
        assert!(worse.reason.contains("worse") && worse.reason.contains("lower is better"));
        assert_eq!(
            (worse.previous_version, worse.value, worse.previous_value),
            (Some(1), Some(0.5), Some(0.4))
        );
        let max = request(true, Mode::Max);
        assert!(decide(&max, 2, Some(0.9), Some((1, Some(0.8)))).moved);
        assert!(!decide(&max, 2, Some(0.7), Some((1, Some(0.8)))).moved);
    }

    #[test]
    fn promotion_without_a_comparison() {
        let first = decide(&request(true, Mode::Min), 1, Some(0.5), None);
        assert!(first.moved && first.previous_version.is_none());
        assert!(
            decide(
                &request(false, Mode::Min),
                2,
                Some(9.0),
                Some((1, Some(0.1)))
            )
            .moved
        );
        assert!(!decide(&request(true, Mode::Min), 2, None, Some((1, Some(0.1)))).moved);
        let unknown = decide(&request(true, Mode::Min), 2, Some(0.1), Some((1, None)));
        assert!(!unknown.moved && unknown.reason.contains("version 1 records no"));
    }

    #[test]
    fn the_held_value_is_the_epoch_whose_weights_the_model_keeps() {
        let record = |val_loss: f64| {
            serde_json::json!({"epoch": 1, "loss": 1.0, "val_loss": val_loss,
                "learning_rate": 0.001, "seconds": 0.1, "overfitting": false})
        };
        let (last, best) = (record(0.5), record(0.2));
        let plain = serde_json::json!({});
        let restores = serde_json::json!({"early_stopping": {"restore_best_weights": true}});
        assert_eq!(
            held_value(&plain, &last, Some(&best), "val_loss"),
            Some(0.5)
        );
        assert_eq!(
            held_value(&restores, &last, Some(&best), "val_loss"),
            Some(0.2)
        );
        assert_eq!(held_value(&plain, &last, None, "val_accuracy"), None);
    }
}
