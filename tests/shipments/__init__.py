"""The shipment pipeline end to end, the DeTrack fake, failures, fencing and schedules."""
