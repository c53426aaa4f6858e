//! A unit's or a class's gradient-ascent image, computed on demand on the slow thread (so the
//! live maps go on meanwhile) and kept for the rest of the session.

use super::app::App;
use super::error::{ApiError, ApiResult};
use super::input::{number, Query};
use super::routes::png_response;
use crate::viz::ascent::{ascend, AscentConfig};
use crate::viz::render::{enlarge_to_at_least, png_bytes};
use crate::viz::target::Target;
use crate::viz::input_image;
use axum::extract::{Query as QueryParams, State};
use axum::response::Response;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The most steps a request may ask for.
const MAX_STEPS: usize = 2000;
/// Images kept (a few hundred KB at most each); the cache starts again when full.
const KEPT: usize = 256;

/// Ascent images (PNG bytes) by their target and settings.
#[derive(Default)]
pub struct AscentCache {
    done: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

/// The settings a request names: `preset=simonyan` (the default: `fovea viz`'s L2 penalty and
/// light blur, 200 steps) or `yosinski1` to `yosinski4` (Yosinski et al.'s Table 1 with the
/// toolbox's schedules); `steps=N` and `seed=S` override.
fn settings(app: &App, q: &Query) -> ApiResult<(String, AscentConfig)> {
    let preset = q.get("preset").map(String::as_str).unwrap_or("simonyan");
    let mut cfg = match preset {
        "simonyan" => AscentConfig { l2: 1e-2, blur_every: 4, blur_sigma: 0.5, ..AscentConfig::default() },
        p => p
            .strip_prefix("yosinski")
            .and_then(|row| row.parse::<usize>().ok())
            .and_then(|row| AscentConfig::yosinski_schedule(row, app.norm.channel(0).1))
            .ok_or_else(|| ApiError::bad_request(format!("preset={p:?}: the presets are simonyan, yosinski1, yosinski2, yosinski3, yosinski4")))?,
    };
    if let Some(steps) = number(q, "steps")? {
        if steps == 0 || steps > MAX_STEPS {
            return Err(ApiError::bad_request(format!("steps={steps}: give 1 to {MAX_STEPS}")));
        }
        cfg.steps = steps;
    }
    cfg.seed = number(q, "seed")?.unwrap_or(0) as u64;
    Ok((format!("{preset}/{}/{}", cfg.steps, cfg.seed), cfg))
}

/// `GET /api/ascent?layer=L&channel=C` (the unit at the centre of its map) or `?class=K`, with
/// `preset`, `steps`, `seed`: the image (PNG) that the ascent draws from the zero image.
pub async fn route(State(app): State<Arc<App>>, QueryParams(q): QueryParams<Query>) -> ApiResult<Response> {
    let target = match (q.get("layer"), number(&q, "class")?) {
        (Some(layer), None) => {
            let channel = number(&q, "channel")?.ok_or_else(|| ApiError::bad_request("the request needs ?channel= with ?layer="))?;
            app.channel(layer, channel)?;
            Target::Neuron { node: layer.clone(), channel, at: None }
        }
        (None, Some(class)) => {
            app.class(class)?;
            Target::Class(class)
        }
        _ => return Err(ApiError::bad_request("give ?layer=L&channel=C or ?class=K")),
    };
    let (settings_key, cfg) = settings(&app, &q)?;
    let key = format!("{target} {settings_key}");
    if let Some(png) = app.ascents.done.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(png_response(png.to_vec()));
    }
    let png = app
        .clone()
        .with_slow_net(move |app, net| {
            let (x, _) = ascend(net, &target, &cfg, None, |_, _, _| ())?;
            let img = input_image(&x, &app.norm);
            png_bytes(&enlarge_to_at_least(&img, 192)).map_err(|e| ApiError::internal(e.to_string()))
        })
        .await?;
    let mut done = app.ascents.done.lock().unwrap_or_else(|p| p.into_inner());
    if done.len() >= KEPT {
        done.clear();
    }
    done.insert(key, Arc::new(png.clone()));
    drop(done);
    Ok(png_response(png))
}
