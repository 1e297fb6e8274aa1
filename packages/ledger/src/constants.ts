/** Milliseconds SQLite waits on a locked database before a write fails with SQLITE_BUSY. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000

/** Largest value a voucher sequence may take (uint64 on-chain). */
export const MAX_VOUCHER_SEQUENCE = (1n << 64n) - 1n

/** Width of the zero-padded decimal a voucher sequence is stored as, so text order is numeric order. */
export const VOUCHER_SEQUENCE_DIGITS = 20
