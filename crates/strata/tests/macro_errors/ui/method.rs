struct Service;

impl Service {
    #[strata::cached]
    fn lookup(&self, id: u32) -> u32 {
        id
    }
}

fn main() {}
