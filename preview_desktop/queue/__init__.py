"""Job stores behind one interface (base.JobStore): local.LocalStore (diskcache), memory.MemoryStore (tests)."""
