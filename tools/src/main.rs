fn main() {
    eprintln!("quiver: see `quiver --help`");
}
