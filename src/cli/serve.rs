//! `fovea serve`: the deep visualization toolbox in the browser (`fovea::serve`).

use fovea::serve::{App, ServedData, ServedModel};
use fovea::{data, Result};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    m: super::weights::ModelArgs,
    /// Images to browse and to take top patches from, as `fovea train --data` reads them (the
    /// test split when there is one) [default for 1x28x28 models: the MNIST bundled in the
    /// binary].
    #[arg(long)]
    data: Option<PathBuf>,
    /// The port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The address to listen on. Only this machine can reach 127.0.0.1; give 0.0.0.0 to serve
    /// the network, knowing that the page has no login.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
}

pub fn run(a: Args) -> Result<()> {
    // A browser that closes a connection mid-answer must not end the server: writes to a closed
    // socket fail with an error instead of the signal (`main` restores the default for pipes).
    #[cfg(unix)]
    // SAFETY: changing a signal's action has no memory effects; no other thread runs yet.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let super::weights::LoadedModel { net, classes } = a.m.load()?;
    let s = net.input_shape().to_vec();
    let shape = [s[0], s[1], s[2]];
    let dir = match &a.data {
        Some(d) => Some(d.clone()),
        None if shape == [1, 28, 28] => Some(super::args::data_or_bundled(&None)),
        None => None,
    };
    let data = match dir {
        Some(dir) => {
            let split = data::load_dir(&dir, shape)?;
            let set = if split.test.is_empty() { split.train } else { split.test };
            if set.is_empty() {
                return Err(fovea::Error::file(&dir, "holds no images"));
            }
            Some(ServedData { name: dir.display().to_string(), set })
        }
        None => None,
    };
    let app = App::new(ServedModel { name: a.m.model.clone(), net, classes, weights: a.m.weights.clone() }, data)?;
    fovea::serve::run(app, &a.host, a.port, |addr| {
        println!("fovea serve: http://{addr}/ (Ctrl-C stops)");
        let _ = std::io::stdout().flush();
    })?;
    eprintln!("fovea serve: stopped");
    Ok(())
}
