"""Job stores behind one small interface (base.JobStore). local.LocalStore is the diskcache store."""
