//! The report: one self-contained HTML page (images inlined, no network) with the architecture
//! table, the training curves, the first layer's filters, activation maps, saliency and
//! guided backprop for right and wrong predictions, and a visualization of every class.

use super::ascent::{ascend, AscentConfig};
use super::target::{input_gradient, Target};
use super::{activations_image, filters_image, gradient_image, input_image, render};
use crate::data::{fill_batch, Dataset, Normalize};
use crate::error::Result;
use crate::layers::{ForwardCtx, Mode};
use crate::net::lecture_shape;
use crate::net::Net;
use crate::tensor::Tensor;
use crate::ReluRule;
use base64::Engine;
use image::RgbImage;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What goes into a report.
pub struct ReportInput<'a> {
    pub model: &'a str,
    pub weights: &'a Path,
    pub norm: &'a Normalize,
    pub classes: &'a [String],
    /// Test images for the test accuracy, activations, saliency and mistakes.
    pub data: Option<&'a Dataset>,
    /// Why there are no test images, when `data` is `None` or empty (said in the report).
    pub no_data_reason: Option<String>,
    /// A training run directory (for `loss.png`, `accuracy.png`, `metrics.jsonl`).
    pub run_dir: Option<PathBuf>,
    /// Gradient-ascent steps per class visualization.
    pub ascent_steps: usize,
}

fn img_tag(img: &RgbImage, alt: &str, width: Option<u32>) -> Result<String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(render::png_bytes(img)?);
    let w = width.map_or(String::new(), |w| format!(" width=\"{w}\""));
    Ok(format!("<img alt=\"{alt}\" src=\"data:image/png;base64,{b64}\"{w}>"))
}

fn file_img_tag(path: &Path, alt: &str) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    // The curves are drawn 900 pixels wide with text sized for that width: shown at it.
    Some(format!("<img alt=\"{alt}\" src=\"data:image/png;base64,{b64}\" style=\"max-width:100%\">"))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The test set's accuracy, its confusion matrix as a picture and the accuracy of each class
/// with the class it is most often taken for.
fn test_accuracy_section(h: &mut String, net: &mut Net, ds: &Dataset, input: &ReportInput) -> Result<()> {
    let e = crate::train::evaluate::evaluate(net, ds, input.norm, 250)?;
    let label = |c: usize| esc(&input.classes.get(c).cloned().unwrap_or_else(|| c.to_string()));
    let _ = write!(h, "<h2>Test accuracy</h2><p>{:.2}% of {} test images right (loss {:.4}).</p>",
        100.0 * e.accuracy, crate::net::thousands(ds.len() as u64), e.loss);
    let k = e.confusion.len();
    if k <= crate::plot::confusion::MAX_CLASSES {
        let img = crate::plot::confusion_image(&e.confusion, input.classes)?;
        let _ = write!(h, "<figure>{}<figcaption>Confusion matrix: rows are the true classes, columns the predictions; \
            blue shades the share of a row predicted right, red the share taken for another class.</figcaption></figure>",
            img_tag(&img, "confusion matrix", None)?);
    }
    h.push_str("<table><tr><th>class</th><th>test images</th><th>right</th><th>accuracy</th><th>most often taken for</th></tr>");
    for (c, row) in e.confusion.iter().enumerate() {
        let total: u64 = row.iter().map(|&v| v as u64).sum();
        let wrong = row.iter().enumerate().filter(|&(j, &v)| j != c && v > 0).max_by_key(|&(j, &v)| (v, std::cmp::Reverse(j)));
        let acc = if total == 0 { "-".to_string() } else { format!("{:.2}%", 100.0 * row[c] as f64 / total as f64) };
        let worst = wrong.map_or("-".to_string(), |(j, &v)| format!("{} ({v})", label(j)));
        let _ = write!(h, "<tr><td>{}</td><td>{total}</td><td>{}</td><td>{acc}</td><td>{worst}</td></tr>", label(c), row[c]);
    }
    h.push_str("</table>");
    Ok(())
}

/// Writes the report to `out` (atomically).
pub fn write_report(net: &mut Net, input: &ReportInput, out: &Path) -> Result<()> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>fovea report: {m}</title><style>\
         body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;font-size:13px}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}}\
         td:first-child,td:nth-child(2),th:first-child,th:nth-child(2){{text-align:left}}\
         figure{{display:inline-block;margin:6px;text-align:center;font-size:12px}}img{{image-rendering:pixelated}}\
         h2{{border-bottom:2px solid #444;margin-top:2em}}</style></head><body>\
         <h1>What {m} learned</h1><p>weights: <code>{w}</code></p>",
        m = esc(input.model),
        w = esc(&input.weights.display().to_string())
    );

    // The architecture, as the lecture's AlexNet slide.
    let s = net.summary(None)?;
    h.push_str("<h2>Architecture</h2><table><tr><th>layer</th><th>kind</th><th>output</th><th>parameters</th><th>multiply-adds</th></tr>");
    for r in &s.layers {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.name), r.kind, esc(&r.detail), lecture_shape(&r.output),
            crate::net::thousands(r.params as u64), crate::net::thousands(r.macs)
        );
    }
    let _ = write!(
        h,
        "<tr><th>total</th><th></th><th></th><th>{}</th><th>{}</th></tr></table>",
        crate::net::thousands(s.total_params as u64),
        crate::net::thousands(s.total_macs)
    );

    if let Some(dir) = &input.run_dir {
        h.push_str("<h2>Training</h2>");
        for f in ["loss.png", "accuracy.png"] {
            if let Some(tag) = file_img_tag(&dir.join(f), f) {
                h.push_str(&tag);
            }
        }
        if let Ok(records) = crate::train::metrics::read(&dir.join("metrics.jsonl")) {
            if let Some(crate::train::metrics::Record::Epoch { epoch, train_accuracy, val_accuracy, test_accuracy, .. }) =
                records.iter().rev().find(|r| matches!(r, crate::train::metrics::Record::Epoch { .. }))
            {
                let pct = |v: &Option<f32>| v.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a));
                let _ = write!(
                    h,
                    "<p>after epoch {epoch}: training accuracy {:.2}%, validation {}, test {}</p>",
                    100.0 * train_accuracy, pct(val_accuracy), pct(test_accuracy)
                );
            }
        }
    }

    let convs: Vec<String> = net.node_names().filter(|n| net.layer(n).is_some_and(|l| l.kind() == "Conv2d")).map(String::from).collect();
    if let Some(first) = convs.first() {
        let _ = write!(h, "<h2>Filters of {}</h2><p>Each filter as an image, grey = 0, scaled symmetrically around zero.</p>", esc(first));
        // Small filters (5x5) are enlarged to a visible size, pixels kept sharp.
        let img = filters_image(net, first)?;
        h.push_str(&img_tag(&render::enlarge(&img, render::factor_for(img.width(), 320)), "filters", None)?);
    }

    let test_set = input.data.filter(|d| !d.is_empty());
    if test_set.is_none() {
        let why = input.no_data_reason.clone().unwrap_or_else(|| "no test images were given (--data)".into());
        let _ = write!(h, "<h2>Test images</h2><p>The test accuracy, the confusion matrix, activation maps, top patches \
            and the gradient pictures need test images: {}.</p>", esc(&why));
    }
    if let Some(ds) = test_set {
        test_accuracy_section(&mut h, net, ds, input)?;
        // Predictions on the first images, to pick right and wrong ones.
        let n = ds.len().min(2000);
        let idx: Vec<usize> = (0..n).collect();
        let (mut x, mut labels) = (Tensor::default(), Vec::new());
        let mut preds = Vec::with_capacity(n);
        for chunk in idx.chunks(250) {
            fill_batch(ds, chunk, input.norm, None, &mut x, &mut labels);
            let logits = net.forward(&x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() })?;
            preds.extend(logits.argmax_rows());
        }
        let right: Vec<usize> = (0..n).filter(|&i| preds[i] == ds.labels[i] as usize).take(4).collect();
        let wrong: Vec<usize> = (0..n).filter(|&i| preds[i] != ds.labels[i] as usize).take(4).collect();
        let one = |i: usize| -> Tensor {
            let (mut x, mut l) = (Tensor::default(), Vec::new());
            fill_batch(ds, &[i], input.norm, None, &mut x, &mut l);
            x
        };
        let label = |c: usize| input.classes.get(c).cloned().unwrap_or_else(|| c.to_string());

        h.push_str("<h2>Activation maps</h2><p>Each channel's map (its output before the ReLU), the input first.</p>");
        for layer in convs.iter().take(2) {
            for &i in right.iter().take(2) {
                let _ = write!(h, "<figure>{}<figcaption>{} on test image {i}</figcaption></figure>",
                    img_tag(&activations_image(net, &one(i), layer, input.norm)?, "activations", None)?, esc(layer));
            }
        }

        h.push_str("<h2>What channels look for: top patches</h2><p>For a few channels of each conv layer, the test images \
            where the channel fires most, cropped to the receptive field of its strongest cell, each beside its guided backprop.</p>");
        for layer in &convs {
            let channels: Vec<usize> = (0..4).collect();
            if let Ok(found) = super::patches::top_patches(net, ds, input.norm, layer, &channels, 6, 2000) {
                for (ch, list) in found.iter().enumerate() {
                    let img = super::patches::patches_image(net, ds, input.norm, layer, ch, list, 3)?;
                    let _ = write!(h, "<figure>{}<figcaption>{}:{ch}</figcaption></figure>", img_tag(&img, "patches", None)?, esc(layer));
                }
            }
        }

        h.push_str("<h2>Why it decided: gradients at the image</h2><p>For the predicted class's score (before softmax): \
            saliency (Simonyan et al.: max over colour channels of |gradient|), guided backprop (Springenberg et al.) and \
            deconvnet (Zeiler and Fergus). Red positive, blue negative.</p>");
        for (title, set) in [("Right", &right), ("Wrong", &wrong)] {
            if set.is_empty() {
                continue;
            }
            let _ = write!(h, "<h3>{title}</h3>");
            for &i in set.iter() {
                let x = one(i);
                let target = Target::Class(preds[i]);
                let img = input_image(&x, input.norm);
                let f = render::factor_for(img.width(), 112);
                let mut row = vec![render::enlarge(&img, f)];
                for (rule, sal) in [(ReluRule::Plain, true), (ReluRule::Guided, false), (ReluRule::Deconvnet, false)] {
                    let (g, _) = input_gradient(net, &x, &target, rule)?;
                    row.push(render::enlarge(&gradient_image(&g, sal, 99.0), f));
                }
                let _ = write!(h, "<figure>{}<figcaption>test {i}: true {}, predicted {} (input, saliency, guided, deconvnet)</figcaption></figure>",
                    img_tag(&render::grid(&row, 4, 2), "gradients", None)?, esc(&label(ds.labels[i] as usize)), esc(&label(preds[i])));
            }
        }
    }

    if input.ascent_steps > 0 {
        let _ = write!(h, "<h2>What each class looks like to the net</h2><p>Gradient ascent on the image from zero, {} steps, \
            L2 decay (Simonyan et al.), a light blur every other step and random rolls of up to 2 pixels.</p>", input.ascent_steps);
        // The class count from the graph's shapes: without data no forward pass has run yet.
        let s = net.input_shape().to_vec();
        let outputs = net.shapes_for(&[1, s[0], s[1], s[2]])?.last().and_then(|o| o.last().copied()).unwrap_or(0);
        let k = outputs.min(20);
        // Compared on a trained LeNet-5 (Simonyan's L2 and blur at several
        // strengths, the center bias, Yosinski's presets, Lucid's Fourier basis): a stronger L2,
        // a blur every other step and small rolls draw the most recognisable digits.
        let cfg = AscentConfig { steps: input.ascent_steps, blur_every: 2, blur_sigma: 0.7, l2: 0.05, jitter: 2, step_size: 1.0, ..AscentConfig::default() };
        for c in 0..k {
            let (img, values) = ascend(net, &Target::Class(c), &cfg, None, |_, _, _| {})?;
            let shown = gradient_image(&img, false, 99.5);
            let shown = render::enlarge(&shown, render::factor_for(shown.width(), 112));
            let _ = write!(h, "<figure>{}<figcaption>{} (score {:.1})</figcaption></figure>",
                img_tag(&shown, "class", None)?, esc(&input.classes.get(c).cloned().unwrap_or_else(|| c.to_string())),
                values.last().copied().unwrap_or(0.0));
        }
    }
    h.push_str("<p style=\"color:#888;font-size:12px\">made by fovea</p></body></html>");
    crate::io::atomic::write_atomic(out, h.as_bytes())
}
