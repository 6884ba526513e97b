"""Models defined outside prunegym, as a user's own code: ``workload.model`` names them
as ``benchmarks.models.<module>:<function>`` (run from the repository root)."""
