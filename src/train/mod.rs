//! The trainer: epochs of seeded mini-batches, a progress bar, validation and test accuracy
//! at each epoch's end, a metrics log, checkpoints (`last`, `best`), plots, and resuming.
//!
//! Every random choice is a function of the seed and the step (the epoch's shuffle, the batch's
//! shifts, the dropout masks), so a run resumed from a checkpoint continues exactly as the
//! uninterrupted run would have, bit for bit at the same thread count.

pub mod checkpoint;
pub mod evaluate;
pub mod metrics;

use crate::data::{self, fill_batch, Shift};
use crate::distributed::{self as dist, Collective};
use crate::error::{Error, Result};
use crate::layers::{BackwardCtx, ForwardCtx, Mode};
use crate::loss::softmax_cross_entropy;
use crate::models;
use crate::optim::{self, Schedule};
use crate::rng::{mix64, Rng};
use crate::tensor::Tensor;
use checkpoint::{Progress, WeightsInfo};
use crate::progress::Progress as ProgressDisplay;
use metrics::{MetricsLog, Record};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Everything that decides a training run; saved as `config.json` in the run directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub model: String,
    /// Input `[C, H, W]` when not the model's default (e.g. `[3, 32, 32]` for CIFAR-10).
    #[serde(default)]
    pub input: Option<[usize; 3]>,
    /// Directory of MNIST IDX files, CIFAR-10 batches or an image folder.
    pub data: PathBuf,
    pub epochs: usize,
    pub batch_size: usize,
    /// `sgd`, `adam` or `adamw`.
    pub optimizer: String,
    pub lr: f32,
    /// SGD momentum.
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    /// `constant`, `cosine` or `step:EVERY:GAMMA`.
    pub schedule: String,
    pub seed: u64,
    /// Worker threads (recorded: the same seed and thread count give the same numbers).
    pub threads: usize,
    /// Training images held out for validation.
    pub val_size: usize,
    /// Largest random shift in pixels (0: no augmentation).
    pub shift: usize,
    /// A metrics line every this many steps.
    pub log_every: usize,
    /// A checkpoint every this many steps besides each epoch's end (0: only at epoch ends).
    pub checkpoint_every: usize,
}

impl TrainConfig {
    /// The defaults for `model`: 6 epochs (15 for LeNet-5) of Adam at 1e-3 with a cosine
    /// schedule, batch 128, shifts of up to 2 pixels, 5,000 validation images.
    pub fn defaults(model: &str, data: &Path) -> Self {
        TrainConfig {
            model: model.to_string(),
            input: None,
            data: data.to_path_buf(),
            // LeNet-5 is small and fast: it takes more epochs to pass 99% than the lecture's net.
            epochs: if model == "lenet5" { 15 } else { 6 },
            batch_size: 128,
            optimizer: "adam".into(),
            lr: 1e-3,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            schedule: "cosine".into(),
            seed: 1,
            threads: rayon::current_num_threads(),
            val_size: 5000,
            shift: 2,
            log_every: 50,
            checkpoint_every: 200,
        }
    }
}

/// What a finished run reached.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub steps: usize,
    pub best_val_accuracy: f32,
    pub test_accuracy: Option<f32>,
    pub seconds_per_epoch: Vec<f32>,
    /// The mean training loss of each epoch this call ran.
    pub train_loss_per_epoch: Vec<f32>,
    /// A digest of the final weights and buffers' bits ([`crate::distributed::digest_f32`]);
    /// the ranks of a distributed run have checked that theirs are the same.
    pub weights_digest: u64,
}

/// Options that do not change the numbers.
#[derive(Clone, Default)]
pub struct RunOptions<'a> {
    /// Set (by Ctrl-C) to stop after the current step with a checkpoint.
    pub stop: Option<&'a AtomicBool>,
    /// Print a line per epoch (and what resumes), on standard output.
    pub verbose: bool,
    /// Show progress within an epoch on standard error (a bar, or a line every few seconds).
    pub progress: bool,
    /// Train data-parallel with these ranks: each computes its share of every batch, the
    /// gradients are summed, every rank takes the same step (the single process's run, to
    /// rounding). Rank 0 alone prints, logs and writes the run directory.
    pub group: Option<Arc<dyn Collective>>,
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Invalid(e.to_string()))?;
    crate::io::atomic::write_atomic(path, text.as_bytes())
}

/// Where the last finite weights of a stopped run are, in words.
fn last_good(last_path: &Path) -> String {
    if last_path.exists() {
        format!("{} holds the last good weights", last_path.display())
    } else {
        "no checkpoint had been written yet".to_string()
    }
}

/// A number as a person would write it: `0.001`, `1e30`, not thirty-one digits.
fn short_number(v: f32) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-4) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// Reads the `config.json` of a run directory.
pub fn read_config(run_dir: &Path) -> Result<TrainConfig> {
    let p = run_dir.join("config.json");
    let bytes = std::fs::read(&p).map_err(|e| Error::file(&p, format!("cannot read: {e}")))?;
    parse_config(&bytes).map_err(|m| Error::file(&p, m))
}

/// A training configuration from `config.json`'s bytes, checked as `TrainConfig::check` does.
pub fn parse_config(bytes: &[u8]) -> std::result::Result<TrainConfig, String> {
    let cfg: TrainConfig = serde_json::from_slice(bytes).map_err(|e| format!("is not a fovea training configuration: {e}"))?;
    cfg.check().map_err(|e| format!("holds a configuration fovea cannot run: {e}"))?;
    Ok(cfg)
}

/// The largest input side and batch fovea accepts from a configuration: beyond, a number is
/// more likely corrupt than meant (ImageNet nets take 224-299 pixels).
const MAX_INPUT_SIDE: usize = 4096;
const MAX_BATCH: usize = 1 << 16;

impl TrainConfig {
    /// Refuses settings no run can use, before any data is read or memory sized by them.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if !models::NAMES.contains(&self.model.as_str()) {
            return bad(format!("unknown model {:?}; the models are {}", self.model, models::NAMES.join(", ")));
        }
        if let Some([c, h, w]) = self.input {
            if !matches!(c, 1 | 3) || h == 0 || w == 0 || h > MAX_INPUT_SIDE || w > MAX_INPUT_SIDE {
                return bad(format!("input {c}x{h}x{w}: images have 1 or 3 channels and sides of 1 to {MAX_INPUT_SIDE} pixels"));
            }
        }
        if self.epochs == 0 || self.batch_size == 0 || self.batch_size > MAX_BATCH {
            return bad(format!("epochs ({}) must be at least 1 and the batch size ({}) 1 to {MAX_BATCH}", self.epochs, self.batch_size));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("the learning rate must be a number above 0, not {}", self.lr));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return bad(format!("the momentum must be at least 0 and below 1, not {}", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("the weight decay must be a number of at least 0, not {}", self.weight_decay));
        }
        if self.shift > MAX_INPUT_SIDE {
            return bad(format!("a shift of {} pixels is larger than any image", self.shift));
        }
        optim::build(&self.optimizer, self.momentum, self.nesterov, self.weight_decay)?;
        Schedule::parse(&self.schedule)?;
        Ok(())
    }
}

/// Trains as `cfg` says into `run_dir`; with `resume`, continues the run found there from
/// its `last.safetensors`. With `opts.group`, this process is one rank of a data-parallel run
/// (only rank 0 touches `run_dir`).
pub fn train(cfg: &TrainConfig, run_dir: &Path, resume: bool, opts: &RunOptions) -> Result<Outcome> {
    cfg.check()?;
    let group = opts.group.as_deref();
    let (rank, ranks) = group.map_or((0, 1), |g| (g.rank(), g.size()));
    let lead = rank == 0;
    let verbose = opts.verbose && lead;
    if ranks > cfg.batch_size {
        return Err(Error::Invalid(format!(
            "a batch of {} image(s) cannot be shared by {ranks} ranks: give a --batch-size of at least {ranks}",
            cfg.batch_size
        )));
    }
    if let Some(g) = group {
        // The same command on every rank is one run; a rank started otherwise would train
        // another model in lockstep without anyone noticing.
        let mut mine = cfg.clone();
        mine.threads = 0;
        dist::agree(g, "training configuration", &serde_json::to_vec(&mine).unwrap_or_default())?;
    }
    let schedule = Schedule::parse(&cfg.schedule)?;
    let shape = cfg.input.unwrap_or_else(|| models::default_input(&cfg.model));
    let split = data::load_dir(&cfg.data, shape)?;
    if split.train.shape != shape {
        return Err(Error::Invalid(format!(
            "{}: the images are {:?} (C, H, W), model {} takes {:?}; give --input {}x{}x{} if the model allows it",
            cfg.data.display(), split.train.shape, cfg.model, shape,
            split.train.shape[0], split.train.shape[1], split.train.shape[2]
        )));
    }
    if let Some(g) = group {
        // Ranks on other machines read their own copy of the data: it must be the same.
        let labels = split.train.labels.iter().chain(&split.test.labels).flat_map(|l| l.to_le_bytes());
        let d = dist::digest(split.train.pixels.iter().chain(&split.test.pixels).copied().chain(labels));
        dist::agree(g, &format!("data ({})", cfg.data.display()), &d.to_le_bytes())?;
    }
    let classes = split.train.classes.clone();
    let mut net = models::build_for(&cfg.model, classes.len(), Some(shape), cfg.seed)?;
    // Only the logits and the gradients are read while training: each ReLU after a
    // convolution is applied by the convolution itself (`Net::fuse_activations`).
    net.fuse_activations(true);
    net.sync_batch_statistics(opts.group.clone());
    let input = net.input_shape().to_vec();
    let (train_set, val_set) = if cfg.val_size > 0 {
        let (t, v) = split.train.split(cfg.val_size, mix64(cfg.seed ^ 0x5EED))?;
        (t, Some(v))
    } else {
        (split.train, None)
    };
    let test_set = (!split.test.is_empty()).then_some(split.test);
    let norm = models::normalization(&cfg.model);
    let mut optimizer = optim::build(&cfg.optimizer, cfg.momentum, cfg.nesterov, cfg.weight_decay)?;
    let info = WeightsInfo { model: cfg.model.clone(), classes: classes.clone(), input: input.clone() };

    let last_path = run_dir.join("last.safetensors");
    // Rank 0 reads the checkpoint to resume from and hands it to the others, so the run
    // directory need only be on rank 0's machine; empty bytes: start from step 0.
    let mut checkpoint_bytes = Vec::new();
    if lead {
        std::fs::create_dir_all(run_dir).map_err(|e| Error::file(run_dir, format!("cannot create: {e}")))?;
        // A process killed while writing leaves its temporary file behind; it is never read.
        crate::io::atomic::remove_stale_temporaries(run_dir);
        if resume {
            // Killed before its first checkpoint, a run has nothing to continue from: it
            // starts again (same configuration, same numbers).
            if last_path.is_file() {
                checkpoint_bytes = std::fs::read(&last_path).map_err(|e| Error::file(&last_path, format!("cannot read: {e}")))?;
            } else if verbose {
                println!("{} holds no checkpoint yet: the run starts again from step 0", run_dir.display());
            }
        }
    }
    if let Some(g) = group {
        g.broadcast("the checkpoint to resume from", &mut checkpoint_bytes)?;
    }
    let resume = !checkpoint_bytes.is_empty();
    let mut progress = Progress::default();
    if resume {
        let loaded = checkpoint::parse(&checkpoint_bytes).map_err(|m| Error::file(&last_path, m))?;
        drop(checkpoint_bytes);
        let nonfinite = checkpoint::nonfinite_report(loaded.model.iter().chain(&loaded.optimizer));
        if !nonfinite.is_empty() {
            return Err(Error::file(&last_path, format!("holds values that are not numbers ({}): it cannot be resumed", nonfinite.join("; "))));
        }
        if let Some(i) = &loaded.info {
            if i.model != cfg.model {
                return Err(Error::file(&last_path, format!("was trained as model {}, not {}", i.model, cfg.model)));
            }
        }
        net.load_state(&loaded.model).map_err(|e| Error::file(&last_path, e.to_string()))?;
        if loaded.optimizer_name.as_deref() != Some(optimizer.name()) {
            return Err(Error::file(&last_path, format!(
                "holds {} optimizer state, the run uses {}",
                loaded.optimizer_name.as_deref().unwrap_or("no"), optimizer.name()
            )));
        }
        optimizer.load_state(&loaded.optimizer)?;
        progress = loaded.progress.ok_or_else(|| Error::file(&last_path, "has no training progress: not a checkpoint"))?;
        if verbose {
            println!("resuming from step {} ({})", progress.step, last_path.display());
        }
    } else if lead {
        write_json(&run_dir.join("config.json"), cfg)?;
    }
    let mut log = if lead { Some(MetricsLog::open(&run_dir.join("metrics.jsonl"), resume.then_some(progress.step))?) } else { None };
    let run = Run { cfg, dir: run_dir, info: &info, norm: &norm, val_set: val_set.as_ref(), test_set: test_set.as_ref(), verbose, group };

    let n = train_set.len();
    // The last, partial batch is kept (as PyTorch's default), unless it would hold a single
    // image (batch norm cannot normalise one value per channel) or too few to give every rank
    // one.
    let tail = n % cfg.batch_size;
    let steps_per_epoch = if tail > 0 && (tail == 1 || tail < ranks) && n > cfg.batch_size { n / cfg.batch_size } else { n.div_ceil(cfg.batch_size) };
    if steps_per_epoch == 0 || n < ranks {
        return Err(Error::Invalid(format!("{} training image(s) are too few for a batch", n)));
    }
    let total_steps = steps_per_epoch * cfg.epochs;
    let (mut x, mut labels) = (Tensor::default(), Vec::new());
    let mut order: Vec<usize> = Vec::new();
    let mut bar: Option<ProgressDisplay> = None;
    let mut epoch_start = Instant::now();
    let mut epoch_images = 0usize;
    let mut log_start = (Instant::now(), 0usize);
    let mut outcome = Outcome { steps: progress.step, best_val_accuracy: progress.best_val_accuracy, test_accuracy: None, seconds_per_epoch: Vec::new(), train_loss_per_epoch: Vec::new(), weights_digest: 0 };
    let out_name = net.output_name().to_string();
    let back = BackwardCtx { param_grads: true, input_grad: false, ..BackwardCtx::default() };
    let mut summed = Vec::new();

    while progress.step < total_steps {
        let step = progress.step;
        let (epoch, pos) = (step / steps_per_epoch, step % steps_per_epoch);
        if order.is_empty() || pos == 0 {
            order = (0..n).collect();
            Rng::new(mix64(cfg.seed ^ mix64(0xE90C + epoch as u64))).shuffle(&mut order);
            if opts.progress && lead {
                let mut b = ProgressDisplay::new(steps_per_epoch as u64, &format!("epoch {}/{}", epoch + 1, cfg.epochs));
                b.set_position(pos as u64);
                bar = Some(b);
            }
            epoch_start = Instant::now();
            log_start = (Instant::now(), 0);
            epoch_images = 0;
        }
        let batch = &order[pos * cfg.batch_size..((pos + 1) * cfg.batch_size).min(n)];
        // This rank's share of the batch; shifts and dropout masks are drawn for each image's
        // place in the whole batch, so the shares together are the single process's batch.
        let part = dist::share(batch.len(), rank, ranks);
        let shift = (cfg.shift > 0).then(|| Shift { max: cfg.shift, seed: mix64(cfg.seed ^ mix64(0x5A1F7 + step as u64)), first_image: part.start });
        fill_batch(&train_set, &batch[part.clone()], &norm, shift, &mut x, &mut labels);

        let lr = schedule.lr(cfg.lr, step, total_steps);
        let ctx = ForwardCtx { mode: Mode::Train, seed: mix64(cfg.seed ^ mix64(step as u64)), first_image: part.start, backward_from_output_only: true };
        let logits = net.forward(&x, &ctx)?;
        let mut r = softmax_cross_entropy(logits, &labels)?;
        let nonfinite_loss = |loss: f32, net: &crate::net::Net| {
            let layer = net.first_nonfinite_value().unwrap_or("the loss");
            Error::Invalid(format!(
                "step {step} (epoch {}): the loss is {loss}, first non-finite at {layer}; training stopped, {}. Try a lower --lr than {}",
                epoch + 1, last_good(&last_path), short_number(cfg.lr)
            ))
        };
        // One process stops here; ranks go on to the sum below so that all stop together.
        if group.is_none() && !r.loss.is_finite() {
            return Err(nonfinite_loss(r.loss, &net));
        }
        let mut correct = logits.argmax_rows().iter().zip(&labels).filter(|(p, t)| p == t).count();
        if ranks > 1 {
            // The loss is the whole batch's mean: this share's rows weigh 1 / batch, not
            // 1 / share.
            let scale = part.len() as f32 / batch.len() as f32;
            r.d_logits.data_mut().iter_mut().for_each(|g| *g *= scale);
        }
        net.backward_fresh(&out_name, &r.d_logits, &back)?;
        let mut loss = r.loss;
        let mut stop = opts.stop.is_some_and(|s| s.load(Ordering::SeqCst));
        if let Some(g) = group {
            let local = [loss * part.len() as f32, correct as f32, f32::from(u8::from(stop))];
            let all = sum_gradients(g, &mut net, &local, &mut summed)?;
            loss = all[0] / batch.len() as f32;
            correct = all[1] as usize;
            stop = all[2] > 0.0;
            if !loss.is_finite() {
                return Err(nonfinite_loss(loss, &net));
            }
        }
        // A non-finite gradient would poison every weight at this step's update: stop before it.
        if !net.grads_finite() {
            let param = net.first_nonfinite_grad().unwrap_or_default();
            return Err(Error::Invalid(format!(
                "step {step} (epoch {}): the gradient of {param} is not finite (loss {loss}); training stopped before the update, {}. Try a lower --lr than {}",
                epoch + 1, last_good(&last_path), short_number(cfg.lr)
            )));
        }
        optimizer.step(&mut net.params_mut(), lr);

        progress.step += 1;
        progress.epoch_loss_sum += loss as f64 * batch.len() as f64;
        progress.epoch_correct += correct;
        progress.epoch_seen += batch.len();
        epoch_images += batch.len();
        log_start.1 += batch.len();
        if let Some(b) = &mut bar {
            if progress.step % 5 == 0 {
                let ips = log_start.1 as f64 / log_start.0.elapsed().as_secs_f64().max(1e-9);
                b.set_message(format!(
                    "loss {:.4} acc {:.2}% {:.0} img/s",
                    progress.epoch_loss_sum / progress.epoch_seen as f64,
                    100.0 * progress.epoch_correct as f64 / progress.epoch_seen as f64,
                    ips
                ));
            }
            b.inc(1);
        }
        if let Some(log) = log.as_mut().filter(|_| progress.step % cfg.log_every.max(1) == 0) {
            let secs = log_start.0.elapsed().as_secs_f32().max(1e-9);
            log.append(&Record::Step {
                epoch: epoch + 1,
                step: progress.step,
                loss,
                accuracy: correct as f32 / batch.len() as f32,
                lr,
                images_per_sec: log_start.1 as f32 / secs,
            })?;
        }

        if progress.step % steps_per_epoch == 0 {
            let seconds = epoch_start.elapsed().as_secs_f32();
            if let Some(mut b) = bar.take() {
                b.finish_and_clear();
            }
            outcome.train_loss_per_epoch.push((progress.epoch_loss_sum / progress.epoch_seen.max(1) as f64) as f32);
            // Images per second over what this process trained (a resumed epoch's first part
            // ran before the interruption, outside `seconds`).
            let test_accuracy = run.end_of_epoch(&mut net, optimizer.as_ref(), &mut progress, log.as_mut(), epoch, seconds, epoch_images)?;
            outcome.seconds_per_epoch.push(seconds);
            outcome.test_accuracy = test_accuracy;
        } else if cfg.checkpoint_every > 0 && progress.step % cfg.checkpoint_every == 0 {
            run.save_last(&net, optimizer.as_ref(), &progress)?;
        }
        if stop && progress.step < total_steps {
            if let Some(b) = bar.take() {
                b.abandon();
            }
            run.save_last(&net, optimizer.as_ref(), &progress)?;
            return Err(Error::Interrupted(format!(
                "stopped at step {} of {total_steps}, saved in {}; continue with: fovea train --resume {}",
                progress.step,
                last_path.display(),
                run_dir.display()
            )));
        }
    }
    outcome.steps = progress.step;
    outcome.best_val_accuracy = progress.best_val_accuracy;
    outcome.weights_digest = weights_digest(&net);
    Ok(outcome)
}

fn weights_digest(net: &crate::net::Net) -> u64 {
    // Parameters and buffers (batch norm's running statistics) alike.
    dist::digest_f32(net.state().iter().flat_map(|(_, t)| t.data()))
}

/// Sums every parameter gradient of `net` over the ranks of `group` (one allreduce of the
/// parameter count + `extra.len()` floats, through `buffer`), writes the sums back, and returns
/// the sums of `extra` (the step's loss sum, number correct, stop request).
fn sum_gradients(group: &dyn Collective, net: &mut crate::net::Net, extra: &[f32], buffer: &mut Vec<f32>) -> Result<Vec<f32>> {
    buffer.clear();
    for (_, p) in net.params() {
        buffer.extend_from_slice(p.grad.data());
    }
    buffer.extend_from_slice(extra);
    group.sum_f32("the gradients", buffer)?;
    let mut at = 0;
    for (_, p) in net.params_mut() {
        let g = p.grad.data_mut();
        g.copy_from_slice(&buffer[at..at + g.len()]);
        at += g.len();
    }
    Ok(buffer[at..].to_vec())
}

/// What stays fixed during a run, for the work at checkpoints and epoch ends.
struct Run<'a> {
    cfg: &'a TrainConfig,
    dir: &'a Path,
    info: &'a WeightsInfo,
    norm: &'a crate::data::Normalize,
    val_set: Option<&'a crate::data::Dataset>,
    test_set: Option<&'a crate::data::Dataset>,
    verbose: bool,
    /// The ranks of a distributed run; rank 0 alone writes.
    group: Option<&'a dyn Collective>,
}

impl Run<'_> {
    fn lead(&self) -> bool {
        self.group.is_none_or(|g| g.rank() == 0)
    }

    /// Writes `last.safetensors`; when that fails (a full disk), the error says which
    /// checkpoint is still there and how to go on. Every rank of a distributed run calls it:
    /// they first check that they hold the same weights, bit for bit, then rank 0 writes.
    fn save_last(&self, net: &crate::net::Net, optimizer: &dyn optim::Optimizer, progress: &Progress) -> Result<()> {
        if let Some(g) = self.group {
            let d = weights_digest(net);
            dist::agree(g, &format!("weights after step {}", progress.step), &d.to_le_bytes())?;
        }
        if !self.lead() {
            return Ok(());
        }
        let path = self.dir.join("last.safetensors");
        checkpoint::save(&path, net, Some(optimizer), self.info, Some(progress)).map_err(|e| {
            let kept = match checkpoint::load(&path).ok().and_then(|l| l.progress) {
                Some(p) => format!(
                    "the checkpoint of step {} is intact; make room and continue with: fovea train --resume {}",
                    p.step,
                    self.dir.display()
                ),
                None => "no earlier checkpoint was written".to_string(),
            };
            Error::Invalid(format!("{e} (training stopped at step {}; {kept})", progress.step))
        })
    }

    /// At the end of epoch `epoch` (0-based): evaluate on the validation and test sets (each
    /// rank its share), log and print the epoch, checkpoint `last` (and `best` when validation
    /// accuracy improved), redraw the plots, and start the next epoch's sums. Returns the test
    /// accuracy. `log` is rank 0's.
    #[allow(clippy::too_many_arguments)]
    fn end_of_epoch(
        &self,
        net: &mut crate::net::Net,
        optimizer: &dyn optim::Optimizer,
        progress: &mut Progress,
        log: Option<&mut MetricsLog>,
        epoch: usize,
        seconds: f32,
        images_timed: usize,
    ) -> Result<Option<f32>> {
        let eval = |net: &mut crate::net::Net, set: Option<&crate::data::Dataset>| -> Result<Option<evaluate::Evaluation>> {
            set.map(|d| match self.group {
                Some(g) => evaluate::evaluate_shared(net, d, self.norm, 500, g),
                None => evaluate::evaluate(net, d, self.norm, 500),
            })
            .transpose()
        };
        let val = eval(net, self.val_set)?;
        let test = eval(net, self.test_set)?;
        let seen = progress.epoch_seen.max(1);
        let train_loss = (progress.epoch_loss_sum / seen as f64) as f32;
        let train_accuracy = progress.epoch_correct as f32 / seen as f32;
        if let Some(log) = log {
            log.append(&Record::Epoch {
                epoch: epoch + 1,
                step: progress.step,
                train_loss,
                train_accuracy,
                val_loss: val.as_ref().map(|e| e.loss),
                val_accuracy: val.as_ref().map(|e| e.accuracy),
                test_loss: test.as_ref().map(|e| e.loss),
                test_accuracy: test.as_ref().map(|e| e.accuracy),
                seconds,
            })?;
        }
        if self.verbose {
            let pct = |e: &Option<evaluate::Evaluation>| e.as_ref().map_or("-".to_string(), |e| format!("{:.2}%", 100.0 * e.accuracy));
            println!(
                "epoch {}/{}: train loss {train_loss:.4} acc {:.2}%, validation {}, test {}, {seconds:.1} s ({:.0} images/s)",
                epoch + 1,
                self.cfg.epochs,
                100.0 * train_accuracy,
                pct(&val),
                pct(&test),
                images_timed as f32 / seconds.max(1e-9)
            );
        }
        progress.epoch_loss_sum = 0.0;
        progress.epoch_correct = 0;
        progress.epoch_seen = 0;
        // Best by validation accuracy (by test accuracy when nothing is held out). Every rank
        // keeps the same progress, though only rank 0 writes it.
        let best_path = self.dir.join("best.safetensors");
        let score = val.as_ref().or(test.as_ref()).map_or(0.0, |e| e.accuracy);
        let improved = score > progress.best_val_accuracy || (self.lead() && !best_path.exists());
        if improved {
            progress.best_val_accuracy = score.max(progress.best_val_accuracy);
        }
        // Best before last: a kill between the two then repeats this epoch end on resume (and
        // writes the same best again); the other order would lose this epoch's best for good.
        if improved && self.lead() {
            checkpoint::save(&best_path, net, None, self.info, Some(progress))?;
        }
        self.save_last(net, optimizer, progress)?;
        if !self.lead() {
            return Ok(test.map(|e| e.accuracy));
        }
        if let Ok(records) = metrics::read(&self.dir.join("metrics.jsonl")) {
            // Plots are a convenience: a failure to draw them does not stop training.
            if let Err(e) = crate::plot::training_curves(&records, self.dir) {
                eprintln!("warning: {e}");
            }
        }
        Ok(test.map(|e| e.accuracy))
    }
}
