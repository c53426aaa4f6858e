//! The `fovea` command: a thin layer over the library.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cli;

#[derive(Parser)]
#[command(name = "fovea", version, about = "Convolutional networks on the CPU: build, train and look inside the classic convnets")]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (default: the lecture's MNIST convnet on the bundled MNIST).
    Train(cli::train::Args),
    /// Test accuracy and confusion matrix of trained weights.
    Eval(cli::eval::Args),
    /// Top classes of images under trained weights (MNIST nets: white digits on black, or
    /// --invert).
    Predict(cli::predict::Args),
    /// Pictures of what a model does: filters, activations, saliency, guided backprop,
    /// deconvnet, class and neuron visualizations.
    #[command(subcommand)]
    Viz(cli::viz::Command),
    /// DeepDream: raise what a layer sees in a photo, octave by octave (Mordvintsev et al.).
    Dream(cli::dream::Args),
    /// Style transfer (Gatys et al.): a photo's content in a painting's style, on VGG-19.
    Style(cli::style::Args),
    /// Filter an image with a classic kernel (Sobel, Laplacian, Gaussian, box) as a convolution.
    Filter(cli::viz::FilterArgs),
    /// One self-contained HTML page about trained weights.
    Report(cli::viz::ReportArgs),
    /// Print a model's per-layer table: output shapes, parameters, multiply-adds, left-over cells.
    Summary(cli::summary::Args),
    /// Write trained weights as a standard ONNX model (input `input`, output `logits`).
    Export(cli::export::Args),
    /// The deep visualization toolbox in the browser: live maps, units, top patches, ascents.
    Serve(cli::serve::Args),
    /// Measure speed: convolution, gemm and pooling kernels, training steps, epochs, inference.
    Bench(cli::bench::Args),
}

fn main() -> ExitCode {
    // Output into a closed pipe (`fovea summary resnet152 | head -1`) ends the program quietly,
    // as for any command-line tool, instead of a panic on the failed write.
    #[cfg(unix)]
    // SAFETY: setting signal actions before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        // Past a file-size limit (`ulimit -f`, a quota) a write fails with an error that names
        // the file, as on a full disk, instead of the signal ending the program mid-run.
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = Cli::parse();
    if let Some(t) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(t.max(1)).build_global() {
            eprintln!("error: cannot start {t} threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Train(a) => cli::train::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Predict(a) => cli::predict::run(a),
        Command::Viz(c) => cli::viz::run(c),
        Command::Report(a) => cli::viz::report(a),
        Command::Filter(a) => cli::viz::filter(a),
        Command::Dream(a) => cli::dream::run(a),
        Command::Style(a) => cli::style::run(a),
        Command::Summary(a) => cli::summary::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Export(a) => cli::export::run(a),
        Command::Serve(a) => cli::serve::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Ctrl-C: not an error; the message says what was saved and how to go on.
        Err(fovea::Error::Interrupted(what)) => {
            eprintln!("{what}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every argument of every command says what it is (`fovea X --help` is how a user learns
    /// the tool): a help line for each flag and positional, clap's own --help/--version aside.
    #[test]
    fn every_argument_has_a_help_line() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "fovea", &mut missing);
        assert!(missing.is_empty(), "arguments without a help line: {missing:?}");
    }
}
