//! Proof of work for the door's optional bot check: a challenge is solved by finding a
//! `solution` (a decimal counter) such that SHA-256(challenge ‖ ":" ‖ solution) begins
//! with `bits` zero bits. Solving costs about 2^bits hashes; checking costs one.
//! The door signs and binds the challenges (`admission`'s `pow` module); what is here is
//! the arithmetic both sides share, so the load-test driver solves as a browser would.

use sha2::{Digest, Sha256};

/// Most difficulty an operator may set: about 2^28 hashes, minutes in a browser.
pub const MAX_BITS: u32 = 28;

/// The hash a solution is judged by.
pub fn work_hash(challenge: &str, solution: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(challenge.as_bytes());
    hash.update(b":");
    hash.update(solution.as_bytes());
    hash.finalize().into()
}

/// Leading zero bits of a hash.
pub fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in hash {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// Whether `solution` solves `challenge` at `bits`.
pub fn meets(challenge: &str, solution: &str, bits: u32) -> bool {
    solution.len() <= 20 && leading_zero_bits(&work_hash(challenge, solution)) >= bits
}

/// The first solution (counting from 0), as a shopper's browser finds it.
pub fn solve(challenge: &str, bits: u32) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|candidate| meets(challenge, candidate, bits))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solution_has_the_leading_zero_bits_asked_for() {
        assert_eq!(leading_zero_bits(&[0, 0, 0b0001_0000, 1]), 19);
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0; 4]), 32);
        let solution = solve("v1.drop.challenge", 12);
        assert!(meets("v1.drop.challenge", &solution, 12));
        assert!(leading_zero_bits(&work_hash("v1.drop.challenge", &solution)) >= 12);
        // Every smaller counter fails, so this is the first.
        let n: u64 = solution.parse().unwrap();
        assert!((0..n).all(|k| !meets("v1.drop.challenge", &k.to_string(), 12)));
        // Bound to its challenge.
        assert!(!(0..64).all(|k| meets("v1.other", &(n + k).to_string(), 12)));
    }
}
