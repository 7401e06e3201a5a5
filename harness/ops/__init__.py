"""Operations: status, the daily report, alert mail, logs and development extracts."""
