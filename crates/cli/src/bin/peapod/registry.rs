//! `peapod login` / `logout` and what pull and push need to reach a registry.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use peapod_image::reference::Reference;
use peapod_image::registry::credentials::Credentials;
use peapod_image::registry::{Client, ClientOptions};

use crate::args::{Cli, LoginArgs, LogoutArgs, RegistryFlags};

pub fn credentials(root: &Path) -> Credentials {
    Credentials::new(root.join("auth.json"))
}

#[derive(serde::Deserialize, Default)]
struct RegistriesConfig {
    #[serde(default)]
    insecure: Vec<String>,
}

/// Client options for `reference`: insecure registries from the flags and
/// `<root>/registries.json`, credentials from `peapod login`.
pub fn client_options(
    root: &Path,
    flags: &RegistryFlags,
    reference: &Reference,
) -> anyhow::Result<ClientOptions> {
    let mut insecure = flags.insecure.clone();
    let cfg_path = root.join("registries.json");
    if let Ok(data) = std::fs::read(&cfg_path) {
        let cfg: RegistriesConfig = serde_json::from_slice(&data)
            .with_context(|| format!("{} is not valid JSON", cfg_path.display()))?;
        insecure.extend(cfg.insecure);
    }
    Ok(ClientOptions {
        insecure,
        credentials: credentials(root).get(reference.registry())?,
    })
}

fn registry_host(arg: &str) -> anyhow::Result<String> {
    let host = arg
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    // Parse a dummy reference to validate the host the same way as image names.
    let r = Reference::parse(&format!("{host}/x"))
        .with_context(|| format!("invalid registry {arg:?}: expected HOST[:PORT]"))?;
    if r.registry() != host && !(host == "index.docker.io" || host == "registry-1.docker.io") {
        bail!(
            "invalid registry {arg:?}: expected HOST[:PORT] (a name with a dot or a port, or localhost)"
        );
    }
    Ok(r.registry().to_string())
}

pub fn login(cli: &Cli, a: &LoginArgs) -> anyhow::Result<()> {
    let host = registry_host(&a.registry)?;
    let password = match (&a.password, a.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the password from stdin")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("no password: pass --password-stdin (and pipe it in) or --password"),
    };
    std::fs::create_dir_all(&cli.root)
        .with_context(|| format!("creating {}", cli.root.display()))?;
    let reference = Reference::parse(&format!("{host}/peapod-login-check"))?;
    let mut opts = client_options(&cli.root, &a.registry_flags, &reference)?;
    opts.credentials = Some((a.username.clone(), password.clone()));
    Client::with_root(&reference, &opts, false, Some(&cli.root))
        .ping()
        .with_context(|| format!("logging in to {host}"))?;
    credentials(&cli.root).set(&host, &a.username, &password)?;
    println!("Login Succeeded");
    Ok(())
}

pub fn logout(cli: &Cli, a: &LogoutArgs) -> anyhow::Result<()> {
    let host = registry_host(&a.registry)?;
    if credentials(&cli.root).remove(&host)? {
        println!("Removed login credentials for {host}");
    } else {
        println!("Not logged in to {host}");
    }
    Ok(())
}
