"""Live trading on Solana: wallet keys, Jupiter swaps signed locally, the write-ahead swap log,
settlement from chain, balance reconciliation and the safety rails (docs/live-trading.md)."""
