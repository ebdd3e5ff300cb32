//! `GET /jobs/{id}/loss.svg`: training and validation loss per epoch, as an SVG chart.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use plotters::prelude::*;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::metrics::records;
use crate::http::error::{Error, Problem, Result};
use crate::http::extract::Path;
use crate::http::AppState;
use crate::nn::EpochRecord;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(loss_curve))
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Loss curves of every trial: training loss solid, validation loss as circles.
#[utoipa::path(get, path = "/jobs/{id}/loss.svg", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The chart", content_type = "image/svg+xml", body = String),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    ))]
async fn loss_curve(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    let job = state.store.job(id).await?;
    let rows = records(state.store.epochs(id).await?)?;
    let mut trials: Vec<(usize, Vec<EpochRecord>)> = Vec::new();
    for (row, record) in rows {
        match trials.last_mut() {
            Some((batch_size, records)) if *batch_size == row.batch_size => records.push(record),
            _ => trials.push((row.batch_size, vec![record])),
        }
    }
    let svg = draw(&format!("job {id}"), job.epochs, &trials)
        .map_err(|e| Error::Internal(format!("drawing: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg))
}

fn draw(
    title: &str,
    epochs: usize,
    trials: &[(usize, Vec<EpochRecord>)],
) -> Result<String, Box<dyn std::error::Error>> {
    let losses = trials
        .iter()
        .flat_map(|(_, records)| records.iter().flat_map(|r| [Some(r.loss), r.val_loss]))
        .flatten()
        .filter(|v| v.is_finite());
    let top = losses.fold(0.0f64, f64::max).max(1e-9) * 1.05;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(1f64..epochs.max(2) as f64, 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .draw()?;
        let several = trials.len() > 1;
        for (i, (batch_size, records)) in trials.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let suffix = if several {
                format!(" (batch {batch_size})")
            } else {
                String::new()
            };
            let train = records.iter().map(|r| (r.epoch as f64, r.loss));
            chart
                .draw_series(LineSeries::new(train, color.stroke_width(2)))?
                .label(format!("loss{suffix}"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            let val: Vec<(f64, f64)> = records
                .iter()
                .filter_map(|r| Some((r.epoch as f64, r.val_loss?)))
                .collect();
            if !val.is_empty() {
                chart
                    .draw_series(LineSeries::new(val.iter().copied(), color.mix(0.5)))?
                    .label(format!("val_loss{suffix}"))
                    .legend(move |(x, y)| Circle::new((x + 8, y), 3, color.filled()));
                chart.draw_series(
                    val.iter()
                        .map(|&point| Circle::new(point, 3, color.filled())),
                )?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}
