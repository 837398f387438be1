#[strata::cached(ttl = "5 parsecs")]
fn answer(n: u32) -> u32 {
    n
}

fn main() {}
