//! `peapod`: the engine's command line (images for now).

mod args;
#[path = "../../edge.rs"]
mod edge;
mod images;
mod registry;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli: args::Cli = match edge::parse("peapod", 2) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peapod: {}", edge::one_line(&e));
            ExitCode::from(1)
        }
    }
}

fn run(cli: args::Cli) -> anyhow::Result<()> {
    use args::{Command, ImageCommand};
    let open = || peapod_image::ImageService::open(&cli.root, &cli.storage_driver);
    match &cli.command {
        Command::Pull(a) => images::pull(&open()?, &cli, a),
        Command::Push(a) => images::push(&open()?, &cli, a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::list(&open()?, a),
        Command::Image(ImageCommand::Rm(a)) => images::remove(&open()?, a),
        Command::Image(ImageCommand::Prune) => images::prune(&open()?),
        Command::Image(ImageCommand::Inspect(a)) => images::inspect(&open()?, a),
        Command::Image(ImageCommand::Import(a)) => images::import(&open()?, a),
        Command::Image(ImageCommand::Export(a)) => images::export(&open()?, a),
        Command::Image(ImageCommand::BuildFromHost(a)) => images::build_from_host(&open()?, a),
        Command::Image(ImageCommand::UnpackLayer(a)) => images::unpack_layer(a),
        Command::Tag(a) => images::tag(&open()?, a),
        Command::Login(a) => registry::login(&cli, a),
        Command::Logout(a) => registry::logout(&cli, a),
    }
}
