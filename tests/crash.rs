//! Runs that survive: `kill -9` at random moments of a training run, a dozen times and more,
//! at different steps and during checkpoint writes; `fovea train --resume` continues each time,
//! and the finished run equals an uninterrupted one bit for bit.

mod common;
use common::{temp_dir, write_toy_mnist};
use fovea::train::{checkpoint, metrics};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// 500 training images in batches of 10, a checkpoint after every step: 150 steps of LeNet-5.
fn start(data: &Path, run: &Path, resume: bool) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fovea"));
    c.args(["--threads", "2", "train"]);
    if resume {
        c.arg("--resume").arg(run);
    } else {
        c.args(["--model", "lenet5", "--epochs", "3", "--batch-size", "10", "--val-size", "100", "--checkpoint-every", "1", "--log-every", "5"]);
        c.arg("--data").arg(data).arg("--out").arg(run);
    }
    c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Runs to the end, resuming when `resume`; panics with its words if it fails.
fn finish(data: &Path, run: &Path, resume: bool) {
    let out = start(data, run, resume).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The model and optimizer tensors and the progress of a weights file.
fn state(path: &Path) -> (Vec<(String, Vec<u32>)>, Option<checkpoint::Progress>) {
    let l = checkpoint::load(path).unwrap();
    let bits = l.model.iter().chain(&l.optimizer).map(|(k, t)| (k.clone(), t.data().iter().map(|v| v.to_bits()).collect())).collect();
    (bits, l.progress)
}

/// The metrics without the timing fields, which differ from run to run.
fn losses(run: &Path) -> Vec<(usize, u32)> {
    metrics::read(&run.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|r| match r {
            metrics::Record::Step { step, loss, .. } => (*step, loss.to_bits()),
            metrics::Record::Epoch { step, train_loss, .. } => (*step, train_loss.to_bits()),
        })
        .collect()
}

#[test]
fn kill_9_at_random_moments_then_resume_gives_the_same_run() {
    let root = temp_dir("crash");
    let data = root.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_toy_mnist(&data, 600, 50);
    let reference = root.join("reference");
    finish(&data, &reference, false);
    let (want_last, want_progress) = state(&reference.join("last.safetensors"));
    let want_best = state(&reference.join("best.safetensors")).0;
    let want_losses = losses(&reference);

    let mut rng = fovea::rng::Rng::new(99);
    let (mut kills, mut during_write, mut rounds) = (0, 0, 0);
    let mut resumed_at = std::collections::BTreeSet::new();
    while kills < 12 {
        rounds += 1;
        assert!(rounds < 40, "the runs kept finishing before the kill: {kills} kills in {rounds} rounds");
        let run = root.join(format!("run{rounds}"));
        let mut resume = false;
        loop {
            let mut child = start(&data, &run, resume);
            let delay = Duration::from_millis(20 + rng.below(200) as u64);
            let t = Instant::now();
            while t.elapsed() < delay && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(1));
            }
            if child.try_wait().unwrap().is_some() {
                // It finished first: this round is over.
                let out = child.wait_with_output().unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                break;
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
            let names: Vec<String> = std::fs::read_dir(&run).map_or(vec![], |d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect());
            if names.iter().any(|n| n.starts_with(".last.safetensors.tmp-")) {
                during_write += 1;
            }
            if !run.join("config.json").exists() {
                // Killed before the run was set up: nothing to continue; it starts again.
                let _ = std::fs::remove_dir_all(&run);
                resume = false;
                continue;
            }
            if let Ok((_, Some(p))) = std::panic::catch_unwind(|| state(&run.join("last.safetensors"))) {
                resumed_at.insert(p.step);
            }
            resume = true;
        }
        assert_eq!(state(&run.join("last.safetensors")), (want_last.clone(), want_progress.clone()), "{}", run.display());
        assert_eq!(state(&run.join("best.safetensors")).0, want_best, "{}", run.display());
        assert_eq!(losses(&run), want_losses, "{}", run.display());
        let left: Vec<_> = std::fs::read_dir(&run).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".tmp-")).collect();
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
    }
    println!("{kills} kills (during a checkpoint write: {during_write}) over {rounds} runs, resumed from steps {resumed_at:?}");
    assert!(resumed_at.len() >= 5, "the kills should land at different steps: {resumed_at:?}");
    std::fs::remove_dir_all(&root).ok();
}

/// A small filesystem for a test: a tmpfs of `kib` KiB where the machine lets the test mount
/// one (root), unmounted when dropped; else `None` and the caller limits file sizes instead.
struct SmallDisk {
    dir: std::path::PathBuf,
    mounted: bool,
}

impl SmallDisk {
    fn new(dir: std::path::PathBuf, kib: usize) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::env::var_os("FOVEA_TEST_NO_MOUNT").is_none() && Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        SmallDisk { dir, mounted }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
    }
}

/// `fovea ARGS` with, where no tmpfs could be mounted, files limited to `kib` KiB (`ulimit -f`):
/// the same failed write, from another cause.
fn fovea_on(disk: &SmallDisk, kib: usize, args: &[&str]) -> std::process::Output {
    let bin = env!("CARGO_BIN_EXE_fovea");
    let mut c = if disk.mounted {
        let mut c = Command::new(bin);
        c.args(args);
        c
    } else {
        // bash counts in KiB (POSIX sh may count 512-byte blocks).
        let mut c = Command::new("bash");
        c.arg("-c").arg(format!("ulimit -f {}; exec \"$0\" \"$@\"", kib)).arg(bin).args(args);
        c
    };
    c.output().unwrap()
}

#[test]
fn a_full_disk_gives_a_clear_error_and_loses_nothing() {
    let root = temp_dir("full-disk");
    let data = root.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_toy_mnist(&data, 300, 30);
    // LeNet-5's checkpoint with Adam's state is ~745 KB: one fits in 1,200 KiB, not a second
    // beside it (written whole under a temporary name before it replaces the first).
    let disk = SmallDisk::new(root.join("disk"), 1200);
    if !disk.mounted {
        println!("no tmpfs could be mounted (not root?): file sizes limited with ulimit -f instead");
    }
    let run = disk.dir.join("run");
    let (data_s, run_s) = (data.to_string_lossy().into_owned(), run.to_string_lossy().into_owned());
    let args = ["--threads", "2", "train", "--model", "lenet5", "--epochs", "1", "--batch-size", "10", "--val-size", "50", "--checkpoint-every", "1", "--data", &data_s, "--out", &run_s];
    // ulimit -f limits each file, not the disk: under 745 KB the first checkpoint fails.
    let out = fovea_on(&disk, 500, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run should not fit: {err}");
    assert!(err.contains("last.safetensors") && (err.contains("No space left") || err.contains("too large")), "{err}");
    if disk.mounted {
        assert!(err.contains("the checkpoint of step 1 is intact") && err.contains("--resume"), "{err}");
    }
    // The checkpoint of step 1 is intact and resumable, nothing half-written is left.
    if disk.mounted {
        let l = checkpoint::load(&run.join("last.safetensors")).expect("the previous checkpoint is intact");
        assert_eq!(l.progress.map(|p| p.step), Some(1));
    } else {
        assert!(!run.join("last.safetensors").exists());
    }
    let names: Vec<String> = std::fs::read_dir(&run).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains(".tmp-")), "left behind: {names:?}");

    // The report onto the full disk: refused with the file's name, the old page kept.
    let page = disk.dir.join("report.html");
    std::fs::write(&page, "<p>the old report</p>").unwrap();
    if disk.mounted {
        // Fill what is left of the disk.
        let mut filler = std::fs::File::create(disk.dir.join("filler")).unwrap();
        while std::io::Write::write_all(&mut filler, &[0u8; 4096]).is_ok() {}
    }
    let ok_run = root.join("ok");
    let ok_args: Vec<String> = args.iter().map(|a| if *a == run_s { ok_run.to_string_lossy().into_owned() } else { a.to_string() }).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_fovea")).args(&ok_args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let weights = ok_run.join("best.safetensors").to_string_lossy().into_owned();
    let page_s = page.to_string_lossy().into_owned();
    let out = fovea_on(&disk, 20, &["report", "--model", "lenet5", "--weights", &weights, "--ascent-steps", "2", "-o", &page_s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("report.html") && err.contains("cannot write"), "{err}");
    assert_eq!(std::fs::read_to_string(&page).unwrap(), "<p>the old report</p>");
    let names: Vec<String> = std::fs::read_dir(&disk.dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains(".tmp-")), "left behind: {names:?}");
    drop(disk);
    std::fs::remove_dir_all(&root).ok();
}
