//! vsbox: one static multi-call binary; see `vsbox --help`.

fn main() {
    let code = vsbox::dispatch::main(std::env::args_os().collect());
    std::process::exit(code);
}
