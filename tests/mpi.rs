//! `mpirun -np 2 fovea train --distributed` over real MPI processes on loopback: the run is the
//! single process's run, and a rank that hangs or dies stops the others with an error instead
//! of a hang. Needs fovea built with `--features mpi` and an `mpirun` (Debian: openmpi-bin);
//! otherwise each test prints one line saying it was skipped. `tests/distributed.rs` checks
//! the same trainer logic with ranks as threads in every build.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{toy_mnist_dir, worst_difference};

const FOVEA: &str = env!("CARGO_BIN_EXE_fovea");

/// `mpirun`, when this build and machine can run the test; otherwise says why in one line.
fn mpirun(test: &str) -> Option<PathBuf> {
    if !cfg!(feature = "mpi") {
        println!("skipped {test}: fovea was built without MPI (cargo test --features mpi runs it)");
        return None;
    }
    let found = std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join("mpirun")).find(|m| m.is_file()));
    if found.is_none() {
        println!("skipped {test}: no mpirun on PATH (Debian: apt-get install openmpi-bin)");
    }
    found
}

/// `mpirun -np N fovea --threads 1 train --distributed ARGS`, one core per rank. Open MPI's
/// settings go through its environment variables, which other MPIs ignore: running as root (a
/// container) and more ranks than cores.
fn mpi_command(mpirun: &Path, ranks: usize, args: &[&str]) -> Command {
    let mut c = Command::new(mpirun);
    c.args(["-np", &ranks.to_string(), FOVEA, "--threads", "1", "train", "--distributed"]).args(args);
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1").env("OMPI_MCA_rmaps_base_oversubscribe", "1");
    c
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[test]
fn two_processes_train_the_single_process_run() {
    let Some(mpirun) = mpirun("two_processes_train_the_single_process_run") else { return };
    let (root, data) = toy_mnist_dir("mpi-run", 300, 60);
    let d = data.to_str().unwrap();
    // 260 training images in batches of 32 and a tail of 4; SGD, whose step is linear in the
    // gradient; dropout and shifts drawn per image.
    let common = ["--data", d, "--epochs", "2", "--batch-size", "32", "--val-size", "40", "--optimizer", "sgd", "--lr", "0.05", "--checkpoint-every", "5"];
    let single = root.join("single");
    let out = Command::new(FOVEA).args(["--threads", "1", "train"]).args(common).args(["--out", single.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "single process: {}", text(&out.stderr));
    let two = root.join("two");
    let out = mpi_command(&mpirun, 2, &common).args(["--out", two.to_str().unwrap()]).output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "mpirun -np 2: {stdout}\n{stderr}");
    // Rank 0 alone speaks (one line per epoch), and it says the ranks ended with the same bits.
    assert!(stdout.contains("1 thread(s) on each of 2 ranks (MPI)"), "{stdout}");
    assert_eq!(stdout.matches("epoch 1/2:").count(), 1, "{stdout}");
    assert!(stdout.contains("weights identical on all 2 ranks"), "{stdout}");
    let load = |dir: &Path| fovea::train::checkpoint::load(&dir.join("last.safetensors")).unwrap();
    let (want, got) = (load(&single), load(&two));
    for (what, a, b) in [("weights", &want.model, &got.model), ("optimizer state", &want.optimizer, &got.optimizer)] {
        let (worst, name) = worst_difference(a, b);
        assert!(worst <= 1e-5, "{what} {name}: relative difference {worst:e} from the single process");
    }
    // The run directory is rank 0's: one of each file, a report at the end.
    assert!(two.join("report.html").is_file() && two.join("best.safetensors").is_file());
    std::fs::remove_dir_all(&root).ok();
}

/// The pid of rank `rank` of the job training into `out` (found by its environment, which
/// Open MPI and MPICH both set, and its command line).
fn rank_pid(rank: usize, out: &Path) -> Option<i32> {
    let want = [format!("OMPI_COMM_WORLD_RANK={rank}"), format!("PMI_RANK={rank}")];
    std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()).find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let environ = std::fs::read(e.path().join("environ")).ok()?;
        let mine = text(&cmdline).contains(out.to_str()?) && text(&cmdline).contains("--distributed");
        let is_rank = environ.split(|&b| b == 0).any(|v| want.iter().any(|w| v == w.as_bytes()));
        (mine && is_rank).then_some(pid)
    })
}

/// Waits for `child` until `limit`; kills it past that and fails.
fn finish_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what}: mpirun still running after {limit:?}: the ranks hang");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// Starts a long run, waits until its first epoch is saved, then sends `signal` to rank 1.
fn start_and_disturb(mpirun: &Path, root: &Path, name: &str, signal: i32) -> Output {
    let data = root.join("mnist");
    let out_dir = root.join(name);
    let args = ["--data", data.to_str().unwrap(), "--epochs", "200", "--batch-size", "32", "--val-size", "40", "--mpi-timeout", "5"];
    let child = mpi_command(mpirun, 2, &args).args(["--out", out_dir.to_str().unwrap()]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while !out_dir.join("last.safetensors").is_file() {
        assert!(start.elapsed() < Duration::from_secs(60), "{name}: the run did not start training");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = rank_pid(1, &out_dir).unwrap_or_else(|| panic!("{name}: rank 1's process not found"));
    // SAFETY: signalling a process of this test's own job.
    unsafe { libc::kill(pid, signal) };
    let out = finish_within(child, Duration::from_secs(90), name);
    // A stopped rank the launcher did not end is ended here.
    // SAFETY: as above; the pid may be gone, which makes these no-ops.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGCONT);
    }
    out
}

#[test]
fn a_rank_that_hangs_or_dies_stops_the_others() {
    let Some(mpirun) = mpirun("a_rank_that_hangs_or_dies_stops_the_others") else { return };
    let (root, _) = toy_mnist_dir("mpi-fail", 300, 60);
    // Rank 1 stops answering (SIGSTOP): rank 0's next sum waits 5 s (--mpi-timeout), then
    // says so and ends the job.
    let out = start_and_disturb(&mpirun, &root, "hang", libc::SIGSTOP);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "a hung rank went unnoticed: {stderr}");
    assert!(stderr.contains("rank 0: the gradients: no answer from the other ranks for 5 s"), "{stderr}");
    // Rank 1 is killed: the launcher ends the job (and would, failing that, the timeout).
    let out = start_and_disturb(&mpirun, &root, "killed", libc::SIGKILL);
    assert!(!out.status.success(), "a killed rank went unnoticed: {}", text(&out.stderr));
    // Nothing half-written: every file in the run directory is whole (no temporaries).
    for dir in ["hang", "killed"] {
        let temporaries: Vec<_> = std::fs::read_dir(root.join(dir)).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().contains("tmp")).collect();
        assert!(temporaries.is_empty(), "{dir}: {temporaries:?}");
        fovea::train::checkpoint::load(&root.join(dir).join("last.safetensors")).unwrap();
    }
    std::fs::remove_dir_all(&root).ok();
}
