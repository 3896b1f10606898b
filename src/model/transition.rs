//! The error every illegal state change gives.

/// An illegal state change, naming the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate is {current}; {attempted} is not possible")]
pub struct IllegalTransition {
    /// The state it is in.
    pub current: &'static str,
    /// What was attempted.
    pub attempted: &'static str,
}
