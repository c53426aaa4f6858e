//! DeepDream: the photo keeps its size, every octave raises its objective, the command writes
//! what it says, and a photo too small for the layer's octaves is refused with the reason.

mod common;

use fovea::data::Normalize;
use fovea::rng::Rng;
use fovea::viz::dream::{dream, DreamConfig, Objective};
use fovea::{models, Tensor};

#[test]
fn a_dream_keeps_the_size_and_raises_its_objective_at_every_octave() {
    let mut net = models::build("lenet5", 10, 7).unwrap();
    let norm = Normalize::mnist();
    let mut rng = Rng::new(5);
    // Not the net's 28x28: a dream works on any size the layer's octaves can pass.
    let x = Tensor::from_vec(&[1, 1, 45, 38], rng.uniform_vec(45 * 38, -0.4, 2.0)).unwrap();
    let cfg = DreamConfig { octaves: 3, octave_scale: 1.3, steps: 6, step_size: 4.0, jitter: 3, seed: 1 };
    for objective in [Objective::Squares, Objective::Channel(5)] {
        let mut per_octave: Vec<Vec<f32>> = vec![Vec::new(); 3];
        let mut sizes = Vec::new();
        let out = dream(&mut net, "relu2", &x, &objective, &cfg, &norm, |s| {
            per_octave[s.octave - 1].push(s.objective);
            sizes.push((s.octave, s.image.shape()[2], s.image.shape()[3]));
        })
        .unwrap();
        assert_eq!(out.shape(), x.shape(), "the dream keeps the photo's size");
        assert_eq!(sizes.first(), Some(&(1, 27, 22)), "the smallest octave first: 45 / 1.3^2, 38 / 1.3^2");
        assert_eq!(sizes.last(), Some(&(3, 45, 38)));
        for (o, values) in per_octave.iter().enumerate() {
            assert_eq!(values.len(), 6);
            assert!(values[5] > values[0], "{objective:?}, octave {}: {values:?}", o + 1);
        }
        // Pixels stay in the range a photo can hold (black to white, normalised).
        let (lo, hi) = ((0.0 - 0.1307) / 0.3081, (1.0 - 0.1307) / 0.3081);
        assert!(out.data().iter().all(|&v| v >= lo - 1e-5 && v <= hi + 1e-5));
        assert!(out.data().iter().zip(x.data()).any(|(a, b)| (a - b).abs() > 1e-3), "the dream changed the photo");
    }
}

#[test]
fn the_command_dreams_and_explains_what_it_cannot() {
    let dir = std::env::temp_dir().join(format!("fovea-dream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let w = common::save_weights(&dir, "lenet5", "w.safetensors");
    let photo = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/images/chelsea.png");
    let bin = env!("CARGO_BIN_EXE_fovea");
    let out_png = dir.join("dream.png");
    let out = std::process::Command::new(bin)
        .args(["dream", "--model", "lenet5", "--weights", &w, "--layer", "relu2", "--size", "60", "--octaves", "2", "--steps", "3", "--json", photo, "-o"])
        .arg(&out_png)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6, "one line per step");
    assert_eq!((lines[0]["octave"].as_u64(), lines[0]["step"].as_u64()), (Some(1), Some(1)));
    assert_eq!((lines[5]["octave"].as_u64(), lines[5]["step"].as_u64()), (Some(2), Some(3)));
    assert!(lines.iter().all(|l| l["objective"].is_number()));
    // chelsea.png is 451x300: its shorter side scaled to 60.
    let img = image::open(&out_png).unwrap();
    assert_eq!((img.width(), img.height()), (90, 60));
    // --every 3: a frame at the third step of each octave, at that octave's size.
    let out = std::process::Command::new(bin)
        .args(["dream", "--model", "lenet5", "--weights", &w, "--layer", "relu2", "--size", "60", "--octaves", "2", "--steps", "3", "--every", "3", photo, "-o"])
        .arg(dir.join("f.png"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let small = image::open(dir.join("f-1-003.png")).unwrap();
    assert_eq!((small.width(), small.height()), (64, 43), "the first octave is 1.4 times smaller");
    assert!(dir.join("f-2-003.png").exists() && !dir.join("f-1-002.png").exists());

    for (args, want) in [
        (vec!["--layer", "relu9"], "no node named \"relu9\""),
        (vec!["--layer", "relu2", "--size", "14", "--octaves", "3"], "too small for relu2"),
        (vec!["--layer", "relu2", "--channel", "99"], "channel 99 is outside the layer's 16 channels"),
        (vec!["--layer", "fc1"], "a dream needs a layer of maps"),
    ] {
        let out = std::process::Command::new(bin).args(["dream", "--model", "lenet5", "--weights", &w, photo, "-o"]).arg(dir.join("x.png")).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
        assert!(!dir.join("x.png").exists());
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Every family of the zoo dreams at one of its deep nodes (random weights: the mechanics).
#[test]
fn every_family_dreams() {
    let mut rng = Rng::new(9);
    let x = Tensor::from_vec(&[1, 3, 80, 96], rng.uniform_vec(3 * 80 * 96, -1.5, 1.5)).unwrap();
    let cfg = DreamConfig { octaves: 2, octave_scale: 1.2, steps: 2, step_size: 2.0, jitter: 4, seed: 0 };
    for (model, layer) in [("googlenet", "inception4c"), ("resnet18", "layer3"), ("alexnet", "features.8"), ("vgg11", "features.12")] {
        let mut net = models::build(model, 10, 1).unwrap();
        let mut values = Vec::new();
        let out = dream(&mut net, layer, &x, &Objective::Squares, &cfg, &Normalize::imagenet(), |s| values.push(s.objective)).unwrap();
        assert_eq!(out.shape(), x.shape(), "{model}");
        assert!(values.len() == 4 && values.iter().all(|v| v.is_finite() && *v > 0.0), "{model}: {values:?}");
    }
}
