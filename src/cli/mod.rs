//! The command line: the binary's edge, where errors become `anyhow` and exit codes.

mod check;
mod doctor;
mod serve;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

/// Kubernetes admission webhook for container image policy.
#[derive(Debug, Parser)]
#[command(name = "imagegate", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "IMAGEGATE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the admission webhook over HTTPS.
    Serve(serve::ServeArgs),
    /// Evaluate Kubernetes manifests against the policies, offline (for CI).
    Check(check::CheckArgs),
    /// Work with policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Generate a CA and a serving certificate for the webhook, and print the caBundle.
    Certs(CertsArgs),
    /// Check, step by step, whether an image can be pulled, and say why not.
    Doctor(doctor::DoctorArgs),
    /// Verify a cosign signature or Sigstore bundle offline, against a digest, an
    /// authority (key or keyless identity) and a trust root.
    Verify(Box<verify::VerifyArgs>),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate policy files and print every error with file, line and field.
    Validate {
        /// A policy file or a directory of them.
        path: PathBuf,
    },
    /// Print the JSON Schema of a policy document, for editors.
    Schema,
}

#[derive(Debug, clap::Args)]
struct CertsArgs {
    /// The webhook's Service name.
    #[arg(long, default_value = "imagegate")]
    service: String,
    /// The webhook's namespace.
    #[arg(long, default_value = "imagegate")]
    namespace: String,
    /// Where to write ca.crt, ca.key, tls.crt and tls.key.
    #[arg(long, default_value = "certs/cluster")]
    out_dir: PathBuf,
    /// More DNS names or IP addresses for the serving certificate.
    #[arg(long = "name")]
    names: Vec<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
}

/// Parses the arguments, runs the command and returns its exit code.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // doctor's output is its report: logs only when RUST_LOG asks for them.
    let default_filter = match cli.command {
        Command::Doctor(_) => "off",
        _ => "info",
    };
    init_logging(cli.log_format, default_filter);
    // One crypto provider for every TLS client and server in the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Check(args) => check::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Verify(args) => verify::run(*args),
        Command::Policy(PolicyCommand::Validate { path }) => match crate::policy::load(&path) {
            Ok(set) => {
                println!(
                    "{}: {} valid polic{}",
                    path.display(),
                    set.policies.len(),
                    if set.policies.len() == 1 { "y" } else { "ies" }
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                eprint!("{errors}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Policy(PolicyCommand::Schema) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::policy::spec::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs(args) => {
            let mut names = crate::certs::service_dns_names(&args.service, &args.namespace);
            names.extend(args.names);
            let certs =
                crate::certs::generate(&names, args.days).context("generating certificates")?;
            certs.write(&args.out_dir, true)?;
            eprintln!(
                "wrote {dir}/ca.crt, ca.key, tls.crt, tls.key for {names}; keep ca.key and tls.key out of version control",
                dir = args.out_dir.display(),
                names = names.join(", ")
            );
            eprintln!("caBundle for the webhook configurations:");
            println!("{}", certs.ca_bundle());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    // A panic is caught where imagegate answers (see `crate::unwind`); the hook only
    // records where it happened, as a log record like any other (JSON stays JSON).
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            panic = %crate::unwind::message(info.payload()),
            location,
            "panic"
        );
    }));
}
