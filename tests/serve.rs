//! `fovea serve` from the outside: the API of a running server on a free port, every route
//! against fovea's own numbers (computed here in the test), the error codes, concurrency, a
//! slow ascent beside the live maps, Ctrl-C. The browser tests are in `serve_browser.rs`.

mod common;
use common::{save_weights, temp_dir, write_toy_mnist, Server};
use fovea::data::{fill_batch, load_dir, Dataset};
use fovea::{models, ForwardCtx, Mode, Net, Tensor};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A toy MNIST (40 test images) and seeded mnist-cnn weights beside it.
struct Fixture {
    dir: PathBuf,
    weights: String,
    test: Dataset,
}

fn fixture(name: &str) -> Fixture {
    let dir = temp_dir(name);
    write_toy_mnist(&dir, 20, 40);
    let weights = save_weights(&dir, "mnist-cnn", "w.safetensors");
    let test = load_dir(&dir, [1, 28, 28]).unwrap().test;
    Fixture { dir, weights, test }
}

impl Fixture {
    fn start(&self) -> Server {
        Server::start(&["--model", "mnist-cnn", "--weights", &self.weights, "--data", self.dir.to_str().unwrap()])
    }

    /// The same weights, in this process (`save_weights` initialises with seed 1).
    fn net(&self) -> Net {
        models::build_for("mnist-cnn", 10, None, 1).unwrap()
    }

    /// Test image `i` as the net's input.
    fn input(&self, i: usize) -> Tensor {
        let (mut x, mut labels) = (Tensor::default(), Vec::new());
        fill_batch(&self.test, &[i], &models::normalization("mnist-cnn"), None, &mut x, &mut labels);
        x
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// (status, body as JSON) of a GET.
fn get_json(url: &str) -> (u16, Value) {
    let mut r = agent().get(url).call().unwrap();
    (r.status().as_u16(), serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null))
}

/// (status, body as JSON) of a POST of `body`.
fn post_json(url: &str, body: &[u8]) -> (u16, Value) {
    let mut r = agent().post(url).send(body).unwrap();
    let text = r.body_mut().with_config().limit(64 << 20).read_to_string().unwrap();
    (r.status().as_u16(), serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + a.abs().max(b.abs()))
}

/// A `data:image/png;base64,` URL decoded to an image.
fn data_url_image(v: &Value) -> image::RgbImage {
    use base64::Engine;
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a data URL"));
    let b64 = s.strip_prefix("data:image/png;base64,").expect("a PNG data URL");
    image::load_from_memory(&base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap().to_rgb8()
}

/// A test image as a PNG file (what a user would upload).
fn png_of(f: &Fixture, i: usize, path: &Path) -> Vec<u8> {
    let img = image::GrayImage::from_raw(28, 28, f.test.image(i).to_vec()).unwrap();
    img.save(path).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn every_route_answers_with_foveas_numbers() {
    let f = fixture("serve-routes");
    let server = f.start();
    assert!(server.url.starts_with("http://127.0.0.1:"), "binds to loopback by default: {}", server.url);
    let mut net = f.net();

    // The page and its files.
    for (path, kind) in [("", "text/html"), ("app.js", "text/javascript"), ("app.css", "text/css")] {
        let r = agent().get(&server.at(path)).call().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
    }

    // The model.
    let (status, m) = get_json(&server.at("api/model"));
    assert_eq!(status, 200);
    assert_eq!(m["model"], "mnist-cnn");
    assert_eq!(m["input"], serde_json::json!([1, 28, 28]));
    assert_eq!(m["data"]["count"], 40);
    let summary = net.summary(None).unwrap();
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), summary.layers.len());
    for (l, row) in layers.iter().zip(&summary.layers) {
        assert_eq!((l["name"].as_str().unwrap(), l["kind"].as_str().unwrap()), (row.name.as_str(), row.kind.as_str()));
        assert_eq!(l["output"], serde_json::json!(row.output));
    }

    // Predictions: a data image against the net here; an upload against `fovea predict --json`.
    let (status, p) = post_json(&server.at("api/predict?data=3"), b"");
    assert_eq!(status, 200);
    let want = net.forward(&f.input(3), &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() }).unwrap().data().to_vec();
    let got = f32s(&p["logits"]);
    assert!(got.iter().zip(&want).all(|(a, b)| close(*a, *b)) && got.len() == 10, "{got:?} against {want:?}");
    assert_eq!(p["file"], "data:3");
    assert_eq!(p["top"].as_array().unwrap().len(), 5);
    let png_path = f.dir.join("digit.png");
    let png = png_of(&f, 7, &png_path);
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_fovea"))
        .args(["predict", "--model", "mnist-cnn", "--weights", &f.weights, "--json", png_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(cli.status.success());
    let cli_line: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let file = url_encode(png_path.to_str().unwrap());
    let (status, served) = post_json(&server.at(&format!("api/predict?file={file}")), &png);
    assert_eq!(status, 200);
    assert_eq!(served, cli_line, "the same object as `fovea predict --json`");

    // The data set, and one of its images as a PNG, with its label.
    let (status, d) = get_json(&server.at("api/data"));
    assert_eq!(status, 200);
    assert_eq!((d["name"].as_str().unwrap(), d["count"].as_u64().unwrap()), (f.dir.to_str().unwrap(), 40));
    assert_eq!(d["classes"], m["classes"]);
    let mut r = agent().get(&server.at("api/data/3")).call().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-fovea-label"].to_str().unwrap(), f.test.labels[3].to_string());
    let img = image::load_from_memory(&r.body_mut().read_to_vec().unwrap()).unwrap().to_luma8();
    assert_eq!(img.into_raw(), f.test.image(3));

    // A layer's live maps: each channel scaled from its own minimum to maximum.
    let (status, a) = post_json(&server.at("api/activations?layer=conv2&data=3"), b"");
    assert_eq!(status, 200);
    assert_eq!(a["shape"], serde_json::json!([64, 14, 14]));
    assert_eq!(a["label"], f.test.labels[3].to_string());
    assert_eq!(a["top"], p["top"]);
    use base64::Engine;
    let maps = base64::engine::general_purpose::STANDARD.decode(a["maps"].as_str().unwrap()).unwrap();
    net.forward(&f.input(3), &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() }).unwrap();
    let conv2 = net.value("conv2").unwrap().data().to_vec();
    assert_eq!(maps.len(), conv2.len());
    for (k, (map, bytes)) in conv2.chunks(196).zip(maps.chunks(196)).enumerate() {
        let (lo, hi) = map.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let range = f32s(&a["ranges"][k]);
        assert!(close(range[0], lo) && close(range[1], hi), "channel {k}: {range:?} against {lo} {hi}");
        for (v, &b) in map.iter().zip(bytes) {
            let want = (v - lo) / (hi - lo) * 255.0;
            assert!((want - b as f32).abs() <= 1.0, "channel {k}: {b} for {want}");
        }
    }

    // A unit: its strongest cell, the cell's receptive field, both gradient pictures.
    let (status, u) = post_json(&server.at("api/unit?layer=conv2&channel=5&data=3"), b"");
    assert_eq!(status, 200, "{u}");
    let map = &conv2[5 * 196..6 * 196];
    let best = (0..196).fold(0, |b, i| if map[i] > map[b] { i } else { b });
    assert_eq!(u["at"], serde_json::json!([best / 14, best % 14]));
    assert!(close(u["value"].as_f64().unwrap() as f32, map[best]));
    let region = net.receptive_field("conv2", best / 14, best % 14).unwrap();
    assert_eq!(u["region"], serde_json::json!({"y0": region.y0, "x0": region.x0, "y1": region.y1, "x1": region.x1}));
    for picture in ["map", "guided", "deconvnet"] {
        assert!(data_url_image(&u[picture]).width() >= 192, "{picture}");
    }
    let (status, u) = post_json(&server.at("api/unit?layer=conv2&channel=5&y=2&x=9&data=3"), b"");
    assert_eq!((status, &u["at"]), (200, &serde_json::json!([2, 9])));
    assert!(close(u["value"].as_f64().unwrap() as f32, map[2 * 14 + 9]));

    // A class: its score is the logit, Grad-CAM at the last rectified maps.
    let (status, c) = post_json(&server.at("api/class?class=2&data=3"), b"");
    assert_eq!(status, 200);
    assert!(close(c["score"].as_f64().unwrap() as f32, want[2]));
    assert_eq!(c["cam_layer"], "relu2");
    assert_eq!(data_url_image(&c["gradcam"]).width(), data_url_image(&c["saliency"]).width());

    // Ascent images, computed once then served from the cache.
    let mut first = agent().get(&server.at("api/ascent?class=3&steps=5")).call().unwrap();
    assert_eq!(first.status(), 200);
    let first = first.body_mut().read_to_vec().unwrap();
    let again = agent().get(&server.at("api/ascent?class=3&steps=5")).call().unwrap().body_mut().read_to_vec().unwrap();
    assert_eq!(first, again);
    assert_eq!(image::load_from_memory(&first).unwrap().width(), 28 * 7, "enlarged to at least 192 pixels");
    let other = agent().get(&server.at("api/ascent?layer=conv1&channel=4&steps=5&preset=yosinski3")).call().unwrap().body_mut().read_to_vec().unwrap();
    assert_ne!(other, first);

    // Top patches: 202 while the scan runs, then fovea's own top 9, cached beside the weights.
    let patches = poll_patches(&server, "conv2", 1);
    let want = fovea::viz::patches::top_patches(&mut net, &f.test, &models::normalization("mnist-cnn"), "conv2", &[1], 9, usize::MAX).unwrap();
    let got: Vec<(u64, u64, u64)> = patches["patches"].as_array().unwrap().iter().map(|p| (p["image"].as_u64().unwrap(), p["y"].as_u64().unwrap(), p["x"].as_u64().unwrap())).collect();
    let expected: Vec<(u64, u64, u64)> = want[0].iter().map(|p| (p.image as u64, p.y as u64, p.x as u64)).collect();
    assert_eq!(got, expected);
    assert!(data_url_image(&patches["picture"]).width() > 0);
    let cache = f.dir.join("w.safetensors.patches");
    assert!(cache.is_dir(), "the scan is cached beside the weights");
    drop(server);
    let second = f.start();
    let (status, cached) = get_json(&second.at("api/patches?layer=conv2&channel=1"));
    assert_eq!(status, 200, "a new server reads the cached scan: {cached}");
    assert_eq!(cached["patches"], patches["patches"]);
}

fn url_encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_./".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn poll_patches(server: &Server, layer: &str, channel: usize) -> Value {
    let mut saw_running = false;
    for _ in 0..600 {
        let (status, body) = get_json(&server.at(&format!("api/patches?layer={layer}&channel={channel}")));
        match status {
            200 => {
                assert!(saw_running, "the first request starts the scan and answers 202");
                return body;
            }
            202 => {
                assert_eq!(body["status"], "running");
                assert!(body["done"].as_u64().unwrap() <= body["total"].as_u64().unwrap());
                saw_running = true;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => panic!("patches: {other} {body}"),
        }
    }
    panic!("the scan of {layer} did not finish");
}

/// A PNG whose header claims `width` x `height` pixels of 16-bit RGBA (a decompression bomb:
/// the file is tiny).
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::GrayImage::new(1, 1).write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    // IHDR: length (4), "IHDR" (4), width, height, ... ; its CRC covers the type and data.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    // 16-bit RGBA: 8 bytes a pixel.
    bytes[24] = 16;
    bytes[25] = 6;
    let mut crc = flate2::Crc::new();
    crc.update(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    bytes
}

/// The status line's code for a POST whose body is `len` bytes of zeros, read while the body
/// is still being sent (the server may answer before reading it all).
fn status_of_large_post(server: &Server, path: &str, len: usize) -> u16 {
    let addr = server.url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(stream, "POST /{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n").unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![0u8; 1 << 16];
        let mut sent = 0;
        while sent < len {
            if writer.write_all(&chunk[..(len - sent).min(chunk.len())]).is_err() {
                break;
            }
            sent += chunk.len();
        }
    });
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    drop(stream);
    let _ = sender.join();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[test]
fn errors_have_their_codes_and_the_server_keeps_serving() {
    let f = fixture("serve-errors");
    let server = f.start();
    assert_eq!(status_of_large_post(&server, "api/predict", 21 << 20), 413);
    let (status, e) = post_json(&server.at("api/predict"), b"not an image at all");
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap().contains("cannot read the image"), "{e}");
    // Too wide; then sides the server takes, but 512 MB of pixels.
    for (w, h) in [(100_000, 10), (8000, 8000)] {
        let (status, e) = post_json(&server.at("api/predict"), &png_claiming(w, h));
        assert_eq!(status, 400, "a PNG claiming {w}x{h}: {e}");
        assert!(e["error"].as_str().unwrap().contains("limit"), "{e}");
    }
    let cases: &[(&str, &str, u16)] = &[
        ("POST", "api/activations?layer=nope&data=0", 404),
        ("POST", "api/unit?layer=conv1&channel=32&data=0", 404),
        ("POST", "api/unit?layer=conv1&channel=3&y=28&x=0&data=0", 404),
        ("POST", "api/class?class=10&data=0", 404),
        ("POST", "api/predict?data=40", 404),
        ("GET", "api/data/40", 404),
        ("GET", "api/patches?layer=conv1&channel=99", 404),
        ("GET", "api/patches?layer=fc1&channel=0", 400),
        ("GET", "api/ascent?layer=nope&channel=0", 404),
        ("GET", "api/ascent?class=3&steps=0", 400),
        ("GET", "api/ascent?class=3&preset=yosinski9", 400),
        ("GET", "api/nope", 404),
        ("GET", "..%2F..%2Fetc%2Fpasswd", 404),
        ("GET", "api/data/..%2F..%2Fw.safetensors", 400),
        ("POST", "api/predict", 400),
        ("POST", "api/activations?data=0", 400),
        ("POST", "api/unit?layer=conv1&channel=x&data=0", 400),
    ];
    for &(method, path, want) in cases {
        let (status, body) = if method == "GET" { get_json(&server.at(path)) } else { post_json(&server.at(path), b"") };
        assert_eq!(status, want, "{method} {path}: {body}");
        assert!(body["error"].as_str().is_some_and(|m| !m.is_empty()), "{method} {path}: a sentence saying why: {body}");
    }
    let (status, _) = get_json(&server.at("api/model"));
    assert_eq!(status, 200, "still serving");
}

#[test]
fn a_hundred_concurrent_predictions_all_answer_right() {
    let f = fixture("serve-concurrent");
    let server = f.start();
    let mut net = f.net();
    let want: Vec<Vec<f32>> = (0..40).map(|i| net.forward(&f.input(i), &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() }).unwrap().data().to_vec()).collect();
    let answers: Vec<(usize, u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|k| {
                let url = server.at(&format!("api/predict?data={}", k % 40));
                s.spawn(move || {
                    let (status, v) = post_json(&url, b"");
                    (k % 40, status, v)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, status, v) in answers {
        assert_eq!(status, 200, "{v}");
        let got = f32s(&v["logits"]);
        assert!(got.iter().zip(&want[i]).all(|(a, b)| close(*a, *b)), "image {i}: {got:?} against {:?}", want[i]);
    }
}

#[test]
fn a_slow_ascent_does_not_hold_up_the_live_maps() {
    let f = fixture("serve-slow");
    let server = f.start();
    let finished = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let ascent = s.spawn(|| {
            let r = agent().get(&server.at("api/ascent?class=1&steps=2000")).call().unwrap();
            finished.store(true, std::sync::atomic::Ordering::SeqCst);
            r.status().as_u16()
        });
        // Until the ascent has started, the maps below prove nothing: wait for its first steps.
        std::thread::sleep(std::time::Duration::from_millis(300));
        for i in 0..20 {
            let (status, a) = post_json(&server.at(&format!("api/activations?layer=conv1&data={i}")), b"");
            assert_eq!(status, 200, "{a}");
        }
        assert!(!finished.load(std::sync::atomic::Ordering::SeqCst), "20 live maps answered while the ascent of 2,000 steps ran");
        assert_eq!(ascent.join().unwrap(), 200);
    });
}

#[test]
fn ctrl_c_stops_the_server_cleanly() {
    let f = fixture("serve-stop");
    let mut server = f.start();
    let (status, _) = get_json(&server.at("api/model"));
    assert_eq!(status, 200);
    // SAFETY: a signal to our own child process.
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGINT);
    }
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed().as_secs() < 30, "still running 30 s after Ctrl-C");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut err = String::new();
    server.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("fovea serve: stopped"), "{err}");
}

#[test]
fn without_a_data_set_uploads_still_work() {
    let dir = temp_dir("serve-no-data");
    // A ResNet-18 for 32x32 colour images: no data set is taken for it unless --data names one.
    let net = models::build_for("resnet18", 10, Some([3, 32, 32]), 1).unwrap();
    let info = fovea::train::checkpoint::WeightsInfo { model: "resnet18".into(), classes: (0..10).map(|c| c.to_string()).collect(), input: vec![3, 32, 32] };
    let weights = dir.join("resnet.safetensors");
    fovea::train::checkpoint::save(&weights, &net, None, &info, None).unwrap();
    let weights = weights.to_str().unwrap().to_string();
    let server = Server::start(&["--model", "resnet18", "--weights", &weights]);
    let (status, m) = get_json(&server.at("api/model"));
    assert_eq!((status, &m["data"], &m["input"]), (200, &Value::Null, &serde_json::json!([3, 32, 32])));
    let png = dir.join("photo.png");
    image::GrayImage::from_fn(40, 30, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8])).save(&png).unwrap();
    let (status, p) = post_json(&server.at("api/predict"), &std::fs::read(&png).unwrap());
    assert_eq!((status, p["file"].as_str()), (200, Some("upload")));
    for path in ["api/data", "api/data/0", "api/patches?layer=layer1.0.conv1&channel=0"] {
        let (status, e) = get_json(&server.at(path));
        assert_eq!(status, 404, "{path}: {e}");
        assert!(e["error"].as_str().unwrap().contains("--data"), "{path}: says how to give one: {e}");
    }
    let (status, _) = post_json(&server.at("api/activations?layer=conv1&data=0"), b"");
    assert_eq!(status, 404);
}
