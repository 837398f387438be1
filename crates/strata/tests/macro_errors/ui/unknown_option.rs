#[strata::cached(size = 100)]
fn answer(n: u32) -> u32 {
    n
}

fn main() {}
