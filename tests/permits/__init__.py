"""The permit pipeline end to end, its failures and its fencing."""
