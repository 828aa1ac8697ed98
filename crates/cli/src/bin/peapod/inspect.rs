//! `peapod inspect`: containers as `docker inspect` shows them, or one
//! `-f '{{.State.ExitCode}}'` line per container.

use anyhow::Result;
use clap::Args;
use peapod_engine::containers::{Engine, render_template};

use crate::containers::Exit;

#[derive(Args, Debug)]
pub struct ContainerInspectArgs {
    /// `json` (the default), or a template of field paths such as '{{.State.Pid}}'.
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn run(engine: &Engine, a: &ContainerInspectArgs) -> Result<()> {
    let template = a.format.as_deref().filter(|f| *f != "json");
    let mut found = Vec::new();
    let mut failed = false;
    let images = engine.images().ok();
    for c in &a.containers {
        // A container, or else an image (as docker inspect).
        let image = |e| match &images {
            Some(svc) => crate::images::image_value(svc, c).map_err(|_| e),
            None => Err(e),
        };
        match engine
            .inspect(c)
            .map_err(anyhow::Error::from)
            .or_else(image)
        {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("peapod: {}", crate::edge::one_line(&e));
                failed = true;
            }
        }
    }
    match template {
        None => println!("{}", serde_json::to_string_pretty(&found)?),
        Some(t) => {
            // A bad template is reported once, before anything is printed.
            let lines = found
                .iter()
                .map(|v| render_template(t, v))
                .collect::<Result<Vec<_>, _>>()?;
            for l in lines {
                println!("{l}");
            }
        }
    }
    if failed { Err(Exit(1).into()) } else { Ok(()) }
}
