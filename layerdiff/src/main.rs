use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = filtertool::parse_args::<layerdiff::Cli>("layerdiff", filtertool::exit::USAGE);
    filtertool::main("layerdiff", filtertool::exit::FAILURE, || {
        layerdiff::run(cli)
    })
}
