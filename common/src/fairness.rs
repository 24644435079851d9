//! The pre-queue's draw, and how anyone checks it.
//!
//! When a sale is created the door draws a secret 32-byte seed and publishes its
//! commitment, SHA-256(seed). Shoppers who arrive before the opening join the pre-queue
//! with no place. At the opening the list of their ticket ids is sealed (sorted, and
//! hashed into a digest), and each ticket's place is the rank of
//! SHA-256(seed ‖ digest ‖ ticket id) among them; then the seed is revealed. Anyone holding
//! the sale's fairness document checks that the seed is the one committed to before
//! anybody arrived, that the list hashes to the digest, and that the order follows.
//!
//! What this proves: the order was fixed by a seed chosen before the arrivals and by the
//! list itself, so the operator could not pick it after seeing who came. What it leaves to
//! trust is written in the README ("A fair start"): whoever can read the seed early
//! (the database) could grind names of their own into good places, and nothing here
//! proves that no ticket was left out of the list or made up (a shopper checks their own).

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Bytes of a seed.
pub const SEED_BYTES: usize = 32;

/// A fresh secret seed.
pub fn new_seed() -> [u8; SEED_BYTES] {
    rand::random()
}

/// The public commitment to a seed: SHA-256(seed).
pub fn commitment(seed: &[u8]) -> [u8; 32] {
    Sha256::digest(seed).into()
}

/// The digest sealing a list of ticket ids: SHA-256 of their 16-byte forms, ascending.
pub fn digest(sealed: &[Uuid]) -> [u8; 32] {
    let mut sorted = sealed.to_vec();
    sorted.sort_unstable();
    let mut hash = Sha256::new();
    for ticket in &sorted {
        hash.update(ticket.as_bytes());
    }
    hash.finalize().into()
}

/// The order drawn for `sealed` (any order in, duplicates ignored): ascending by
/// SHA-256(seed ‖ digest ‖ ticket id), ties (never seen) by ticket id.
pub fn draw(seed: &[u8], sealed: &[Uuid]) -> Vec<Uuid> {
    let digest = digest(sealed);
    let mut keyed: Vec<([u8; 32], Uuid)> = sealed
        .iter()
        .map(|ticket| {
            let mut hash = Sha256::new();
            hash.update(seed);
            hash.update(digest);
            hash.update(ticket.as_bytes());
            (hash.finalize().into(), *ticket)
        })
        .collect();
    keyed.sort_unstable();
    keyed.dedup_by_key(|(_, ticket)| *ticket);
    keyed.into_iter().map(|(_, ticket)| ticket).collect()
}

/// What a sale publishes about its draw (`GET /v1/sales/{sale}/fairness`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FairnessDocument {
    /// The sale.
    pub sale_id: String,
    /// SHA-256 of the seed, hex: public from the sale's creation.
    pub commitment: String,
    /// The seed, hex, once the pre-queue has been drawn (`null` before).
    pub seed: Option<String>,
    /// SHA-256 of the sealed list, hex, once drawn.
    pub digest: Option<String>,
    /// When the draw took place.
    pub drawn_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The sealed list: every pre-queued ticket id, ascending (empty before the draw).
    pub tickets: Vec<Uuid>,
    /// The order drawn: the same ids, first place first. Tickets claimed after the draw
    /// queue behind these in arrival order.
    pub order: Vec<Uuid>,
}

/// Why a fairness document does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unfair {
    /// The seed is not revealed yet.
    #[error("the pre-queue has not been drawn yet: nothing to check")]
    NotDrawn,
    /// A field is not valid hex of the right length.
    #[error("{0} is not 32 bytes of hex")]
    Malformed(&'static str),
    /// The commitment is not the one the checker recorded before the opening.
    #[error("the commitment {published} is not the one recorded before the opening ({expected})")]
    CommitmentChanged {
        /// What the document says.
        published: String,
        /// What the checker recorded.
        expected: String,
    },
    /// The revealed seed does not hash to the commitment.
    #[error("the revealed seed does not hash to the commitment")]
    SeedMismatch,
    /// The list is not sorted or holds an id twice.
    #[error("the sealed list is not in ascending order without repeats")]
    ListUnsorted,
    /// The list does not hash to the digest.
    #[error("the sealed list does not hash to the digest (a ticket was added, removed or changed)")]
    DigestMismatch,
    /// The order is not the one the seed and list give.
    #[error("the order differs from the one the seed gives, first at place {place}")]
    OrderMismatch {
        /// 1-based place of the first difference.
        place: usize,
    },
}

/// A document that checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Tickets in the draw.
    pub tickets: usize,
    /// The commitment checked.
    pub commitment: String,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fair: {} pre-queued tickets in the order drawn from the seed committed to as {}",
            self.tickets, self.commitment
        )
    }
}

fn bytes32(hex_text: &str, field: &'static str) -> Result<[u8; 32], Unfair> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text.trim(), &mut out).map_err(|_| Unfair::Malformed(field))?;
    Ok(out)
}

impl FairnessDocument {
    /// Recomputes the draw from the document alone; `recorded` is a commitment the checker
    /// wrote down before the opening (without it the published one is trusted).
    pub fn verify(&self, recorded: Option<&str>) -> Result<Verified, Unfair> {
        let commitment = bytes32(&self.commitment, "commitment")?;
        if let Some(recorded) = recorded
            && bytes32(recorded, "the recorded commitment")? != commitment
        {
            return Err(Unfair::CommitmentChanged {
                published: self.commitment.clone(),
                expected: recorded.trim().to_ascii_lowercase(),
            });
        }
        let (Some(seed), Some(digest)) = (&self.seed, &self.digest) else {
            return Err(Unfair::NotDrawn);
        };
        let seed = bytes32(seed, "seed")?;
        if self::commitment(&seed) != commitment {
            return Err(Unfair::SeedMismatch);
        }
        if self.tickets.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Unfair::ListUnsorted);
        }
        if self::digest(&self.tickets) != bytes32(digest, "digest")? {
            return Err(Unfair::DigestMismatch);
        }
        let expected = draw(&seed, &self.tickets);
        if let Some(place) = (0..expected.len().max(self.order.len()))
            .find(|&i| expected.get(i) != self.order.get(i))
        {
            return Err(Unfair::OrderMismatch { place: place + 1 });
        }
        Ok(Verified {
            tickets: expected.len(),
            commitment: self.commitment.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawn(n: u128) -> FairnessDocument {
        let seed = [7u8; 32];
        let mut tickets: Vec<Uuid> = (1..=n).map(|i| Uuid::from_u128(i * 7919)).collect();
        tickets.sort_unstable();
        FairnessDocument {
            sale_id: "drop".into(),
            commitment: hex::encode(commitment(&seed)),
            seed: Some(hex::encode(seed)),
            digest: Some(hex::encode(digest(&tickets))),
            drawn_at: None,
            order: draw(&seed, &tickets),
            tickets,
        }
    }

    #[test]
    fn the_draw_is_a_permutation_fixed_by_seed_and_list() {
        let doc = drawn(200);
        let mut order = doc.order.clone();
        assert_ne!(order, doc.tickets, "the draw kept the sorted order");
        order.sort_unstable();
        assert_eq!(order, doc.tickets);
        assert_eq!(doc.verify(None).unwrap().tickets, 200);
        // Another seed, or one ticket more, gives another order.
        assert_ne!(draw(&[8u8; 32], &doc.tickets), doc.order);
        let mut more = doc.tickets.clone();
        more.push(Uuid::from_u128(3));
        let reordered: Vec<Uuid> = draw(&[7u8; 32], &more)
            .into_iter()
            .filter(|t| *t != Uuid::from_u128(3))
            .collect();
        assert_ne!(
            reordered, doc.order,
            "adding a ticket must reshuffle the rest"
        );
    }

    #[test]
    fn tampering_is_found() {
        let doc = drawn(50);
        let mut swapped = doc.clone();
        swapped.order.swap(3, 9);
        assert_eq!(
            swapped.verify(None),
            Err(Unfair::OrderMismatch { place: 4 })
        );
        let mut removed = doc.clone();
        removed.tickets.remove(10);
        assert_eq!(removed.verify(None), Err(Unfair::DigestMismatch));
        let mut other_seed = doc.clone();
        other_seed.seed = Some(hex::encode([9u8; 32]));
        assert_eq!(other_seed.verify(None), Err(Unfair::SeedMismatch));
        let mut unsorted = doc.clone();
        unsorted.tickets.swap(0, 1);
        assert_eq!(unsorted.verify(None), Err(Unfair::ListUnsorted));
        let recorded = hex::encode(commitment(&[1u8; 32]));
        assert!(matches!(
            doc.verify(Some(&recorded)),
            Err(Unfair::CommitmentChanged { .. })
        ));
        assert!(doc.verify(Some(&doc.commitment)).is_ok());
        let mut hidden = doc;
        hidden.seed = None;
        assert_eq!(hidden.verify(None), Err(Unfair::NotDrawn));
    }
}
