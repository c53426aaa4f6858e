//! `fovea train`: the main job. With no arguments, trains the lecture's MNIST convnet on the
//! bundled data and leaves a run directory behind.

use fovea::train::{parse_config, read_config, train, RunOptions, TrainConfig};
use fovea::{models, Error, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Model to train [default: mnist-cnn, the lecture's MNIST convnet].
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(models::NAMES))]
    model: Option<String>,
    /// Input size CxHxW for models that take other sizes (e.g. 3x32x32 for CIFAR-10).
    #[arg(long, value_parser = super::args::parse_input)]
    input: Option<[usize; 3]>,
    /// MNIST IDX files, CIFAR-10 binary batches, or an image folder (root/<class>/*.png)
    /// [default: the MNIST bundled in the binary].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Passes over the training images [default: 6; 15 for lenet5].
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step [default: 128].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Optimizer [default: adam].
    #[arg(long, value_parser = ["adam", "adamw", "sgd"])]
    optimizer: Option<String>,
    /// Base learning rate [default: 0.001].
    #[arg(long)]
    lr: Option<f32>,
    /// SGD momentum [default: 0.9].
    #[arg(long)]
    momentum: Option<f32>,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    nesterov: bool,
    /// L2 weight decay (decoupled for adamw) [default: 0].
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Learning-rate schedule: constant, cosine, or step:EVERY:GAMMA (EVERY in steps)
    /// [default: cosine].
    #[arg(long)]
    schedule: Option<String>,
    /// Seed of the initial weights, shuffles, shifts and dropout [default: 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Training images held out for validation [default: 5000].
    #[arg(long)]
    val_size: Option<usize>,
    /// Largest random shift in pixels for augmentation, 0 for none [default: 2].
    #[arg(long)]
    shift: Option<usize>,
    /// A line in metrics.jsonl every this many steps [default: 50].
    #[arg(long)]
    log_every: Option<usize>,
    /// A checkpoint every this many steps, besides each epoch's end, 0 for epoch ends only
    /// [default: 200].
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Run directory [default: runs/<model>-<YYYYMMDD-HHMMSS>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Replace the run already in the --out directory (refused otherwise, so that a trained
    /// model is never overwritten by accident).
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Train data-parallel over MPI, one process per rank: `mpirun -np N fovea train
    /// --distributed ...`. Each rank computes its share of every batch (--batch-size stays the
    /// whole batch); rank 0 prints and writes the run directory. Needs fovea built with
    /// `--features mpi`.
    #[arg(long)]
    distributed: bool,
    /// With --distributed: how long a rank waits for the others in one operation before it
    /// stops the whole run, in seconds [default: 300].
    #[arg(long, requires = "distributed", default_value_t = 300)]
    mpi_timeout: u64,
}

/// The files a run directory holds; their presence means a run is there.
const RUN_FILES: &[&str] = &["config.json", "metrics.jsonl", "last.safetensors", "best.safetensors", "loss.png", "accuracy.png", "report.html", "preview.png"];

/// Refuses a directory that already holds a run, unless `force` (then its run files are
/// removed first, so the new run's files are not mixed with the old one's).
pub(super) fn claim_run_dir(dir: &std::path::Path, force: bool, command: &str) -> Result<()> {
    let present: Vec<&str> = RUN_FILES.iter().copied().filter(|f| dir.join(f).exists()).collect();
    if present.is_empty() {
        return check_writable(dir);
    }
    if !force {
        return Err(Error::file(dir, format!(
            "already holds a run ({}): `{command} --resume {}` continues it, --force replaces it",
            present.join(", "),
            dir.display()
        )));
    }
    for f in present {
        std::fs::remove_file(dir.join(f)).map_err(|e| Error::file(dir.join(f), format!("cannot remove: {e}")))?;
    }
    eprintln!("warning: replacing the run in {} (--force)", dir.display());
    check_writable(dir)
}

/// Creates the run directory and writes a probe file in it, so that a folder that cannot hold
/// the run is reported now, before the data is read and an epoch is spent.
fn check_writable(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create the run directory: {e}")))?;
    fovea::io::atomic::write_atomic(&dir.join(".fovea-write-probe"), b"")
        .and_then(|()| std::fs::remove_file(dir.join(".fovea-write-probe")).map_err(|e| Error::file(dir, e.to_string())))
        .map_err(|e| Error::file(dir, format!("cannot be written, so the run could not be saved: {e}")))
}

/// `YYYYMMDD-HHMMSS` in UTC, for run directory names.
pub(super) fn timestamp() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn apply(a: &Args, cfg: &mut TrainConfig) {
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = a.$f.clone() { cfg.$f = v; } )* };
    }
    set!(data, epochs, batch_size, optimizer, lr, momentum, weight_decay, schedule, seed, val_size, shift, log_every, checkpoint_every);
    if a.nesterov {
        cfg.nesterov = true;
    }
    if a.input.is_some() {
        cfg.input = a.input;
    }
}

pub fn run(a: Args) -> Result<()> {
    if !a.distributed {
        return run_with(a, None);
    }
    distributed(a)
}

#[cfg(not(feature = "mpi"))]
fn distributed(_: Args) -> Result<()> {
    Err(Error::Invalid(
        "this fovea was built without MPI: --distributed needs `cargo build --release --features mpi` (with Open MPI's or MPICH's development files installed)".into(),
    ))
}

/// One rank of `mpirun -np N fovea train --distributed`: MPI is started, the run trained, and
/// MPI shut down; an error on one rank ends every rank (so none waits for it in vain).
#[cfg(feature = "mpi")]
fn distributed(a: Args) -> Result<()> {
    use fovea::distributed::Collective;
    // Ranks on one machine share its cores: unless --threads says otherwise, each takes its
    // part (the launcher says how many ranks run here).
    let local_ranks = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
        .unwrap_or(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Fails harmlessly when --threads already built the pool.
    let _ = rayon::ThreadPoolBuilder::new().num_threads((cores / local_ranks.max(1)).max(1)).build_global();
    let world = fovea::distributed::mpi::init(std::time::Duration::from_secs(a.mpi_timeout.max(1)))?;
    let group = world.group.clone();
    match run_with(a, Some(group.clone())) {
        Ok(()) => Ok(()),
        // Every rank agreed to stop at the same step, and rank 0 saved it: a clean end.
        Err(e @ Error::Interrupted(_)) => Err(e),
        Err(e) => {
            let rank = group.rank();
            if rank != 0 {
                // Most errors (bad data, a bad setting) strike every rank alike: rank 0 then
                // ends the job with its message while this one waits, so it is said once.
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            eprintln!("error: {}{e}", if rank == 0 { String::new() } else { format!("rank {rank}: ") });
            group.abort(1)
        }
    }
}

fn run_with(a: Args, group: Option<Arc<dyn fovea::distributed::Collective>>) -> Result<()> {
    let threads = rayon::current_num_threads();
    let (rank, ranks) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.size()));
    let lead = rank == 0;
    let (cfg, dir, resume) = match &a.resume {
        Some(dir) => {
            let mut cfg = match &group {
                // Rank 0's run directory may be on its machine alone: it hands out the settings.
                Some(g) => {
                    let mut bytes = if lead { std::fs::read(dir.join("config.json")).unwrap_or_default() } else { Vec::new() };
                    g.broadcast("the run's configuration", &mut bytes)?;
                    if bytes.is_empty() { read_config(dir)? } else { parse_config(&bytes).map_err(|m| Error::file(dir.join("config.json"), m))? }
                }
                None => read_config(dir)?,
            };
            if let Some(m) = &a.model {
                if *m != cfg.model {
                    return Err(Error::Invalid(format!("{} was trained as model {}; --model {m} does not match", dir.display(), cfg.model)));
                }
            }
            let saved = cfg.clone();
            apply(&a, &mut cfg);
            // Only the length of the run may change on resume; the rest decides the numbers.
            let mut check = cfg.clone();
            check.epochs = saved.epochs;
            if check != saved {
                return Err(Error::Invalid(format!(
                    "--resume continues {} with its saved settings (config.json); only --epochs may change",
                    dir.display()
                )));
            }
            if threads != cfg.threads && lead {
                eprintln!(
                    "warning: the run used {} thread(s), this one {threads}: it continues, but not bit for bit as the original would",
                    cfg.threads
                );
            }
            (cfg, dir.clone(), true)
        }
        None => {
            let model = a.model.clone().unwrap_or_else(|| "mnist-cnn".into());
            let mut cfg = TrainConfig::defaults(&model, &PathBuf::from(fovea::data::bundled::BUNDLED_MNIST));
            apply(&a, &mut cfg);
            cfg.threads = threads;
            let dir = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("{model}-{}", timestamp())));
            if lead {
                claim_run_dir(&dir, a.force, "fovea train")?;
            }
            (cfg, dir, false)
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // First Ctrl-C: finish the step, write a checkpoint, stop. Second: stop at once.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (Ctrl-C again to quit at once)");
    });
    let data = if fovea::data::bundled::is_bundled(&cfg.data) {
        "the MNIST bundled in the binary".to_string()
    } else {
        std::path::absolute(&cfg.data).unwrap_or_else(|_| cfg.data.clone()).display().to_string()
    };
    let ranks_note = if ranks > 1 { format!(" on each of {ranks} ranks (MPI)") } else { String::new() };
    if lead {
        println!(
            "training {} on {data} for {} epoch{}: batch {}, {} lr {} ({}), seed {}, {threads} thread(s){ranks_note} -> {}",
            cfg.model, cfg.epochs, if cfg.epochs == 1 { "" } else { "s" }, cfg.batch_size, cfg.optimizer, cfg.lr, cfg.schedule, cfg.seed, dir.display()
        );
    }
    let options = RunOptions { stop: Some(&stop), verbose: true, progress: true, group };
    let outcome = match train(&cfg, &dir, resume, &options) {
        Ok(o) => o,
        Err(e) => {
            // A run that failed before writing anything (bad data, say) leaves no empty folder.
            if lead {
                let _ = std::fs::remove_dir(&dir);
            }
            return Err(e);
        }
    };
    if !lead {
        return Ok(());
    }
    if ranks > 1 && !outcome.seconds_per_epoch.is_empty() {
        println!("weights identical on all {ranks} ranks (digest {:016x})", outcome.weights_digest);
    }
    if outcome.seconds_per_epoch.is_empty() {
        println!(
            "nothing to do: {} already finished its {} epoch(s) ({} steps); give --epochs N to train it further",
            dir.display(), cfg.epochs, outcome.steps
        );
        return Ok(());
    }
    let mean_epoch = outcome.seconds_per_epoch.iter().sum::<f32>() / outcome.seconds_per_epoch.len().max(1) as f32;
    println!(
        "done: {} steps, best validation accuracy {:.2}%, final test accuracy {}, {:.1} s per epoch",
        outcome.steps,
        100.0 * outcome.best_val_accuracy,
        outcome.test_accuracy.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a)),
        mean_epoch
    );
    // The main job ends with a page to open: the report on the best weights.
    let report = dir.join("report.html");
    let args = super::viz::ReportArgs::for_run(&cfg.model, &dir.join("best.safetensors"), &cfg.data, &dir, cfg.input, &report);
    match super::viz::report(args) {
        Ok(()) => {}
        Err(e) => eprintln!("warning: the report could not be written: {e}"),
    }
    println!(
        "run directory: {} (config.json, metrics.jsonl, last/best.safetensors, loss.png, accuracy.png, report.html)",
        dir.display()
    );
    Ok(())
}
