//! A job's `features`, `crosses` and `exclude`: Keras `FeatureSpace`'s vocabulary for how
//! each column becomes input values, checked against the dataset's columns into one
//! [`Plan`] per column. A column the job does not name gets the default of its type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::data::{Column, ColumnKind};
use crate::nn::error::SpecError;

/// Levels kept per categorical column unless the job says otherwise. Unlike Keras'
/// `max_tokens`, it counts kept levels only: the out-of-vocabulary slots come on top.
pub(crate) const MAX_TOKENS: usize = 100;

/// The most slots one option may ask for (`max_tokens`, `num_oov_indices`, `num_bins`,
/// `crossing_dim`, boundaries): a million inputs from one column is already far past any
/// useful encoding, and the bound keeps a typo from asking for terabytes.
pub(crate) const MAX_SLOTS: usize = 1 << 20;

/// `v` (or `default` when not given) if it is in `[min, MAX_SLOTS]`.
fn slots(field: String, v: Option<usize>, default: usize, min: usize) -> Result<usize, SpecError> {
    match v.unwrap_or(default) {
        n if (min..=MAX_SLOTS).contains(&n) => Ok(n),
        n => Err(SpecError::range(
            field,
            &format!("in [{min}, {MAX_SLOTS}]"),
            n,
        )),
    }
}

/// Keras `FeatureSpace`'s feature types.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    /// The number as it is.
    Float,
    /// Mean 0, variance 1 over the training split (the default for numbers).
    FloatNormalized,
    /// `x · scale + offset` (defaults 1 and 0).
    FloatRescaled,
    /// One-hot over `num_bins` quantile bins of the training split, or over the
    /// `bin_boundaries` given.
    FloatDiscretized,
    /// One-hot over the most frequent numbers (levels by value).
    IntegerCategorical,
    /// One-hot over the most frequent texts (the default for text columns).
    StringCategorical,
    /// One-hot over `num_bins` buckets of a hash of the text.
    StringHashed,
    /// One-hot over `num_bins` buckets of a hash of the number's decimal text.
    IntegerHashed,
}

impl FeatureType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            FeatureType::Float => "float",
            FeatureType::FloatNormalized => "float_normalized",
            FeatureType::FloatRescaled => "float_rescaled",
            FeatureType::FloatDiscretized => "float_discretized",
            FeatureType::IntegerCategorical => "integer_categorical",
            FeatureType::StringCategorical => "string_categorical",
            FeatureType::StringHashed => "string_hashed",
            FeatureType::IntegerHashed => "integer_hashed",
        }
    }

    /// Reads the column's numbers (text is not allowed in it).
    fn needs_numbers(self) -> bool {
        !matches!(
            self,
            FeatureType::StringCategorical | FeatureType::StringHashed
        )
    }
}

/// `"float_normalized"`, or an object with `type` and the type's options.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(untagged)]
pub enum FeatureSpec {
    Type(FeatureType),
    Config(FeatureConfig),
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    #[serde(rename = "type")]
    pub kind: FeatureType,
    /// Categorical: levels kept, most frequent first (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_tokens: Option<usize>,
    /// Categorical: slots shared by the levels not kept, by a hash of the level (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub num_oov_indices: Option<usize>,
    /// Categorical: `one_hot` (default), or `embedding`: a trained table of
    /// `embedding_dim` values per slot (Keras' `Embedding` after `StringLookup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_mode: Option<OutputMode>,
    /// Values per slot of an `embedding` (required with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub embedding_dim: Option<usize>,
    /// `float_discretized`, `string_hashed`, `integer_hashed`: bins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub num_bins: Option<usize>,
    /// `float_discretized`: increasing boundaries instead of `num_bins` quantiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_boundaries: Option<Vec<f64>>,
    /// `float_rescaled`: default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// `float_rescaled`: default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<f64>,
    /// What a missing cell becomes: numbers default to `mean`, categories to a level of
    /// its own (the empty text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<MissingSpec>,
    /// An extra input that is 1 for a missing cell. Default: for numbers, when the
    /// training split has missing cells; never for categories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_indicator: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    #[default]
    OneHot,
    /// Categorical columns only: a trained embedding table.
    Embedding,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissingSpec {
    /// The training split's mean (numbers).
    Mean,
    /// The training split's median (numbers).
    Median,
    /// The training split's most frequent value.
    MostFrequent,
    /// `{"constant": 0}`, or a level's text for a category.
    Constant(ConstantValue),
    /// Leave the rows where it is missing out of training and validation; predict
    /// refuses a row without it.
    DropRow,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(untagged)]
pub enum ConstantValue {
    Number(f64),
    Text(String),
}

/// `FeatureSpace.cross`: a hashed cross of two or more categorical columns, one-hot over
/// `crossing_dim` buckets of the combination of their slots.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrossSpec {
    pub feature_names: Vec<String>,
    #[schema(minimum = 1)]
    pub crossing_dim: usize,
    #[serde(default)]
    pub output_mode: OutputMode,
}

/// How one column is encoded, before fitting.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Plan {
    Skip,
    Number {
        scale: Scale,
        fill: Fill,
        indicator: Option<bool>,
    },
    Lookup {
        max_tokens: usize,
        num_oov: usize,
        /// Values per slot when the column is embedded (one-hot otherwise).
        embedding_dim: Option<usize>,
        fill: Fill,
        indicator: bool,
    },
    Hashed {
        num_bins: usize,
        fill: Fill,
        indicator: bool,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scale {
    Raw,
    Normalize,
    Rescale { scale: f32, offset: f32 },
    Quantiles(usize),
    Boundaries(Vec<f32>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Fill {
    /// A category's missing cells are a level of their own.
    OwnLevel,
    Mean,
    Median,
    MostFrequent,
    Number(f32),
    Text(String),
    /// The row is left out (only rows with a value are fitted and trained on).
    DropRow,
}

/// A cross with its columns as indices into the feature columns.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CrossPlan {
    pub columns: Vec<usize>,
    pub crossing_dim: usize,
}

impl Plan {
    /// Whether it yields a slot (a categorical index) that a cross can combine.
    fn is_categorical(&self) -> bool {
        matches!(self, Plan::Lookup { .. } | Plan::Hashed { .. })
    }

    /// Whether a missing cell leaves its row out (`missing: "drop_row"`).
    pub fn drops_missing(&self) -> bool {
        match self {
            Plan::Number { fill, .. } | Plan::Lookup { fill, .. } | Plan::Hashed { fill, .. } => {
                *fill == Fill::DropRow
            }
            Plan::Skip => false,
        }
    }
}

/// The job's column options, as the spec carries them.
pub(crate) struct ColumnOptions<'a> {
    pub features: &'a BTreeMap<String, FeatureSpec>,
    pub crosses: &'a [CrossSpec],
    pub exclude: &'a [String],
}

impl ColumnOptions<'_> {
    pub fn is_empty(&self) -> bool {
        self.features.is_empty() && self.crosses.is_empty() && self.exclude.is_empty()
    }
}

/// One plan per column (in column order) and the crosses, or the first problem, naming
/// the field and the column.
pub(crate) fn plan(
    columns: &[Column],
    options: &ColumnOptions<'_>,
) -> Result<(Vec<Plan>, Vec<CrossPlan>), SpecError> {
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let index_of = |field: String, name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| SpecError::Unknown {
                field,
                got: name.to_owned(),
                expected: format!("a feature column: {}", names.join(", ")),
            })
    };
    let mut plans: Vec<Plan> = columns.iter().map(default_plan).collect();
    for (i, name) in options.exclude.iter().enumerate() {
        let at = index_of(format!("exclude[{i}]"), name)?;
        if options.features.contains_key(name) {
            return Err(SpecError::incompatible(
                format!("exclude[{i}]"),
                format!("{name:?} is also configured in `features`: keep one of the two"),
            ));
        }
        plans[at] = Plan::Skip;
    }
    for (name, feature) in options.features {
        let field = format!("features.{name}");
        let at = index_of(field.clone(), name)?;
        plans[at] = column_plan(&field, &columns[at], feature)?;
    }
    if plans.iter().all(|p| *p == Plan::Skip) {
        return Err(SpecError::incompatible(
            "exclude",
            "every feature column is left out: nothing would reach the first layer",
        ));
    }
    let mut crosses = Vec::new();
    for (i, cross) in options.crosses.iter().enumerate() {
        let field = format!("crosses[{i}]");
        if cross.output_mode == OutputMode::Embedding {
            return Err(SpecError::incompatible(
                format!("{field}.output_mode"),
                "a cross is one-hot over its buckets: only \"one_hot\"",
            ));
        }
        if cross.feature_names.len() < 2 {
            return Err(SpecError::range(
                format!("{field}.feature_names"),
                "two or more columns",
                cross.feature_names.len(),
            ));
        }
        let crossing_dim = slots(
            format!("{field}.crossing_dim"),
            Some(cross.crossing_dim),
            1,
            1,
        )?;
        let mut indices = Vec::new();
        for (j, name) in cross.feature_names.iter().enumerate() {
            let name_field = format!("{field}.feature_names[{j}]");
            let at = index_of(name_field.clone(), name)?;
            if indices.contains(&at) {
                return Err(SpecError::incompatible(
                    name_field,
                    format!("{name:?} is crossed with itself"),
                ));
            }
            if plans[at] == Plan::Skip {
                return Err(SpecError::incompatible(
                    name_field,
                    format!(
                        "{name:?} is left out of training (excluded, or an identifier not \
                         named in `features`), so it cannot be crossed"
                    ),
                ));
            }
            if !plans[at].is_categorical() {
                return Err(SpecError::incompatible(
                    name_field,
                    format!(
                        "{name:?} is not encoded as a category (a cross combines categorical \
                         slots): give it a categorical or hashed type in `features`"
                    ),
                ));
            }
            indices.push(at);
        }
        crosses.push(CrossPlan {
            columns: indices,
            crossing_dim,
        });
    }
    Ok((plans, crosses))
}

fn default_plan(column: &Column) -> Plan {
    match column.kind {
        ColumnKind::Number => Plan::Number {
            scale: Scale::Normalize,
            fill: Fill::Mean,
            indicator: None,
        },
        ColumnKind::Category { .. } => Plan::Lookup {
            max_tokens: MAX_TOKENS,
            num_oov: 1,
            embedding_dim: None,
            fill: Fill::OwnLevel,
            indicator: false,
        },
        ColumnKind::Identifier { .. } => Plan::Skip,
    }
}

fn column_plan(field: &str, column: &Column, feature: &FeatureSpec) -> Result<Plan, SpecError> {
    let config = match feature {
        FeatureSpec::Type(kind) => &FeatureConfig::of(*kind),
        FeatureSpec::Config(config) => config,
    };
    let kind = config.kind;
    let name = &column.name;
    match &column.kind {
        ColumnKind::Category { levels } if kind.needs_numbers() && !levels.is_empty() => {
            return Err(SpecError::incompatible(
                format!("{field}.type"),
                format!(
                    "{} reads numbers, but {name:?} holds text (such as {:?}): use \
                     string_categorical or string_hashed",
                    kind.name(),
                    levels[0]
                ),
            ));
        }
        ColumnKind::Identifier { .. } if kind.needs_numbers() => {
            return Err(SpecError::incompatible(
                format!("{field}.type"),
                format!(
                    "{} reads numbers, but {name:?} is an identifier (every value a distinct \
                     text): use string_categorical or string_hashed",
                    kind.name()
                ),
            ));
        }
        ColumnKind::Identifier { levels } if levels.is_empty() => {
            return Err(SpecError::incompatible(
                field,
                format!(
                    "{name:?} is an identifier with too many distinct values for the upload to \
                     keep them; upload the dataset with `?types={name}:category` to train on it"
                ),
            ));
        }
        _ => {}
    }
    let allowed = Options::of(kind);
    let given = [
        ("max_tokens", config.max_tokens.is_some(), allowed.lookup),
        (
            "num_oov_indices",
            config.num_oov_indices.is_some(),
            allowed.lookup,
        ),
        ("output_mode", config.output_mode.is_some(), allowed.lookup),
        (
            "embedding_dim",
            config.embedding_dim.is_some(),
            allowed.lookup,
        ),
        ("num_bins", config.num_bins.is_some(), allowed.bins),
        (
            "bin_boundaries",
            config.bin_boundaries.is_some(),
            allowed.boundaries,
        ),
        ("scale", config.scale.is_some(), allowed.rescale),
        ("offset", config.offset.is_some(), allowed.rescale),
    ];
    if let Some((option, ..)) = given.iter().find(|(_, set, ok)| *set && !ok) {
        return Err(SpecError::incompatible(
            format!("{field}.{option}"),
            format!("{option} does not apply to {}", kind.name()),
        ));
    }
    let numeric = matches!(
        kind,
        FeatureType::Float
            | FeatureType::FloatNormalized
            | FeatureType::FloatRescaled
            | FeatureType::FloatDiscretized
    );
    let fill = fill(field, config.missing.as_ref(), numeric)?;
    if fill == Fill::DropRow && config.missing_indicator == Some(true) {
        return Err(SpecError::incompatible(
            format!("{field}.missing_indicator"),
            "with missing \"drop_row\" no trained row is missing the value, so an indicator \
             would always be 0",
        ));
    }
    let option = |name: &str| format!("{field}.{name}");
    let indicator = config.missing_indicator;
    Ok(match kind {
        FeatureType::Float | FeatureType::FloatNormalized | FeatureType::FloatRescaled => {
            let scale = match kind {
                FeatureType::Float => Scale::Raw,
                FeatureType::FloatNormalized => Scale::Normalize,
                _ => Scale::Rescale {
                    scale: finite_f32(&format!("{field}.scale"), config.scale.unwrap_or(1.0))?,
                    offset: finite_f32(&format!("{field}.offset"), config.offset.unwrap_or(0.0))?,
                },
            };
            Plan::Number {
                scale,
                fill,
                indicator,
            }
        }
        FeatureType::FloatDiscretized => {
            let scale = match (&config.bin_boundaries, config.num_bins) {
                (Some(_), Some(_)) => {
                    return Err(SpecError::incompatible(
                        format!("{field}.num_bins"),
                        "give num_bins or bin_boundaries, not both",
                    ))
                }
                (Some(bounds), None) => Scale::Boundaries(boundaries(field, bounds)?),
                (None, Some(bins)) => {
                    Scale::Quantiles(slots(option("num_bins"), Some(bins), 2, 2)?)
                }
                (None, None) => {
                    return Err(SpecError::range(
                        option("num_bins"),
                        "given (or bin_boundaries)",
                        "nothing",
                    ))
                }
            };
            Plan::Number {
                scale,
                fill,
                indicator,
            }
        }
        FeatureType::IntegerCategorical | FeatureType::StringCategorical => {
            let max_tokens = slots(option("max_tokens"), config.max_tokens, MAX_TOKENS, 1)?;
            let num_oov = slots(option("num_oov_indices"), config.num_oov_indices, 1, 1)?;
            Plan::Lookup {
                max_tokens,
                num_oov,
                embedding_dim: embedding_dim(field, config, max_tokens + num_oov)?,
                fill,
                indicator: indicator.unwrap_or(false),
            }
        }
        FeatureType::StringHashed | FeatureType::IntegerHashed => Plan::Hashed {
            // Required: a default would hide a choice that decides the collisions.
            num_bins: slots(option("num_bins"), config.num_bins, 0, 1)?,
            fill,
            indicator: indicator.unwrap_or(false),
        },
    })
}

/// The most values one embedding table may hold (slots × `embedding_dim`): 64 MiB of
/// weights, each with its gradient and moments while training.
pub(crate) const MAX_EMBEDDING_VALUES: usize = 1 << 24;

/// An embedded column's values per slot, `None` for one-hot; `slots` the table's rows at
/// most.
fn embedding_dim(
    field: &str,
    config: &FeatureConfig,
    slots_bound: usize,
) -> Result<Option<usize>, SpecError> {
    let option = format!("{field}.embedding_dim");
    match (config.output_mode.unwrap_or_default(), config.embedding_dim) {
        (OutputMode::OneHot, None) => Ok(None),
        (OutputMode::OneHot, Some(_)) => Err(SpecError::incompatible(
            option,
            "embedding_dim applies to output_mode \"embedding\" only",
        )),
        (OutputMode::Embedding, None) => Err(SpecError::range(
            option,
            "given with output_mode \"embedding\" (the values per slot, such as 8)",
            "nothing",
        )),
        (OutputMode::Embedding, Some(dim)) => {
            let dim = slots(option.clone(), Some(dim), 1, 1)?;
            if slots_bound.saturating_mul(dim) > MAX_EMBEDDING_VALUES {
                return Err(SpecError::range(
                    option,
                    &format!(
                        "such that (max_tokens + num_oov_indices) × embedding_dim is at most \
                         {MAX_EMBEDDING_VALUES}"
                    ),
                    format!("{dim} for {slots_bound} slots"),
                ));
            }
            Ok(Some(dim))
        }
    }
}

impl FeatureConfig {
    fn of(kind: FeatureType) -> FeatureConfig {
        FeatureConfig {
            kind,
            max_tokens: None,
            num_oov_indices: None,
            output_mode: None,
            embedding_dim: None,
            num_bins: None,
            bin_boundaries: None,
            scale: None,
            offset: None,
            missing: None,
            missing_indicator: None,
        }
    }
}

/// Which options a feature type reads.
struct Options {
    lookup: bool,
    bins: bool,
    boundaries: bool,
    rescale: bool,
}

impl Options {
    fn of(kind: FeatureType) -> Options {
        use FeatureType::*;
        Options {
            lookup: matches!(kind, IntegerCategorical | StringCategorical),
            bins: matches!(kind, FloatDiscretized | StringHashed | IntegerHashed),
            boundaries: kind == FloatDiscretized,
            rescale: kind == FloatRescaled,
        }
    }
}

fn fill(field: &str, missing: Option<&MissingSpec>, numeric: bool) -> Result<Fill, SpecError> {
    let field = format!("{field}.missing");
    Ok(match (missing, numeric) {
        (None, true) | (Some(MissingSpec::Mean), true) => Fill::Mean,
        (None, false) => Fill::OwnLevel,
        (Some(MissingSpec::Median), true) => Fill::Median,
        (Some(MissingSpec::Mean | MissingSpec::Median), false) => {
            return Err(SpecError::incompatible(
                field,
                "mean and median fill numbers; a categorical encoding takes most_frequent or a \
                 constant level",
            ))
        }
        (Some(MissingSpec::MostFrequent), _) => Fill::MostFrequent,
        (Some(MissingSpec::DropRow), _) => Fill::DropRow,
        (Some(MissingSpec::Constant(ConstantValue::Number(v))), true) => {
            Fill::Number(finite_f32(&field, *v)?)
        }
        (Some(MissingSpec::Constant(ConstantValue::Text(t))), true) => {
            return Err(SpecError::incompatible(
                field,
                format!("the constant {t:?} is text, and this encoding reads numbers"),
            ))
        }
        (Some(MissingSpec::Constant(ConstantValue::Number(v))), false) => {
            Fill::Text(super::number_level(finite_f32(&field, *v)?))
        }
        (Some(MissingSpec::Constant(ConstantValue::Text(t))), false) => Fill::Text(t.clone()),
    })
}

fn finite_f32(field: &str, v: f64) -> Result<f32, SpecError> {
    let narrow = v as f32;
    if narrow.is_finite() {
        Ok(narrow)
    } else {
        Err(SpecError::range(field, "a finite number", v))
    }
}

fn boundaries(field: &str, bounds: &[f64]) -> Result<Vec<f32>, SpecError> {
    let field = format!("{field}.bin_boundaries");
    if bounds.is_empty() || bounds.len() >= MAX_SLOTS {
        return Err(SpecError::range(
            field,
            &format!("a list of 1 to {} boundaries", MAX_SLOTS - 1),
            bounds.len(),
        ));
    }
    let narrow = bounds
        .iter()
        .map(|&b| finite_f32(&field, b))
        .collect::<Result<Vec<f32>, _>>()?;
    if let Some(w) = narrow.windows(2).find(|w| w[0] >= w[1]) {
        return Err(SpecError::incompatible(
            field,
            format!("must increase, but {} is followed by {}", w[0], w[1]),
        ));
    }
    Ok(narrow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<Column> {
        let column = |name: &str, kind| Column {
            name: name.into(),
            kind,
            has_missing: false,
        };
        vec![
            column("age", ColumnKind::Number),
            column(
                "city",
                ColumnKind::Category {
                    levels: vec!["Paris".into()],
                },
            ),
            column("zip", ColumnKind::Category { levels: Vec::new() }),
            column("name", ColumnKind::Identifier { levels: Vec::new() }),
        ]
    }

    /// The error for `features` (JSON), `exclude` and `crosses` (JSON).
    fn problem(
        features: serde_json::Value,
        exclude: &[&str],
        crosses: serde_json::Value,
    ) -> SpecError {
        let features: BTreeMap<String, FeatureSpec> = serde_json::from_value(features).unwrap();
        let crosses: Vec<CrossSpec> = serde_json::from_value(crosses).unwrap();
        let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
        let options = ColumnOptions {
            features: &features,
            crosses: &crosses,
            exclude: &exclude,
        };
        plan(&columns(), &options).unwrap_err()
    }

    fn says(error: SpecError, field: &str, words: &str) {
        assert_eq!(error.field(), field, "{error}");
        assert!(error.to_string().contains(words), "{error}");
    }

    #[test]
    fn each_bad_option_is_named_with_its_column() {
        let none = serde_json::json!([]);
        says(
            problem(serde_json::json!({"agee": "float"}), &[], none.clone()),
            "features.agee",
            "age, city",
        );
        says(
            problem(
                serde_json::json!({"city": "float_normalized"}),
                &[],
                none.clone(),
            ),
            "features.city.type",
            "holds text (such as \"Paris\")",
        );
        says(
            problem(
                serde_json::json!({"city": {"type": "string_categorical", "max_tokens": 0}}),
                &[],
                none.clone(),
            ),
            "features.city.max_tokens",
            "in [1, 1048576]",
        );
        says(
            problem(
                serde_json::json!({"age": {"type": "float", "num_bins": 3}}),
                &[],
                none.clone(),
            ),
            "features.age.num_bins",
            "does not apply to float",
        );
        says(
            problem(
                serde_json::json!({"age": {"type": "float_discretized", "num_bins": 3, "bin_boundaries": [1]}}),
                &[],
                none.clone(),
            ),
            "features.age.num_bins",
            "not both",
        );
        says(
            problem(
                serde_json::json!({"age": {"type": "float_discretized", "bin_boundaries": [2, 1]}}),
                &[],
                none.clone(),
            ),
            "features.age.bin_boundaries",
            "2 is followed by 1",
        );
        says(
            problem(
                serde_json::json!({"city": {"type": "string_categorical", "missing": "median"}}),
                &[],
                none.clone(),
            ),
            "features.city.missing",
            "most_frequent",
        );
        says(
            problem(
                serde_json::json!({"name": "string_categorical"}),
                &[],
                none.clone(),
            ),
            "features.name",
            "?types=name:category",
        );
        says(
            problem(serde_json::json!({"age": "float"}), &["age"], none.clone()),
            "exclude[0]",
            "also configured",
        );
        says(
            problem(serde_json::json!({}), &["age", "city", "zip"], none.clone()),
            "exclude",
            "every feature column",
        );
        says(
            problem(
                serde_json::json!({}),
                &[],
                serde_json::json!([{"feature_names": ["city", "age"], "crossing_dim": 4}]),
            ),
            "crosses[0].feature_names[1]",
            "\"age\" is not encoded as a category",
        );
        says(
            problem(
                serde_json::json!({}),
                &["city"],
                serde_json::json!([{"feature_names": ["city", "zip"], "crossing_dim": 4}]),
            ),
            "crosses[0].feature_names[0]",
            "left out of training",
        );
    }

    #[test]
    fn numbers_may_be_categories_and_columns_left_alone_keep_their_defaults() {
        let features: BTreeMap<String, FeatureSpec> = serde_json::from_value(serde_json::json!({
            "zip": {"type": "integer_categorical", "max_tokens": 5},
            "age": "string_hashed",
        }))
        .unwrap_or_default();
        let exclude = ["city".to_owned()];
        let options = ColumnOptions {
            features: &features,
            crosses: &[],
            exclude: &exclude,
        };
        let error = plan(&columns(), &options).unwrap_err();
        // string_hashed needs num_bins.
        assert_eq!(error.field(), "features.age.num_bins", "{error}");
        let features: BTreeMap<String, FeatureSpec> = serde_json::from_value(serde_json::json!({
            "zip": {"type": "integer_categorical", "max_tokens": 5},
        }))
        .unwrap();
        let options = ColumnOptions {
            features: &features,
            crosses: &[],
            exclude: &exclude,
        };
        let (plans, _) = plan(&columns(), &options).unwrap();
        assert_eq!(plans[0], default_plan(&columns()[0]));
        assert_eq!(plans[1], Plan::Skip);
        assert_eq!(
            plans[2],
            Plan::Lookup {
                max_tokens: 5,
                num_oov: 1,
                embedding_dim: None,
                fill: Fill::OwnLevel,
                indicator: false
            }
        );
        assert_eq!(plans[3], Plan::Skip, "identifiers stay out unless named");
    }
}
