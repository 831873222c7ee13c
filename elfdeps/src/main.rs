use std::process::ExitCode;

fn main() -> ExitCode {
    filtertool::main(elfdeps::PROGRAM, elfdeps::cli::run)
}
