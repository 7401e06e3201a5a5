"""The permit pipeline: staged TPS permits and their PDFs into permit tables and S3."""
