use std::process::ExitCode;

fn main() -> ExitCode {
    filtertool::main(dockpack::PROGRAM, dockpack::cli::run)
}
