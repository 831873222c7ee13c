use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = filtertool::parse_args::<fileids::Cli>("fileids", filtertool::exit::USAGE);
    filtertool::main("fileids", filtertool::exit::FAILURE, || fileids::run(cli))
}
