use std::process::ExitCode;

fn main() -> ExitCode {
    filtertool::main(layerdiff::PROGRAM, layerdiff::run)
}
