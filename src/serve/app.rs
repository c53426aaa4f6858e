//! What the server holds: the model's facts, a pool of nets with its weights (one net per
//! request in flight, so no request sees another's activations), the data set, and the caches
//! of slow pictures.

use super::error::{ApiError, ApiResult};
use crate::data::folder::Fit;
use crate::data::{Dataset, Normalize};
use crate::net::SummaryRow;
use crate::net::Net;
use crate::tensor::Tensor;
use crate::{models, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// A data set to browse and to take top patches from.
pub struct ServedData {
    /// As given on the command line (`bundled:mnist`, a folder).
    pub name: String,
    pub set: Dataset,
}

/// The trained model the server explains.
pub struct ServedModel {
    /// The zoo's name (`mnist-cnn`).
    pub name: String,
    /// The net with its weights loaded; the server builds more like it as requests need them.
    pub net: Net,
    pub classes: Vec<String>,
    /// The weights file: top patches are cached beside it.
    pub weights: PathBuf,
}

/// Requests computing at once on live pictures (forward passes, gradients): each holds a net,
/// so this bounds the nets in memory; the others wait their turn without blocking the server.
const LIVE_SLOTS: usize = 4;

pub struct App {
    pub model: String,
    pub classes: Vec<String>,
    /// Per image: `[C, H, W]`.
    pub input: [usize; 3],
    pub norm: Normalize,
    pub fit: Fit,
    pub layers: Vec<SummaryRow>,
    pub param_count: usize,
    pub weights: PathBuf,
    pub data: Option<ServedData>,
    state: BTreeMap<String, Tensor>,
    idle: Mutex<Vec<Net>>,
    pub live: Semaphore,
    /// Ascents and top-patch scans: seconds each, one at a time, on their own thread so that
    /// they never hold up the live maps.
    pub slow: Semaphore,
    pub slow_pool: rayon::ThreadPool,
    pub patches: super::patches::PatchJobs,
    pub ascents: super::ascent::AscentCache,
}

impl App {
    pub fn new(model: ServedModel, data: Option<ServedData>) -> Result<App> {
        let s = model.net.input_shape();
        let input = [s[0], s[1], s[2]];
        let summary = model.net.summary(None)?;
        let state = model.net.state().into_iter().map(|(n, t)| (n, t.clone())).collect();
        let slow_pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "fovea-serve-slow".into())
            .build()
            .map_err(|e| crate::Error::Invalid(format!("cannot start the server's worker thread: {e}")))?;
        Ok(App {
            norm: models::normalization(&model.name),
            fit: if input[0] == 3 { Fit::ResizeCrop } else { Fit::Stretch },
            model: model.name,
            classes: model.classes,
            input,
            param_count: summary.total_params,
            layers: summary.layers,
            weights: model.weights,
            data,
            state,
            idle: Mutex::new(vec![model.net]),
            live: Semaphore::new(LIVE_SLOTS),
            slow: Semaphore::new(1),
            slow_pool,
            patches: Default::default(),
            ascents: Default::default(),
        })
    }

    /// The layer named `name` (a node of the net), or 404 naming the ones there are.
    pub fn layer(&self, name: &str) -> ApiResult<&SummaryRow> {
        self.layers.iter().find(|r| r.name == name).ok_or_else(|| {
            ApiError::not_found(format!("no layer named {name:?}; the layers are {}", self.layers.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")))
        })
    }

    /// `channel` of layer `name` (its output's first dimension), or 404.
    pub fn channel(&self, name: &str, channel: usize) -> ApiResult<&SummaryRow> {
        let row = self.layer(name)?;
        let count = row.output.first().copied().unwrap_or(0);
        if channel >= count {
            return Err(ApiError::not_found(format!("{name} has {count} channels (0 to {}), not channel {channel}", count.saturating_sub(1))));
        }
        Ok(row)
    }

    /// The data set, or 404 saying how to give one.
    pub fn data(&self) -> ApiResult<&ServedData> {
        self.data.as_ref().ok_or_else(|| ApiError::not_found("the server has no data set: start it with --data"))
    }

    /// The data set holding image `index`, or 404 (no data set, or no such image).
    pub fn data_with(&self, index: usize) -> ApiResult<&ServedData> {
        let d = self.data()?;
        if index >= d.set.len() {
            return Err(ApiError::not_found(format!("the data set has {} images (0 to {}), not image {index}", d.set.len(), d.set.len().saturating_sub(1))));
        }
        Ok(d)
    }

    /// A class index, or 404.
    pub fn class(&self, class: usize) -> ApiResult<&str> {
        self.classes.get(class).map(String::as_str).ok_or_else(|| ApiError::not_found(format!("the model has {} classes (0 to {}), not class {class}", self.classes.len(), self.classes.len().saturating_sub(1))))
    }

    /// The label of the data set's image `index` (empty without a data set).
    pub fn label(&self, index: usize) -> String {
        let class = self.data.as_ref().and_then(|d| d.set.labels.get(index)).map(|&c| c as usize);
        class.and_then(|c| self.classes.get(c)).cloned().unwrap_or_default()
    }

    fn take_net(&self) -> ApiResult<Net> {
        if let Some(net) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(net);
        }
        let (mut net, _) = models::architecture(&self.model, self.classes.len(), Some(self.input)).map_err(|e| ApiError::internal(e.to_string()))?;
        net.load_state(&self.state).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(net)
    }

    fn give_back(&self, net: Net) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < LIVE_SLOTS + 1 {
            idle.push(net);
        }
    }

    /// Runs `f` with a net of its own on a blocking thread, once one of the live slots is free.
    pub async fn with_net<T: Send + 'static>(self: &Arc<Self>, f: impl FnOnce(&App, &mut Net) -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
        let _slot = self.live.acquire().await.map_err(|_| ApiError::internal("the server is stopping"))?;
        let app = self.clone();
        run_blocking(move || {
            let mut net = app.take_net()?;
            let out = f(&app, &mut net);
            app.give_back(net);
            out
        })
        .await
    }

    /// Runs `f` with a net of its own on the slow thread, one slow job at a time.
    pub async fn with_slow_net<T: Send + 'static>(self: &Arc<Self>, f: impl FnOnce(&App, &mut Net) -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
        let _slot = self.slow.acquire().await.map_err(|_| ApiError::internal("the server is stopping"))?;
        let app = self.clone();
        run_blocking(move || {
            let mut net = app.take_net()?;
            let out = app.slow_pool.install(|| f(&app, &mut net));
            app.give_back(net);
            out
        })
        .await
    }
}

async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("the computation failed: {e}")))?
}
