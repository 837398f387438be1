#[strata::cached(key = n)]
fn answer(n: u32, unused: u32) -> u32 {
    n + unused
}

fn main() {}
