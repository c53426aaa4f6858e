//! Data-parallel training held to the single process, with ranks played by threads of this
//! process (`distributed::threads`), so the default build checks the trainer's distributed
//! logic without MPI: shares of each batch, whole-batch shifts and dropout masks, synchronised
//! batch norm, the gradient sum, the shared evaluation, rank 0 alone writing. `tests/mpi.rs`
//! runs the same over real MPI processes.

use fovea::distributed::threads::{ThreadGroup, ThreadRank};
use fovea::distributed::Collective;
use fovea::layers::BatchNorm2d;
use fovea::train::{checkpoint, train, Outcome, RunOptions, TrainConfig};
use fovea::{ForwardCtx, Layer, Mode, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{temp_dir, toy_mnist_dir, worst_difference};

/// Trains `cfg` on `ranks` threads; rank 0 writes to `dir`, the others are given `elsewhere`
/// (which must stay absent: only rank 0 writes).
fn train_on_ranks(cfg: &TrainConfig, dir: &Path, elsewhere: &Path, ranks: usize) -> Vec<fovea::Result<Outcome>> {
    train_ranks_with(ThreadGroup::ranks(ranks, Duration::from_secs(300)), false, |rank| (cfg.clone(), if rank == 0 { dir.to_path_buf() } else { elsewhere.to_path_buf() }))
}

/// Trains on `ranks`, rank r with the configuration and directory `setup(r)` gives; `resume`
/// continues the run in rank 0's directory.
fn train_ranks_with(ranks: Vec<ThreadRank>, resume: bool, setup: impl Fn(usize) -> (TrainConfig, PathBuf) + Sync) -> Vec<fovea::Result<Outcome>> {
    let setup = &setup;
    std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|r| {
                s.spawn(move || {
                    let (cfg, dir) = setup(r.rank());
                    let group: Arc<dyn Collective> = Arc::new(r);
                    train(&cfg, &dir, resume, &RunOptions { group: Some(group), ..RunOptions::default() })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn mnist_config(data: &Path) -> TrainConfig {
    let mut cfg = TrainConfig::defaults("mnist-cnn", data);
    // 300 - 40 held out = 260 training images: 8 batches of 32 and a tail of 4, so every rank
    // count tried here meets uneven shares.
    (cfg.epochs, cfg.batch_size, cfg.val_size, cfg.checkpoint_every, cfg.log_every) = (1, 32, 40, 3, 1);
    cfg
}

#[test]
fn ranks_train_the_single_process_run() {
    let (root, data) = toy_mnist_dir("dist-mnist", 300, 60);
    // mnist-cnn has dropout and the run shifts its images: both drawn per image, so the shares
    // must draw them for their place in the whole batch. Adam would hide a gradient off by a
    // constant factor (its step divides by the gradient's size); SGD would not.
    let base = mnist_config(&data);
    let mut want_adam = None;
    for optimizer in ["adam", "sgd"] {
        let mut cfg = base.clone();
        cfg.optimizer = optimizer.into();
        let single_dir = root.join(format!("single-{optimizer}"));
        let single = train(&cfg, &single_dir, false, &RunOptions::default()).unwrap();
        let want = checkpoint::load(&single_dir.join("last.safetensors")).unwrap();
        for ranks in [2, 3] {
            let dir = root.join(format!("{optimizer}-ranks{ranks}"));
            let elsewhere = root.join(format!("not-written-{optimizer}-{ranks}"));
            let outcomes: Vec<Outcome> = train_on_ranks(&cfg, &dir, &elsewhere, ranks).into_iter().map(|o| o.unwrap()).collect();
            assert!(!elsewhere.exists(), "a rank other than 0 wrote {}", elsewhere.display());
            let got = checkpoint::load(&dir.join("last.safetensors")).unwrap();
            // The ranks' weights are an ulp off the single process's after the first sum in
            // another order, and from then on round conv2's gradients differently: its input
            // gradient under Winograd F(2x2, 5x5) at about one float epsilon of its terms'
            // size, its weight gradient (Winograd too) at 2-12. SGD's step is linear in the
            // gradient: its runs stay within 1e-5 (1.2e-8 measured), a bound a gradient off by a
            // factor breaks. Adam divides each weight's step by its gradient's size, so a weight
            // whose gradient is a near-cancelling sum steps by about the learning rate whichever
            // way its rounding falls, and the runs drift apart from there: conv2's weights
            // 1.6e-5 and 4.9e-5 apart after 9 steps with 2 and 3 ranks, Adam's state up to
            // 6.4e-4 in one build (5e-7 to 1.2e-5 when the weight gradient took the direct
            // tile); another seed's run is more than 1e-2 away (below).
            let (weights_bound, state_bound) = if optimizer == "adam" { (2e-4, 2e-3) } else { (1e-5, 5e-5) };
            let (worst, name) = worst_difference(&want.model, &got.model);
            assert!(worst < weights_bound, "{optimizer}, {ranks} ranks: {name} differs from the single process's by {worst:e}");
            let (worst, name) = worst_difference(&want.optimizer, &got.optimizer);
            assert!(worst < state_bound, "{optimizer}, {ranks} ranks: optimizer state {name} differs by {worst:e}");
            // Every rank holds rank 0's weights, bit for bit, and the shared evaluation gives
            // every rank the whole test set's accuracy.
            for o in &outcomes {
                assert_eq!(o.weights_digest, outcomes[0].weights_digest);
                assert_eq!(o.test_accuracy, single.test_accuracy);
                assert_eq!(o.steps, single.steps);
            }
            let p = got.progress.unwrap();
            assert!((p.best_val_accuracy - single.best_val_accuracy).abs() < 1e-6);
            assert!((outcomes[0].train_loss_per_epoch[0] - single.train_loss_per_epoch[0]).abs() < 1e-5 * single.train_loss_per_epoch[0]);
        }
        want_adam.get_or_insert(want);
    }
    let want = want_adam.unwrap();
    let cfg = base;
    // The bound means something: another seed's run is far off.
    let mut other = cfg.clone();
    other.seed = 2;
    train(&other, &root.join("other"), false, &RunOptions::default()).unwrap();
    let far = checkpoint::load(&root.join("other/last.safetensors")).unwrap();
    assert!(worst_difference(&want.model, &far.model).0 > 1e-2);
    std::fs::remove_dir_all(&root).ok();
}

/// A net with batch norm: each rank normalises its share with the whole batch's statistics, so
/// the run (running statistics included) is the single process's.
#[test]
fn batch_norm_nets_train_the_single_process_run() {
    let root = temp_dir("dist-bn");
    let data = root.join("cifar");
    std::fs::create_dir_all(&data).unwrap();
    let mut rng = fovea::rng::Rng::new(5);
    let records: Vec<u8> = (0..8).flat_map(|i| std::iter::once((i % 10) as u8).chain((0..3072).map(|_| rng.below(256) as u8)).collect::<Vec<_>>()).collect();
    std::fs::write(data.join("data_batch_1.bin"), &records).unwrap();
    std::fs::write(data.join("test_batch.bin"), &records[..4 * 3073]).unwrap();
    // One step of a batch of 8. ResNet-18 on 32x32 images ends in 1x1 maps, so its last batch
    // norms see 8 values per channel: so ill-conditioned that a second step magnifies rounding
    // a hundred thousand times (two thread counts of one process already differ by 7e-3 after
    // it). The step holds everything synchronised batch norm does; the runs of several steps
    // are compared on mnist-cnn above.
    let mut cfg = TrainConfig::defaults("resnet18", &data);
    cfg.input = Some([3, 32, 32]);
    (cfg.epochs, cfg.batch_size, cfg.val_size, cfg.checkpoint_every, cfg.shift) = (1, 8, 0, 0, 1);
    // SGD: its step is linear in the gradient, so a rounding difference in a gradient that
    // nearly cancels (a batch norm bias) stays as small in the weights; Adam's first steps
    // divide it by the gradient's own size.
    (cfg.optimizer, cfg.lr) = ("sgd".into(), 0.01);
    train(&cfg, &root.join("single"), false, &RunOptions::default()).unwrap();
    let want = checkpoint::load(&root.join("single/last.safetensors")).unwrap();
    let outcomes = train_on_ranks(&cfg, &root.join("two"), &root.join("unused"), 2);
    let outcomes: Vec<Outcome> = outcomes.into_iter().map(|o| o.unwrap()).collect();
    assert_eq!(outcomes[0].weights_digest, outcomes[1].weights_digest);
    let got = checkpoint::load(&root.join("two/last.safetensors")).unwrap();
    assert_eq!(got.progress.unwrap().step, 1);
    // Weights, running statistics and the momentum buffers (the step's summed gradient).
    let (worst, name) = worst_difference(&want.model, &got.model);
    assert!(worst < 1e-6, "{name} differs from the single process's by {worst:e}");
    let (worst, name) = worst_difference(&want.optimizer, &got.optimizer);
    assert!(worst < 1e-6, "optimizer state {name} differs from the single process's by {worst:e}");
    assert!(want.model.contains_key("layer4.1.bn2.running_var") && want.optimizer.keys().any(|k| k.contains("bn2.bias")));
    std::fs::remove_dir_all(&root).ok();
}

/// Synchronised batch norm, layer by layer: two ranks' halves of a batch give the halves of
/// the whole batch's output and input gradient, the same running statistics, and parameter
/// gradients that add up to the whole batch's.
#[test]
fn synchronised_batch_norm_is_batch_norm_of_the_whole_batch() {
    let (n, c, h, w) = (6, 3, 4, 5);
    let mut rng = fovea::rng::Rng::new(3);
    let x = Tensor::from_vec(&[n, c, h, w], (0..n * c * h * w).map(|_| rng.normal() * 2.0 + 0.7).collect()).unwrap();
    let dy = Tensor::from_vec(&[n, c, h, w], (0..n * c * h * w).map(|_| rng.normal()).collect()).unwrap();
    let train = ForwardCtx { mode: Mode::Train, ..Default::default() };
    let run = |bn: &mut BatchNorm2d, x: &Tensor, dy: &Tensor| {
        let mut y = Tensor::zeros(x.shape());
        bn.forward(&[x], &mut y, &train).unwrap();
        let mut dx = Tensor::zeros(x.shape());
        bn.backward(&[x], &y, dy, &mut [Some(&mut dx)], &fovea::BackwardCtx::default()).unwrap();
        let grads: Vec<Vec<f32>> = bn.params().iter().map(|(_, p)| p.grad.data().to_vec()).collect();
        let stats: Vec<Vec<f32>> = bn.buffers().iter().map(|(_, b)| b.data().to_vec()).collect();
        (y, dx, grads, stats)
    };
    let (y, dx, grads, stats) = run(&mut BatchNorm2d::new(c), &x, &dy);
    let half = |t: &Tensor, r: usize| {
        let per = t.len() / n;
        let rows = if r == 0 { 0..n / 2 } else { n / 2..n };
        Tensor::from_vec(&[rows.len(), c, h, w], t.data()[rows.start * per..rows.end * per].to_vec()).unwrap()
    };
    let ranks = ThreadGroup::ranks(2, Duration::from_secs(60));
    let parts: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|r| {
                let (xr, dyr) = (half(&x, r.rank()), half(&dy, r.rank()));
                s.spawn(move || {
                    let mut bn = BatchNorm2d::new(c);
                    bn.sync_batch_statistics(Some(Arc::new(r)));
                    run(&mut bn, &xr, &dyr)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let close = |a: &[f32], b: &[f32], what: &str| {
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "{what}[{i}]: {p} vs {q}");
        }
    };
    let per = x.len() / 2;
    for (r, (yr, dxr, _, statsr)) in parts.iter().enumerate() {
        close(yr.data(), &y.data()[r * per..(r + 1) * per], "output");
        close(dxr.data(), &dx.data()[r * per..(r + 1) * per], "input gradient");
        for (got, want) in statsr.iter().zip(&stats) {
            close(got, want, "running statistics");
        }
    }
    for (k, want) in grads.iter().enumerate() {
        let summed: Vec<f32> = (0..want.len()).map(|i| parts[0].2[k][i] + parts[1].2[k][i]).collect();
        close(&summed, want, "parameter gradient");
    }
    // Unsynchronised, a half's own statistics give another output: the check above can fail.
    let (y0, ..) = run(&mut BatchNorm2d::new(c), &half(&x, 0), &half(&dy, 0));
    assert!(y0.data().iter().zip(&y.data()[..per]).any(|(a, b)| (a - b).abs() > 1e-2));
}

#[test]
fn ranks_that_disagree_or_cannot_share_stop_with_a_reason() {
    let (root, data) = toy_mnist_dir("dist-bad", 100, 20);
    let cfg = mnist_config(&data);
    // A rank started with other settings would train another model in lockstep.
    let outcomes = train_ranks_with(ThreadGroup::ranks(2, Duration::from_secs(60)), false, |rank| {
        let mut c = cfg.clone();
        if rank == 1 {
            c.lr = 0.01;
        }
        (c, root.join(format!("r{rank}")))
    });
    let e1 = outcomes[1].as_ref().err().unwrap().to_string();
    assert!(e1.contains("rank 1") && e1.contains("training configuration differs"), "{e1}");
    let e0 = outcomes[0].as_ref().err().unwrap().to_string();
    assert!(e0.contains("training configuration") && e0.contains("1 of 2 ranks"), "{e0}");
    // More ranks than images in a batch.
    let mut small = cfg.clone();
    small.batch_size = 2;
    let outcomes = train_on_ranks(&small, &root.join("small"), &root.join("small1"), 3);
    let e = outcomes[0].as_ref().err().unwrap().to_string();
    assert!(e.contains("batch of 2") && e.contains("3 ranks"), "{e}");
    std::fs::remove_dir_all(&root).ok();
}


/// A distributed run resumed (rank 0 reads the checkpoint and hands it to the others, whose
/// machines need not see the run directory) continues as the single process's run.
#[test]
fn a_resumed_distributed_run_continues_the_run() {
    let (root, data) = toy_mnist_dir("dist-resume", 300, 60);
    let mut cfg = mnist_config(&data);
    // A constant rate: a cosine schedule is laid over the run's length, which --epochs changes
    // on resume. SGD with momentum, whose state the ranks must all take from the checkpoint,
    // and whose step is linear in the gradient: Adam's runs drift apart from rounding alone
    // (`ranks_train_the_single_process_run`; 1.4e-5 to 6.2e-3 here over 18 steps as builds
    // changed).
    (cfg.epochs, cfg.schedule, cfg.optimizer, cfg.lr) = (2, "constant".into(), "sgd".into(), 0.05);
    // Batches that divide the 260 training images (10 of 26): a tail of 4 splits 2 + 2 on one
    // process's threads and 1 + 1 on each rank's, which sums the first layer's weight gradient
    // over other groups of samples (`weight_grad_group`); that rounding, 1e-7 of the weights,
    // was turned into 6.5e-4 by the second epoch in one build (a ReLU or a pool's maximum
    // flipping on a near-tie), though each sample's forward pass keeps its bits.
    cfg.batch_size = 26;
    train(&cfg, &root.join("single"), false, &RunOptions::default()).unwrap();
    let want = checkpoint::load(&root.join("single/last.safetensors")).unwrap();
    let mut first = cfg.clone();
    first.epochs = 1;
    let dir = root.join("ranks");
    let elsewhere = root.join("not-written");
    for o in train_on_ranks(&first, &dir, &elsewhere, 2) {
        assert_eq!(o.unwrap().steps, 10);
    }
    let resumed = train_ranks_with(ThreadGroup::ranks(2, Duration::from_secs(300)), true, |rank| (cfg.clone(), if rank == 0 { dir.clone() } else { elsewhere.clone() }));
    let resumed: Vec<Outcome> = resumed.into_iter().collect::<fovea::Result<_>>().unwrap();
    assert!(resumed.iter().all(|o| o.steps == 20 && o.seconds_per_epoch.len() == 1));
    assert!(!elsewhere.exists());
    let got = checkpoint::load(&dir.join("last.safetensors")).unwrap();
    let (worst, name) = worst_difference(&want.model, &got.model);
    assert!(worst < 1e-5, "{name} differs from the single process's by {worst:e}");
    std::fs::remove_dir_all(&root).ok();
}
