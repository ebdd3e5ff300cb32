//! Checks of the layer list and of the loss against the layers and the data.

use crate::nn::data::{Column, DataShape};
use crate::nn::error::SpecError;
use crate::nn::layers::encoding::spec::{plan, CrossPlan, Plan};
use crate::nn::layers::Place;
use crate::nn::model::Task;
use crate::nn::spec::check::loss_name;
use crate::nn::spec::{Activation, LayerSpec, LossKind, TrainingSpec};

/// Facts derived while validating, which training and prediction rely on.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ModelFacts {
    pub features: usize,
    pub outputs: usize,
    pub task: Task,
    /// Weight per class index (missing classes weigh 1, as in Keras).
    pub class_weights: Option<Vec<f32>>,
    /// The feature columns to encode (empty: plain numbers, no encoding), with one plan
    /// each, and the crosses.
    pub columns: Vec<Column>,
    pub plans: Vec<Plan>,
    pub crosses: Vec<CrossPlan>,
    pub class_names: Option<Vec<String>>,
    pub missing_markers: Option<Vec<String>>,
}

pub(crate) fn check_model(spec: &TrainingSpec, shape: &DataShape) -> Result<ModelFacts, SpecError> {
    let layers = &spec.model.layers;
    if layers.is_empty() {
        return Err(SpecError::range("model.layers", "a non-empty list", "[]"));
    }
    if shape.features == 0 {
        return Err(SpecError::range("data.features", "at least 1", 0));
    }
    if !shape.columns.is_empty() && shape.columns.len() != shape.features {
        return Err(SpecError::incompatible(
            "data.columns",
            format!(
                "{} column types for {} features",
                shape.columns.len(),
                shape.features
            ),
        ));
    }
    let options = spec.column_options();
    let encoded = shape.columns.iter().any(Column::is_typed) || !options.is_empty();
    if encoded && shape.columns.is_empty() {
        return Err(SpecError::incompatible(
            "features",
            "this dataset has no column names or types (it was stored before columns were \
             typed): upload it again to configure its columns",
        ));
    }
    let (plans, crosses) = if encoded {
        plan(&shape.columns, &options)?
    } else {
        (Vec::new(), Vec::new())
    };
    let described = [
        shape.target_min.len(),
        shape.target_max.len(),
        shape.target_integral.len(),
    ];
    if shape.targets == 0 || described.iter().any(|&n| n != shape.targets) {
        return Err(SpecError::incompatible(
            "data.targets",
            format!(
                "{} target columns, described by {described:?} summaries",
                shape.targets
            ),
        ));
    }
    let mut last_dense = None;
    for (i, layer) in layers.iter().enumerate() {
        let at = format!("model.layers[{i}]");
        let first = i == 0 || (i == 1 && matches!(layers[0], LayerSpec::Input(_)));
        layer.check(&Place {
            at: &at,
            index: i,
            first,
            features: shape.features,
        })?;
        if matches!(layer, LayerSpec::Dense(_)) {
            last_dense = Some(i);
        }
        if matches!(layer, LayerSpec::Normalization(_)) && encoded {
            return Err(SpecError::incompatible(
                at,
                "this dataset's columns are encoded before the first layer (numbers \
                 standardised with the training split's mean and variance, unless `features` \
                 says otherwise): leave the normalization layer out",
            ));
        }
    }
    let Some(last) = last_dense else {
        return Err(SpecError::incompatible(
            "model.layers",
            "needs at least one dense layer",
        ));
    };
    if last != layers.len() - 1 {
        return Err(SpecError::incompatible(
            format!("model.layers[{}]", layers.len() - 1),
            "the last layer must be dense: it produces the predictions",
        ));
    }
    let LayerSpec::Dense(out) = &layers[last] else {
        unreachable!("checked above")
    };
    let at = format!("model.layers[{last}]");
    let task = check_loss(spec.loss, out.activation, out.units, &at, shape)?;
    let class_weights = check_class_weight(spec, task, out.units, shape)?;
    Ok(ModelFacts {
        features: shape.features,
        outputs: out.units,
        task,
        class_weights,
        columns: if encoded {
            shape.columns.clone()
        } else {
            Vec::new()
        },
        plans,
        crosses,
        class_names: shape.class_names.clone(),
        missing_markers: shape.missing_markers.clone(),
    })
}

fn check_loss(
    loss: LossKind,
    activation: Activation,
    units: usize,
    at: &str,
    shape: &DataShape,
) -> Result<Task, SpecError> {
    let name = loss_name(loss);
    let needs = |act: Activation, act_name: &str| {
        if activation == act {
            Ok(())
        } else {
            Err(SpecError::incompatible(
                format!("{at}.activation"),
                format!(
                    "loss {name} needs a {act_name} output layer, got {}",
                    act_label(activation)
                ),
            ))
        }
    };
    let targets_in_unit_interval = || {
        let bad =
            (0..shape.targets).find(|&j| shape.target_min[j] < 0.0 || shape.target_max[j] > 1.0);
        match bad {
            None => Ok(()),
            Some(j) => Err(SpecError::incompatible(
                "loss",
                format!(
                    "{name} needs targets in [0, 1], but target column {j} ranges over [{}, {}]",
                    shape.target_min[j], shape.target_max[j]
                ),
            )),
        }
    };
    let targets_match_units = || {
        if shape.targets == units {
            Ok(())
        } else {
            Err(SpecError::incompatible(
                format!("{at}.units"),
                format!(
                    "loss {name} needs one output unit per target column: the dataset has {} target columns, the last layer has {units} units",
                    shape.targets
                ),
            ))
        }
    };
    match loss {
        LossKind::MeanSquaredError | LossKind::MeanAbsoluteError | LossKind::Huber => {
            targets_match_units()?;
            Ok(Task::Regression)
        }
        LossKind::BinaryCrossentropy => {
            needs(Activation::Sigmoid, "sigmoid")?;
            targets_match_units()?;
            targets_in_unit_interval()?;
            Ok(Task::Binary)
        }
        LossKind::CategoricalCrossentropy => {
            needs(Activation::Softmax, "softmax")?;
            at_least_two_classes(units, at, name)?;
            targets_match_units()?;
            targets_in_unit_interval()?;
            Ok(Task::Multiclass)
        }
        LossKind::SparseCategoricalCrossentropy => {
            needs(Activation::Softmax, "softmax")?;
            at_least_two_classes(units, at, name)?;
            if shape.targets != 1 {
                return Err(SpecError::incompatible(
                    "loss",
                    format!(
                        "{name} needs one target column of class indices, the dataset has {}",
                        shape.targets
                    ),
                ));
            }
            let (min, max) = (shape.target_min[0], shape.target_max[0]);
            if !shape.target_integral[0] || min < 0.0 || max >= units as f64 {
                return Err(SpecError::incompatible(
                    "loss",
                    format!(
                        "{name} needs integer class labels in [0, {units}) for the {units} units of {at}, but the labels range over [{min}, {max}]{}",
                        if shape.target_integral[0] { "" } else { " and are not all integers" }
                    ),
                ));
            }
            Ok(Task::Multiclass)
        }
    }
}

fn at_least_two_classes(units: usize, at: &str, name: &str) -> Result<(), SpecError> {
    if units >= 2 {
        Ok(())
    } else {
        Err(SpecError::range(
            format!("{at}.units"),
            &format!("at least 2 for {name}"),
            units,
        ))
    }
}

fn act_label(a: Activation) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn check_class_weight(
    spec: &TrainingSpec,
    task: Task,
    units: usize,
    shape: &DataShape,
) -> Result<Option<Vec<f32>>, SpecError> {
    let Some(cw) = &spec.class_weight else {
        return Ok(None);
    };
    let classes = match task {
        Task::Multiclass => units,
        Task::Binary if units == 1 && shape.target_integral[0] => 2,
        _ => {
            return Err(SpecError::incompatible(
                "class_weight",
                format!(
                    "needs a classification loss with class labels, got {}{}",
                    loss_name(spec.loss),
                    if task == Task::Binary {
                        " with non-0/1 or multi-column targets"
                    } else {
                        ""
                    }
                ),
            ))
        }
    };
    let mut weights = vec![1.0f32; classes];
    for (key, &w) in cw {
        let field = format!("class_weight[{key:?}]");
        let class: usize = key.parse().map_err(|_| SpecError::Unknown {
            field: "class_weight".to_owned(),
            got: key.clone(),
            expected: format!("a class index in [0, {classes})"),
        })?;
        if class >= classes {
            return Err(SpecError::Unknown {
                field: "class_weight".to_owned(),
                got: key.clone(),
                expected: format!("a class index in [0, {classes})"),
            });
        }
        if !(w.is_finite() && w >= 0.0) {
            return Err(SpecError::range(field, "at least 0", w));
        }
        weights[class] = w as f32;
    }
    Ok(Some(weights))
}
