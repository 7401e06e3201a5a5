"""The worker runtime both pipelines share: leases and fencing, the claim → in-flight → settle
loop, wake-ups, stopping, and the exit code a scheduler acts on."""
