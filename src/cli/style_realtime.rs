//! `fovea style --train` and `fovea style --apply`: Johnson et al.'s real-time style transfer
//! (`fovea::viz::style::realtime`), trained with `fovea train`'s run directory, progress,
//! checkpoints and `--resume`.

use super::style::Args;
use super::weights::{LoadedModel, ModelArgs};
use fovea::viz::style::realtime::{self, RealtimeConfig};
use fovea::viz::style::average_pools;
use fovea::viz::render;
use fovea::{models, Error, Result, Tensor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The file name's stem, for default names.
fn stem(p: &Path) -> String {
    p.file_stem().map_or_else(|| "style".into(), |s| s.to_string_lossy().into_owned())
}

/// The settings of a new run: the paper's, with what the command line gives.
fn new_config(a: &Args) -> Result<RealtimeConfig> {
    let style = a.style.clone().ok_or_else(|| Error::Invalid("--train needs --style PAINTING".into()))?;
    let data = a.data.clone().ok_or_else(|| Error::Invalid("--train needs --data FOLDER (photos to train on, such as COCO's train2014)".into()))?;
    let weights = a.weights.clone().ok_or_else(|| Error::Invalid("--train needs --weights VGG (torchvision's vgg19 saved with safetensors: see the README)".into()))?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("{}.safetensors", stem(&style))));
    let mut cfg = RealtimeConfig::defaults(&style, &data, &a.model, &weights, &out);
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = a.$f.clone() { cfg.$f = v; } )* };
    }
    set!(epochs, batch_size, width, lr, alpha, beta, gamma, seed, log_every, checkpoint_every);
    if let Some(s) = a.size {
        cfg.size = s as usize;
    }
    if !a.style_layers.is_empty() {
        cfg.style_layers = a.style_layers.clone();
    }
    if let Some(c) = &a.content_layer {
        cfg.content_layer = c.clone();
    }
    cfg.pool = a.pool.clone();
    cfg.threads = rayon::current_num_threads();
    Ok(cfg)
}

/// The flags a resumed run takes from its `config.json` instead, that were given anyway.
fn settings_given(a: &Args) -> Vec<&'static str> {
    let flags = [
        ("--style", a.style.is_some()),
        ("--weights", a.weights.is_some()),
        ("--data", a.data.is_some()),
        ("-o", a.out.is_some()),
        ("--size", a.size.is_some()),
        ("--width", a.width.is_some()),
        ("--batch-size", a.batch_size.is_some()),
        ("--lr", a.lr.is_some()),
        ("--alpha", a.alpha.is_some()),
        ("--beta", a.beta.is_some()),
        ("--gamma", a.gamma.is_some()),
        ("--seed", a.seed.is_some()),
        ("--style-layers", !a.style_layers.is_empty()),
        ("--content-layer", a.content_layer.is_some()),
    ];
    flags.into_iter().filter(|f| f.1).map(|f| f.0).collect()
}

pub fn train(a: Args) -> Result<()> {
    let threads = rayon::current_num_threads();
    let (cfg, dir, resume) = match &a.resume {
        Some(dir) => {
            let given = settings_given(&a);
            if !given.is_empty() {
                return Err(Error::Invalid(format!(
                    "--resume continues {} with its saved settings (config.json); only --epochs may change, not {}",
                    dir.display(), given.join(", ")
                )));
            }
            let mut cfg = realtime::read_config(dir)?;
            if let Some(e) = a.epochs {
                cfg.epochs = e;
            }
            if threads != cfg.threads {
                eprintln!("warning: the run used {} thread(s), this one {threads}: it continues, but not bit for bit as the original would", cfg.threads);
            }
            (cfg, dir.clone(), true)
        }
        None => {
            let cfg = new_config(&a)?;
            cfg.check()?;
            if cfg.out.extension().is_none_or(|e| e != "safetensors") {
                return Err(Error::file(&cfg.out, "is where the style network goes: give a name ending in .safetensors (the picture comes from --apply)"));
            }
            let dir = a.run.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("style-{}-{}", stem(&cfg.style), super::train::timestamp())));
            super::train::claim_run_dir(&dir, a.force, "fovea style --train")?;
            (cfg, dir, false)
        }
    };
    // Before hours of training, not after.
    fovea::io::atomic::check_destination(&cfg.out)?;
    let m = ModelArgs { model: cfg.model.clone(), weights: cfg.weights.clone(), input: None, allow_nonfinite: false };
    let LoadedModel { net: mut loss_net, .. } = m.load()?;
    if cfg.pool == "avg" {
        average_pools(&mut loss_net)?;
    }
    let norm = models::normalization(&cfg.model);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // First Ctrl-C: finish the step, write a checkpoint and the network, stop. Second: at once.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (Ctrl-C again to quit at once)");
    });
    println!(
        "training a style network (width {}) on {} for {} epoch{}: {}x{} crops, batch {}, adam lr {}, alpha {} beta {} gamma {}, seed {}, {threads} thread(s) -> {}",
        cfg.width, std::path::absolute(&cfg.data).unwrap_or_else(|_| cfg.data.clone()).display(), cfg.epochs, if cfg.epochs == 1 { "" } else { "s" },
        cfg.size, cfg.size, cfg.batch_size, cfg.lr, cfg.alpha, cfg.beta, cfg.gamma, cfg.seed, dir.display()
    );
    let options = fovea::train::RunOptions { stop: Some(&stop), verbose: true, progress: true, group: None };
    let outcome = match realtime::train(&cfg, &mut loss_net, &norm, &dir, resume, &options) {
        Ok(o) => o,
        Err(e) => {
            // A run that failed before writing anything leaves no empty folder.
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
    };
    if outcome.stopped {
        return Err(Error::Interrupted(format!(
            "stopped at step {}, saved in {} (and the network so far in {}); continue with: fovea style --train --resume {}",
            outcome.steps, dir.join("last.safetensors").display(), cfg.out.display(), dir.display()
        )));
    }
    println!(
        "wrote {} ({} steps, {:.2} s per step; total {:.4e} -> {:.4e}); run directory: {} (config.json, metrics.jsonl, last.safetensors, preview.png)",
        cfg.out.display(), outcome.steps, outcome.seconds_per_step, outcome.first.total, outcome.last.total, dir.display()
    );
    println!("stylise a photo: fovea style --apply {} PHOTO -o out.png", cfg.out.display());
    Ok(())
}

/// Bytes a forward pass of the style network holds per pixel of the photo, measured from the
/// net's shapes (every node's output is kept): about 3.4 kB at width 32.
fn bytes_per_pixel(net: &fovea::Net) -> Result<f64> {
    let side = 64;
    let shapes = net.shapes_for(&[1, 3, side, side])?;
    Ok(shapes.iter().map(|s| s.iter().product::<usize>()).sum::<usize>() as f64 * 4.0 / (side * side) as f64)
}

/// Memory this machine can still give, from /proc/meminfo (None elsewhere).
fn available_bytes() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? * 1024.0)
}

pub fn apply(a: Args) -> Result<()> {
    let net_path = a.apply.clone().unwrap_or_default();
    let photo = a.photo.clone().ok_or_else(|| Error::Invalid("--apply NETWORK needs the photo to stylise: fovea style --apply painter.safetensors photo.jpg -o out.png".into()))?;
    let out = a.out.clone().unwrap_or_else(|| photo.with_file_name(format!("{}-styled.png", stem(&photo))));
    render::image_format_for(&out)?;
    fovea::io::atomic::check_destination(&out)?;
    let mut net = realtime::load(&net_path)?;
    let mut img = fovea::data::folder::open_image(&photo)?;
    if let Some(s) = a.size {
        if (s as usize) < fovea::models::transformer::MIN_SIDE {
            return Err(Error::Invalid(format!("--size {s}: a photo's shorter side must be at least {} pixels", fovea::models::transformer::MIN_SIDE)));
        }
        img = fovea::data::folder::fit_short_side(img, s);
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    let need = bytes_per_pixel(&net)? * (w.next_multiple_of(4) * h.next_multiple_of(4)) as f64;
    if let Some(free) = available_bytes() {
        if need > free {
            return Err(Error::file(&photo, format!(
                "is {w}x{h} pixels: stylising it takes about {:.1} GB, this machine has {:.1} GB free; give --size S to scale its shorter side down",
                need / 1e9, free / 1e9
            )));
        }
    }
    let x = Tensor::from_vec(&[1, 3, h, w], fovea::viz::style::photos::planes(&img.to_rgb8()))?;
    let start = std::time::Instant::now();
    let y = realtime::apply(&mut net, &x).map_err(|e| Error::file(&photo, e.to_string()))?;
    let secs = start.elapsed().as_secs_f64();
    render::save_image(&out, &realtime::to_rgb(&y))?;
    println!("wrote {} ({w}x{h}, {:.2} s: {:.2} s per megapixel)", out.display(), secs, secs / (w * h) as f64 * 1e6);
    Ok(())
}

