//! The default `neptune` binary: the CLI with the built-in example apps.

fn main() {
    neptune::main_with(neptune::apps::BUILTIN)
}
