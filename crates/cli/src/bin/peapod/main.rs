//! `peapod`: the engine's command line (images for now).

mod args;
mod images;
mod registry;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line: clap's first line names the bad flag or value.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "peapod: {}; see `peapod --help`",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peapod: {}", one_line(&e));
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

/// The error and its causes on one line, skipping causes the message already shows.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg.replace('\n', " ")
}
