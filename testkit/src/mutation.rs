//! The mutation loop of the robustness tests: a deterministic generator
//! (so a failure reproduces from its seed), the usual byte mutations (bit
//! flips, token insertions, cuts, truncation, random bytes), and a loop
//! that runs a check over many mutated inputs and fails once, listing the
//! first few bad cases, instead of at the first one.

/// xorshift64*: a deterministic generator. Seed with an odd number.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// One of `items`, which must not be empty.
    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

/// Applies one to six mutations to `input`: a flipped bit, one of
/// `tokens` inserted, a cut of up to 64 bytes, a truncation, or a random
/// byte inserted.
pub fn mutate_bytes(rng: &mut Rng, tokens: &[&[u8]], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(6) {
        let len = input.len();
        match rng.below(5) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if !tokens.is_empty() => {
                let i = rng.below(len + 1);
                let t = tokens[rng.below(tokens.len())];
                input.splice(i..i, t.iter().copied());
            }
            2 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                input.drain(a..b);
            }
            3 if len > 0 => input.truncate(rng.below(len)),
            _ => {
                let i = rng.below(len + 1);
                input.insert(i, (rng.next_u64() & 0xff) as u8);
            }
        }
    }
}

/// Runs `check` on `rounds` inputs, each a seed of `seeds` (in turn)
/// mutated by `mutate`; `check` returns why an input was handled wrongly,
/// or None. Panics at the end naming the generator seed and the first
/// five bad inputs, if any.
pub fn mutation_loop<M, C>(seed: u64, seeds: &[Vec<u8>], rounds: usize, mut mutate: M, mut check: C)
where
    M: FnMut(&mut Rng, &mut Vec<u8>),
    C: FnMut(&[u8]) -> Option<String>,
{
    assert!(
        !seeds.is_empty(),
        "mutation_loop needs at least one seed input"
    );
    let mut rng = Rng(seed | 1);
    let mut bad = Vec::new();
    for round in 0..rounds {
        let mut input = seeds[round % seeds.len()].clone();
        mutate(&mut rng, &mut input);
        if let Some(why) = check(&input) {
            bad.push(format!(
                "round {round}: {why}; input {:?}",
                String::from_utf8_lossy(&input[..input.len().min(300)])
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {rounds} mutated inputs (seed {seed:#x}) went wrong; first ones:\n{}",
        bad.len(),
        bad[..bad.len().min(5)].join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert!(xs.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn mutations_change_the_input() {
        let mut rng = Rng(3);
        let mut changed = 0;
        for _ in 0..100 {
            let mut v = b"./a 0100644-0-0-00".to_vec();
            mutate_bytes(&mut rng, &[b"\n"], &mut v);
            changed += usize::from(v != b"./a 0100644-0-0-00");
        }
        assert!(
            changed > 90,
            "only {changed} of 100 mutations changed anything"
        );
    }

    #[test]
    #[should_panic(expected = "mutated inputs")]
    fn the_loop_fails_when_a_check_does() {
        mutation_loop(1, &[b"x".to_vec()], 10, |_, _| {}, |_| Some("bad".into()));
    }
}
