//! `fovea serve` in a real browser: Debian's chromium driven over WebDriver by chromedriver
//! (the page, layers, a unit, an upload, the webcam through Chromium's synthetic camera)
//! (`.ci/run` installs both). Without them the test says so in one line and passes.
//! `FOVEA_SCREENSHOT_DIR=dir` keeps screenshots of the page (the README's come from here, with
//! trained weights: `FOVEA_SERVE_WEIGHTS=best.safetensors`).

mod common;
use common::{save_weights, temp_dir, Server};
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("chromedriver starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    // Headless, as root in CI, with the background networking off: this machine's network is
    // closed, and Chromium would otherwise keep trying to reach Google's hosts.
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1400",
        // A synthetic camera, allowed without asking: the webcam path runs for real.
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        &format!("--user-data-dir={}", profile.display()),
    ];
    caps.insert("goog:chromeOptions".into(), serde_json::json!({"binary": CHROMIUM, "args": args}));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session in chromium")
}

/// Waits until `script` (a JavaScript expression) is true in the page.
async fn until(c: &Client, what: &str, script: &str) {
    let started = Instant::now();
    loop {
        let v = c.execute(&format!("return !!({script});"), vec![]).await.unwrap();
        if v.as_bool() == Some(true) {
            return;
        }
        let errors = c.execute("return window.foveaErrors || [];", vec![]).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(60), "{what}: not after 60 s (page errors: {errors})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

async fn screenshot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("FOVEA_SCREENSHOT_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(name), c.screenshot().await.unwrap()).unwrap();
    }
}

#[test]
fn the_page_shows_layers_units_and_uploads() {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        println!("skipped: the browser test needs {CHROMIUM} and {CHROMEDRIVER} (Debian's chromium and chromium-driver; .ci/run installs them)");
        return;
    }
    let dir = temp_dir("serve-browser");
    let weights = std::env::var("FOVEA_SERVE_WEIGHTS").unwrap_or_else(|_| save_weights(&dir, "mnist-cnn", "w.safetensors"));
    // The bundled MNIST: the page browses its 10,000 test images.
    let server = Server::start(&["--model", "mnist-cnn", "--weights", &weights]);
    // A digit to upload: a black 1 on white paper, which the page inverts for the MNIST net.
    let digit = dir.join("one.png");
    image::GrayImage::from_fn(280, 280, |x, y| image::Luma([if (120..160).contains(&x) && (40..240).contains(&y) { 0 } else { 255 }])).save(&digit).unwrap();
    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let c = browser(&driver, &dir.join("profile")).await;
        c.goto(&server.url).await.unwrap();

        // The layer table and the grid of conv1's 32 channels.
        until(&c, "the layer table", "document.querySelectorAll('#layers tbody tr').length === 11").await;
        until(&c, "conv1's grid", "document.querySelectorAll('#grid canvas').length === 32").await;
        until(&c, "the predictions", "document.querySelectorAll('#top li').length === 5").await;
        assert!(text(&c, "#source-line").await.contains("image 0"));
        let first_top = text(&c, "#top").await;
        screenshot(&c, "serve-page.png").await;

        // Another layer: its grid has its channel count.
        c.find(Locator::Css("#layers tr[data-layer='conv2']")).await.unwrap().click().await.unwrap();
        until(&c, "conv2's grid", "document.querySelectorAll('#grid canvas').length === 64").await;

        // A channel opens its unit: map, guided backprop, deconvnet, top patches, ascent.
        c.find(Locator::Css("#grid canvas[data-channel='5']")).await.unwrap().click().await.unwrap();
        until(&c, "the unit view", "!document.getElementById('unit-panel').hidden").await;
        assert_eq!(text(&c, "#unit-title").await, "Unit conv2:5");
        for id in ["unit-map", "unit-guided", "unit-deconvnet"] {
            until(&c, id, &format!("document.getElementById('{id}').src.startsWith('data:image/png') && document.getElementById('{id}').naturalWidth >= 192")).await;
        }
        until(&c, "the unit's ascent", "document.getElementById('unit-ascent').src.startsWith('blob:') && document.getElementById('unit-ascent').naturalWidth > 0").await;
        until(&c, "the top patches", "!document.getElementById('patches-picture').hidden && document.querySelectorAll('#patches-list li').length === 9").await;
        screenshot(&c, "serve-unit.png").await;

        // An uploaded digit replaces the input and changes the predictions.
        c.find(Locator::Id("file")).await.unwrap().send_keys(digit.to_str().unwrap()).await.unwrap();
        until(&c, "the upload", "document.getElementById('source-line').textContent === 'your image'").await;
        until(&c, "new predictions", &format!("document.getElementById('top').innerText !== {}", serde_json::to_string(&first_top).unwrap())).await;
        assert_eq!(c.execute("return document.getElementById('invert').checked;", vec![]).await.unwrap(), serde_json::json!(true), "a dark digit on light paper is inverted");

        // The webcam (Chromium's synthetic camera): frames flow through the live maps and
        // their rate is shown.
        c.find(Locator::Id("webcam")).await.unwrap().click().await.unwrap();
        until(&c, "webcam frames", "document.getElementById('fps').textContent.includes('frames/s') && document.getElementById('source-line').textContent === 'webcam'").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!("webcam in headless chromium: {} ({})", text(&c, "#fps").await, text(&c, "#timing").await);
        c.find(Locator::Id("webcam")).await.unwrap().click().await.unwrap();
        until(&c, "the webcam stopped", "document.getElementById('fps').textContent === ''").await;

        let errors = c.execute("return window.foveaErrors;", vec![]).await.unwrap();
        assert_eq!(errors, serde_json::json!([]), "the page's errors");
        assert_eq!(text(&c, "#errors").await, "", "no error shown");
        c.close().await.unwrap();
    });
}
