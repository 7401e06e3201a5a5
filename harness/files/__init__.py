"""The file importer: files fetched from FTP, SFTP, a folder or S3, unpacked and validated before
a raw copy is stored and COPYed into a staging table."""
