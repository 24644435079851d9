//! How many units one ticket asks for.

use std::fmt;

use super::InvalidValue;

/// A number of units: at least one, at most [`Quantity::MAX`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "i64", into = "i32")]
pub struct Quantity(i32);

impl Quantity {
    /// The hard ceiling for one ticket; a sale's configured limit can only be lower.
    pub const MAX: i32 = 100;

    /// Parses a requested quantity, refusing zero, negatives and anything above `limit`.
    pub fn parse(value: i64, limit: i32) -> Result<Self, InvalidValue> {
        let limit = limit.clamp(1, Self::MAX);
        if value < 1 {
            return Err(InvalidValue::new("quantity", "must be at least 1"));
        }
        if value > i64::from(limit) {
            return Err(InvalidValue::new(
                "quantity",
                format!("must be at most {limit}"),
            ));
        }
        Ok(Self(value as i32))
    }

    /// The number of units.
    pub fn get(self) -> i32 {
        self.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = InvalidValue;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::parse(value, Self::MAX)
    }
}

impl From<Quantity> for i32 {
    fn from(value: Quantity) -> i32 {
        value.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_negative_and_huge_quantities_are_refused() {
        assert!(Quantity::parse(0, 10).is_err());
        assert!(Quantity::parse(-3, 10).is_err());
        assert!(Quantity::parse(11, 10).is_err());
        assert!(Quantity::parse(i64::MAX, 10).is_err());
        assert_eq!(Quantity::parse(10, 10).unwrap().get(), 10);
    }
}
