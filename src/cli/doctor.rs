//! `imagegate doctor`: reads the inputs, builds the clients (the wiring), runs the
//! steps of [`crate::doctor`] and prints the report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cluster::Cluster;
use crate::doctor::render::{self, Colour};
use crate::doctor::{DEADLINE, Doctor, Options, STEP_TIMEOUT, SecretSource};
use crate::reference::ImageRef;
use crate::registry::{RegistryClient, RegistryConfig, RegistrySettings};

#[derive(Debug, clap::Args)]
pub(super) struct DoctorArgs {
    /// The image, as written in the pod spec.
    image: String,
    /// The pod's namespace: where `--pull-secret NAME` Secrets are read (through
    /// KUBECONFIG). Without `--pull-secret`, the pull secrets of the namespace's
    /// `default` ServiceAccount are used, as a pod that names none gets them.
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// A pull secret: a docker config file (a path that contains `/` or exists), or
    /// the name of a Secret in the namespace. Repeat for several: they are tried in
    /// order, as the kubelet tries a pod's imagePullSecrets.
    #[arg(long = "pull-secret", value_name = "FILE_OR_NAME")]
    pull_secrets: Vec<String>,
    /// A PEM file with the CA certificates to trust for the registry, besides the
    /// system roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The registry serves plain HTTP.
    #[arg(long)]
    insecure: bool,
    /// The `kubernetes.io/arch` values the image must run on (repeat, or separate
    /// with commas). Default: the architectures of the cluster's Nodes, when a
    /// Kubernetes configuration is found.
    #[arg(long, value_delimiter = ',')]
    arch: Vec<String>,
    /// `text` for a person, `json` for scripts.
    #[arg(long, default_value = "text")]
    output: Output,
    /// Colour the text: `auto` (when stdout is a terminal and NO_COLOR is unset),
    /// `always` or `never`.
    #[arg(long, default_value = "auto")]
    color: ColorChoice,
    /// Seconds each network step may take.
    #[arg(long, default_value_t = STEP_TIMEOUT.as_secs_f64())]
    step_timeout: f64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Exit codes: 0 the image can be pulled, 1 it cannot (or not every step could
/// run), 2 the input cannot be read.
pub(super) fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    match inputs(&args) {
        Ok(inputs) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(diagnose(args, inputs))
        }
        Err(e) => {
            eprintln!("imagegate doctor: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

struct Inputs {
    ca: Option<(String, Vec<u8>)>,
    files: Vec<(usize, String, crate::credentials::DockerConfig)>,
    arch: Vec<String>,
}

/// Reads what the command line names; a file that cannot be read is exit code 2.
fn inputs(args: &DoctorArgs) -> anyhow::Result<Inputs> {
    let ca = match &args.ca {
        Some(path) => {
            let pem =
                std::fs::read(path).with_context(|| format!("reading --ca {}", path.display()))?;
            Some((path.display().to_string(), pem))
        }
        None => None,
    };
    let mut files = Vec::new();
    for (i, value) in args.pull_secrets.iter().enumerate() {
        if is_file(value) {
            let bytes =
                std::fs::read(value).with_context(|| format!("reading --pull-secret {value}"))?;
            let config = crate::credentials::parse_docker_config(&bytes)
                .with_context(|| format!("--pull-secret {value}"))?;
            files.push((i, value.clone(), config));
        }
    }
    let mut arch = Vec::new();
    for a in &args.arch {
        let a = a.trim().trim_start_matches("linux/");
        if a.is_empty() || a.contains('/') {
            anyhow::bail!(
                "--arch takes a kubernetes.io/arch value such as amd64 or arm64, not {a:?}"
            );
        }
        arch.push(crate::platform::normalize_arch(a));
    }
    if !(0.05..=60.0).contains(&args.step_timeout) {
        anyhow::bail!("--step-timeout takes seconds between 0.05 and 60");
    }
    Ok(Inputs { ca, files, arch })
}

/// A `--pull-secret` value names a file when it has a `/` (no Secret name has
/// one) or a file of that name exists.
fn is_file(value: &str) -> bool {
    value.contains('/') || Path::new(value).is_file()
}

async fn diagnose(args: DoctorArgs, inputs: Inputs) -> anyhow::Result<ExitCode> {
    let config = match tokio::time::timeout(Duration::from_secs(2), kube::Config::infer()).await {
        Ok(Ok(config)) => Some(config),
        _ => None,
    };
    let namespace = args
        .namespace
        .clone()
        .or_else(|| config.as_ref().map(|c| c.default_namespace.clone()))
        .unwrap_or_else(|| "default".into());
    let cluster = config
        .and_then(|c| kube::Client::try_from(c).ok())
        .map(|client| Arc::new(Cluster::new(client, Duration::from_secs(30))));
    let mut pull_secrets: Vec<SecretSource> = Vec::new();
    let mut files = inputs.files.into_iter().peekable();
    for (i, value) in args.pull_secrets.iter().enumerate() {
        match files.peek() {
            Some((at, _, _)) if *at == i => {
                let (_, path, config) = files.next().expect("peeked");
                pull_secrets.push(SecretSource::File { path, config });
            }
            _ => pull_secrets.push(SecretSource::Secret(value.clone())),
        }
    }
    if pull_secrets.is_empty() && args.namespace.is_some() {
        pull_secrets.push(SecretSource::ServiceAccount("default".into()));
    }
    let step_timeout = Duration::from_secs_f64(args.step_timeout);
    // The registry client the webhook uses, set up for this one registry.
    let registry = match ImageRef::parse(&args.image) {
        Ok(image) => vec![RegistrySettings {
            host: image.registry().to_string(),
            ca_pem: inputs.ca.as_ref().map(|(_, pem)| pem.clone()),
            insecure: args.insecure,
        }],
        Err(_) => Vec::new(),
    };
    let doctor = Doctor {
        registry: RegistryClient::new(RegistryConfig {
            registries: registry,
            connect_timeout: step_timeout,
            ..RegistryConfig::default()
        }),
        cluster,
    };
    let options = Options {
        image: args.image.clone(),
        ca: inputs.ca,
        insecure: args.insecure,
        arch: inputs.arch,
        pull_secrets,
        namespace,
        step_timeout,
        deadline: DEADLINE,
    };
    let report = doctor.run(&options).await;
    match args.output {
        Output::Json => println!("{}", render::json(&report)),
        Output::Text => {
            let colour = match args.color {
                ColorChoice::Auto => Colour::detect(),
                ColorChoice::Always => Colour::Yes,
                ColorChoice::Never => Colour::No,
            };
            print!("{}", render::text(&report, colour));
        }
    }
    Ok(if report.pullable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
