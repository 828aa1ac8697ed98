//! `peapod`: the engine's command line: images, containers, networks and
//! volumes.

mod args;
mod containers;
mod cp;
mod deploy_cmd;
#[path = "../../edge.rs"]
mod edge;
mod export;
mod images;
mod inspect;
mod job_cmd;
mod kube_cmd;
mod network_cmd;
mod pod_cmd;
mod ps;
mod registry;
mod rollout_cmd;
mod rootfs_tar;
mod run_args;
mod stats;
mod system;
mod table;
mod top;
#[allow(dead_code)]
#[path = "../pea/tty.rs"]
mod tty;
mod volume_cmd;

use std::process::ExitCode;

use peapod_engine::containers::Engine;

fn main() -> ExitCode {
    let cli: args::Cli = match edge::parse("peapod", containers::ENGINE_ERROR as u8) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Docker's codes: 125 when the engine fails to run a container, 1 for
    // other commands' errors.
    let failure = if cli.command.is_container() {
        containers::ENGINE_ERROR as u8
    } else {
        1
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(containers::Exit(code)) = e.downcast_ref::<containers::Exit>() {
                return ExitCode::from(*code as u8);
            }
            eprintln!("peapod: {}", edge::one_line(&e));
            ExitCode::from(failure)
        }
    }
}

fn engine(cli: &args::Cli) -> anyhow::Result<Engine> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this program's own path: {e}"))?;
    Ok(Engine::new(cli.paths(), &cli.storage_driver, exe))
}

/// The engine, after starting again any Deployment, ReplicaSet or Job
/// controller that died: for the commands that read or change those
/// objects (and `get pods`), so replicas are kept after a crash or a
/// reboot. A controller that cannot be started is a warning: the command
/// itself still runs.
fn revived(cli: &args::Cli) -> anyhow::Result<Engine> {
    let engine = engine(cli)?;
    for f in engine.revive_controllers() {
        eprintln!(
            "peapod: warning: could not start the controller of {} again: {}",
            f.object, f.error
        );
    }
    Ok(engine)
}

fn run(cli: args::Cli) -> anyhow::Result<()> {
    use args::{Command, ImageCommand};
    let open = || peapod_image::ImageService::open(&cli.root, &cli.storage_driver);
    match &cli.command {
        Command::Pull(a) => images::pull(&open()?, &cli, a),
        Command::Push(a) => images::push(&open()?, &cli, a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::list(&open()?, a),
        Command::Image(ImageCommand::Rm(a)) => {
            let e = engine(&cli)?;
            images::remove(&open()?, a, &|id| images::image_users(&e, id))
        }
        Command::Image(ImageCommand::Prune) => images::prune(&open()?),
        Command::Image(ImageCommand::Inspect(a)) => {
            let e = engine(&cli)?;
            images::inspect(&open()?, a, &|name| e.inspect(name).ok())
        }
        Command::Image(ImageCommand::Import(a)) => images::import(&open()?, a),
        Command::Image(ImageCommand::Export(a)) => images::export(&open()?, a),
        Command::Image(ImageCommand::BuildFromHost(a)) => images::build_from_host(&open()?, a),
        Command::Image(ImageCommand::UnpackLayer(a)) => images::unpack_layer(a),
        Command::Tag(a) => images::tag(&open()?, a),
        Command::Login(a) => registry::login(&cli, a),
        Command::Logout(a) => registry::logout(&cli, a),
        Command::Run(a) => containers::run(&engine(&cli)?, &cli, a),
        Command::Create(a) => containers::create(&engine(&cli)?, &cli, a),
        Command::Start(a) => containers::start(&engine(&cli)?, a),
        Command::Stop(a) => containers::stop(&engine(&cli)?, a),
        Command::Restart(a) => containers::restart(&engine(&cli)?, a),
        Command::Kill(a) => containers::kill(&engine(&cli)?, a),
        Command::Rm(a) => containers::rm(&engine(&cli)?, a),
        Command::Wait(a) if a.for_.is_some() => kube_cmd::wait(&revived(&cli)?, a),
        Command::Wait(a) => containers::wait(&engine(&cli)?, a),
        Command::Logs(a) => containers::logs(&engine(&cli)?, a),
        Command::Exec(a) => containers::exec(&engine(&cli)?, a),
        Command::Supervise(a) => containers::supervise(&engine(&cli)?, a),
        Command::PodSupervise(a) => containers::pod_supervise(&engine(&cli)?, a),
        Command::Apply(a) => kube_cmd::apply(&revived(&cli)?, &cli, a),
        Command::Get(a) => kube_cmd::get(&revived(&cli)?, a),
        Command::Describe(a) => kube_cmd::describe(&revived(&cli)?, a),
        Command::Delete(a) => kube_cmd::delete(&revived(&cli)?, a),
        Command::Pod(c) => kube_cmd::pod_ns(&engine(&cli)?, c),
        Command::Scale(a) => deploy_cmd::scale(&revived(&cli)?, a),
        Command::Rollout(c) => rollout_cmd::run(&revived(&cli)?, c),
        Command::DeploySupervise(a) => deploy_cmd::supervise(&engine(&cli)?, a),
        Command::JobSupervise(a) => job_cmd::supervise(&engine(&cli)?, a),
        Command::Volume(c) => {
            let e = engine(&cli)?;
            volume_cmd::run(c, &e.paths, &|v| containers::volume_users(&e, v))
        }
        Command::Network(c) => {
            let e = engine(&cli)?;
            network_cmd::run(c, &e.paths, &|n| containers::network_users(&e, n))
        }
        Command::Ps(a) => ps::run(&engine(&cli)?, a),
        Command::Inspect(a) => inspect::run(&engine(&cli)?, a),
        Command::Top(a) => top::run(&engine(&cli)?, a),
        Command::Stats(a) => stats::run(&engine(&cli)?, a),
        Command::Cp(a) => cp::run(&engine(&cli)?, a),
        Command::Export(a) => export::run(&engine(&cli)?, a),
        Command::System(c) => system::system(&engine(&cli)?, c),
        Command::Container(c) => system::container(&engine(&cli)?, c),
    }
}
