#[strata::cached(result = true)]
fn answer(n: u32) -> u32 {
    n
}

fn main() {}
