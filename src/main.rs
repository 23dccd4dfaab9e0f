#![forbid(unsafe_code)]

fn main() -> anyhow::Result<std::process::ExitCode> {
    imagegate::cli::run()
}
