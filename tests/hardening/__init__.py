"""Issue 14: bad input, retries, secrets, the exporter on the app's loop, SyncStorage types."""
