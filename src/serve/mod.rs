//! `fovea serve`: the deep visualization toolbox (Yosinski et al., 2015) as a local web page.
//! An axum server on tokio answers a JSON API (`docs/SERVE.md`) and the page that uses it,
//! whose files are compiled into the binary (no CDN, works offline). Every computation runs on
//! a blocking thread with a net of its own (`app`), so requests never share activations and
//! the server keeps answering while they compute; slow jobs (ascents, top-patch scans) have
//! their own thread.

mod app;
mod ascent;
mod assets;
mod error;
mod input;
mod patches;
mod routes;

pub use app::{App, ServedData, ServedModel};
pub use input::MAX_BODY_BYTES;

use crate::error::{Error, Result};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

/// Every route: the page's files, then the API.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::script))
        .route("/app.css", get(assets::style))
        .route("/api/model", get(routes::model))
        .route("/api/predict", post(routes::predict))
        .route("/api/data", get(routes::data_info))
        .route("/api/data/{index}", get(routes::data_image))
        .route("/api/activations", post(routes::activations))
        .route("/api/unit", post(routes::unit))
        .route("/api/class", post(routes::class))
        .route("/api/patches", get(patches::route))
        .route("/api/ascent", get(ascent::route))
        .fallback(|| async { error::ApiError::not_found("no such page or route: the API is described in docs/SERVE.md") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

/// Serves `app` on `host:port` (port 0: any free port) until Ctrl-C, calling `ready` with the
/// address once it listens.
pub fn run(app: App, host: &str, port: u16, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the server: {e}")))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((host, port)).await.map_err(|e| Error::Invalid(format!("cannot listen on {host}:{port}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Error::Invalid(format!("cannot listen on {host}:{port}: {e}")))?;
        ready(addr);
        axum::serve(listener, router(Arc::new(app)))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Error::Invalid(format!("the server stopped: {e}")))
    })
}
