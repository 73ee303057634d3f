//! Serves the Kubernetes API double on 127.0.0.1 and writes a kubeconfig for it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use sealbox_tests::ApiServer;

/// An in-process Kubernetes API double for local experiments and demos.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0, env = "SEALBOX_DOUBLE_PORT")]
    port: u16,
    /// Where to write the kubeconfig.
    #[arg(
        long,
        default_value = "sealbox-double.kubeconfig",
        env = "SEALBOX_DOUBLE_KUBECONFIG"
    )]
    kubeconfig: PathBuf,
    /// Route the services proxy of NAMESPACE/SERVICE to URL (repeatable), e.g.
    /// `kube-system/sealed-secrets-controller=http://127.0.0.1:8080`.
    #[arg(long = "proxy-service", value_name = "NAMESPACE/SERVICE=URL", value_parser = parse_proxy)]
    proxy_services: Vec<(String, String, String)>,
}

fn parse_proxy(text: &str) -> Result<(String, String, String), String> {
    let (service, url) = text
        .split_once('=')
        .ok_or("expected NAMESPACE/SERVICE=URL")?;
    let (namespace, name) = service
        .split_once('/')
        .ok_or("expected NAMESPACE/SERVICE=URL")?;
    Ok((namespace.to_owned(), name.to_owned(), url.to_owned()))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let server = ApiServer::new();
    for (namespace, service, url) in &cli.proxy_services {
        server.proxy_service(namespace, service, url);
    }
    let served = server
        .serve(SocketAddr::from(([127, 0, 0, 1], cli.port)))
        .await?;
    let kubeconfig = served.write_kubeconfig(&cli.kubeconfig)?;
    #[allow(clippy::print_stdout)]
    {
        println!("serving {}", served.url());
        println!("kubeconfig {}", kubeconfig.display());
    }
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
