//! Training curves: loss and accuracy against steps. Epoch figures (validation, test,
//! training accuracy) are drawn with markers, so that a run of one epoch still shows them.

use super::{render, text, LABEL_PX, TITLE_PX};
use crate::error::Result;
use crate::train::metrics::Record;
use plotters::prelude::*;
use std::path::Path;

/// One named curve of (step, value) points; `marked` curves get a dot at each point.
struct Curve<'a> {
    label: &'a str,
    color: RGBColor,
    points: Vec<(u64, f32)>,
    marked: bool,
}

/// Draws `curves` into `path`; the legend goes in the corner `legend` where the curves
/// usually are not at the end of a run (top right for a falling loss, bottom right for a
/// rising accuracy).
fn draw(path: &Path, title: &str, y_desc: &str, legend: SeriesLabelPosition, curves: &[Curve]) -> Result<()> {
    let all: Vec<(u64, f32)> = curves.iter().flat_map(|c| c.points.iter().copied()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let x_max = all.iter().map(|p| p.0).max().unwrap_or(1).max(1);
    // Room on the right for a marker at the last step.
    let x_end = x_max + (x_max / 40).max(1);
    let (mut y_min, mut y_max) = all.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    if (y_max - y_min).abs() < 1e-6 {
        y_max += 0.5;
        y_min -= 0.5;
    }
    let pad = (y_max - y_min) * 0.06;
    // As many decimals as the span needs, no more ("96", not "96.0"; "0.25" for a small loss).
    let span = y_max - y_min;
    let decimals = if span >= 5.0 { 0 } else if span >= 0.5 { 1 } else { 2 };
    let y_label = move |y: &f32| format!("{y:.decimals$}");
    let img = render(900, 540, path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", TITLE_PX))
            .margin(18)
            .x_label_area_size(56)
            .y_label_area_size(84)
            .build_cartesian_2d(0u64..x_end, (y_min - pad)..(y_max + pad))
            .map_err(text)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(y_desc)
            .label_style(("sans-serif", LABEL_PX))
            .axis_desc_style(("sans-serif", LABEL_PX))
            .x_label_formatter(&|x| x.to_string())
            .y_label_formatter(&y_label)
            .draw()
            .map_err(text)?;
        for c in curves.iter().filter(|c| !c.points.is_empty()) {
            let color = c.color;
            let series = chart.draw_series(LineSeries::new(c.points.iter().copied(), color.stroke_width(2))).map_err(text)?;
            if c.marked {
                series.label(c.label).legend(move |(x, y)| {
                    EmptyElement::at((x + 10, y)) + Circle::new((0, 0), 5, color.filled()) + PathElement::new(vec![(-10, 0), (10, 0)], color.stroke_width(2))
                });
                chart.draw_series(c.points.iter().map(|&p| Circle::new(p, 5, color.filled()))).map_err(text)?;
            } else {
                series.label(c.label).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", LABEL_PX))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(legend)
            .draw()
            .map_err(text)
    })?;
    crate::io::atomic::write_atomic(path, &crate::viz::render::png_bytes(&img)?)
}

/// Writes `loss.png` and `accuracy.png` into `dir` from a run's metrics.
pub fn training_curves(records: &[Record], dir: &Path) -> Result<()> {
    let mut step_loss = Vec::new();
    let mut step_acc = Vec::new();
    let (mut val_loss, mut test_loss, mut train_acc, mut val_acc, mut test_acc) = (vec![], vec![], vec![], vec![], vec![]);
    for r in records {
        match r {
            Record::Step { step, loss, accuracy, .. } => {
                step_loss.push((*step as u64, *loss));
                step_acc.push((*step as u64, 100.0 * accuracy));
            }
            Record::Epoch { step, train_accuracy, val_loss: vl, val_accuracy, test_loss: tl, test_accuracy, .. } => {
                let s = *step as u64;
                train_acc.push((s, 100.0 * train_accuracy));
                val_loss.extend(vl.map(|v| (s, v)));
                test_loss.extend(tl.map(|v| (s, v)));
                val_acc.extend(val_accuracy.map(|v| (s, 100.0 * v)));
                test_acc.extend(test_accuracy.map(|v| (s, 100.0 * v)));
            }
        }
    }
    let batch = RGBColor(120, 160, 220);
    let (val, test) = (RGBColor(230, 120, 20), RGBColor(40, 150, 60));
    draw(
        &dir.join("loss.png"),
        "Loss",
        "cross-entropy",
        SeriesLabelPosition::UpperRight,
        &[
            Curve { label: "training batch", color: batch, points: step_loss, marked: false },
            Curve { label: "validation", color: val, points: val_loss, marked: true },
            Curve { label: "test", color: test, points: test_loss, marked: true },
        ],
    )?;
    // Batch accuracies are noisy; from the second epoch on, the epoch figures tell more.
    let zoom = val_acc.len() >= 2 || test_acc.len() >= 2;
    draw(
        &dir.join("accuracy.png"),
        "Accuracy",
        "accuracy (%)",
        SeriesLabelPosition::LowerRight,
        &[
            Curve { label: "training batch", color: batch, points: if zoom { vec![] } else { step_acc }, marked: false },
            Curve { label: "training epoch", color: RGBColor(30, 80, 180), points: train_acc, marked: true },
            Curve { label: "validation", color: val, points: val_acc, marked: true },
            Curve { label: "test", color: test, points: test_acc, marked: true },
        ],
    )
}
