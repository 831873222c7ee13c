//! `chrootrun DIR [CMD [ARG...]]`: parse the command line and hand over to
//! the library; exit codes follow `docker run` (125 for usage errors too).

use std::process::ExitCode;

use filtertool::exit::RUNNER_FAILED;

fn main() -> ExitCode {
    let cli = filtertool::parse_args::<chrootrun::cli::Cli>(chrootrun::TOOL, RUNNER_FAILED);
    filtertool::main(chrootrun::TOOL, RUNNER_FAILED, || chrootrun::run(cli))
}
