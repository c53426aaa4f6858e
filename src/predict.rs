//! A prediction: the classes a net's logits rank highest, with their probabilities, and the
//! JSON object `fovea predict --json` prints per image (the server answers the same object).

use crate::kernels::softmax::softmax_rows;

/// An f32 as JSON by its shortest decimal form (`0.9674`, not `0.9674000144004822`, the
/// nearest f64); `null` for NaN and infinities, which JSON cannot hold.
pub fn json_f32(v: f32) -> serde_json::Value {
    v.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// The softmax of one image's `logits`, and the `top` most probable classes (at least one),
/// most probable first: `(probabilities, classes)`.
pub fn top_classes(logits: &[f32], top: usize) -> (Vec<f32>, Vec<usize>) {
    let mut probs = vec![0.0; logits.len()];
    softmax_rows(&mut probs, logits, logits.len());
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
    order.truncate(top.max(1));
    (probs, order)
}

/// `{"file", "logits", "top": [{"class", "label", "prob"}]}` for one image.
pub fn prediction_json(file: &str, logits: &[f32], classes: &[String], top: usize) -> serde_json::Value {
    let (probs, order) = top_classes(logits, top);
    let top: Vec<_> = order
        .iter()
        .map(|&c| serde_json::json!({"class": c, "label": classes.get(c).cloned().unwrap_or_default(), "prob": json_f32(probs[c])}))
        .collect();
    let logits: Vec<serde_json::Value> = logits.iter().map(|&v| json_f32(v)).collect();
    serde_json::json!({"file": file, "logits": logits, "top": top})
}
