//! A unit's top-9 patches from the data set. One scan of the data set finds them for every
//! channel of a layer at once; it runs on the slow thread while the page polls its progress
//! (202), and its result is cached on disk beside the weights
//! (`<weights>.patches/<data set>/<layer>.json`), so it is computed once per model and data set.

use super::app::App;
use super::error::{ApiError, ApiResult};
use super::input::{number, required, Query};
use super::routes::png_data_url;
use crate::geometry::Region;
use crate::viz::patches::{patches_image, top_patches_with_progress, Patch};
use axum::extract::{Query as QueryParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Patches kept per channel.
const TOP: usize = 9;

enum Job {
    Running { done: Arc<AtomicUsize>, total: usize },
    Ready(Arc<Vec<Vec<Patch>>>),
    Failed(String),
}

/// The scans by layer, and the pictures already drawn by (layer, channel).
#[derive(Default)]
pub struct PatchJobs {
    jobs: Mutex<HashMap<String, Job>>,
    pictures: Mutex<HashMap<(String, usize), String>>,
}

/// What the cache file holds: enough to tell that it belongs to this model, layer and data set.
#[derive(Serialize, Deserialize)]
struct CacheFile {
    model: String,
    layer: String,
    data: String,
    images: usize,
    channels: Vec<Vec<CachedPatch>>,
}

#[derive(Serialize, Deserialize)]
struct CachedPatch {
    image: usize,
    value: f32,
    y: usize,
    x: usize,
    /// `[y0, x0, y1, x1]`, inclusive.
    region: [usize; 4],
}

/// `<weights>.patches/<data set name, made a file name>-<hash>/<layer>.json`.
fn cache_path(app: &App, data: &str, layer: &str) -> PathBuf {
    let safe = |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect::<String>();
    let hash = data.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let name = safe(data);
    let tail: String = name.chars().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    let mut dir = app.weights.clone().into_os_string();
    dir.push(".patches");
    PathBuf::from(dir).join(format!("{tail}-{:08x}", hash as u32)).join(format!("{}.json", safe(layer)))
}

/// The cached scan, if the file is there and fits this model, layer and data set (anything
/// else, from a damaged file to another data set, is scanned again).
fn load_cached(app: &App, layer: &str, channels: usize) -> Option<Vec<Vec<Patch>>> {
    let data = app.data.as_ref()?;
    let bytes = std::fs::read(cache_path(app, &data.name, layer)).ok()?;
    let file: CacheFile = serde_json::from_slice(&bytes).ok()?;
    let [_, h, w] = app.input;
    let fits = file.model == app.model && file.layer == layer && file.data == data.name && file.images == data.set.len() && file.channels.len() == channels;
    let sound = |p: &CachedPatch| p.image < data.set.len() && p.region[0] <= p.region[2] && p.region[1] <= p.region[3] && p.region[2] < h && p.region[3] < w;
    if !fits || !file.channels.iter().flatten().all(sound) {
        return None;
    }
    Some(
        file.channels
            .into_iter()
            .map(|list| list.into_iter().map(|p| Patch { image: p.image, value: p.value, y: p.y, x: p.x, region: Region { y0: p.region[0], x0: p.region[1], y1: p.region[2], x1: p.region[3] } }).collect())
            .collect(),
    )
}

fn save_cache(app: &App, data: &str, layer: &str, patches: &[Vec<Patch>]) {
    let file = CacheFile {
        model: app.model.clone(),
        layer: layer.to_string(),
        data: data.to_string(),
        images: app.data.as_ref().map_or(0, |d| d.set.len()),
        channels: patches.iter().map(|list| list.iter().map(|p| CachedPatch { image: p.image, value: p.value, y: p.y, x: p.x, region: [p.region.y0, p.region.x0, p.region.y1, p.region.x1] }).collect()).collect(),
    };
    let path = cache_path(app, data, layer);
    let written = serde_json::to_vec(&file)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            std::fs::create_dir_all(path.parent().unwrap_or(&path)).map_err(|e| e.to_string())?;
            crate::io::atomic::write_atomic(&path, &bytes).map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        eprintln!("warning: cannot cache the top patches in {}: {e} (kept in memory)", path.display());
    }
}

/// `GET /api/patches?layer=L&channel=C`: while the layer's scan runs, 202 with `{"status":
/// "running", "done", "total"}` (images scanned); then `{"layer", "channel", "picture" (each
/// patch beside its guided backprop, PNG data URL), "patches": [{"image", "label", "value",
/// "y", "x", "region": {"y0", "x0", "y1", "x1"}}]}`, strongest first.
pub async fn route(State(app): State<Arc<App>>, QueryParams(q): QueryParams<Query>) -> ApiResult<Response> {
    let layer = required(&q, "layer")?.to_string();
    let channel = number(&q, "channel")?.ok_or_else(|| ApiError::bad_request("the request needs ?channel="))?;
    let row = app.channel(&layer, channel)?;
    let data = app.data()?;
    if row.output.len() != 3 {
        return Err(ApiError::bad_request(format!("{layer}'s output {:?} has no maps: top patches need a layer with maps", row.output)));
    }
    let channels = row.output[0];
    let ready = {
        let mut jobs = app.patches.jobs.lock().unwrap_or_else(|p| p.into_inner());
        match jobs.get(&layer) {
            Some(Job::Ready(p)) => p.clone(),
            Some(Job::Running { done, total }) => return Ok(running(done.load(Ordering::Relaxed), *total)),
            Some(Job::Failed(m)) => {
                // Said once; the next request scans again.
                let message = format!("the scan of {layer} failed: {m}");
                jobs.remove(&layer);
                return Err(ApiError::internal(message));
            }
            None => match load_cached(&app, &layer, channels) {
                Some(p) => {
                    let p = Arc::new(p);
                    jobs.insert(layer.clone(), Job::Ready(p.clone()));
                    p
                }
                None => {
                    let done = Arc::new(AtomicUsize::new(0));
                    let total = data.set.len();
                    jobs.insert(layer.clone(), Job::Running { done: done.clone(), total });
                    tokio::spawn(scan(app.clone(), layer.clone(), channels, done));
                    return Ok(running(0, total));
                }
            },
        }
    };
    let key = (layer.clone(), channel);
    let cached = app.patches.pictures.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
    let picture = match cached {
        Some(p) => p,
        None => {
            let (l, list) = (layer.clone(), ready[channel].clone());
            let picture = app
                .clone()
                .with_net(move |app, net| {
                    let d = app.data()?;
                    png_data_url(&patches_image(net, &d.set, &app.norm, &l, channel, &list, 3)?)
                })
                .await?;
            app.patches.pictures.lock().unwrap_or_else(|p| p.into_inner()).insert(key, picture.clone());
            picture
        }
    };
    let patches: Vec<_> = ready[channel]
        .iter()
        .map(|p| {
            let label = app.label(p.image);
            json!({"image": p.image, "label": label, "value": crate::predict::json_f32(p.value), "y": p.y, "x": p.x,
                   "region": {"y0": p.region.y0, "x0": p.region.x0, "y1": p.region.y1, "x1": p.region.x1}})
        })
        .collect();
    Ok(Json(json!({"layer": layer, "channel": channel, "picture": picture, "patches": patches})).into_response())
}

fn running(done: usize, total: usize) -> Response {
    (StatusCode::ACCEPTED, Json(json!({"status": "running", "done": done, "total": total}))).into_response()
}

/// Scans the whole data set for every channel of `layer`, then caches the result.
async fn scan(app: Arc<App>, layer: String, channels: usize, done: Arc<AtomicUsize>) {
    let l = layer.clone();
    let result = app
        .clone()
        .with_slow_net(move |app, net| {
            let d = app.data()?;
            let all: Vec<usize> = (0..channels).collect();
            let found = top_patches_with_progress(net, &d.set, &app.norm, &l, &all, TOP, usize::MAX, |n| done.store(n, Ordering::Relaxed))?;
            save_cache(app, &d.name, &l, &found);
            Ok(found)
        })
        .await;
    let job = match result {
        Ok(p) => Job::Ready(Arc::new(p)),
        Err(e) => Job::Failed(e.message),
    };
    app.patches.jobs.lock().unwrap_or_else(|p| p.into_inner()).insert(layer, job);
}
