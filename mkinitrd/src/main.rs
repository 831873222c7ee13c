use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = filtertool::parse_args::<mkinitrd::Cli>("mkinitrd", filtertool::exit::USAGE);
    filtertool::main("mkinitrd", filtertool::exit::FAILURE, || mkinitrd::run(cli))
}
