//! The communication of a data-parallel step, measured: the time of one allreduce of each
//! model's gradients (parameter count x 4 bytes) over the ranks of an MPI job, as the trainer
//! does it. `cargo build --release --features mpi --example allreduce`, then
//! `mpirun -np 2 target/release/examples/allreduce [--reps 10]`. Rank 0 prints
//! `ALLREDUCE<TAB>model<TAB>ranks<TAB>bytes<TAB>median_ms<TAB>GB/s` (bytes / time: the rate the
//! job moves gradients at). docs/SCALING.md turns the figures into a model of N machines.

use fovea::distributed::Collective;
use std::time::{Duration, Instant};

fn main() -> fovea::Result<()> {
    let reps: usize = std::env::args().skip_while(|a| a != "--reps").nth(1).and_then(|r| r.parse().ok()).unwrap_or(10);
    let world = fovea::distributed::mpi::init(Duration::from_secs(600))?;
    let g = world.group.clone();
    // Parameter counts at the sizes docs/SCALING.md models: MNIST, ImageNet, CIFAR-10 (VGG-16's
    // classifier is the same size at 32x32: adaptive pooling to 7x7 before it).
    for (model, input) in [("mnist-cnn", None), ("resnet18", None), ("vgg16", Some([3, 32, 32]))] {
        let count = fovea::models::build_for(model, 10, input, 1)?.param_count();
        let mut grads = vec![1.0f32; count];
        let mut times = Vec::with_capacity(reps);
        g.sum_f32("warm-up", &mut grads)?;
        for _ in 0..reps {
            let start = Instant::now();
            g.sum_f32("the gradients", &mut grads)?;
            times.push(start.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        if g.rank() == 0 {
            let bytes = count * 4;
            println!("ALLREDUCE\t{model}\t{}\t{bytes}\t{:.3}\t{:.2}", g.size(), median * 1e3, bytes as f64 / median / 1e9);
        }
    }
    Ok(())
}
