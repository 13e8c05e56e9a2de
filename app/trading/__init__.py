"""Pure trading decisions: no I/O, no asyncio, no floats. Money is ``Decimal``, raw on-chain
amounts are ``int``; every module computes inside its own decimal context (``_num.CTX``)."""
