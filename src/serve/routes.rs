//! The routes that compute on the current image: the model's facts, predictions, the data
//! set's images, a layer's live maps, a unit's gradients and a class's maps.

use super::app::App;
use super::error::{ApiError, ApiResult};
use super::input::{input, number, required, Query, Source};
use crate::layers::{ForwardCtx, Mode};
use crate::predict::{json_f32, prediction_json};
use crate::viz::render::{enlarge_to_at_least, hot, overlay, png_bytes, range_tile};
use crate::viz::target::{input_gradient, Target};
use crate::viz::{cam, gradient_image, input_image};
use crate::ReluRule;
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use image::RgbImage;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

type AppState = State<Arc<App>>;

/// How many classes the live answers rank.
const TOP: usize = 5;

/// `img` as a `data:image/png;base64,...` URL, to put straight into an `<img>`.
pub fn png_data_url(img: &RgbImage) -> ApiResult<String> {
    let bytes = png_bytes(img).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

/// A PNG response.
pub fn png_response(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-cache")], bytes).into_response()
}

fn eval() -> ForwardCtx {
    ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() }
}

/// `GET /api/model`: `{"model", "input": [C, H, W], "classes", "params", "layers": [{"name",
/// "kind", "detail", "output"}], "data": {"name", "count"} | null}`.
pub async fn model(State(app): AppState) -> Json<Value> {
    let layers: Vec<Value> = app.layers.iter().map(|r| json!({"name": r.name, "kind": r.kind, "detail": r.detail, "output": r.output})).collect();
    let data = app.data.as_ref().map(|d| json!({"name": d.name, "count": d.set.len()}));
    Json(json!({"model": app.model, "input": app.input, "classes": app.classes, "params": app.param_count, "layers": layers, "data": data}))
}

/// `POST /api/predict[?file=NAME][&invert=1]`, body a PNG or JPEG (or `?data=N`): the object
/// `fovea predict --json` prints for one image, `"file"` being `?file=`, `upload` or `data:N`.
pub async fn predict(State(app): AppState, QueryParams(q): QueryParams<Query>, body: Bytes) -> ApiResult<Json<Value>> {
    app.clone()
        .with_net(move |app, net| {
            let (x, source) = input(app, &q, &body)?;
            let logits = net.forward(&x, &eval())?;
            let file = q.get("file").cloned().unwrap_or_else(|| source_name(&source));
            Ok(Json(prediction_json(&file, logits.data(), &app.classes, TOP)))
        })
        .await
}

fn source_name(source: &Source) -> String {
    match source {
        Source::Data(i) => format!("data:{i}"),
        Source::Upload => "upload".into(),
    }
}

/// `GET /api/data`: `{"name", "count", "classes"}`.
pub async fn data_info(State(app): AppState) -> ApiResult<Json<Value>> {
    let d = app.data()?;
    Ok(Json(json!({"name": d.name, "count": d.set.len(), "classes": app.classes})))
}

/// `GET /api/data/{index}`: the data set's image as a PNG at the model's input size, its label
/// in the `x-fovea-label` header.
pub async fn data_image(State(app): AppState, Path(index): Path<String>) -> ApiResult<Response> {
    app.data()?;
    let i: usize = index.parse().map_err(|_| ApiError::bad_request(format!("{index:?} is not an image number")))?;
    let d = app.data_with(i)?;
    let [c, h, w] = d.set.shape;
    let px = d.set.image(i);
    let plane = h * w;
    let img = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let at = y as usize * w + x as usize;
        if c >= 3 {
            image::Rgb([px[at], px[plane + at], px[2 * plane + at]])
        } else {
            image::Rgb([px[at]; 3])
        }
    });
    let bytes = png_bytes(&img).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut response = png_response(bytes);
    let label = app.label(i);
    if let Ok(v) = header::HeaderValue::from_str(&label) {
        response.headers_mut().insert("x-fovea-label", v);
    }
    Ok(response)
}

/// Each channel's map scaled to bytes from its own minimum to maximum (NaN as 0), with the
/// ranges; a vector (`[K]`) is scaled as a whole. `data` is one image's `shape`.
fn scaled_maps(data: &[f32], shape: &[usize]) -> (Vec<u8>, Vec<[Value; 2]>) {
    let per = if shape.len() == 3 { shape[1] * shape[2] } else { data.len().max(1) };
    let mut bytes = Vec::with_capacity(data.len());
    let mut ranges = Vec::new();
    for map in data.chunks(per) {
        let (lo, hi) = map.iter().filter(|v| v.is_finite()).fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let span = if hi > lo { hi - lo } else { 0.0 };
        bytes.extend(map.iter().map(|&v| if span > 0.0 && v.is_finite() { ((v - lo) / span * 255.0).round() as u8 } else { 0 }));
        ranges.push([json_f32(lo), json_f32(hi)]);
    }
    (bytes, ranges)
}

/// `POST /api/activations?layer=L` (body: an image, or `?data=N`): one forward pass, answering
/// the top classes and every channel of the layer: `{"layer", "kind", "shape", "maps"
/// (base64 bytes, channel after channel, each scaled to its "ranges"), "ranges", "top",
/// "label" (data images), "ms"}`.
pub async fn activations(State(app): AppState, QueryParams(q): QueryParams<Query>, body: Bytes) -> ApiResult<Json<Value>> {
    let layer = required(&q, "layer")?.to_string();
    let kind = app.layer(&layer)?.kind.clone();
    app.clone()
        .with_net(move |app, net| {
            let started = Instant::now();
            let (x, source) = input(app, &q, &body)?;
            let logits = net.forward(&x, &eval())?.data().to_vec();
            let v = net.value(&layer).ok_or_else(|| ApiError::not_found(format!("no layer named {layer:?}")))?;
            let shape = v.shape()[1..].to_vec();
            let (bytes, ranges) = scaled_maps(v.data(), &shape);
            let prediction = prediction_json(&source_name(&source), &logits, &app.classes, TOP);
            Ok(Json(json!({
                "layer": layer,
                "kind": kind,
                "shape": shape,
                "maps": base64::engine::general_purpose::STANDARD.encode(bytes),
                "ranges": ranges,
                "top": prediction["top"],
                "label": data_label(app, &source),
                "ms": started.elapsed().as_secs_f64() * 1e3,
            })))
        })
        .await
}

fn data_label(app: &App, source: &Source) -> Value {
    match (source, &app.data) {
        (Source::Data(i), Some(_)) => json!(app.label(*i)),
        _ => Value::Null,
    }
}

/// A gradient at the image as a picture at least 192 pixels wide.
fn gradient_picture(grad: &crate::Tensor, saliency: bool) -> ApiResult<String> {
    let img = gradient_image(grad, saliency, 99.0);
    png_data_url(&enlarge_to_at_least(&img, 192))
}

/// `POST /api/unit?layer=L&channel=C[&y=Y&x=X]` (body: an image, or `?data=N`): one unit of a
/// layer for the current image: `{"layer", "channel", "at": [y, x] (the given cell, else the
/// channel's strongest), "value", "map", "guided", "deconvnet" (PNG data URLs), "region":
/// {"y0", "x0", "y1", "x1"} (the cell's receptive field in the input)}`.
pub async fn unit(State(app): AppState, QueryParams(q): QueryParams<Query>, body: Bytes) -> ApiResult<Json<Value>> {
    let layer = required(&q, "layer")?.to_string();
    let channel = number(&q, "channel")?.ok_or_else(|| ApiError::bad_request("the request needs ?channel="))?;
    app.channel(&layer, channel)?;
    let cell = match (number(&q, "y")?, number(&q, "x")?) {
        (Some(y), Some(x)) => Some((y, x)),
        (None, None) => None,
        _ => return Err(ApiError::bad_request("give both ?y= and ?x=, or neither")),
    };
    app.clone()
        .with_net(move |app, net| {
            let (x, _) = input(app, &q, &body)?;
            net.forward(&x, &eval())?;
            let v = net.value(&layer).ok_or_else(|| ApiError::not_found(format!("no layer named {layer:?}")))?;
            let shape = v.shape()[1..].to_vec();
            let (at, value, map) = match *shape.as_slice() {
                [_, h, w] => {
                    let map = &v.data()[channel * h * w..(channel + 1) * h * w];
                    let (y, x) = match cell {
                        Some((y, x)) if y >= h || x >= w => return Err(ApiError::not_found(format!("{layer}'s maps are {h}x{w}: no cell ({y}, {x})"))),
                        Some(c) => c,
                        None => {
                            let best = map.iter().enumerate().fold(0, |b, (i, v)| if *v > map[b] { i } else { b });
                            (best / w, best % w)
                        }
                    };
                    let tile = range_tile(map, h, w);
                    let picture = png_data_url(&enlarge_to_at_least(&tile, 192))?;
                    (Some((y, x)), map[y * w + x], Value::String(picture))
                }
                _ => (None, v.data()[channel], Value::Null),
            };
            let target = Target::Neuron { node: layer.clone(), channel, at };
            let (guided, _) = input_gradient(net, &x, &target, ReluRule::Guided)?;
            let (deconvnet, _) = input_gradient(net, &x, &target, ReluRule::Deconvnet)?;
            let region = match at {
                Some((y, x)) => {
                    let r = net.receptive_field(&layer, y, x)?;
                    json!({"y0": r.y0, "x0": r.x0, "y1": r.y1, "x1": r.x1})
                }
                None => Value::Null,
            };
            Ok(Json(json!({
                "layer": layer,
                "channel": channel,
                "at": at.map(|(y, x)| [y, x]),
                "value": json_f32(value),
                "map": map,
                "guided": gradient_picture(&guided, false)?,
                "deconvnet": gradient_picture(&deconvnet, false)?,
                "region": region,
            })))
        })
        .await
}

/// `POST /api/class?class=K` (body: an image, or `?data=N`): why the net sees class K (or
/// not) in the current image: `{"class", "label", "score" (the logit), "saliency" (Simonyan et
/// al.'s map), "gradcam" (Grad-CAM over the image, null for a net without maps), "cam_layer"}`.
pub async fn class(State(app): AppState, QueryParams(q): QueryParams<Query>, body: Bytes) -> ApiResult<Json<Value>> {
    let class = number(&q, "class")?.ok_or_else(|| ApiError::bad_request("the request needs ?class="))?;
    let label = app.class(class)?.to_string();
    app.clone()
        .with_net(move |app, net| {
            let (x, _) = input(app, &q, &body)?;
            let (grad, score) = input_gradient(net, &x, &Target::Class(class), ReluRule::Plain)?;
            let saliency = gradient_picture(&grad, true)?;
            let (gradcam, cam_layer) = match cam::default_layer(net) {
                Ok(layer) => {
                    let map = cam::grad_cam(net, &x, class, &layer)?;
                    let s = x.shape();
                    let img = overlay(&input_image(&x, &app.norm), &hot(&map, s[2], s[3], 100.0), 0.6);
                    (Value::String(png_data_url(&enlarge_to_at_least(&img, 192))?), Value::String(layer))
                }
                Err(_) => (Value::Null, Value::Null),
            };
            Ok(Json(json!({"class": class, "label": label, "score": json_f32(score), "saliency": saliency, "gradcam": gradcam, "cam_layer": cam_layer})))
        })
        .await
}
