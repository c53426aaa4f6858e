//! Training curves as PNG images: loss and accuracy against steps, drawn with `plotters` and
//! the bundled DejaVu Sans font (a fresh machine has no system fonts).

use crate::error::{Error, Result};
use crate::train::metrics::Record;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        // Without a font, text is not drawn but the curves still are.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

/// One named curve of (step, value) points.
struct Curve<'a> {
    label: &'a str,
    color: RGBColor,
    points: Vec<(f32, f32)>,
}

fn draw(path: &Path, title: &str, y_desc: &str, curves: &[Curve]) -> Result<()> {
    register_font();
    let all: Vec<(f32, f32)> = curves.iter().flat_map(|c| c.points.iter().copied()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let x_max = all.iter().map(|p| p.0).fold(1.0f32, f32::max);
    let (mut y_min, mut y_max) = all.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    if (y_max - y_min).abs() < 1e-6 {
        y_max += 0.5;
        y_min -= 0.5;
    }
    let pad = (y_max - y_min) * 0.05;
    let tmp = path.with_extension("tmp.png");
    let err = |e: String| Error::file(path, format!("cannot draw the plot: {e}"));
    {
        let root = BitMapBackend::new(&tmp, (900, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(format!("{e:?}")))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f32..x_max, (y_min - pad)..(y_max + pad))
            .map_err(|e| err(format!("{e:?}")))?;
        chart.configure_mesh().x_desc("step").y_desc(y_desc).draw().map_err(|e| err(format!("{e:?}")))?;
        for c in curves.iter().filter(|c| !c.points.is_empty()) {
            let color = c.color;
            chart
                .draw_series(LineSeries::new(c.points.iter().copied(), color.stroke_width(2)))
                .map_err(|e| err(format!("{e:?}")))?
                .label(c.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(format!("{e:?}")))?;
        root.present().map_err(|e| err(format!("{e:?}")))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

/// Writes `loss.png` and `accuracy.png` into `dir` from a run's metrics.
pub fn training_curves(records: &[Record], dir: &Path) -> Result<()> {
    let mut step_loss = Vec::new();
    let mut step_acc = Vec::new();
    let (mut val_loss, mut test_loss, mut train_acc, mut val_acc, mut test_acc) = (vec![], vec![], vec![], vec![], vec![]);
    for r in records {
        match r {
            Record::Step { step, loss, accuracy, .. } => {
                step_loss.push((*step as f32, *loss));
                step_acc.push((*step as f32, 100.0 * accuracy));
            }
            Record::Epoch { step, train_accuracy, val_loss: vl, val_accuracy, test_loss: tl, test_accuracy, .. } => {
                let s = *step as f32;
                train_acc.push((s, 100.0 * train_accuracy));
                if let Some(v) = vl {
                    val_loss.push((s, *v));
                }
                if let Some(v) = tl {
                    test_loss.push((s, *v));
                }
                if let Some(v) = val_accuracy {
                    val_acc.push((s, 100.0 * v));
                }
                if let Some(v) = test_accuracy {
                    test_acc.push((s, 100.0 * v));
                }
            }
        }
    }
    draw(
        &dir.join("loss.png"),
        "Loss",
        "cross-entropy",
        &[
            Curve { label: "training batch", color: RGBColor(120, 160, 220), points: step_loss },
            Curve { label: "validation", color: RGBColor(230, 120, 20), points: val_loss },
            Curve { label: "test", color: RGBColor(40, 150, 60), points: test_loss },
        ],
    )?;
    // Batch accuracies are noisy; from the second epoch on, the epoch figures tell more.
    let zoom = val_acc.len() >= 2 || test_acc.len() >= 2;
    draw(
        &dir.join("accuracy.png"),
        "Accuracy",
        "accuracy (%)",
        &[
            Curve { label: "training batch", color: RGBColor(120, 160, 220), points: if zoom { vec![] } else { step_acc } },
            Curve { label: "training epoch", color: RGBColor(30, 80, 180), points: train_acc },
            Curve { label: "validation", color: RGBColor(230, 120, 20), points: val_acc },
            Curve { label: "test", color: RGBColor(40, 150, 60), points: test_acc },
        ],
    )
}
