//! Protocol errors, worded as Redis words them (after `-ERR `).

/// Input that is not valid RESP or exceeds a limit. The server replies with
/// `-ERR Protocol error: …` and closes the connection, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An array length that is not a number, negative (other than -1), or over the limit.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A bulk length that is not a number, negative, or over the limit.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An array element of a command that is not a bulk string.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// An inline command with an unclosed quote.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// An inline command (or any line) longer than the limit without a line end.
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    /// A client that has not authenticated sent a long array.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulk,
    /// A client that has not authenticated sent a long bulk string.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulk,
    /// A frame (in [`parse_frame`](crate::parse_frame)) with an unknown type byte, a bad number,
    /// a missing CRLF or nesting deeper than the limit.
    #[error("Protocol error: {0}")]
    Invalid(&'static str),
}
