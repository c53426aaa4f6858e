//! Load on a running `fovea serve`: live-map requests (`POST /api/activations`, what the page
//! sends for every input) from a few clients for a bounded time, on loopback only; prints the
//! updates per second and the latency percentiles.
//!
//! ```sh
//! fovea serve --model mnist-cnn --weights W --port 8080 &
//! cargo run --release --example serve_load -- http://127.0.0.1:8080/ --seconds 10 --clients 1 --layer conv1
//! ```

use std::time::{Duration, Instant};

struct Options {
    url: String,
    seconds: f64,
    clients: usize,
    layer: String,
    /// Data images cycled through (as the page's "next" button would).
    images: usize,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut o = Options { url: String::new(), seconds: 10.0, clients: 1, layer: "conv1".into(), images: 100 };
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--seconds" => o.seconds = value("--seconds")?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--clients" => o.clients = value("--clients")?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--layer" => o.layer = value("--layer")?,
            "--images" => o.images = value("--images")?.parse().map_err(|e| format!("--images: {e}"))?,
            url if url.starts_with("http://") => o.url = url.trim_end_matches('/').to_string(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let host = o.url.trim_start_matches("http://").split(['/', ':']).next().unwrap_or("");
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return Err(format!("give the server's loopback address (http://127.0.0.1:PORT/), not {:?}: this loop is for this machine only", o.url));
    }
    if !(o.seconds > 0.0 && o.seconds <= 600.0) || o.clients == 0 || o.clients > 64 || o.images == 0 {
        return Err("--seconds 0-600, --clients 1-64, --images at least 1".into());
    }
    Ok(o)
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("serve_load: {e}");
            std::process::exit(2);
        }
    };
    let end = Instant::now() + Duration::from_secs_f64(o.seconds);
    let started = Instant::now();
    let results: Vec<(Vec<f64>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..o.clients)
            .map(|client| {
                let o = &o;
                s.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                    let (mut latencies, mut failures) = (Vec::new(), 0);
                    let mut i = client;
                    while Instant::now() < end {
                        let url = format!("{}/api/activations?layer={}&data={}", o.url, o.layer, i % o.images);
                        let t = Instant::now();
                        let ok = agent.post(&url).send(&[][..]).ok().map(|mut r| r.status() == 200 && r.body_mut().read_to_vec().is_ok());
                        if ok == Some(true) {
                            latencies.push(t.elapsed().as_secs_f64() * 1e3);
                        } else {
                            failures += 1;
                        }
                        i += o.clients;
                    }
                    (latencies, failures)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let mut all: Vec<f64> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    let failures: usize = results.iter().map(|r| r.1).sum();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| all.get(((all.len() as f64 * p).ceil() as usize).saturating_sub(1).min(all.len().saturating_sub(1))).copied().unwrap_or(f64::NAN);
    println!(
        "LOAD\tlayer={}\tclients={}\tseconds={wall:.1}\tupdates={}\tfailed={failures}\tupdates_per_second={:.1}\tp50_ms={:.2}\tp99_ms={:.2}",
        o.layer,
        o.clients,
        all.len(),
        all.len() as f64 / wall,
        pct(0.50),
        pct(0.99)
    );
}
