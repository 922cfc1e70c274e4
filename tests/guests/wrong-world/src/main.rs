//! A guest that is a component but exports no Stepwise world, only `wasi:cli/run`.

fn main() {
    println!("hello");
}
