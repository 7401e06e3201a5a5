"""The file importer's unpack-and-validate step, on real files and no database."""
