"""The shipment pipeline: ERP shipments, mapped by triggers, dispatched to DeTrack."""
