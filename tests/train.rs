//! Training end to end on small data the tests make themselves: tiny IDX, CIFAR-10 and PNG
//! folders, a short run whose loss must fall, a resume that reproduces an uninterrupted run
//! bit for bit, and the bad inputs of the training issue.

use fovea::data;
use fovea::train::{checkpoint, metrics, train, RunOptions, TrainConfig};
use std::path::Path;
use std::sync::atomic::AtomicBool;

mod common;
use common::{gz, idx_bytes, temp_dir, write_toy_mnist};

fn config(model: &str, data: &Path) -> TrainConfig {
    let mut c = TrainConfig::defaults(model, data);
    c.epochs = 3;
    c.batch_size = 16;
    c.val_size = 40;
    c.log_every = 1;
    c.checkpoint_every = 3;
    c
}

const QUIET: RunOptions = RunOptions { stop: None, verbose: false, progress: false, group: None };

fn step_losses(run: &Path) -> Vec<f32> {
    metrics::read(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            metrics::Record::Step { loss, .. } => Some(loss),
            _ => None,
        })
        .collect()
}

#[test]
fn a_short_run_learns_and_leaves_its_files() {
    let root = temp_dir("learn");
    let data = root.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_toy_mnist(&data, 200, 50);
    let run = root.join("run");
    let mut cfg = config("lenet5", &data);
    cfg.epochs = 4;
    let out = train(&cfg, &run, false, &QUIET).unwrap();
    let losses = step_losses(&run);
    let first: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let last: f32 = losses[losses.len() - 5..].iter().sum::<f32>() / 5.0;
    assert!(last < 0.5 * first, "loss did not fall: {first} -> {last}");
    assert!(out.test_accuracy.unwrap() > 0.5, "test accuracy {:?}", out.test_accuracy);
    for f in ["config.json", "metrics.jsonl", "last.safetensors", "best.safetensors", "loss.png", "accuracy.png"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // Nothing half written is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&run).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().contains("tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The checkpoint holds the weights under PyTorch names, the optimizer state and the info.
    let loaded = checkpoint::load(&run.join("last.safetensors")).unwrap();
    assert!(loaded.model.contains_key("conv1.weight") && loaded.model.contains_key("fc3.bias"));
    assert!(loaded.optimizer.keys().any(|k| k.starts_with("exp_avg.conv1.weight")));
    assert_eq!(loaded.info.unwrap().classes.len(), 10);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_resumed_run_matches_an_uninterrupted_one_bit_for_bit() {
    let root = temp_dir("resume");
    let data = root.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_toy_mnist(&data, 120, 20);
    // mnist-cnn: dropout and shifts make the randomness matter.
    let mut cfg = config("mnist-cnn", &data);
    cfg.epochs = 2;
    let (a, b) = (root.join("a"), root.join("b"));
    train(&cfg, &a, false, &QUIET).unwrap();

    // Stopped (as by Ctrl-C) after its first step, then twice more after a few steps.
    let stop = AtomicBool::new(true);
    let err = train(&cfg, &b, false, &RunOptions { stop: Some(&stop), ..RunOptions::default() }).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    for _ in 0..2 {
        assert!(train(&cfg, &b, true, &RunOptions { stop: Some(&stop), ..RunOptions::default() }).is_err());
    }
    train(&cfg, &b, true, &QUIET).unwrap();

    let wa = checkpoint::load(&a.join("last.safetensors")).unwrap();
    let wb = checkpoint::load(&b.join("last.safetensors")).unwrap();
    assert_eq!(wa.model, wb.model, "weights differ");
    assert_eq!(wa.optimizer, wb.optimizer, "optimizer state differs");
    assert_eq!(wa.progress, wb.progress);
    // The metrics read as one run: same records, same losses (timings aside).
    let strip = |p: &Path| -> Vec<String> {
        metrics::read(&p.join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .map(|r| match r {
                metrics::Record::Step { epoch, step, loss, accuracy, lr, .. } => format!("{epoch} {step} {loss} {accuracy} {lr}"),
                metrics::Record::Epoch { epoch, step, train_loss, val_accuracy, test_accuracy, .. } => {
                    format!("{epoch} {step} {train_loss} {val_accuracy:?} {test_accuracy:?}")
                }
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn cifar_and_image_folders_are_read() {
    let root = temp_dir("formats");
    // CIFAR-10: two records in a training batch, one in the test batch.
    let cifar = root.join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    let record = |label: u8, fill: u8| {
        let mut r = vec![label];
        r.extend((0..3072).map(|i| if i < 1024 { fill } else { (i % 251) as u8 }));
        r
    };
    std::fs::write(cifar.join("data_batch_1.bin"), [record(3, 10), record(9, 20)].concat()).unwrap();
    std::fs::write(cifar.join("test_batch.bin"), record(1, 30)).unwrap();
    let s = data::load_dir(&cifar, [3, 32, 32]).unwrap();
    assert_eq!((s.format, s.train.len(), s.test.len()), ("CIFAR-10 (binary)", 2, 1));
    assert_eq!((s.train.labels.clone(), s.train.classes[3].as_str()), (vec![3, 9], "cat"));
    assert_eq!((s.train.image(1)[0], s.train.image(1)[1024]), (20, (1024 % 251) as u8));
    // A truncated batch is refused with its name.
    std::fs::write(cifar.join("test_batch.bin"), &record(1, 30)[..3000]).unwrap();
    let e = data::load_dir(&cifar, [3, 32, 32]).err().unwrap().to_string();
    assert!(e.contains("test_batch.bin") && e.contains("3073"), "{e}");

    // An image folder: two classes of PNGs of other sizes, resized to the model's input.
    let folder = root.join("pets");
    for (class, shade) in [("dog", 200u8), ("cat", 50)] {
        std::fs::create_dir_all(folder.join(class)).unwrap();
        for i in 0..3 {
            let img = image::RgbImage::from_pixel(40 + i, 30, image::Rgb([shade, shade / 2, 255 - shade]));
            img.save(folder.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(folder.join("cat").join("notes.txt"), "not an image").unwrap();
    let s = data::load_dir(&folder, [3, 16, 16]).unwrap();
    assert_eq!(s.format, "image folder");
    assert_eq!(s.train.classes, vec!["cat", "dog"]);
    assert_eq!((s.train.len(), s.train.shape), (6, [3, 16, 16]));
    assert_eq!(s.train.image(0)[0], 50);
    assert_eq!(s.train.image(3)[16 * 16 * 2], 55);
    // A grey version of the same folder.
    let grey = data::load_dir(&folder, [1, 8, 8]).unwrap();
    assert_eq!(grey.train.pixels.len(), 6 * 64);
    // An unreadable image is named.
    std::fs::write(folder.join("dog").join("broken.png"), b"not a png").unwrap();
    let e = data::load_dir(&folder, [3, 16, 16]).err().unwrap().to_string();
    assert!(e.contains("broken.png"), "{e}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn bad_inputs_get_clear_errors() {
    let root = temp_dir("bad");
    let data = root.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_toy_mnist(&data, 60, 20);

    // A NaN loss stops training with the step named, and the last checkpoint stays whole.
    let mut cfg = config("lenet5", &data);
    cfg.lr = 1e30;
    cfg.optimizer = "sgd".into();
    let e = train(&cfg, &root.join("nan"), false, &QUIET).err().unwrap().to_string();
    assert!(e.contains("step") && (e.contains("NaN") || e.contains("inf")) && e.contains("--lr"), "{e}");

    // Resuming a run with another architecture's checkpoint.
    let run = root.join("run");
    let mut cfg = config("lenet5", &data);
    cfg.epochs = 1;
    train(&cfg, &run, false, &QUIET).unwrap();
    let mut other = cfg.clone();
    other.model = "mnist-cnn".into();
    let e = train(&other, &run, true, &QUIET).err().unwrap().to_string();
    assert!(e.contains("last.safetensors") && e.contains("lenet5"), "{e}");

    // Weights whose names and shapes do not match the model.
    let mut net = fovea::models::build("mnist-cnn", 10, 0).unwrap();
    let e = checkpoint::load_weights(&run.join("best.safetensors"), &mut net).err().unwrap().to_string();
    assert!(e.contains("best.safetensors") && e.contains("fc3.weight") && e.contains("conv1.weight: has shape [6, 1, 5, 5]"), "{e}");

    // Corrupt data files: wrong magic, counts that do not match, a header claiming gigabytes.
    let bad = root.join("badmnist");
    std::fs::create_dir_all(&bad).unwrap();
    write_toy_mnist(&bad, 30, 10);
    std::fs::write(bad.join("train-labels-idx1-ubyte.gz"), gz(&idx_bytes(&[29], &[1; 29]))).unwrap();
    let e = data::load_dir(&bad, [1, 28, 28]).err().unwrap().to_string();
    assert!(e.contains("train-labels") && e.contains("29 labels for the 30 images"), "{e}");
    std::fs::write(bad.join("train-labels-idx1-ubyte.gz"), gz(&[0, 0, 8, 3, 0, 0])).unwrap();
    let e = data::load_dir(&bad, [1, 28, 28]).err().unwrap().to_string();
    assert!(e.contains("train-labels") && e.contains("truncated"), "{e}");
    std::fs::write(bad.join("train-images-idx3-ubyte.gz"), gz(&idx_bytes(&[4_000_000, 28, 28], &[0; 100]))).unwrap();
    let e = data::load_dir(&bad, [1, 28, 28]).err().unwrap().to_string();
    assert!(e.contains("train-images") && e.contains("truncated"), "{e}");
    std::fs::write(bad.join("train-images-idx3-ubyte.gz"), gz(&[0x12, 0x34, 8, 3])).unwrap();
    let e = data::load_dir(&bad, [1, 28, 28]).err().unwrap().to_string();
    assert!(e.contains("wrong magic number"), "{e}");
    assert!(data::load_dir(&root.join("nowhere"), [1, 28, 28]).err().unwrap().to_string().contains("nowhere"));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn the_command_line_trains_evaluates_and_predicts() {
    let root = temp_dir("cli");
    let data = root.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_toy_mnist(&data, 100, 30);
    let bin = env!("CARGO_BIN_EXE_fovea");
    let run = root.join("run");
    let out = std::process::Command::new(bin)
        .args(["train", "--model", "lenet5", "--epochs", "2", "--batch-size", "20", "--val-size", "20", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .env("FOVEA_PROGRESS_SECS", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Standard error is a pipe here, as in a log file: progress comes as plain lines.
    assert!(stderr.contains("epoch 1/2: 1/4 (25%)") && stderr.contains("epoch 2/2: 3/4 (75%)"), "{stderr}");
    let weights = run.join("best.safetensors");

    let out = std::process::Command::new(bin)
        .args(["eval", "--model", "lenet5", "--json", "--data"])
        .arg(&data)
        .arg("--weights")
        .arg(&weights)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let confusion = v["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 10);
    let total: u64 = confusion.iter().flat_map(|r| r.as_array().unwrap()).map(|x| x.as_u64().unwrap()).sum();
    assert_eq!(total, 30);
    let diag: u64 = (0..10).map(|i| confusion[i][i].as_u64().unwrap()).sum();
    // The exact ratio of the counts, not an f32 widened to f64 (0.9674000144004822).
    assert_eq!(v["accuracy"].as_f64().unwrap(), diag as f64 / 30.0);

    // Predict on a PNG of another size: converted to 28x28 grey.
    let img_path = root.join("digit.png");
    image::GrayImage::from_fn(56, 56, |x, y| image::Luma([if (4..16).contains(&y) && (4..12).contains(&x) { 230 } else { 5 }]))
        .save(&img_path)
        .unwrap();
    let out = std::process::Command::new(bin)
        .args(["predict", "--model", "lenet5", "--json", "--weights"])
        .arg(&weights)
        .arg(&img_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["logits"].as_array().unwrap().len(), 10);
    let top = v["top"].as_array().unwrap();
    let p: f64 = top.iter().map(|t| t["prob"].as_f64().unwrap()).sum();
    assert!(p > 0.0 && p <= 1.0 + 1e-6 && top[0]["label"].is_string() && top[0]["class"].is_u64());

    // --invert: a black digit on white paper gives the logits of its white-on-black negative.
    let black_on_white = root.join("inverted.png");
    image::GrayImage::from_fn(56, 56, |x, y| image::Luma([if (4..16).contains(&y) && (4..12).contains(&x) { 25 } else { 250 }]))
        .save(&black_on_white)
        .unwrap();
    let out = std::process::Command::new(bin)
        .args(["predict", "--model", "lenet5", "--json", "--invert", "--weights"])
        .arg(&weights)
        .arg(&black_on_white)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inverted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inverted["logits"], v["logits"], "--invert of the negative must give the same logits");

    // Text output: a label that is its own index is printed once (`7`, not `7 (7)`).
    let out = std::process::Command::new(bin).args(["predict", "--model", "lenet5", "--weights"]).arg(&weights).arg(&img_path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains('%') && !(0..10).any(|c| text.contains(&format!("{c} ({c})"))), "{text}");

    // An unreadable image: one clear line, a failing exit status.
    std::fs::write(root.join("bad.jpg"), b"nope").unwrap();
    let out = std::process::Command::new(bin)
        .args(["predict", "--model", "lenet5", "--weights"])
        .arg(&weights)
        .arg(root.join("bad.jpg"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jpg"));
    std::fs::remove_dir_all(&root).ok();
}

/// Weights with a NaN are refused by name and count; `--allow-nonfinite` loads them, and
/// `--json` then writes the NaN logits as `null` (valid JSON) with a warning.
#[test]
fn weights_that_are_not_numbers_are_refused_or_reported() {
    let root = temp_dir("nonfinite");
    let mut net = fovea::models::build("lenet5", 10, 3).unwrap();
    for (name, p) in net.params_mut() {
        if name == "fc1.weight" {
            p.value.data_mut()[17] = f32::NAN;
        }
    }
    let weights = root.join("nan.safetensors");
    let info = checkpoint::WeightsInfo { model: "lenet5".into(), classes: (0..10).map(|c| c.to_string()).collect(), input: vec![1, 28, 28] };
    checkpoint::save(&weights, &net, None, &info, None).unwrap();
    let img_path = root.join("digit.png");
    image::GrayImage::from_fn(28, 28, |x, _| image::Luma([(x * 9) as u8])).save(&img_path).unwrap();
    let bin = env!("CARGO_BIN_EXE_fovea");
    let predict = |extra: &[&str]| {
        std::process::Command::new(bin).args(["predict", "--model", "lenet5", "--weights"]).arg(&weights).args(extra).arg(&img_path).output().unwrap()
    };
    let out = predict(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("fc1.weight: 1 NaN, 0 infinite values") && err.contains("--allow-nonfinite"), "{err}");
    let out = predict(&["--allow-nonfinite", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning") && err.contains("not numbers") && err.contains("fc1"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert!(v["logits"].as_array().unwrap().iter().all(|l| l.is_null()), "{v}");
    std::fs::remove_dir_all(&root).ok();
}

/// A run whose numbers blow up stops at the step where they did, names where the first
/// non-finite value appeared, and leaves only finite checkpoints.
#[test]
fn a_run_that_diverges_stops_with_the_step_and_the_layer() {
    let root = temp_dir("diverge");
    let data = root.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_toy_mnist(&data, 100, 20);
    let mut cfg = TrainConfig::defaults("lenet5", &data);
    (cfg.epochs, cfg.batch_size, cfg.val_size, cfg.checkpoint_every) = (5, 10, 0, 1);
    (cfg.optimizer, cfg.lr, cfg.schedule) = ("sgd".into(), 1e19, "constant".into());
    let run = root.join("run");
    let err = train(&cfg, &run, false, &RunOptions::default()).map(|_| ()).expect_err("the run must stop").to_string();
    println!("{err}");
    assert!(err.contains("step ") && (err.contains("holds the last good weights") || err.contains("no checkpoint had been written")), "{err}");
    assert!(err.contains("first non-finite at") || err.contains("the gradient of"), "{err}");
    if run.join("last.safetensors").exists() {
        let last = checkpoint::load(&run.join("last.safetensors")).unwrap();
        assert!(checkpoint::nonfinite_report(&last.model).is_empty(), "last.safetensors holds non-finite values");
    }
    std::fs::remove_dir_all(&root).ok();
}

/// A second `train --out` into a directory that holds a run is refused (the first run's weights
/// are untouched); `--force` replaces it.
#[test]
fn an_existing_run_is_never_overwritten_by_accident() {
    let root = temp_dir("overwrite");
    let data = root.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_toy_mnist(&data, 40, 10);
    let bin = env!("CARGO_BIN_EXE_fovea");
    let run = root.join("run");
    let train = |extra: &[&str]| {
        std::process::Command::new(bin)
            .args(["train", "--model", "lenet5", "--epochs", "1", "--batch-size", "20", "--val-size", "10", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&run)
            .args(extra)
            .output()
            .unwrap()
    };
    let first = train(&["--seed", "1"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let best = std::fs::read(run.join("best.safetensors")).unwrap();
    let second = train(&["--seed", "2"]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success() && err.contains("already holds a run") && err.contains("--resume") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(run.join("best.safetensors")).unwrap(), best, "the first run's weights changed");
    let forced = train(&["--seed", "2", "--force"]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    assert_ne!(std::fs::read(run.join("best.safetensors")).unwrap(), best, "--force did not replace the run");
    std::fs::remove_dir_all(&root).ok();
}

/// Output into a closed pipe ends the program quietly: no panic, no backtrace.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fovea"))
        .args(["summary", "resnet152"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    // The reader is dropped here: the pipe is closed after one line, as `| head -1` does.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!first.is_empty());
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{err}");
}

/// Ctrl-C saves the run, says where and how to continue, and exits 130; the resumed run says
/// where it resumes.
#[cfg(unix)]
#[test]
fn ctrl_c_saves_says_how_to_resume_and_exits_130() {
    use std::io::{BufRead, BufReader};
    let root = temp_dir("ctrlc");
    let data = root.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_toy_mnist(&data, 100, 10);
    let bin = env!("CARGO_BIN_EXE_fovea");
    let run = root.join("run");
    let mut child = std::process::Command::new(bin)
        .args(["train", "--model", "lenet5", "--epochs", "100000", "--batch-size", "20", "--val-size", "0", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait until an epoch has finished, so the interrupt lands inside the training loop.
    while let Some(Ok(line)) = lines.next() {
        if line.starts_with("epoch 1/") {
            break;
        }
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    drop(lines);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("saved in") && err.contains("last.safetensors") && err.contains("fovea train --resume"), "{err}");
    assert!(!err.contains("error:"), "{err}");
    let resumed = std::process::Command::new(bin).args(["train", "--epochs", "2", "--resume"]).arg(&run).output().unwrap();
    let text = String::from_utf8_lossy(&resumed.stdout);
    assert!(text.contains("resuming from step"), "{text}{}", String::from_utf8_lossy(&resumed.stderr));
    std::fs::remove_dir_all(&root).ok();
}

/// The main job from a directory that holds no data: the MNIST bundled in the binary is used
/// and said to be, the report shows the test accuracy, its confusion matrix and per-class
/// figures; a report without data still draws each class and says why the rest is missing.
#[test]
fn the_main_job_runs_from_any_directory() {
    let root = temp_dir("anywhere");
    let bin = env!("CARGO_BIN_EXE_fovea");
    let out = std::process::Command::new(bin)
        .current_dir(&root)
        .args(["train", "--model", "lenet5", "--epochs", "1", "--out", "run"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("on the MNIST bundled in the binary for 1 epoch:"), "{stdout}");
    let run = root.join("run");
    let cfg = fovea::train::read_config(&run).unwrap();
    assert_eq!(cfg.data, Path::new(data::bundled::BUNDLED_MNIST));
    let records = metrics::read(&run.join("metrics.jsonl")).unwrap();
    let test_accuracy = records.iter().rev().find_map(|r| match r {
        metrics::Record::Epoch { test_accuracy, .. } => *test_accuracy,
        _ => None,
    });
    // One epoch of LeNet-5 on all 55,000 training images reaches ~97%; chance is 10%.
    assert!(test_accuracy.is_some_and(|a| a > 0.9), "{test_accuracy:?}");

    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    for heading in ["<h2>Training</h2>", "<h2>Test accuracy</h2>", "<h2>Why it decided", "<h2>What each class looks like"] {
        assert!(page.contains(heading), "the report lacks {heading}");
    }
    assert!(page.contains("alt=\"confusion matrix\""));
    // The per-class table: ten rows whose test counts add up to MNIST's 10,000.
    let table = &page[page.find("most often taken for").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    let counts: u32 = table.split("<tr><td>").skip(1).map(|row| row.split("</td><td>").nth(1).unwrap().parse::<u32>().unwrap()).sum();
    assert_eq!(counts, 10_000);

    // `eval` from the same directory, no --data: the bundled test set, said on stderr.
    let out = std::process::Command::new(bin)
        .current_dir(&root)
        .args(["eval", "--model", "lenet5", "--json", "--weights", "run/best.safetensors"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MNIST bundled in the binary"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((v["accuracy"].as_f64().unwrap() - f64::from(test_accuracy.unwrap())).abs() < 1e-4);

    // A wrong --data says what it looked for and what it takes.
    let out = std::process::Command::new(bin)
        .current_dir(&root)
        .args(["eval", "--model", "lenet5", "--weights", "run/best.safetensors", "--data", "nowhere"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nowhere") && err.contains("does not exist") && err.contains("--data takes"), "{err}");

    // The report without data: every class drawn, and a sentence for what needs test images.
    let out = std::process::Command::new(bin)
        .current_dir(&root)
        .args(["report", "--model", "lenet5", "--weights", "run/best.safetensors", "--ascent-steps", "5", "-o", "bare.html"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(root.join("bare.html")).unwrap();
    let classes = &page[page.find("What each class looks like").unwrap()..];
    assert_eq!(classes.matches("alt=\"class\"").count(), 10, "one picture per digit");
    assert!(page.contains("need test images: no --data was given"));
    assert!(!page.contains("<h2>Test accuracy</h2>"));
    std::fs::remove_dir_all(&root).ok();
}

/// A run folder that cannot be written is reported before any data is read; a run refused for
/// its data leaves no empty folder behind.
#[test]
fn an_unwritable_run_folder_is_reported_first() {
    let root = temp_dir("unwritable");
    let bin = env!("CARGO_BIN_EXE_fovea");
    std::fs::write(root.join("afile"), b"x").unwrap();
    // Data that does not exist either: the folder's error must come first.
    let out = std::process::Command::new(bin)
        .current_dir(&root)
        .args(["train", "--model", "lenet5", "--data", "nowhere", "--out", "afile/run"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("afile/run: cannot create the run directory"), "{err}");
    let out = std::process::Command::new(bin)
        .current_dir(&root)
        .args(["train", "--model", "lenet5", "--data", "nowhere", "--out", "fresh"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nowhere: does not exist"), "{err}");
    assert!(!root.join("fresh").exists(), "an empty run folder was left behind");
    std::fs::remove_dir_all(&root).ok();
}
